/**
 * @module test/unit/tap/audit/audit-spool.test
 * The spool on a scratch directory: group commit, segments, torn-tail repair, corruption, cursor and in-flight state.
 */
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AuditSpool, comparePositions, encodeRecord, parseRecords, type SpoolBatch, type SpoolOptions, type SpoolRecordKind,
} from "../../../../tap/audit/audit-spool.js";

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), "airlock-spool-")); });
afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

function opts(overrides: Partial<SpoolOptions> = {}): SpoolOptions {
  return { dir, fsync: "never", fsyncIntervalMs: 50, segmentMaxBytes: 1 << 20, ...overrides };
}

/** The payloads of a batch as strings, without their newlines. */
function texts(lines: readonly Buffer[]): string[] {
  return lines.map((b) => b.toString("utf8").replace(/\n$/, ""));
}

function segments(): string[] {
  return readdirSync(dir).filter((f) => f.startsWith("seg-")).sort();
}

describe("record encoding", () => {
  it("round-trips and rejects a flipped byte", () => {
    const buf = Buffer.from(encodeRecord("R", '{"a":"é"}') + encodeRecord("A", "{}"), "utf8");
    const seen: string[] = [];
    expect(parseRecords(buf, 0, buf.length, (k, b, s, e) => { seen.push(k + b.toString("utf8", s, e - 1)); return true; })).toEqual({ stoppedAt: buf.length, corrupt: 0, halted: false });
    expect(seen).toEqual(['R{"a":"é"}', "A{}"]);
    buf[12] = 0x41;
    const again: string[] = [];
    expect(parseRecords(buf, 0, buf.length, (k, b, s, e) => { again.push(k + b.toString("utf8", s, e - 1)); return true; }).corrupt).toBe(1);
    expect(again).toEqual(["A{}"]);
  });
});

