/**
 * @module bench/sink
 * Audit sink throughput: rows/s through the sink into chDB and into a ClickHouse server, next to bare inserts.
 */
// Run: npx vite-node bench/sink.ts [rows]   (the server part runs when clickhouse-server is installed)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
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

interface Result { name: string; rows: number; recordMs: number; totalMs: number }
const results: Result[] = [];

function events(n: number): [DecisionEvent, ExchangeEvent][] {
  return Array.from({ length: n }, (_, i) => {
    const d = decisionEvent({ sessionId: `bench-${i % 64}` });
    return [d, exchangeFor(d)];
  });
}

async function throughSink(name: string, cfg: AuditConfigInput): Promise<void> {
  const evs = events(ROWS);
  const sink = await openAuditSink(cfg);
  // Warm the schema and the connection so the timing is delivery, not DDL.
  sink.recordDecision(decisionEvent({ effect: "Deny" }));
  await sink.flush();
  // A sustained stream: chunks of 500 requests, yielding to the event loop in between as a server would,
  // so delivery overlaps with recording. recordMs sums only the time spent inside record*().
  let recordMs = 0;
  const t0 = performance.now();
  for (let i = 0; i < evs.length; i += 500) {
    const r0 = performance.now();
    for (const [d, x] of evs.slice(i, i + 500)) {
      sink.recordDecision(d);
      sink.recordExchange(x);
    }
    recordMs += performance.now() - r0;
    await new Promise((r) => setImmediate(r));
  }
  await sink.flush();
  const t2 = performance.now();
  const m = sink.metrics();
  await sink.close();
  results.push({ name: `${name}${m.insertFailures > 0 ? ` (${m.insertFailures} failed attempts)` : ""}`, rows: ROWS, recordMs, totalMs: t2 - t0 });
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
  const fsync = (process.env["AIRLOCK_BENCH_FSYNC"] ?? "interval") as "always" | "interval" | "never";
  await throughSink("sink → chDB (embedded)", {
    store: { kind: "embedded", dataDir: join(root, "chdb"), database: "bench" },
    spoolDir: join(root, "spool-chdb"), fsync, gatewayInstance: "bench",
  });
  {
    const store = await ChdbAuditStore.open({ dataDir: join(root, "chdb"), database: "bench_bare" });
    await applyMigrations(store, { dir: join(findSchemaDir(), "migrations"), retentionDays: 30 });
    const rows = await bareRows();
    const t0 = performance.now();
    const payload = Buffer.from(`${rows.join("\n")}\n`);
    await store.insertJsonEachRow("requests", payload, undefined);
    results.push({ name: "bare chDB insert (same rows)", rows: ROWS, recordMs: 0, totalMs: performance.now() - t0 });
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
      const t0 = performance.now();
      await client.insert({ table: "bench_bare.requests", values: objects, format: "JSONEachRow" });
      results.push({ name: "bare @clickhouse/client insert (same rows)", rows: ROWS, recordMs: 0, totalMs: performance.now() - t0 });
      await client.close();
    } finally {
      await server.stop();
    }
  } else {
    console.log("clickhouse-server not installed: server rows skipped");
  }

  console.log(`\naudit sink throughput, ${ROWS} rows (decision+exchange merged per row), fsync=${fsync}, node ${process.version}\n`);
  console.log("| path | rows | time inside record*() | end-to-end | rows/s end-to-end |");
  console.log("|---|---:|---:|---:|---:|");
  for (const r of results) {
    const rate = Math.round(r.rows / (r.totalMs / 1000));
    console.log(`| ${r.name} | ${r.rows} | ${r.recordMs === 0 ? "-" : `${r.recordMs.toFixed(0)} ms (${(r.recordMs * 1000 / r.rows).toFixed(1)} µs/row)`} | ${r.totalMs.toFixed(0)} ms | ${rate} |`);
  }
  rmSync(root, { recursive: true, force: true });
}

await main();
