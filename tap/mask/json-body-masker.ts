/**
 * @module tap/mask/json-body-masker
 * Buffers a whole JSON response body (up to the configured limit), then parses it once, masks the
 * secret-bearing spots in place and serialises it once; an untouched body is returned byte for byte.
 */
import { isAscii } from "node:buffer";
import type { MaskConfig } from "./mask-config.js";
import { maskKubeDocument, type MaskWalk } from "./mask-kube-object.js";
import { EMPTY_BUFFER, maskFailure, type BodyMasker, type MaskFailure, type StreamMaskResult } from "./mask-result.js";

/** Parses and masks a complete JSON body. Exported for the request-body masker and tests. */
export function maskJsonBuffer(body: Buffer, fallbackKind: string | undefined, config: MaskConfig): StreamMaskResult {
  if (body.length === 0) return { ok: true, out: EMPTY_BUFFER, maskedCount: 0 };
  let doc: unknown;
  try {
    doc = JSON.parse(decodeUtf8(body));
  } catch {
    return maskFailure("unparseable_json", "the response body is not valid JSON");
  }
  const walk: MaskWalk = { config, maskedCount: 0 };
  maskKubeDocument(doc, fallbackKind, walk);
  if (walk.maskedCount === 0) return { ok: true, out: body, maskedCount: 0 };
  return { ok: true, out: Buffer.from(JSON.stringify(doc), "utf8"), maskedCount: walk.maskedCount };
}

/**
 * `body.toString("utf8")`, faster for the usual all-ASCII Kubernetes JSON: for bytes below 0x80 the
 * latin1 and UTF-8 decodings are the same string, and latin1 is a plain copy (no UTF-8 validation).
 * `isAscii` is a vectorised scan, a fraction of the decode it saves; anything else decodes as UTF-8.
 */
export function decodeUtf8(body: Buffer): string {
  return isAscii(body) ? body.toString("latin1") : body.toString("utf8");
}

export class JsonBodyMasker implements BodyMasker {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private failure: MaskFailure | undefined;
  private ended = false;

  constructor(
    private readonly config: MaskConfig,
    private readonly fallbackKind: string | undefined,
  ) {}

  /** Holds the chunk back (emits nothing): JSON can only be masked once complete. */
  push(chunk: Buffer): StreamMaskResult {
    if (this.failure) return this.failure;
    if (this.ended) return this.fail(maskFailure("internal_error", "body chunk after end of stream"));
    if (this.bytes + chunk.length > this.config.maxBodyBytes) {
      return this.fail(maskFailure("body_too_large", `the response body exceeds the ${this.config.maxBodyBytes}-byte masking limit`));
    }
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    return { ok: true, out: EMPTY_BUFFER, maskedCount: 0 };
  }

  end(): StreamMaskResult {
    if (this.failure) return this.failure;
    if (this.ended) return { ok: true, out: EMPTY_BUFFER, maskedCount: 0 };
    this.ended = true;
    const body = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.bytes);
    this.chunks.length = 0;
    const result = maskJsonBuffer(body, this.fallbackKind, this.config);
    return result.ok ? result : this.fail(result);
  }

  private fail(failure: MaskFailure): MaskFailure {
    this.chunks.length = 0;
    this.failure = failure;
    return failure;
  }
}

/** For responses that must have no body (unknown content type on an empty response): any byte fails. */
export class EmptyBodyMasker implements BodyMasker {
  private failure: MaskFailure | undefined;

  constructor(private readonly reason: string) {}

  push(chunk: Buffer): StreamMaskResult {
    if (this.failure) return this.failure;
    if (chunk.length === 0) return { ok: true, out: EMPTY_BUFFER, maskedCount: 0 };
    this.failure = maskFailure("unexpected_body", this.reason);
    return this.failure;
  }

  end(): StreamMaskResult {
    return this.failure ?? { ok: true, out: EMPTY_BUFFER, maskedCount: 0 };
  }
}