describe("AuditSpool", () => {
  it("writes records of one turn together and reads them back in batches", async () => {
    const spool = AuditSpool.open(opts());
    for (let i = 0; i < 10; i++) spool.append(i % 2 === 0 ? "R" : "A", JSON.stringify({ i }));
    spool.append("D", "{}");
    expect(spool.end.offset).toBe(0);
    await Promise.resolve();
    expect(spool.end.offset).toBeGreaterThan(0);
    const first = await spool.readBatch(spool.cursor, spool.end, 4, 1 << 20);
    expect([...first.requests, ...first.approvals].length).toBe(4);
    const rest = await spool.readBatch(first.to, spool.end, 100, 1 << 20);
    expect(rest.requests.length + rest.approvals.length).toBe(6);
    expect(comparePositions(rest.to, spool.end)).toBe(0);
    spool.close();
  });

  it("limits a batch by bytes but always makes progress", async () => {
    const spool = AuditSpool.open(opts());
    for (let i = 0; i < 5; i++) spool.append("R", "x".repeat(100));
    spool.flushPending();
    const batch = await spool.readBatch(spool.cursor, spool.end, 100, 150);
    expect(batch.requests).toHaveLength(1);
    const tiny = await spool.readBatch(spool.cursor, spool.end, 100, 1);
    expect(tiny.requests).toHaveLength(1);
    spool.close();
  });

  it("rolls segments, starts each with the header, and deletes delivered ones", async () => {
    let n = 0;
    const spool = AuditSpool.open(opts({ segmentMaxBytes: 4096, segmentHeader: () => JSON.stringify({ n: ++n }) }));
    for (let i = 0; i < 200; i++) {
      spool.append("R", JSON.stringify({ i, pad: "p".repeat(50) }));
      if (i % 10 === 0) spool.flushPending();
    }
    spool.flushPending();
    expect(segments().length).toBeGreaterThan(2);
    const second = readFileSync(join(dir, segments()[1]!), "utf8");
    expect(second.slice(8, 9)).toBe("C");
    const all = await spool.readBatch(spool.cursor, spool.end, 1000, 1 << 20);
    expect(texts(all.requests).map((p) => (JSON.parse(p) as { i: number }).i)).toEqual([...Array(200).keys()]);
    await spool.commit(all.to);
    await spool.deleteSegmentsBelow(all.to.segment);
    expect(segments()).toHaveLength(1);
    spool.close();
  });

  it("rolls under the interval fsync policy (old segment synced in the background) and reads everything back", async () => {
    const spool = AuditSpool.open(opts({ fsync: "interval", segmentMaxBytes: 4096, segmentHeader: () => "{}" }));
    for (let i = 0; i < 300; i++) {
      spool.append("R", JSON.stringify({ i, pad: "p".repeat(40) }));
      if (i % 25 === 0) spool.flushPending();
    }
    spool.close();
    expect(segments().length).toBeGreaterThan(3);
    const reopened = AuditSpool.open(opts());
    const all = await reopened.readBatch(reopened.cursor, reopened.end, 1000, 1 << 20);
    expect(all.corruptRecords).toBe(0);
    expect(texts(all.requests).map((p) => (JSON.parse(p) as { i: number }).i)).toEqual([...Array(300).keys()]);
    await reopened.commit(all.to);
    await reopened.deleteSegmentsBelow(all.to.segment);
    expect(segments()).toHaveLength(1);
    expect(reopened.bytes).toBe(readFileSync(join(dir, segments()[0]!)).length);
    reopened.close();
  });

  it("cuts a torn tail at open and keeps the cursor and in-flight batch across restarts", async () => {
    const spool = AuditSpool.open(opts());
    for (let i = 0; i < 4; i++) spool.append("R", JSON.stringify({ i }));
    spool.flushPending();
    const batch = await spool.readBatch(spool.cursor, spool.end, 2, 1 << 20);
    await spool.markInflight({ from: batch.from, to: batch.to });
    spool.close();
    const file = join(dir, segments()[0]!);
    appendFileSync(file, '1234abcdR{"torn":');

    const reopened = AuditSpool.open(opts());
    expect(reopened.inflight).toEqual({ from: batch.from, to: batch.to });
    expect(readFileSync(file, "utf8").endsWith("\n")).toBe(true);
    const replay = await reopened.readBatch(batch.from, batch.to, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    expect(replay.requests).toEqual(batch.requests);
    await reopened.commit(batch.to);
    reopened.append("R", JSON.stringify({ i: 4 }));
    reopened.close();

    const third = AuditSpool.open(opts());
    expect(third.inflight).toBeUndefined();
    const rest = await third.readBatch(third.cursor, third.end, 100, 1 << 20);
    expect(texts(rest.requests).map((p) => (JSON.parse(p) as { i: number }).i)).toEqual([2, 3, 4]);
    third.close();
  });

  it("keeps the batch queued behind the in-flight one across a restart", async () => {
    const spool = AuditSpool.open(opts());
    for (let i = 0; i < 6; i++) spool.append("R", JSON.stringify({ i }));
    spool.flushPending();
    const first = await spool.readBatch(spool.cursor, spool.end, 2, 1 << 20);
    const second = await spool.readBatch(first.to, spool.end, 2, 1 << 20);
    await spool.markInflight(first, second);
    spool.close();
    const reopened = AuditSpool.open(opts());
    expect(reopened.cursor).toEqual(first.from);
    expect(reopened.inflight).toEqual({ from: first.from, to: first.to });
    expect(reopened.queued).toEqual({ from: second.from, to: second.to });
    // Putting the queued batch in flight commits the first and forgets the queue.
    await reopened.markInflight(second);
    expect(reopened.queued).toBeUndefined();
    reopened.close();
    expect(AuditSpool.open(opts()).cursor).toEqual(second.from);
  });

  it("skips and counts a corrupt record in the middle instead of stopping delivery", async () => {
    const spool = AuditSpool.open(opts());
    for (let i = 0; i < 3; i++) spool.append("R", JSON.stringify({ i }));
    spool.close();
    const file = join(dir, segments()[0]!);
    const lines = readFileSync(file, "utf8").split("\n");
    lines[1] = lines[1]!.replace('"i":1', '"i":7');
    writeFileSync(file, lines.join("\n"));
    const reopened = AuditSpool.open(opts());
    // Only a torn tail is cut at open; a bad record in the middle is skipped and counted.
    const batch = await reopened.readBatch(reopened.cursor, reopened.end, 100, 1 << 20);
    expect(texts(batch.requests)).toEqual(['{"i":0}', '{"i":2}']);
    expect(batch.corruptRecords).toBe(1);
    reopened.close();
  });

  it("counts every byte on disk and waiting in memory", () => {
    const spool = AuditSpool.open(opts());
    spool.append("R", "abc");
    expect(spool.bytes).toBe(Buffer.byteLength(encodeRecord("R", "abc")));
    spool.flushPending();
    expect(spool.bytes).toBe(Buffer.byteLength(encodeRecord("R", "abc")));
    spool.close();
  });
});

describe("AuditSpool read cache", () => {
  /** Read everything after `from` in batches of the given limits, as comparable plain data. */
  async function drain(spool: AuditSpool, limits: readonly { rows: number; bytes: number }[]): Promise<unknown[]> {
    const out: unknown[] = [];
    let from = spool.cursor;
    for (let i = 0; comparePositions(from, spool.end) < 0; i++) {
      const limit = limits[i % limits.length] ?? { rows: 1, bytes: 1 };
      const b: SpoolBatch = await spool.readBatch(from, spool.end, limit.rows, limit.bytes);
      out.push({ from: b.from, to: b.to, requests: texts(b.requests), approvals: texts(b.approvals), corrupt: b.corruptRecords });
      // Every batch makes progress (a position going backwards would re-deliver rows forever).
      if (comparePositions(b.to, from) <= 0) throw new Error(`no progress at ${JSON.stringify(from)} -> ${JSON.stringify(b.to)}`);
      from = b.to;
    }
    return out;
  }

  it("serves exactly the batches a read from disk returns, across groups, segments and a trimmed cache", async () => {
    const record = fc.record({
      kind: fc.constantFrom<SpoolRecordKind>("R", "A", "D"),
      // Multi-byte characters make byte offsets differ from string lengths.
      payload: fc.string({ unit: "grapheme", maxLength: 120 }).map((t) => JSON.stringify({ t })),
      endsGroup: fc.boolean(),
      // The sink hands a row line over as the canonical text without its closing brace plus the hash tail.
      withTail: fc.boolean(),
    });
    const limit = fc.record({ rows: fc.integer({ min: 1, max: 40 }), bytes: fc.integer({ min: 1, max: 3000 }) });
    await fc.assert(fc.asyncProperty(
      fc.array(record, { minLength: 1, maxLength: 150 }),
      fc.array(limit, { minLength: 1, maxLength: 5 }),
      fc.constantFrom(0, 700, 1 << 20),
      async (records, limits, readCacheMaxBytes) => {
        const sub = mkdtempSync(join(dir, "p-"));
        let headers = 0;
        const o = { ...opts({ segmentMaxBytes: 4096, readCacheMaxBytes }), dir: sub, segmentHeader: () => JSON.stringify({ h: ++headers }) };
        const writer = AuditSpool.open(o);
        for (const r of records) {
          if (r.withTail) writer.append(r.kind, r.payload.slice(0, -1), r.payload.slice(-1));
          else writer.append(r.kind, r.payload);
          if (r.endsGroup) writer.flushPending();
        }
        writer.flushPending();
        const cached = await drain(writer, limits);
        // A second handle has nothing in memory: it reads (and CRC-checks) the files the first one wrote.
        const reader = AuditSpool.open({ ...o, readCacheMaxBytes: 0 });
        expect(await drain(reader, limits)).toEqual(cached);
        const delivered = records.filter((r) => r.kind !== "D").map((r) => r.payload);
        expect(cached.flatMap((b) => { const x = b as { requests: string[]; approvals: string[] }; return [...x.requests, ...x.approvals]; }).sort())
          .toEqual([...delivered].sort());
        reader.close();
        writer.close();
        rmSync(sub, { recursive: true, force: true });
      },
    ), { numRuns: 60 });
  });

  it("writes the same bytes as encodeRecord and continues from disk where the cache was trimmed", async () => {
    const spool = AuditSpool.open(opts({ readCacheMaxBytes: 200 }));
    const payloads = Array.from({ length: 30 }, (_, i) => JSON.stringify({ i, s: "é".repeat(i % 5) }));
    for (const [i, p] of payloads.entries()) {
      spool.append(i % 3 === 0 ? "A" : "R", p);
      if (i % 4 === 3) spool.flushPending();
    }
    spool.flushPending();
    const file = readFileSync(join(dir, segments()[0]!), "utf8");
    expect(file).toBe(payloads.map((p, i) => encodeRecord(i % 3 === 0 ? "A" : "R", p)).join(""));
    const batch = await spool.readBatch(spool.cursor, spool.end, 1000, 1 << 20);
    // The first call stops where the in-memory run begins; the second is served from memory.
    expect(comparePositions(batch.to, spool.end)).toBeLessThan(0);
    const rest = await spool.readBatch(batch.to, spool.end, 1000, 1 << 20);
    expect(comparePositions(rest.to, spool.end)).toBe(0);
    expect([...texts(batch.requests), ...texts(rest.requests)]).toEqual(payloads.filter((_, i) => i % 3 !== 0));
    spool.close();
  });

  it("refuses a payload with a raw newline instead of corrupting the segment", () => {
    const spool = AuditSpool.open(opts());
    expect(() => spool.append("R", '{"a":1}\n{"b":2}')).toThrow(/newline/);
    spool.close();
  });
});
