/**
 * @module tap/mask/framed-stream-masker
 * Newline framing for streamed bodies (watch events, log lines): re-assembles lines split across
 * chunks, masks each whole line, and carries a capped tail to the next chunk.
 */
import { EMPTY_BUFFER, maskFailure, type BodyMasker, type MaskErrorCode, type MaskFailure, type StreamMaskResult } from "./mask-result.js";

export type LineMaskResult = { ok: true; out: Buffer; maskedCount: number } | MaskFailure;

/**
 * Masks one line. `line` excludes the newline; `terminated` says whether one followed (false only for
 * a final unterminated line at end of stream). The output must include the newline when terminated.
 */
export type LineMasker = (line: Buffer, terminated: boolean) => LineMaskResult;

const NEWLINE = 0x0a;

export class FramedStreamMasker implements BodyMasker {
  private readonly tail: Buffer[] = [];
  private tailBytes = 0;
  private failure: MaskFailure | undefined;
  private ended = false;

  constructor(
    private readonly maskLine: LineMasker,
    private readonly maxLineBytes: number,
    private readonly tooLongCode: MaskErrorCode,
  ) {}

  push(chunk: Buffer): StreamMaskResult {
    if (this.failure) return this.failure;
    if (this.ended) return this.fail("internal_error", "body chunk after end of stream");
    const outs: Buffer[] = [];
    let maskedCount = 0;
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(NEWLINE, start);
      if (newline === -1) break;
      let line = chunk.subarray(start, newline);
      if (this.tailBytes > 0) {
        if (this.tailBytes + line.length > this.maxLineBytes) return this.tooLong();
        this.tail.push(line);
        line = Buffer.concat(this.tail, this.tailBytes + line.length);
        this.tail.length = 0;
        this.tailBytes = 0;
      } else if (line.length > this.maxLineBytes) {
        return this.tooLong();
      }
      const result = this.maskLine(line, true);
      if (!result.ok) return this.fail(result.code, result.message);
      outs.push(result.out);
      maskedCount += result.maskedCount;
      start = newline + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.length - start;
      if (this.tailBytes + rest > this.maxLineBytes) return this.tooLong();
      // Copy: the carried tail must not pin the whole (possibly large) chunk in memory.
      this.tail.push(Buffer.from(chunk.subarray(start)));
      this.tailBytes += rest;
    }
    return { ok: true, out: outs.length === 1 ? (outs[0] as Buffer) : Buffer.concat(outs), maskedCount };
  }

  end(): StreamMaskResult {
    if (this.failure) return this.failure;
    if (this.ended) return { ok: true, out: EMPTY_BUFFER, maskedCount: 0 };
    this.ended = true;
    if (this.tailBytes === 0) return { ok: true, out: EMPTY_BUFFER, maskedCount: 0 };
    const line = Buffer.concat(this.tail, this.tailBytes);
    this.tail.length = 0;
    this.tailBytes = 0;
    const result = this.maskLine(line, false);
    if (!result.ok) return this.fail(result.code, result.message);
    return result;
  }

  /** Bytes currently held back (for tests and metrics). */
  get heldBytes(): number {
    return this.tailBytes;
  }

  private tooLong(): MaskFailure {
    return this.fail(this.tooLongCode, `a single streamed record exceeds the ${this.maxLineBytes}-byte limit`);
  }

  private fail(code: MaskErrorCode, message: string): MaskFailure {
    this.tail.length = 0;
    this.tailBytes = 0;
    this.failure = maskFailure(code, message);
    return this.failure;
  }
}
