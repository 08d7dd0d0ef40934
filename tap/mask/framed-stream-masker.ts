/**
 * @module tap/mask/framed-stream-masker
 * Newline framing for streamed bodies (watch events, log lines): re-assembles lines split across
 * chunks, masks each whole line, and carries a capped tail to the next chunk.
 */
import { isAscii, isUtf8 } from "node:buffer";
import { EMPTY_BUFFER, maskFailure, type BodyMasker, type MaskErrorCode, type MaskFailure, type StreamMaskResult } from "./mask-result.js";

/** `masked` replaces the line's text; `undefined` means the line passes unchanged (byte for byte). */
export type LineMaskResult = { ok: true; masked: string | undefined; maskedCount: number } | MaskFailure;

/**
 * Masks one line. `line` excludes the newline; `terminated` says whether one followed (false only for
 * a final unterminated line at end of stream). The framer re-appends the newline.
 */
export type LineMasker = (line: string, terminated: boolean) => LineMaskResult;

const NEWLINE = 0x0a;
const NEWLINE_BUFFER = Buffer.from("\n");
/** A UTF-16 code unit never takes more than 3 UTF-8 bytes (a surrogate pair: 4 bytes for 2 units). */
const MAX_UTF8_BYTES_PER_UNIT = 3;

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

  /**
   * Masks every line completed by this chunk. The complete lines (carried tail + chunk up to its last
   * newline) are handled as one region: decoded once, output encoded once, instead of a decode, an
   * encode and a Buffer per line.
   */
  push(chunk: Buffer): StreamMaskResult {
    if (this.failure) return this.failure;
    if (this.ended) return this.fail("internal_error", "body chunk after end of stream");
    const lastNewline = chunk.lastIndexOf(NEWLINE);
    if (lastNewline === -1) {
      if (!this.hold(chunk)) return this.tooLong();
      return { ok: true, out: EMPTY_BUFFER, maskedCount: 0 };
    }
    const head = chunk.subarray(0, lastNewline + 1);
    let region = head;
    if (this.tailBytes > 0) {
      this.tail.push(head);
      region = Buffer.concat(this.tail, this.tailBytes + head.length);
      this.tail.length = 0;
      this.tailBytes = 0;
    }
    // All-ASCII (the usual case) is valid UTF-8 whose latin1 decoding is the same string, only cheaper.
    const ascii = isAscii(region);
    const result = ascii || isUtf8(region) ? this.maskUtf8Region(region, ascii) : this.maskRegionLineByLine(region);
    if (!result.ok) return this.fail(result.code, result.message);
    if (lastNewline + 1 < chunk.length && !this.hold(chunk.subarray(lastNewline + 1))) return this.tooLong();
    return result;
  }

  end(): StreamMaskResult {
    if (this.failure) return this.failure;
    if (this.ended) return { ok: true, out: EMPTY_BUFFER, maskedCount: 0 };
    this.ended = true;
    if (this.tailBytes === 0) return { ok: true, out: EMPTY_BUFFER, maskedCount: 0 };
    const line = Buffer.concat(this.tail, this.tailBytes);
    this.tail.length = 0;
    this.tailBytes = 0;
    const result = this.maskLine(line.toString("utf8"), false);
    if (!result.ok) return this.fail(result.code, result.message);
    if (result.masked === undefined) return { ok: true, out: line, maskedCount: 0 };
    return { ok: true, out: Buffer.from(result.masked, "utf8"), maskedCount: result.maskedCount };
  }

  /** Bytes currently held back (for tests and metrics). */
  get heldBytes(): number {
    return this.tailBytes;
  }

  /** Carries an unterminated piece to the next chunk; false when the line would exceed the cap. */
  private hold(piece: Buffer): boolean {
    if (this.tailBytes + piece.length > this.maxLineBytes) return false;
    // Copy: the carried tail must not pin the whole (possibly large) chunk in memory.
    this.tail.push(Buffer.from(piece));
    this.tailBytes += piece.length;
    return true;
  }

  /**
   * Valid UTF-8 decodes and re-encodes losslessly, so unchanged lines can travel as text: the whole
   * region is one string, lines are found with indexOf, and the output is encoded once. A region with
   * no masked line is returned as it came.
   */
  private maskUtf8Region(region: Buffer, ascii: boolean): StreamMaskResult {
    const text = region.toString(ascii ? "latin1" : "utf8");
    const pieces: string[] = [];
    let maskedCount = 0;
    let changed = false;
    let start = 0;
    while (start < text.length) {
      // The region ends with a newline, so every line is terminated.
      const newline = text.indexOf("\n", start);
      const line = text.slice(start, newline);
      // Cheap bound first; the exact byte count only for lines that might be over the cap.
      if (line.length * MAX_UTF8_BYTES_PER_UNIT > this.maxLineBytes && Buffer.byteLength(line, "utf8") > this.maxLineBytes) {
        return this.tooLong();
      }
      const result = this.maskLine(line, true);
      if (!result.ok) return result;
      if (result.masked === undefined) {
        pieces.push(line);
      } else {
        pieces.push(result.masked);
        maskedCount += result.maskedCount;
        changed = true;
      }
      start = newline + 1;
    }
    if (!changed) return { ok: true, out: region, maskedCount: 0 };
    pieces.push("");
    return { ok: true, out: Buffer.from(pieces.join("\n"), "utf8"), maskedCount };
  }

  /** Invalid UTF-8 somewhere: line by line, so unchanged lines keep their exact bytes. */
  private maskRegionLineByLine(region: Buffer): StreamMaskResult {
    const outs: Buffer[] = [];
    let maskedCount = 0;
    let start = 0;
    while (start < region.length) {
      const newline = region.indexOf(NEWLINE, start);
      const line = region.subarray(start, newline);
      if (line.length > this.maxLineBytes) return this.tooLong();
      const result = this.maskLine(line.toString("utf8"), true);
      if (!result.ok) return result;
      if (result.masked === undefined) {
        outs.push(region.subarray(start, newline + 1));
      } else {
        outs.push(Buffer.from(result.masked, "utf8"), NEWLINE_BUFFER);
        maskedCount += result.maskedCount;
      }
      start = newline + 1;
    }
    return { ok: true, out: outs.length === 1 ? (outs[0] as Buffer) : Buffer.concat(outs), maskedCount };
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
