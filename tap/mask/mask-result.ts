/**
 * @module tap/mask/mask-result
 * The closed set of masking failure codes and the result/incremental-masker types every masker shares.
 */

/** Why a body is blocked instead of passed: each one is a fail-closed decision, never a pass-through. */
export type MaskErrorCode =
  | "unsupported_content_type"
  | "content_encoded"
  | "body_too_large"
  | "unparseable_json"
  | "event_too_large"
  | "unparseable_watch_event"
  | "unexpected_body"
  | "internal_error";

export interface MaskFailure {
  readonly ok: false;
  readonly code: MaskErrorCode;
  /** Human-readable reason; never contains body bytes. */
  readonly message: string;
}

export interface MaskChunkSuccess {
  readonly ok: true;
  /** Masked bytes to emit in place of the input chunk (may be empty while an event is held back). */
  readonly out: Buffer;
  readonly maskedCount: number;
}

export type StreamMaskResult = MaskChunkSuccess | MaskFailure;

/**
 * An incremental masker: `push` each body chunk in order, then `end` once. After a failure every
 * further call returns the same failure, so a caller cannot accidentally resume a blocked stream.
 */
export interface BodyMasker {
  push(chunk: Buffer): StreamMaskResult;
  end(): StreamMaskResult;
}

export function maskFailure(code: MaskErrorCode, message: string): MaskFailure {
  return { ok: false, code, message };
}

export const EMPTY_BUFFER: Buffer = Buffer.alloc(0);
