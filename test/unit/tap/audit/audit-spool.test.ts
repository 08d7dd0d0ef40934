/**
 * @module test/unit/tap/audit/audit-spool.test
 * The spool on a scratch directory: group commit, segments, torn-tail repair, corruption, cursor and in-flight state.
 */
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuditSpool, comparePositions, encodeRecord, parseRecords, type SpoolOptions } from "../../../../tap/audit/audit-spool.js";

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
    spool.deleteSegmentsBelow(all.to.segment);
    expect(segments()).toHaveLength(1);
    spool.close();
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
