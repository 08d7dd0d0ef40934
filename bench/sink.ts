/**
 * @module bench/sink
 * Audit sink throughput: rows/s through the sink into chDB and into a ClickHouse server, next to bare inserts.
 */
// Run: npx vite-node bench/sink.ts [rows]   (the server part runs when clickhouse-server is installed)
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { ClickHouseLogLevel, createClient } from "@clickhouse/client";
import { openAuditSink } from "../tap/audit/audit-sink.js";
import type { AuditConfigInput } from "../tap/audit/audit-config.js";
import { ChdbAuditStore } from "../tap/audit/chdb-store.js";
import { ClickHouseServerAuditStore } from "../tap/audit/clickhouse-server-store.js";
import { applyMigrations, findSchemaDir } from "../tap/audit/schema-migrations.js";
import { clickHouseServerBinary, startClickHouseServer } from "../test/helpers/clickhouse-server.js";
import { decisionEvent, exchangeFor } from "../test/helpers/audit-events.js";
import type { DecisionEvent, ExchangeEvent } from "../tap/audit/audit-event.js";

const ROWS = Number(process.argv[2] ?? 100_000);
const root = mkdtempSync(join(tmpdir(), "airlock-bench-sink-"));

interface Result {
  name: string;
  rows: number;
  recordMs: number;
  /** Time flush() took after the last record: the part of the run that delivery did not overlap. */
  drainMs: number;
  totalMs: number;
  /** CPU time of the JavaScript thread (undefined where /proc is not available). */
  mainCpuMs: number | undefined;
  /** CPU time of the whole process: the JavaScript thread, libuv's pool, GC helpers, and chDB's engine threads. */
  processCpuMs: number;
}
const results: Result[] = [];

/** CPU time (user + system) of the main thread so far, from /proc (Linux; clock ticks of 10 ms). */
function mainThreadCpuMs(): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8");
    // Fields after the command name, which is in parentheses and may contain spaces: utime is the 12th, stime the 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

function processCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Measure fn: wall time, main-thread CPU and process CPU. */
async function measured<T>(fn: () => Promise<T>): Promise<{ value: T; totalMs: number; mainCpuMs: number | undefined; processCpuMs: number }> {
  const m0 = mainThreadCpuMs();
  const p0 = processCpuMs();
  const t0 = performance.now();
  const value = await fn();
  const totalMs = performance.now() - t0;
  const m1 = mainThreadCpuMs();
  return { value, totalMs, mainCpuMs: m0 === undefined || m1 === undefined ? undefined : m1 - m0, processCpuMs: processCpuMs() - p0 };
}

function events(n: number): [DecisionEvent, ExchangeEvent][] {
  return Array.from({ length: n }, (_, i) => {
    const d = decisionEvent({ sessionId: `bench-${i % 64}` });
    return [d, exchangeFor(d)];
  });
}

async function throughSink(name: string, cfg: AuditConfigInput): Promise<void> {
  const sink = await openAuditSink(cfg);
  // Warm the schema and the connection so the timing is delivery, not DDL.
  sink.recordDecision(decisionEvent({ effect: "Deny" }));
  await sink.flush();
  // A sustained stream as a gateway sees it: per turn, the decisions of 500 new requests and the exchanges
  // of the 500 before (their responses came back meanwhile), yielding to the event loop in between so
  // delivery overlaps with recording. Events are made as the stream goes, as requests would make them (a
  // heap holding all of them at once would tax every garbage collection). recordMs sums only the time
  // spent inside record*(); drainMs is what flush() takes after the last record (delivery catching up).
  let recordMs = 0;
  let drainMs = 0;
  const CHUNK = 500;
  const run = await measured(async () => {
    let previous: [DecisionEvent, ExchangeEvent][] = [];
    for (let i = 0; i <= ROWS; i += CHUNK) {
      const current = events(Math.min(CHUNK, ROWS - i));
      const r0 = performance.now();
      for (const [d] of current) sink.recordDecision(d);
      for (const [, x] of previous) sink.recordExchange(x);
      recordMs += performance.now() - r0;
      previous = current;
      await new Promise((r) => setImmediate(r));
    }
    const d0 = performance.now();
    await sink.flush();
    drainMs = performance.now() - d0;
    return sink.metrics();
  });
  await sink.close();
  const m = run.value;
  results.push({
    name: `${name}${m.insertFailures > 0 ? ` (${m.insertFailures} failed attempts)` : ""}`,
    rows: ROWS, recordMs, drainMs, totalMs: run.totalMs, mainCpuMs: run.mainCpuMs, processCpuMs: run.processCpuMs,
  });
}

