/**
 * @module test/gateway/body-reader
 * Pull-based reading of an HTTP body stream, so a filter can buffer a prefix and hand the rest on unread.
 */
import type { Readable } from "node:stream";

export class BodyReader {
  private readonly iterator: AsyncIterator<unknown> | null;
  private readonly pending: Buffer[] = [];
  private done = false;
  /** Set when the source stream failed (peer reset / socket error) rather than ending cleanly. */
  failed = false;
  /** Bytes handed out so far, including bytes later pushed back with unshift. */
  bytesRead = 0;

  constructor(source: Readable | readonly Buffer[] | null) {
    if (source === null) {
      this.iterator = null;
      this.done = true;
    } else if (Array.isArray(source)) {
      this.iterator = null;
      this.done = true;
      for (const b of source as readonly Buffer[]) if (b.length > 0) this.pending.push(b);
    } else {
      this.iterator = (source as Readable)[Symbol.asyncIterator]();
    }
  }

  /** The next chunk, or null at the end of the body. */
  async read(): Promise<Buffer | null> {
    const queued = this.pending.shift();
    if (queued) {
      this.bytesRead += queued.length;
      return queued;
    }
    if (this.done || this.iterator === null) return null;
    try {
      const r = await this.iterator.next();
      if (r.done === true) {
        this.done = true;
        return null;
      }
      const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
      this.bytesRead += chunk.length;
      return chunk;
    } catch {
      this.done = true;
      this.failed = true;
      return null;
    }
  }

  /** Pushes bytes back to be read again first. */
  unshift(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.bytesRead -= chunk.length;
    this.pending.unshift(chunk);
  }

  /** Whether nothing is left (only known for sure once read() returned null). */
  get finished(): boolean {
    return this.done && this.pending.length === 0;
  }

  /** Reads and discards the rest. */
  async drain(): Promise<void> {
    while ((await this.read()) !== null) {
      // discard
    }
  }
}
