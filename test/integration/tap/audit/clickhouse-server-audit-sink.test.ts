/**
 * @module test/integration/tap/audit/clickhouse-server-audit-sink.test
 * The sink's network path against a real clickhouse-server: kill -9 mid-stream, Airlock restart, exact counts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditConfigInput } from "../../../../tap/audit/audit-config.js";
import { openAuditSink } from "../../../../tap/audit/audit-sink.js";
import { ClickHouseServerAuditStore } from "../../../../tap/audit/clickhouse-server-store.js";
import { applyMigrations, findSchemaDir } from "../../../../tap/audit/schema-migrations.js";
import { startClickHouseServer, type ClickHouseServerHandle } from "../../../helpers/clickhouse-server.js";
import { approvalEvent, decisionEvent, exchangeFor } from "../../../helpers/audit-events.js";

const root = mkdtempSync(join(tmpdir(), "airlock-audit-server-"));
let server: ClickHouseServerHandle;
let admin: ClickHouseServerAuditStore;

function storeConfig(database: string): { kind: "clickhouse"; url: string; database: string; insertDeduplicationToken: false; applyMigrations: false; requestTimeoutMs: number } {
  // Debian's 18.16 rejects insert_deduplication_token and the production DDL: the legacy tables stand in,
  // and retried batches collapse through the ReplacingMergeTree key.
  return { kind: "clickhouse", url: server.url, database, insertDeduplicationToken: false, applyMigrations: false, requestTimeoutMs: 3_000 };
}

async function createLegacyTables(database: string): Promise<void> {
  const store = new ClickHouseServerAuditStore({ ...storeConfig(database), username: "default" });
  await applyMigrations(store, { dir: join(findSchemaDir(), "compat", "clickhouse-18") });
  await store.close();
}

async function counts(database: string): Promise<{ raw: number; final: number; distinct: number }> {
  const [raw] = await admin.queryRows<{ c: string }>(`SELECT count() AS c FROM ${database}.requests`);
  const [fin] = await admin.queryRows<{ c: string; u: string }>(`SELECT count() AS c, uniqExact(request_id) AS u FROM ${database}.requests FINAL`);
  return { raw: Number(raw?.c), final: Number(fin?.c), distinct: Number(fin?.u) };
}

beforeAll(async () => {
  server = await startClickHouseServer();
  admin = new ClickHouseServerAuditStore({ ...storeConfig("default"), username: "default" });
});

afterAll(async () => {
  await admin.close();
  await server.stop();
  rmSync(root, { recursive: true, force: true });
});

describe("audit sink against a real ClickHouse server", () => {
  it("survives kill -9 of the server mid-stream and a restart of Airlock with a full spool: exact count, no duplicates", async () => {
    const database = "audit_kill";
    await createLegacyTables(database);
    const cfg: AuditConfigInput = {
      store: storeConfig(database),
      spoolDir: join(root, "spool-kill"),
      gatewayInstance: "gw-kill",
      fsync: "interval",
      batchMaxRows: 300,
      batchMaxDelayMs: 5,
      retryInitialDelayMs: 50,
      retryMaxDelayMs: 400,
    };
    const requestIds = new Set<string>();
    const produce = async (sink: { recordDecision: (d: ReturnType<typeof decisionEvent>) => void; recordExchange: (x: ReturnType<typeof exchangeFor>) => void }, n: number, during?: (i: number) => Promise<void>): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const d = decisionEvent({ sessionId: `kill-${i % 13}` });
        requestIds.add(d.requestId);
        sink.recordDecision(d);
        sink.recordExchange(exchangeFor(d));
        if (i % 100 === 99) {
          await new Promise((r) => setTimeout(r, 2));
          await during?.(i);
        }
      }
    };

    const first = await openAuditSink(cfg);
    let killedAt = -1;
    await produce(first, 6_000, async (i) => {
      if (killedAt === -1 && i >= 2_000) {
        // Kill while batches are streaming: wait until delivery is well under way, then SIGKILL at once.
        for (let t = 0; t < 200 && first.metrics().rowsDelivered < 1_500; t++) await new Promise((r) => setTimeout(r, 25));
        killedAt = i;
        await server.kill9();
      }
    });
    const before = first.metrics();
    expect(before.rowsDelivered).toBeGreaterThanOrEqual(1_500);
    expect(before.insertFailures).toBeGreaterThan(0);
    expect(before.queueDepth).toBeGreaterThan(0);
    // Airlock stops while ClickHouse is down: whatever is undelivered stays in the spool.
    await first.close({ flushTimeoutMs: 100 });

    await server.restart();
    const second = await openAuditSink(cfg);
    expect(second.metrics().queueDepth).toBeGreaterThan(0);
    await produce(second, 2_000);
    await second.flush();
    expect(second.metrics().queueDepth).toBe(0);
    await second.close();

    const n = requestIds.size;
    expect(n).toBe(8_000);
    const c = await counts(database);
    expect(c.final).toBe(n);
    expect(c.distinct).toBe(n);
    // Merging the parts leaves exactly one physical row per request, whatever was retried.
    await admin.exec(`OPTIMIZE TABLE ${database}.requests FINAL`);
    expect((await counts(database)).raw).toBe(n);
  });

  it("delivers requests and approvals over HTTP and reports a refused connection as a retried failure", async () => {
    const database = "audit_basic";
    await createLegacyTables(database);
    const sink = await openAuditSink({
      store: storeConfig(database), spoolDir: join(root, "spool-basic"), gatewayInstance: "gw-basic",
      batchMaxDelayMs: 5, fsync: "never",
    });
    const d = decisionEvent({ sessionId: "basic" });
    sink.recordDecision(d);
    sink.recordExchange(exchangeFor(d, { maskedResponseBody: '{"data":{"password":"[MASKED]"}}' }));
    sink.recordApproval(approvalEvent({ approvalId: "apr-basic", action: "approved", actor: "alice" }));
    await sink.flush();
    await sink.close();
    const rows = await admin.queryRows<{ effect: string; response_status: string; response_body: string; chain_seq: string }>(
      `SELECT effect, response_status, response_body, chain_seq FROM ${database}.requests`);
    expect(rows).toEqual([{ effect: "Allow", response_status: 200, response_body: '{"data":{"password":"[MASKED]"}}', chain_seq: "1" }]);
    const approvals = await admin.queryRows<{ approval_id: string; actor: string; chain_seq: string }>(
      `SELECT approval_id, actor, chain_seq FROM ${database}.approvals`);
    expect(approvals).toEqual([{ approval_id: "apr-basic", actor: "alice", chain_seq: "2" }]);
  });
});