/** The same rows as JSONEachRow, inserted in one go with no spool, no chain, no merge. */
async function bareRows(): Promise<string[]> {
  const { buildRequestRow } = await import("../tap/audit/audit-row.js");
  return events(ROWS).map(([d, x], i) => JSON.stringify({
    ...buildRequestRow(d, x, { requestBodyMaxBytes: 65536, responseBodyMaxBytes: 65536 }, 0),
    gateway_instance: "bare", chain_id: "bare", chain_seq: i + 1, prev_hash: "", hash: "",
  }));
}

async function main(): Promise<void> {
  const loadStart = loadavg();
  const fsync = (process.env["AIRLOCK_BENCH_FSYNC"] ?? "interval") as "always" | "interval" | "never";
  await throughSink("sink → chDB (embedded)", {
    store: { kind: "embedded", dataDir: join(root, "chdb"), database: "bench" },
    spoolDir: join(root, "spool-chdb"), fsync, gatewayInstance: "bench",
  });
  {
    const store = await ChdbAuditStore.open({ dataDir: join(root, "chdb"), database: "bench_bare" });
    await applyMigrations(store, { dir: join(findSchemaDir(), "migrations"), retentionDays: 30 });
    const rows = await bareRows();
    // Through the same store as the sink, so with the same insert settings: the difference is the sink.
    const run = await measured(async () => {
      const payload = Buffer.from(`${rows.join("\n")}\n`);
      await store.insertJsonEachRow("requests", payload, undefined);
    });
    results.push({ name: "bare chDB insert (same rows)", rows: ROWS, recordMs: 0, drainMs: 0, ...run });
    await store.close();
  }

  if (clickHouseServerBinary() !== undefined) {
    const server = await startClickHouseServer();
    try {
      const base = { kind: "clickhouse" as const, url: server.url, insertDeduplicationToken: false, applyMigrations: false };
      for (const database of ["bench", "bench_bare"]) {
        const s = new ClickHouseServerAuditStore({ ...base, username: "default", database, requestTimeoutMs: 30_000 });
        await applyMigrations(s, { dir: join(findSchemaDir(), "compat", "clickhouse-18") });
        await s.close();
      }
      await throughSink("sink → clickhouse-server 18.16 (HTTP)", {
        store: { ...base, database: "bench" }, spoolDir: join(root, "spool-server"), fsync, gatewayInstance: "bench",
      });
      const rows = await bareRows();
      const client = createClient({ url: server.url, log: { level: ClickHouseLogLevel.OFF } });
      const objects = rows.map((r) => JSON.parse(r) as Record<string, unknown>);
      const run = await measured(() => client.insert({ table: "bench_bare.requests", values: objects, format: "JSONEachRow" }));
      results.push({ name: "bare @clickhouse/client insert (same rows)", rows: ROWS, recordMs: 0, drainMs: 0, ...run });
      await client.close();
    } finally {
      await server.stop();
    }
  } else {
    console.log("clickhouse-server not installed: server rows skipped");
  }

  const load = (l: number[]): string => l.map((x) => x.toFixed(2)).join(" ");
  console.log(`\naudit sink throughput, ${ROWS} rows (decision+exchange merged per row), fsync=${fsync}, node ${process.version}`);
  console.log(`load average at start: ${load(loadStart)}, at end: ${load(loadavg())}\n`);
  // CPU columns do not depend on how busy the machine is the way wall time does: main-thread CPU bounds
  // the rate one JavaScript thread can sustain; process CPU adds chDB's engine threads (not a server's).
  const perRow = (ms: number | undefined, rows: number): string => (ms === undefined ? "-" : `${(ms * 1000 / rows).toFixed(1)} µs/row`);
  console.log("| path | rows | time inside record*() | main-thread CPU | process CPU | drain after last record | end-to-end | rows/s end-to-end |");
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of results) {
    const rate = Math.round(r.rows / (r.totalMs / 1000));
    const record = r.recordMs === 0 ? "-" : `${r.recordMs.toFixed(0)} ms (${perRow(r.recordMs, r.rows)})`;
    const drain = r.recordMs === 0 ? "-" : `${r.drainMs.toFixed(0)} ms`;
    console.log(`| ${r.name} | ${r.rows} | ${record} | ${perRow(r.mainCpuMs, r.rows)} | ${perRow(r.processCpuMs, r.rows)} | ${drain} | ${r.totalMs.toFixed(0)} ms | ${rate} |`);
  }
  rmSync(root, { recursive: true, force: true });
}

await main();
