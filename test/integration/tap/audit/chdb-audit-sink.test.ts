/**
 * @module test/integration/tap/audit/chdb-audit-sink.test
 * The audit sink end to end on embedded chDB: exactly-once delivery, spool replay, budget, verify, replay.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditConfigInput } from "../../../../tap/audit/audit-config.js";
import { openAuditSink } from "../../../../tap/audit/audit-sink.js";
import { ChdbAuditStore } from "../../../../tap/audit/chdb-store.js";
import { runReplayCommand } from "../../../../tap/audit/replay-command.js";
import { applyMigrations, findSchemaDir, renderSql, splitStatements } from "../../../../tap/audit/schema-migrations.js";
import { runAuditVerifyCommand } from "../../../../tap/audit/verify-command.js";
import { approvalEvent, decisionEvent, exchangeFor } from "../../../helpers/audit-events.js";

// chDB allows one data directory per process: every test in this file shares it, each in its own database.
const root = mkdtempSync(join(tmpdir(), "airlock-audit-chdb-"));
const dataDir = join(root, "chdb");
let store: ChdbAuditStore;
let dbCounter = 0;

type TestConfig = Omit<AuditConfigInput, "store" | "spoolDir"> & {
  store: { kind: "embedded"; dataDir: string; database: string };
  spoolDir: string;
};

function config(overrides: Partial<Omit<AuditConfigInput, "store" | "spoolDir">> = {}): TestConfig {
  dbCounter++;
  return {
    store: { kind: "embedded", dataDir, database: `audit_t${dbCounter}` },
    spoolDir: join(root, `spool-${dbCounter}`),
    gatewayInstance: "gw-test",
    batchMaxDelayMs: 20,
    retryInitialDelayMs: 20,
    retryMaxDelayMs: 200,
    fsync: "never",
    ...overrides,
  };
}

function collect(): { io: { out(t: string): void; err(t: string): void }; out: () => string; err: () => string } {
  let out = "";
  let err = "";
  return { io: { out: (t) => { out += t; }, err: (t) => { err += t; } }, out: () => out, err: () => err };
}

async function count(database: string, where = "1"): Promise<{ c: number; u: number }> {
  const rows = await store.queryRows<{ c: number | string; u: number | string }>(
    `SELECT count() AS c, uniqExact(request_id) AS u FROM ${database}.requests WHERE ${where}`);
  return { c: Number(rows[0]?.c), u: Number(rows[0]?.u) };
}

beforeAll(async () => {
  store = await ChdbAuditStore.open({ dataDir, database: "default" });
});

afterAll(async () => {
  await store.close();
  rmSync(root, { recursive: true, force: true });
});

describe("audit sink on embedded chDB", () => {
  it("delivers 100,000 events exactly once", async () => {
    const cfg = config({ batchMaxRows: 20_000, segmentMaxBytes: 4 * 1024 * 1024 });
    const sink = await openAuditSink(cfg);
    for (let i = 0; i < 50_000; i++) {
      const d = decisionEvent({ sessionId: `bulk-${i % 97}` });
      sink.recordDecision(d);
      sink.recordExchange(exchangeFor(d));
    }
    for (let i = 0; i < 50_000; i++) sink.recordDecision(decisionEvent({ sessionId: `bulk-${i % 97}`, effect: "Deny", ruleIds: ["deny-all"] }));
    await sink.flush();
    const m = sink.metrics();
    expect(m.queueDepth).toBe(0);
    expect(m.rowsDelivered).toBe(100_000);
    expect(await count(cfg.store.database)).toEqual({ c: 100_000, u: 100_000 });
    // Delivered segments are deleted; only the active one remains.
    expect(readdirSync(cfg.spoolDir).filter((f) => f.startsWith("seg-")).length).toBe(1);
    await sink.close({ flushTimeoutMs: 1000 });
    const verify = collect();
    expect(await runAuditVerifyCommand([], verify.io, cfg)).toBe(0);
    expect(verify.out()).toContain("OK: 100000 rows");
  });

  it("exports queue depth, spool bytes, lag and failures to a prom-client registry", async () => {
    const registry = new Registry();
    const logged: string[] = [];
    const logger = { info: (_o: object, m?: string) => { logged.push(`info ${m ?? ""}`); }, warn: (_o: object, m?: string) => { logged.push(`warn ${m ?? ""}`); }, error: (_o: object, m?: string) => { logged.push(`error ${m ?? ""}`); } };
    const sink = await openAuditSink(config({ fsync: "always" }), { metricsRegistry: registry, logger });
    for (let i = 0; i < 3; i++) sink.recordDecision(decisionEvent({ effect: "Deny" }));
    await sink.flush();
    const text = await registry.metrics();
    expect(text).toContain("airlock_audit_rows_delivered_total 3");
    expect(text).toContain("airlock_audit_queue_depth 0");
    expect(text).toContain("airlock_audit_insert_failures_total 0");
    expect(text).toMatch(/airlock_audit_spool_bytes \d+/);
    expect(text).toContain("airlock_audit_insert_lag_seconds 0");
    await sink.close();
    expect(logged.filter((l) => l.startsWith("error"))).toEqual([]);
  });

  it("replays a non-empty spool at start (store unreachable first, then the embedded store)", async () => {
    const cfg = config();
    // A real but closed loopback port: every insert fails and the rows stay in the spool.
    const down = await openAuditSink({
      ...cfg,
      store: { kind: "clickhouse", url: "http://127.0.0.1:9", database: cfg.store.database, requestTimeoutMs: 500 },
    });
    for (let i = 0; i < 500; i++) down.recordDecision(decisionEvent({ sessionId: "spooled", effect: "Deny" }));
    await new Promise((r) => setTimeout(r, 150));
    expect(down.metrics().insertFailures).toBeGreaterThan(0);
    expect(down.metrics().queueDepth).toBe(500);
    await down.close({ flushTimeoutMs: 50 });

    const up = await openAuditSink(cfg);
    expect(up.metrics().queueDepth).toBe(500);
    await up.flush();
    expect(await count(cfg.store.database)).toEqual({ c: 500, u: 500 });
    expect(up.metrics().queueDepth).toBe(0);
    await up.close();
  });

  it("re-sends an in-flight batch under the same token without duplicating it", async () => {
    const cfg = config();
    const sink = await openAuditSink(cfg);
    for (let i = 0; i < 100; i++) sink.recordDecision(decisionEvent({ effect: "Deny" }));
    await sink.flush();
    await sink.close();
    // Simulate a crash after the insert but before the cursor moved: put the batch back in flight.
    const { AuditSpool } = await import("../../../../tap/audit/audit-spool.js");
    const spool = AuditSpool.open({ dir: cfg.spoolDir, fsync: "never", fsyncIntervalMs: 100, segmentMaxBytes: 1 << 20 });
    const end = spool.cursor;
    await spool.markInflight({ from: { segment: end.segment, offset: 0 }, to: end });
    spool.close();
    const again = await openAuditSink(cfg);
    expect(again.metrics().queueDepth).toBe(100);
    await again.flush();
    expect(await count(cfg.store.database)).toEqual({ c: 100, u: 100 });
    await again.close();
  });

  it("re-sends the in-flight batch and the one queued behind it, each under its own token, without duplicates", async () => {
    const cfg = config();
    const sink = await openAuditSink(cfg);
    for (let i = 0; i < 60; i++) sink.recordDecision(decisionEvent({ effect: "Deny" }));
    await sink.flush();
    // After a flush with nothing else pending the cursor sits exactly where the first batch ended.
    const middle = JSON.parse(readFileSync(join(cfg.spoolDir, "cursor.json"), "utf8")) as { segment: number; offset: number };
    for (let i = 0; i < 40; i++) sink.recordDecision(decisionEvent({ effect: "Deny" }));
    await sink.flush();
    await sink.close();
    expect(await count(cfg.store.database)).toEqual({ c: 100, u: 100 });
    // Simulate a crash after both inserts but before the cursor moved past the first: both are re-sent.
    const { AuditSpool } = await import("../../../../tap/audit/audit-spool.js");
    const spool = AuditSpool.open({ dir: cfg.spoolDir, fsync: "never", fsyncIntervalMs: 100, segmentMaxBytes: 1 << 20 });
    const end = spool.cursor;
    const mid = { segment: middle.segment, offset: middle.offset };
    await spool.markInflight({ from: { segment: end.segment, offset: 0 }, to: mid }, { from: mid, to: end });
    spool.close();
    const again = await openAuditSink(cfg);
    expect(again.metrics().queueDepth).toBe(100);
    await again.flush();
    expect(again.metrics().queueDepth).toBe(0);
    expect(await count(cfg.store.database)).toEqual({ c: 100, u: 100 });
    for (let i = 0; i < 10; i++) again.recordDecision(decisionEvent({ effect: "Deny" }));
    await again.flush();
    await again.close();
    expect(await count(cfg.store.database)).toEqual({ c: 110, u: 110 });
  });

  it("keeps inserting back to back under a sustained stream, each batch in order and exactly once", async () => {
    const cfg = config({ batchMaxRows: 700, batchMaxDelayMs: 1000 });
    const sink = await openAuditSink(cfg);
    for (let turn = 0; turn < 40; turn++) {
      for (let i = 0; i < 250; i++) {
        const d = decisionEvent({ sessionId: `stream-${i % 7}` });
        sink.recordDecision(d);
        sink.recordExchange(exchangeFor(d));
      }
      await new Promise((r) => setImmediate(r));
    }
    await sink.flush();
    expect(sink.metrics().queueDepth).toBe(0);
    expect(sink.metrics().rowsDelivered).toBe(10_000);
    await sink.close();
    expect(await count(cfg.store.database)).toEqual({ c: 10_000, u: 10_000 });
    const verify = collect();
    expect(await runAuditVerifyCommand([], verify.io, cfg)).toBe(0);
    expect(verify.out()).toContain("OK: 10000 rows");
  });

  it("writes an allowed request whose response never arrives, marked missing (timeout and restart)", async () => {
    const cfg = config({ exchangeTimeoutMs: 50 });
    const sink = await openAuditSink(cfg);
    const timedOut = decisionEvent({ sessionId: "m" });
    sink.recordDecision(timedOut);
    await new Promise((r) => setTimeout(r, 200));
    await sink.flush();
    await sink.close();

    const cfg2 = { ...cfg, exchangeTimeoutMs: 60_000 };
    const first = await openAuditSink(cfg2);
    const inFlight = decisionEvent({ sessionId: "m" });
    first.recordDecision(inFlight);
    await first.close({ flushTimeoutMs: 50 });
    const second = await openAuditSink(cfg2);
    await second.flush();
    await second.close();

    const rows = await store.queryRows<{ request_id: string; response_outcome: string; effect: string; reason: string }>(
      `SELECT request_id, response_outcome, effect, reason FROM ${cfg.store.database}.requests ORDER BY time_us`);
    expect(rows.map((r) => [r.request_id, r.response_outcome, r.effect])).toEqual([
      [timedOut.requestId, "missing", "Allow"],
      [inFlight.requestId, "missing", "Allow"],
    ]);
    expect(rows[1]?.reason).toContain("restarted");
  });

  it("denies new requests past the disk budget", async () => {
    const cfg = {
      ...config({ diskBudgetBytes: 20_000 }),
      store: { kind: "clickhouse" as const, url: "http://127.0.0.1:9", database: "x", requestTimeoutMs: 200 },
    };
    const sink = await openAuditSink(cfg);
    expect(sink.canAccept()).toEqual({ ok: true });
    for (let i = 0; i < 200; i++) sink.recordDecision(decisionEvent({ effect: "Deny" }));
    const verdict = sink.canAccept();
    expect(verdict.ok).toBe(false);
    if (!verdict.ok) expect(verdict.reason).toMatch(/disk budget/);
    expect(sink.metrics().spoolBytes).toBeGreaterThan(20_000);
    await sink.close({ flushTimeoutMs: 10 });
    const allow = await openAuditSink({ ...cfg, onBudgetExceeded: "allow" });
    expect(allow.canAccept()).toEqual({ ok: true });
    await allow.close({ flushTimeoutMs: 10 });
  });

  it("audit verify detects a deleted row and an edited row", async () => {
    const cfg = config();
    const db = cfg.store.database;
    const sink = await openAuditSink(cfg);
    for (let i = 0; i < 30; i++) {
      const d = decisionEvent({ sessionId: i < 15 ? "v-a" : "v-b" });
      sink.recordDecision(d);
      sink.recordExchange(exchangeFor(d));
      if (i === 10) sink.recordApproval(approvalEvent({ requesterSessionId: "v-a" }));
    }
    await sink.flush();
    await sink.close();
    const ok = collect();
    expect(await runAuditVerifyCommand([], ok.io, cfg)).toBe(0);
    expect(ok.out()).toContain("OK: 31 rows");

    await store.exec(`ALTER TABLE ${db}.requests UPDATE response_status = 201 WHERE chain_seq = 20 SETTINGS mutations_sync = 1`);
    const edited = collect();
    expect(await runAuditVerifyCommand([], edited.io, cfg)).toBe(1);
    expect(edited.out()).toMatch(/BROKEN: .* at position 20 \(requests\): hash_mismatch/);
    const sessionB = collect();
    expect(await runAuditVerifyCommand(["--session", "v-b"], sessionB.io, cfg)).toBe(1);
    const sessionA = collect();
    expect(await runAuditVerifyCommand(["--session", "v-a"], sessionA.io, cfg)).toBe(0);

    await store.exec(`ALTER TABLE ${db}.requests UPDATE response_status = 200 WHERE chain_seq = 20 SETTINGS mutations_sync = 1`);
    expect(await runAuditVerifyCommand([], collect().io, cfg)).toBe(0);

    await store.exec(`ALTER TABLE ${db}.requests DELETE WHERE chain_seq = 7 SETTINGS mutations_sync = 1`);
    const deleted = collect();
    expect(await runAuditVerifyCommand(["--format", "json"], deleted.io, cfg)).toBe(1);
    const report = JSON.parse(deleted.out()) as { ok: boolean; firstBreak: { kind: string; chainSeq: number } };
    expect(report.ok).toBe(false);
    expect(report.firstBreak).toMatchObject({ kind: "missing_rows", chainSeq: 8 });
    // The session whose first row was deleted is caught through its neighbours.
    expect(await runAuditVerifyCommand(["--session", "v-a"], collect().io, cfg)).toBe(1);
    expect(await runAuditVerifyCommand(["--session", "v-b"], collect().io, cfg)).toBe(0);
    // The deleted approval row is a gap too.
    expect(await runAuditVerifyCommand(["--since", "1h"], collect().io, cfg)).toBe(1);
  });

  it("replays a session mixing allowed, denied and pending-then-approved requests", async () => {
    const cfg = config();
    const sink = await openAuditSink(cfg);
    const t0 = Date.now() * 1000;
    const session = "replay-1";
    const base = { sessionId: session, subject: "agent-7" };
    const list = decisionEvent({ ...base, timeMicros: t0 });
    sink.recordDecision(list);
    sink.recordExchange(exchangeFor(list));
    sink.recordDecision(decisionEvent({
      ...base, timeMicros: t0 + 1_000, effect: "Deny", ruleIds: ["secrets-are-off-limits"], method: "GET",
      path: "/api/v1/namespaces/prod/secrets/db", reason: "reading secrets is denied",
      kube: { verb: "get", apiGroup: "", apiVersion: "v1", resource: "secrets", subresource: "", namespace: "prod", name: "db" },
    }));
    const deleteKube = { verb: "delete", apiGroup: "apps", apiVersion: "v1", resource: "deployments", subresource: "", namespace: "prod", name: "web" };
    sink.recordDecision(decisionEvent({
      ...base, timeMicros: t0 + 2_000, effect: "RequireApproval", ruleIds: ["deleting-workloads-needs-a-human"],
      approvalId: "apr-9", method: "DELETE", path: "/apis/apps/v1/namespaces/prod/deployments/web", kube: deleteKube,
    }));
    sink.recordApproval(approvalEvent({ approvalId: "apr-9", timeMicros: t0 + 2_100, action: "created", requesterSessionId: session }));
    sink.recordApproval(approvalEvent({ approvalId: "apr-9", timeMicros: t0 + 3_000, action: "approved", actor: "alice@sre", reason: "planned cleanup", requesterSessionId: session }));
    const retried = decisionEvent({
      ...base, timeMicros: t0 + 4_000, effect: "Allow", ruleIds: ["deleting-workloads-needs-a-human"], approvalId: "apr-9",
      method: "DELETE", path: "/apis/apps/v1/namespaces/prod/deployments/web", kube: deleteKube,
    });
    sink.recordDecision(retried);
    sink.recordExchange(exchangeFor(retried, { responseStatus: 200, maskedResponseBody: '{"kind":"Status","status":"Success"}' }));
    sink.recordApproval(approvalEvent({ approvalId: "apr-9", timeMicros: t0 + 4_100, action: "consumed", actor: "airlock", requesterSessionId: session }));
    sink.recordDecision(decisionEvent({ sessionId: "someone-else", timeMicros: t0 + 5_000 }));
    await new Promise((r) => setTimeout(r, 10));
    await sink.flush();
    await sink.close();

    const text = collect();
    expect(await runReplayCommand([session], text.io, cfg)).toBe(0);
    const lines = text.out().trimEnd().split("\n");
    expect(lines[0]).toBe("session replay-1 (agent-7): 7 events");
    expect(lines.slice(1, 8).map((l) => l.replace(/^\S+ \S+\s+/, ""))).toEqual([
      "ALLOWED   kubectl get pods -n prod → 200 [rule read-only-outside-secrets]",
      "DENIED    kubectl get secrets db -n prod [rule secrets-are-off-limits] : reading secrets is denied",
      "PENDING   kubectl delete deployments.apps web -n prod [rule deleting-workloads-needs-a-human] [approval apr-9]",
      "APPROVAL  apr-9 created by system:serviceaccount:agents:claude",
      "APPROVAL  apr-9 approved by alice@sre: \"planned cleanup\"",
      "ALLOWED   kubectl delete deployments.apps web -n prod → 200 [rule deleting-workloads-needs-a-human] [approval apr-9]",
      "APPROVAL  apr-9 consumed by airlock",
    ]);
    expect(lines[8]).toBe("summary: Allow 2, Deny 1, RequireApproval 1");

    const json = collect();
    expect(await runReplayCommand([session, "--format", "json"], json.io, cfg)).toBe(0);
    const transcript = JSON.parse(json.out()) as { entries: { kind: string; effect: string }[] };
    expect(transcript.entries.map((e) => e.effect)).toEqual(["Allow", "Deny", "RequireApproval", "created", "approved", "Allow", "consumed"]);

    const missing = collect();
    expect(await runReplayCommand(["no-such-session"], missing.io, cfg)).toBe(1);
    expect(await runReplayCommand([], collect().io, cfg)).toBe(2);
  });

  it("applies migrations idempotently and runs every documented query on the production DDL", async () => {
    const database = "audit_queries";
    const dir = join(findSchemaDir(), "migrations");
    const scoped = await ChdbAuditStore.open({ dataDir, database });
    const first = await applyMigrations(scoped, { dir, retentionDays: 30 });
    expect(first.applied).toEqual([1, 2]);
    expect(await applyMigrations(scoped, { dir, retentionDays: 30 })).toEqual({ applied: [] });
    // Retention is configuration: a new value is applied to the existing tables.
    await applyMigrations(scoped, { dir, retentionDays: 90 });
    const ddl = await store.queryRows<{ q: string }>(`SELECT create_table_query AS q FROM system.tables WHERE database = '${database}' AND name = 'requests'`);
    expect(ddl[0]?.q).toContain("toIntervalDay(90)");

    const params: Record<string, string | number> = {
      session_id: "s", subject: "agent", approver: "alice", from: "2020-01-01 00:00:00", to: "2100-01-01 00:00:00",
    };
    const queriesDir = join(findSchemaDir(), "queries");
    const files = readdirSync(queriesDir).filter((f) => f.endsWith(".sql"));
    expect(files.length).toBeGreaterThanOrEqual(6);
    for (const file of files) {
      const sql = renderSql(readFileSync(join(queriesDir, file), "utf8"), { database });
      const statements = splitStatements(sql);
      expect(statements).toHaveLength(1);
      const used = Object.fromEntries(Object.entries(params).filter(([k]) => sql.includes(`{${k}:`)));
      await expect(store.queryRows(statements[0]!, used), file).resolves.toEqual([]);
    }
    await scoped.close();
  });
});
