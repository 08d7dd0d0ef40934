/**
 * @module tap/audit/audit-spool
 * The local durable spool: append-only segment files, a delivery cursor, crash repair, and bounded reads.
 */
import {
  close, closeSync, fdatasync, fdatasyncSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync,
  readFileSync, readSync, renameSync, statSync, writeFileSync, writeSync,
} from "node:fs";
import { open, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { AuditError } from "./audit-errors.js";

/** R: request row, A: approval row (both delivered); D: held decision, C: chain checkpoint (recovery only). */
export type SpoolRecordKind = "R" | "A" | "D" | "C";
const KINDS: ReadonlySet<string> = new Set(["R", "A", "D", "C"]);

export interface SpoolPosition {
  readonly segment: number;
  readonly offset: number;
}

export type FsyncPolicy = "always" | "interval" | "never";

export interface SpoolOptions {
  readonly dir: string;
  readonly fsync: FsyncPolicy;
  readonly fsyncIntervalMs: number;
  readonly segmentMaxBytes: number;
  /** First record of every new segment, so the chain head survives deletion of older segments. */
  readonly segmentHeader?: () => string;
  /**
   * Bytes of recently written records kept in memory so delivery reads them without going back to disk
   * (default 64 MiB; 0 turns it off). Older records, and everything after a restart, are read from the files.
   */
  readonly readCacheMaxBytes?: number;
}

/** The batch being delivered, persisted before the insert so a restart re-sends exactly the same rows. */
export interface InflightBatch {
  readonly from: SpoolPosition;
  readonly to: SpoolPosition;
}

interface CursorFile {
  readonly segment: number;
  readonly offset: number;
  readonly inflight?: InflightBatch | undefined;
  /** The batch to send right after `inflight` (it starts where that one ends), persisted before it is sent. */
  readonly queued?: InflightBatch | undefined;
}

export interface SpoolBatch {
  readonly from: SpoolPosition;
  readonly to: SpoolPosition;
  /** Delivered kinds only: each a view of one JSONEachRow line, newline included, never decoded to a string. */
  readonly requests: Buffer[];
  readonly approvals: Buffer[];
  readonly corruptRecords: number;
}

const SEGMENT_RE = /^seg-(\d{12})\.log$/;
const HEADER_BYTES = 9; // 8 hex digits of CRC-32 + 1 kind character
const HEX_DIGITS = Buffer.from("0123456789abcdef", "latin1");
const DEFAULT_READ_CACHE_BYTES = 64 * 1024 * 1024;
const KIND_R = 0x52;
const KIND_A = 0x41;
const KIND_C = 0x43;
const READ_CHUNK_BYTES = 4 * 1024 * 1024;
/** Records kept in memory while the disk refuses writes, before append() itself fails. */
const MAX_PENDING_CHARS = 128 * 1024 * 1024;

function segmentName(n: number): string {
  return `seg-${String(n).padStart(12, "0")}.log`;
}

export function comparePositions(a: SpoolPosition, b: SpoolPosition): number {
  return a.segment !== b.segment ? a.segment - b.segment : a.offset - b.offset;
}

/** Encode one record line: CRC-32 (hex) over the UTF-8 of kind+payload, the kind, the payload, a newline. */
export function encodeRecord(kind: SpoolRecordKind, payload: string): string {
  const body = kind + payload;
  return `${crc32(body).toString(16).padStart(8, "0")}${body}\n`;
}

/**
 * Where the delivered records of one written group are: offset of each record in the group, and the span of
 * its JSONEachRow line (payload and newline). Plain numbers, not Buffer views: they stay in memory until the
 * rows are delivered, and millions of long-lived view objects would cost the garbage collector dearly.
 */
interface SealedRows {
  readonly starts: number[];
  readonly lineStarts: number[];
  readonly lineEnds: number[];
  /** 1 for a request row (R), 0 for an approval row (A). */
  readonly isRequest: number[];
}

function writeCrc(buf: Buffer, at: number, crc: number): void {
  let c = crc;
  for (let i = 7; i >= 0; i--) {
    buf[at + i] = HEX_DIGITS[c & 0xf] ?? 0x30;
    c >>>= 4;
  }
}

/**
 * Encode records into one buffer of exactly their size, CRC-32 computed over the encoded bytes: one UTF-8
 * pass per record and no intermediate strings (the format is encodeRecord's, byte for byte). Also collects
 * where the delivered kinds' JSONEachRow lines are, so delivery can use these very bytes.
 */
function encodeGroup(kinds: readonly number[], payloads: readonly string[], tails: readonly string[]): { bytes: Buffer; rows: SealedRows } {
  const lengths = new Array<number>(payloads.length);
  let total = 0;
  for (let i = 0; i < payloads.length; i++) {
    const n = Buffer.byteLength(payloads[i] ?? "", "utf8") + Buffer.byteLength(tails[i] ?? "", "utf8");
    lengths[i] = n;
    total += n + HEADER_BYTES + 1;
  }
  const bytes = Buffer.allocUnsafe(total);
  const rows: SealedRows = { starts: [], lineStarts: [], lineEnds: [], isRequest: [] };
  let pos = 0;
  for (let i = 0; i < payloads.length; i++) {
    const kind = kinds[i] ?? 0;
    const end = pos + HEADER_BYTES + (lengths[i] ?? 0);
    bytes[pos + 8] = kind;
    const tail = tails[i] ?? "";
    const at = pos + HEADER_BYTES + bytes.write(payloads[i] ?? "", pos + HEADER_BYTES, "utf8");
    if (tail !== "") bytes.write(tail, at, "utf8");
    bytes[end] = 0x0a;
    writeCrc(bytes, pos, crc32(bytes.subarray(pos + 8, end)));
    if (kind === KIND_R || kind === KIND_A) {
      rows.starts.push(pos);
      rows.lineStarts.push(pos + HEADER_BYTES);
      rows.lineEnds.push(end + 1);
      rows.isRequest.push(kind === KIND_R ? 1 : 0);
    }
    pos = end + 1;
  }
  return { bytes, rows };
}

/** One written group of records still held in memory for delivery. */
interface CachedGroup {
  readonly segment: number;
  /** File offsets of the group's first byte and of the byte after it. */
  readonly from: number;
  readonly to: number;
  readonly buffer: Buffer;
  readonly rows: SealedRows;
}

/**
 * Walk the complete records in buf[start, end). Calls visit for each valid one; returns where parsing stopped
 * (the start of an incomplete trailing line) and how many lines failed their CRC.
 */
export function parseRecords(
  buf: Buffer, start: number, end: number,
  visit: (kind: SpoolRecordKind, buf: Buffer, payloadStart: number, lineEnd: number, lineStart: number) => boolean,
): { stoppedAt: number; corrupt: number; halted: boolean } {
  let pos = start;
  let corrupt = 0;
  while (pos < end) {
    const nl = buf.indexOf(0x0a, pos);
    if (nl === -1 || nl >= end) break;
    const next = nl + 1;
    const ok = nl - pos >= HEADER_BYTES
      && crc32(buf.subarray(pos + 8, nl)).toString(16).padStart(8, "0") === buf.toString("latin1", pos, pos + 8)
      && KINDS.has(String.fromCharCode(buf[pos + 8] ?? 0));
    if (!ok) {
      corrupt++;
      pos = next;
      continue;
    }
    const kind = String.fromCharCode(buf[pos + 8] ?? 0) as SpoolRecordKind;
    if (!visit(kind, buf, pos + HEADER_BYTES, next, pos)) return { stoppedAt: pos, corrupt, halted: true };
    pos = next;
  }
  return { stoppedAt: pos, corrupt, halted: false };
}

/**
 * Where the last valid record of a segment ends. A crash can only tear the tail, so everything after that
 * point is cut at open; a corrupt record in the middle stays and is skipped (and counted) when read.
 */
function endOfLastValidRecord(buf: Buffer): number {
  let pos = 0;
  let lastGood = 0;
  while (pos < buf.length) {
    const nl = buf.indexOf(0x0a, pos);
    if (nl === -1) break;
    const ok = nl - pos >= HEADER_BYTES
      && crc32(buf.subarray(pos + 8, nl)).toString(16).padStart(8, "0") === buf.toString("latin1", pos, pos + 8);
    pos = nl + 1;
    if (ok) lastGood = pos;
  }
  return lastGood;
}

export class AuditSpool {
  private readonly opts: SpoolOptions;
  private readonly sizes = new Map<number, number>();
  private activeSegment: number;
  private activeFd: number;
  private dirty = false;
  private fsyncTimer: NodeJS.Timeout | undefined;
  private cursorState: CursorFile;
  private closed = false;
  /** Records of the current turn (kind character code, payload, payload tail): encoded and written together. */
  private pendingKinds: number[] = [];
  private pending: string[] = [];
  private pendingTails: string[] = [];
  private pendingChars = 0;
  private flushScheduled = false;
  private writeError: string | undefined;
  /** Contiguous written groups ending at the append end; delivery reads from here when it can. */
  private cache: CachedGroup[] = [];
  private cacheBytes = 0;
  private readonly cacheMaxBytes: number;
  /** Segments being unlinked, so concurrent deletions share one unlink. */
  private readonly unlinking = new Map<number, Promise<void>>();

  private constructor(opts: SpoolOptions, segments: number[], cursor: CursorFile) {
    this.opts = opts;
    for (const n of segments) this.sizes.set(n, statSync(this.path(n)).size);
    const last = segments.at(-1);
    if (last === undefined) {
      this.activeSegment = 1;
      this.activeFd = openSync(this.path(1), "a");
      this.sizes.set(1, 0);
    } else {
      this.activeSegment = last;
      this.activeFd = openSync(this.path(last), "a");
    }
    this.cursorState = cursor;
    this.cacheMaxBytes = opts.readCacheMaxBytes ?? DEFAULT_READ_CACHE_BYTES;
    if (opts.fsync === "interval") {
      this.fsyncTimer = setInterval(() => { this.syncSoon(); }, opts.fsyncIntervalMs);
      this.fsyncTimer.unref();
    }
  }

  /** Open (creating) the spool directory, repair a torn tail, and load the cursor. Synchronous: runs at start. */
  static open(opts: SpoolOptions): AuditSpool {
    try {
      mkdirSync(opts.dir, { recursive: true });
      const segments = readdirSync(opts.dir)
        .map((f) => SEGMENT_RE.exec(f)?.[1])
        .filter((n): n is string => n !== undefined)
        .map(Number)
        .sort((a, b) => a - b);
      const last = segments.at(-1);
      if (last !== undefined) {
        const file = join(opts.dir, segmentName(last));
        const buf = readFileSync(file);
        const valid = endOfLastValidRecord(buf);
        if (valid < buf.length) {
          const fd = openSync(file, "r+");
          try { ftruncateSync(fd, valid); fsyncSync(fd); } finally { closeSync(fd); }
        }
      }
      const first = segments[0] ?? 1;
      let cursor: CursorFile = { segment: first, offset: 0 };
      try {
        const parsed = JSON.parse(readFileSync(join(opts.dir, "cursor.json"), "utf8")) as CursorFile;
        if (Number.isInteger(parsed.segment) && Number.isInteger(parsed.offset)) cursor = parsed;
      } catch {
        // no cursor yet: deliver from the oldest segment
      }
      // A cursor pointing at a deleted segment means everything before the oldest remaining one was delivered.
      if (cursor.segment < first) cursor = { segment: first, offset: 0 };
      return new AuditSpool(opts, segments, cursor);
    } catch (err) {
      if (err instanceof AuditError) throw err;
      throw new AuditError("spool_io", `cannot open audit spool at ${opts.dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  private path(n: number): string {
    return join(this.opts.dir, segmentName(n));
  }

  get dir(): string {
    return this.opts.dir;
  }

  get cursor(): SpoolPosition {
    return { segment: this.cursorState.segment, offset: this.cursorState.offset };
  }

  get inflight(): InflightBatch | undefined {
    return this.cursorState.inflight;
  }

  /** The batch queued behind the in-flight one when the cursor was last written (possibly already sent). */
  get queued(): InflightBatch | undefined {
    return this.cursorState.inflight === undefined ? undefined : this.cursorState.queued;
  }

  /** Where the next record will go. */
  get end(): SpoolPosition {
    return { segment: this.activeSegment, offset: this.sizes.get(this.activeSegment) ?? 0 };
  }

  get bytes(): number {
    let total = this.pendingChars;
    for (const size of this.sizes.values()) total += size;
    return total;
  }

  get oldestSegment(): number {
    let min = this.activeSegment;
    for (const n of this.sizes.keys()) if (n < min) min = n;
    return min;
  }

  /**
   * Append one record and return the segment it lands in. Records appended in one synchronous turn are
   * written together by one write(2) in a microtask (group commit): that runs before Node returns to the
   * event loop, so before any response written in the same turn can leave the process. Call flushPending()
   * to write immediately.
   */
  append(kind: SpoolRecordKind, payload: string, tail = ""): number {
    if (this.closed) throw new AuditError("sink_closed", "audit spool is closed");
    // Lines are framed by newlines; JSON never contains a raw one, anything else would corrupt the segment.
    if (payload.includes("\n") || tail.includes("\n")) throw new AuditError("spool_io", "audit spool record contains a raw newline");
    // UTF-16 length stands in for the byte count until the group is encoded (exact sizes come from the write);
    // it only decides when to roll a segment and what the budget sees in the meantime.
    const lineChars = payload.length + tail.length + HEADER_BYTES + 1;
    if (this.pendingChars + lineChars > MAX_PENDING_CHARS) {
      throw new AuditError("spool_io", `audit spool cannot be written and ${this.pendingChars} characters are waiting in memory`);
    }
    const size = (this.sizes.get(this.activeSegment) ?? 0) + this.pendingChars;
    if (size + lineChars > this.opts.segmentMaxBytes && size > 0 && this.flushPending()) this.roll();
    this.pendingKinds.push(kind.charCodeAt(0));
    this.pending.push(payload);
    this.pendingTails.push(tail);
    this.pendingChars += lineChars;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => {
        this.flushScheduled = false;
        this.flushPending();
      });
    }
    return this.activeSegment;
  }

  /** Why the last write failed, while records wait in memory for the disk to come back. */
  get failure(): string | undefined {
    return this.writeError;
  }

  /** Write everything buffered; true when nothing is left waiting (false: the write failed, retried later). */
  flushPending(): boolean {
    if (this.pending.length === 0) return true;
    if (this.closed) return false;
    try {
      this.writeGroup(this.pendingKinds, this.pending, this.pendingTails);
    } catch (err) {
      this.writeError = err instanceof AuditError ? err.message : String(err);
      return false;
    }
    this.pendingKinds = [];
    this.pending = [];
    this.pendingTails = [];
    this.pendingChars = 0;
    this.writeError = undefined;
    return true;
  }

  /** Encode and write whole records, then keep them for delivery. */
  private writeGroup(kinds: readonly number[], payloads: readonly string[], tails: readonly string[]): void {
    const { bytes, rows } = encodeGroup(kinds, payloads, tails);
    const from = this.sizes.get(this.activeSegment) ?? 0;
    this.writeBytes(bytes);
    this.remember({ segment: this.activeSegment, from, to: from + bytes.length, buffer: bytes, rows });
  }

  /**
   * Add a written group to the read cache. The cache only ever holds one contiguous run ending at the
   * append end; a gap (the cache was off or trimmed to nothing) starts a new run. Over budget, the oldest
   * groups leave first: delivery then reads them from disk, which is always correct, only slower.
   */
  private remember(group: CachedGroup): void {
    if (this.cacheMaxBytes <= 0) return;
    const last = this.cache.at(-1);
    const contiguous = last === undefined || (last.segment === group.segment && last.to === group.from)
      || (group.segment === last.segment + 1 && group.from === 0);
    if (!contiguous) this.dropCache();
    this.cache.push(group);
    this.cacheBytes += group.buffer.length;
    while (this.cacheBytes > this.cacheMaxBytes && this.cache.length > 0) this.dropOldestCached();
  }

  private dropOldestCached(): void {
    const first = this.cache.shift();
    if (first !== undefined) this.cacheBytes -= first.buffer.length;
  }

  private dropCache(): void {
    this.cache = [];
    this.cacheBytes = 0;
  }

  /** Groups wholly before `pos` were delivered and committed: memory goes back. */
  private trimCache(pos: SpoolPosition): void {
    for (;;) {
      const first = this.cache[0];
      if (first === undefined || comparePositions({ segment: first.segment, offset: first.to }, pos) > 0) return;
      this.dropOldestCached();
    }
  }

  private writeBytes(bytes: Buffer): void {
    const before = this.sizes.get(this.activeSegment) ?? 0;
    try {
      let written = 0;
      while (written < bytes.length) written += writeSync(this.activeFd, bytes, written, bytes.length - written);
      if (this.opts.fsync === "always") fdatasyncSync(this.activeFd);
      else this.dirty = true;
    } catch (err) {
      // Cut a partial write back off so the segment stays a sequence of whole records.
      try { ftruncateSync(this.activeFd, before); } catch { /* the next open repairs the tail */ }
      throw new AuditError("spool_io", `audit spool write failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    this.sizes.set(this.activeSegment, before + bytes.length);
  }

  private roll(): void {
    try {
      const old = this.activeFd;
      if (this.opts.fsync === "always") {
        fdatasyncSync(old);
        closeSync(old);
      } else if (this.opts.fsync === "interval") {
        // Synced right away but off the event loop: the interval policy only promises durability within
        // fsyncIntervalMs, and a 32 MiB fsync on the request path would stall every request behind it.
        fdatasync(old, () => { close(old, () => { /* nothing left to do with it */ }); });
      } else {
        closeSync(old);
      }
      this.dirty = false;
      this.activeSegment++;
      this.activeFd = openSync(this.path(this.activeSegment), "a");
      this.sizes.set(this.activeSegment, 0);
      if (this.opts.fsync === "always") {
        const dirFd = openSync(this.opts.dir, "r");
        try { fsyncSync(dirFd); } finally { closeSync(dirFd); }
      } else if (this.opts.fsync === "interval") {
        void syncDirectory(this.opts.dir);
      }
    } catch (err) {
      throw new AuditError("spool_io", `audit spool segment roll failed: ${(err as Error).message}`, { cause: err });
    }
    const header = this.opts.segmentHeader?.();
    if (header !== undefined) this.writeGroup([KIND_C], [header], [""]);
  }

  private syncSoon(): void {
    if (!this.dirty || this.closed) return;
    this.dirty = false;
    fdatasync(this.activeFd, () => { /* an fsync error surfaces on the next write */ });
  }

  /** Synchronous scan of every record from `from` to the current end (used once, at start). */
  scanSync(from: SpoolPosition, visit: (kind: SpoolRecordKind, payload: () => string, at: SpoolPosition) => void): number {
    let corrupt = 0;
    for (const segment of [...this.sizes.keys()].sort((a, b) => a - b)) {
      if (segment < from.segment) continue;
      const size = this.sizes.get(segment) ?? 0;
      const start = segment === from.segment ? from.offset : 0;
      if (size <= start) continue;
      const fd = openSync(this.path(segment), "r");
      try {
        const buf = Buffer.allocUnsafe(size - start);
        let got = 0;
        while (got < buf.length) {
          const n = readSync(fd, buf, got, buf.length - got, start + got);
          if (n === 0) break;
          got += n;
        }
        corrupt += parseRecords(buf, 0, got, (kind, b, payloadStart, lineEnd, lineStart) => {
          // Decoded only when the caller asks: recovery needs few of the payloads it walks over.
          visit(kind, () => b.toString("utf8", payloadStart, lineEnd - 1), { segment, offset: start + lineStart });
          return true;
        }).corrupt;
      } finally {
        closeSync(fd);
      }
    }
    return corrupt;
  }

  /**
   * Read the next batch after `from`: at most maxRows delivered rows and maxBytes of payload, never past
   * `until` (the append end when the read started, or an in-flight batch's end on replay).
   */
  async readBatch(from: SpoolPosition, until: SpoolPosition, maxRows: number, maxBytes: number): Promise<SpoolBatch> {
    const cached = this.readCached(from, until, maxRows, maxBytes);
    if (cached !== undefined) return cached;
    // Not in memory: read the files, but only up to where the cache starts (the next call continues there).
    const head = this.cache[0];
    const headPos = head === undefined ? undefined : { segment: head.segment, offset: head.from };
    const diskUntil = headPos !== undefined && comparePositions(from, headPos) < 0 && comparePositions(headPos, until) < 0 ? headPos : until;
    return this.readFromDisk(from, diskUntil, maxRows, maxBytes);
  }

  /**
   * The same batch readFromDisk would return, from the records still in memory; undefined when `from` is
   * not inside the cached run. The views share the written buffers: nothing is copied or re-checked, as
   * these are the very bytes that went to disk.
   */
  private readCached(from: SpoolPosition, until: SpoolPosition, maxRows: number, maxBytes: number): SpoolBatch | undefined {
    let g = 0;
    for (; g < this.cache.length; g++) {
      const group = this.cache[g];
      if (group !== undefined && comparePositions(from, { segment: group.segment, offset: group.to }) < 0) break;
    }
    const first = this.cache[g];
    if (first === undefined || comparePositions(from, { segment: first.segment, offset: first.from }) < 0) return undefined;
    const requests: Buffer[] = [];
    const approvals: Buffer[] = [];
    let bytes = 0;
    let to: SpoolPosition = from;
    for (; g < this.cache.length; g++) {
      const group = this.cache[g];
      if (group === undefined) break;
      const groupEnd = { segment: group.segment, offset: group.to };
      const { starts, lineStarts, lineEnds, isRequest } = group.rows;
      // Binary search for the first row at or after `from` (only the first group can start mid-way).
      let i = 0;
      if (group.segment === from.segment && from.offset > group.from) {
        const within = from.offset - group.from;
        let hi = starts.length;
        while (i < hi) {
          const mid = (i + hi) >>> 1;
          if ((starts[mid] ?? 0) < within) i = mid + 1;
          else hi = mid;
        }
      }
      for (; i < starts.length; i++) {
        const start = group.from + (starts[i] ?? 0);
        if (comparePositions({ segment: group.segment, offset: start }, until) >= 0) {
          return { from, to: until, requests, approvals, corruptRecords: 0 };
        }
        const lineStart = lineStarts[i] ?? 0;
        const size = (lineEnds[i] ?? 0) - lineStart;
        if (requests.length + approvals.length >= maxRows || (bytes + size > maxBytes && bytes > 0)) {
          return { from, to: { segment: group.segment, offset: start }, requests, approvals, corruptRecords: 0 };
        }
        bytes += size;
        (isRequest[i] === 1 ? requests : approvals).push(group.buffer.subarray(lineStart, lineStart + size));
      }
      if (comparePositions(groupEnd, until) >= 0) return { from, to: until, requests, approvals, corruptRecords: 0 };
      to = groupEnd;
    }
    return { from, to, requests, approvals, corruptRecords: 0 };
  }

  private async readFromDisk(from: SpoolPosition, until: SpoolPosition, maxRows: number, maxBytes: number): Promise<SpoolBatch> {
    const requests: Buffer[] = [];
    const approvals: Buffer[] = [];
    let corrupt = 0;
    let bytes = 0;
    let pos: SpoolPosition = from;
    // An object, not a let: the visitor closure sets it and the loops below must see the change.
    const state = { full: false };
    let chunkSize = READ_CHUNK_BYTES;
    const visit = (kind: SpoolRecordKind, buf: Buffer, payloadStart: number, lineEnd: number): boolean => {
      if (kind !== "R" && kind !== "A") return true;
      const size = lineEnd - payloadStart;
      if (requests.length + approvals.length >= maxRows || (bytes + size > maxBytes && bytes > 0)) {
        state.full = true;
        return false;
      }
      bytes += size;
      (kind === "R" ? requests : approvals).push(buf.subarray(payloadStart, lineEnd));
      return true;
    };
    while (!state.full && comparePositions(pos, until) < 0) {
      const segSize = this.sizes.get(pos.segment);
      if (segSize === undefined) {
        // Segment already deleted (or numbering gap): continue with the next one that exists.
        const next = [...this.sizes.keys()].filter((n) => n > pos.segment).sort((x, y) => x - y)[0];
        if (next === undefined || next > until.segment) break;
        pos = { segment: next, offset: 0 };
        continue;
      }
      const limit = pos.segment === until.segment ? until.offset : segSize;
      if (pos.offset >= limit) {
        if (pos.segment >= until.segment) break;
        pos = { segment: pos.segment + 1, offset: 0 };
        continue;
      }
      const length = Math.min(chunkSize, limit - pos.offset);
      const buf = Buffer.allocUnsafe(length);
      const fh = await open(this.path(pos.segment), "r");
      let bytesRead: number;
      try {
        ({ bytesRead } = await fh.read(buf, 0, length, pos.offset));
      } finally {
        await fh.close();
      }
      const result = parseRecords(buf, 0, bytesRead, visit);
      corrupt += result.corrupt;
      if (result.stoppedAt === 0 && !result.halted) {
        // No complete line in the chunk: either a record larger than the chunk, or an unexpected torn end.
        if (pos.offset + bytesRead >= limit) break;
        chunkSize *= 2;
        continue;
      }
      pos = { segment: pos.segment, offset: pos.offset + result.stoppedAt };
    }
    return { from, to: pos, requests, approvals, corruptRecords: corrupt };
  }

  private async writeCursor(state: CursorFile): Promise<void> {
    const file = join(this.opts.dir, "cursor.json");
    const tmp = `${file}.tmp`;
    if (this.opts.fsync === "never") {
      await writeFile(tmp, JSON.stringify(state));
    } else {
      const fh = await open(tmp, "w");
      try {
        await fh.writeFile(JSON.stringify(state));
        await fh.datasync();
      } finally {
        await fh.close();
      }
    }
    await rename(tmp, file);
    this.cursorState = state;
    this.trimCache({ segment: state.segment, offset: state.offset });
  }

  /**
   * Persist the batch about to be sent (before the insert), and optionally the one to send right after it,
   * so that one can follow the moment the first is confirmed without another cursor write in between.
   * Everything before `batch.from` counts as delivered.
   */
  async markInflight(batch: InflightBatch, queued?: InflightBatch): Promise<void> {
    await this.writeCursor({
      segment: batch.from.segment, offset: batch.from.offset,
      inflight: { from: batch.from, to: batch.to },
      ...(queued === undefined ? {} : { queued: { from: queued.from, to: queued.to } }),
    });
  }

  /** The store confirmed everything before `to`. */
  async commit(to: SpoolPosition): Promise<void> {
    await this.writeCursor({ segment: to.segment, offset: to.offset });
  }

  /**
   * Remove whole segments below `segment` (never the active one); resolves when they are gone. The unlinks
   * run off the event loop (freeing a 32 MiB file takes milliseconds the request path should not wait for);
   * a segment counts towards the spool's bytes until it is really gone, and a failed unlink is retried after
   * the next commit. Never rejects.
   */
  async deleteSegmentsBelow(segment: number): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const n of [...this.sizes.keys()]) {
      if (n >= segment || n === this.activeSegment) continue;
      let removal = this.unlinking.get(n);
      if (removal === undefined) {
        removal = unlink(this.path(n)).then(
          () => { this.sizes.delete(n); },
          (err: unknown) => { if ((err as NodeJS.ErrnoException).code === "ENOENT") this.sizes.delete(n); },
        ).finally(() => { this.unlinking.delete(n); });
        this.unlinking.set(n, removal);
      }
      waits.push(removal);
    }
    await Promise.all(waits);
  }

  close(): void {
    if (this.closed) return;
    this.flushPending();
    this.closed = true;
    this.dropCache();
    if (this.fsyncTimer !== undefined) clearInterval(this.fsyncTimer);
    try {
      if (this.opts.fsync !== "never") fdatasyncSync(this.activeFd);
    } finally {
      closeSync(this.activeFd);
    }
  }
}

/** fsync a directory so a file created in it survives power loss; best effort, off the event loop. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, "r");
    try { await handle.sync(); } finally { await handle.close(); }
  } catch {
    // Only the directory entry of a new segment is at stake, and the interval policy accepts that window.
  }
}

/** Create a small file atomically (tmp + rename), used for the chain id. */
export function writeFileAtomicSync(file: string, content: string): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, content);
  const fd = openSync(tmp, "r");
  try { fsyncSync(fd); } finally { closeSync(fd); }
  renameSync(tmp, file);
}
