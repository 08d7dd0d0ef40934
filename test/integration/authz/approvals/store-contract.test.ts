/**
 * @module test/integration/authz/approvals/store-contract.test
 * One contract suite run against both approval stores: embedded SQLite (a temp file) and a real PostgreSQL server.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApprovalStore, NewApproval } from "../../../../authz/approvals/approval-store.js";
import { openPostgresApprovalStore } from "../../../../authz/approvals/postgres-approval-store.js";
import { openSqliteApprovalStore } from "../../../../authz/approvals/sqlite-approval-store.js";
import { startPostgresServer, type PostgresServer } from "../../../helpers/postgres-server.js";
import { deletePreview, onceSettings } from "./approval-fixtures.js";

interface StoreFactory {
  readonly name: string;
  setup(): Promise<void>;
  /** A new store instance over the same database (a restart, or a second replica). */
  open(): Promise<ApprovalStore>;
  teardown(): Promise<void>;
}

const sqliteFactory = (): StoreFactory => {
  let dir = "";
  return {
    name: "sqlite",
    setup() {
      dir = mkdtempSync(join(tmpdir(), "airlock-approvals-"));
      return Promise.resolve();
    },
    open: () => Promise.resolve(openSqliteApprovalStore({ path: join(dir, "nested", "approvals.db") })),
    teardown() {
      rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    },
  };
};

const postgresFactory = (): StoreFactory => {
  let server: PostgresServer | null = null;
  let url = "";
  return {
    name: "postgres",
    async setup() {
      server = await startPostgresServer();
      url = await server.createDatabase("contract");
    },
    open: () => openPostgresApprovalStore({ connectionString: url, poolMax: 12 }),
    async teardown() {
      await server?.stop();
    },
  };
};

const T0 = 1_750_000_000_000;

function newApproval(over: Partial<NewApproval> = {}): NewApproval {
  return {
    id: `apr_${randomUUID().replace(/-/g, "").slice(0, 16)}`,
    fingerprint: randomUUID(),
    requester: { subject: "agent-a", groups: ["agents"], sessionId: "s1" },
    ruleId: "rule-1",
    settings: onceSettings,
    preview: deletePreview,
    createdAtMs: T0,
    expiresAtMs: T0 + 900_000,
    ...over,
  };
}

describe.each([sqliteFactory(), postgresFactory()])("approval store contract: $name", (factory) => {
  let store: ApprovalStore;
  const extra: ApprovalStore[] = [];

  beforeAll(async () => {
    await factory.setup();
    store = await factory.open();
  });

  afterAll(async () => {
    await Promise.all(extra.map((s) => s.close()));
    await store.close();
    await factory.teardown();
  });

  async function second(): Promise<ApprovalStore> {
    const s = await factory.open();
    extra.push(s);
    return s;
  }

  it("creates a pending record with a created history entry, and returns it by id", async () => {
    const input = newApproval();
    const { record, created } = await store.createPending(input);
    expect(created).toBe(true);
    expect(record).toMatchObject({
      id: input.id,
      state: "pending",
      fingerprint: input.fingerprint,
      requester: input.requester,
      settings: onceSettings,
      preview: deletePreview,
      createdAtMs: T0,
      expiresAtMs: T0 + 900_000,
      approvers: [],
      rejection: null,
      decidedAtMs: null,
    });
    expect(record.history).toEqual([{ atMs: T0, action: "created", actor: "agent-a", reason: "" }]);
    expect(await store.get(input.id)).toEqual(record);
    expect(await store.get("apr_does_not_exist")).toBeNull();
  });

  it("is idempotent per fingerprint and requester, also under concurrent creates from two instances", async () => {
    const other = await second();
    const fingerprint = randomUUID();
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? store : other).createPending(newApproval({ fingerprint }))),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.record.id)).size).toBe(1);
    // another requester with the same fingerprint gets its own record
    const theirs = await store.createPending(newApproval({ fingerprint, requester: { subject: "agent-b", groups: [], sessionId: "s" } }));
    expect(theirs.created).toBe(true);
    expect((await store.findOpen(fingerprint, "agent-a"))?.id).toBe(results[0]?.record.id);
  });

  it("counts N-of-M distinct approvers once each and approves at the threshold", async () => {
    const input = newApproval({ settings: { ...onceSettings, minApprovals: 2, approverGroups: ["sre", "dba"] } });
    await store.createPending(input);
    const first = await store.decide({ id: input.id, action: "approve", approver: "alice", reason: "ok", nowMs: T0 + 1 });
    expect(first).toMatchObject({ ok: true, decided: false, record: { state: "pending", approvers: ["alice"] } });
    const again = await store.decide({ id: input.id, action: "approve", approver: "alice", reason: "again", nowMs: T0 + 2 });
    expect(again).toMatchObject({ ok: false, failure: "duplicate_approver" });
    const second2 = await store.decide({ id: input.id, action: "approve", approver: "bob", reason: "fine", nowMs: T0 + 3 });
    expect(second2).toMatchObject({
      ok: true,
      decided: true,
      record: { state: "approved", approvers: ["alice", "bob"], decidedAtMs: T0 + 3, expiresAtMs: T0 + 3 + 900_000 },
    });
    const late = await store.decide({ id: input.id, action: "approve", approver: "carol", reason: "late", nowMs: T0 + 4 });
    expect(late).toMatchObject({ ok: false, failure: "already_decided" });
    const record = await store.get(input.id);
    expect(record?.history.map((h) => [h.action, h.actor])).toEqual([
      ["created", "agent-a"],
      ["approved", "alice"],
      ["approved", "bob"],
    ]);
  });

  it("serialises concurrent votes: with 3 distinct approvers racing for minApprovals 2, exactly one call decides", async () => {
    const other = await second();
    const input = newApproval({ settings: { ...onceSettings, minApprovals: 2 } });
    await store.createPending(input);
    const votes = await Promise.all(
      ["a1", "a2", "a3", "a1"].map((approver, i) =>
        (i % 2 === 0 ? store : other).decide({ id: input.id, action: "approve", approver, reason: "r", nowMs: T0 + 10 }),
      ),
    );
    expect(votes.filter((v) => v.ok && v.decided)).toHaveLength(1);
    const record = await store.get(input.id);
    expect(record?.state).toBe("approved");
    expect(record?.approvers).toHaveLength(2);
    expect(new Set(record?.approvers).size).toBe(2);
  });

  it("rejects with the approver and reason, remembered until the TTL; unknown ids are not_found", async () => {
    const input = newApproval();
    await store.createPending(input);
    const res = await store.decide({ id: input.id, action: "reject", approver: "alice", reason: "not during the freeze", nowMs: T0 + 5 });
    expect(res).toMatchObject({ ok: true, decided: true, record: { state: "rejected", rejection: { by: "alice", reason: "not during the freeze" } } });
    expect(await store.findOpen(input.fingerprint, "agent-a")).toBeNull();
    expect((await store.findActiveRejection(input.fingerprint, "agent-a", T0 + 10))?.id).toBe(input.id);
    expect(await store.findActiveRejection(input.fingerprint, "agent-a", T0 + 5 + 900_000)).toBeNull();
    expect(await store.decide({ id: "apr_missing", action: "approve", approver: "x", reason: "r", nowMs: T0 })).toMatchObject({
      ok: false,
      failure: "not_found",
    });
  });

  it("reports an overdue pending decision as expired without changing it; expire() then records it exactly once", async () => {
    const input = newApproval({ expiresAtMs: T0 + 1000 });
    await store.createPending(input);
    expect(await store.decide({ id: input.id, action: "approve", approver: "a", reason: "r", nowMs: T0 + 1000 })).toMatchObject({
      ok: false,
      failure: "expired",
    });
    expect(await store.expire(input.id, T0 + 999)).toBe(false);
    const results = await Promise.all([store.expire(input.id, T0 + 1000), store.expire(input.id, T0 + 1000)]);
    expect(results.filter(Boolean)).toHaveLength(1);
    const record = await store.get(input.id);
    expect(record?.state).toBe("expired");
    expect(record?.history.at(-1)).toEqual({ atMs: T0 + 1000, action: "expired", actor: "system", reason: "" });
    expect(await store.decide({ id: input.id, action: "approve", approver: "a", reason: "r", nowMs: T0 })).toMatchObject({
      ok: false,
      failure: "expired",
    });
    // an expired record frees the slot: the same request opens a new approval
    expect((await store.createPending(newApproval({ fingerprint: input.fingerprint }))).created).toBe(true);
  });

  it("expireDue expires each overdue open record once, across two instances sweeping at once", async () => {
    const other = await second();
    const ns = `sweep-${randomUUID().slice(0, 8)}`;
    const preview = { ...deletePreview, attributes: { ...deletePreview.attributes, namespace: ns } };
    const inputs = Array.from({ length: 5 }, (_, i) => newApproval({ preview, expiresAtMs: 1000 + i }));
    for (const input of inputs) await store.createPending(input);
    const [a, b] = await Promise.all([store.expireDue(2000), other.expireDue(2000)]);
    const ids = [...a, ...b].map((r) => r.id).filter((id) => inputs.some((i) => i.id === id));
    expect(ids.sort()).toEqual(inputs.map((i) => i.id).sort());
    const listed = await store.list({ namespace: ns, limit: 10 });
    expect(listed.map((r) => r.state)).toEqual(["expired", "expired", "expired", "expired", "expired"]);
  });

  it("consumes a once grant for exactly one of 20 concurrent callers over two instances", async () => {
    const other = await second();
    const input = newApproval();
    await store.createPending(input);
    await store.decide({ id: input.id, action: "approve", approver: "alice", reason: "go", nowMs: T0 + 1 });
    const wins = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? store : other).consumeOnce(input.id, "agent-a", T0 + 2)),
    );
    expect(wins.filter(Boolean)).toHaveLength(1);
    const record = await store.get(input.id);
    expect(record?.state).toBe("consumed");
    expect(record?.history.filter((h) => h.action === "consumed")).toHaveLength(1);
  });

  it("never consumes a window grant, a pending record, or an overdue grant", async () => {
    const win = newApproval({ settings: { ...onceSettings, grant: "window" } });
    await store.createPending(win);
    expect(await store.consumeOnce(win.id, "agent-a", T0 + 1)).toBe(false); // still pending
    await store.decide({ id: win.id, action: "approve", approver: "alice", reason: "go", nowMs: T0 + 1 });
    expect(await store.consumeOnce(win.id, "agent-a", T0 + 2)).toBe(false); // window
    const once = newApproval();
    await store.createPending(once);
    await store.decide({ id: once.id, action: "approve", approver: "alice", reason: "go", nowMs: T0 + 1 });
    expect(await store.consumeOnce(once.id, "agent-a", T0 + 1 + 900_000)).toBe(false); // grant lapsed
  });

  it("lists newest first, filtered by state, namespace and requester, up to the limit", async () => {
    const ns = `list-${randomUUID().slice(0, 8)}`;
    const preview = { ...deletePreview, attributes: { ...deletePreview.attributes, namespace: ns } };
    const a = newApproval({ preview, createdAtMs: T0 + 1 });
    const b = newApproval({ preview, createdAtMs: T0 + 2, requester: { subject: "agent-b", groups: [], sessionId: "s" } });
    const c = newApproval({ preview, createdAtMs: T0 + 3 });
    for (const input of [a, b, c]) await store.createPending(input);
    await store.decide({ id: c.id, action: "reject", approver: "alice", reason: "no", nowMs: T0 + 4 });
    expect((await store.list({ namespace: ns, limit: 10 })).map((r) => r.id)).toEqual([c.id, b.id, a.id]);
    expect((await store.list({ namespace: ns, state: "pending", limit: 10 })).map((r) => r.id)).toEqual([b.id, a.id]);
    expect((await store.list({ namespace: ns, requesterSubject: "agent-b", limit: 10 })).map((r) => r.id)).toEqual([b.id]);
    expect((await store.list({ namespace: ns, limit: 1 })).map((r) => r.id)).toEqual([c.id]);
  });

  it("keeps pending approvals across a restart (close and reopen)", async () => {
    const input = newApproval();
    await store.createPending(input);
    await store.decide({ id: input.id, action: "approve", approver: "alice", reason: "1 of 2", nowMs: T0 + 1 });
    await store.close();
    store = await factory.open();
    const record = await store.get(input.id);
    expect(record).toMatchObject({ id: input.id, state: "approved" });
    const pending = newApproval();
    await store.createPending(pending);
    await store.close();
    store = await factory.open(); // migrations run again and are a no-op
    expect((await store.findOpen(pending.fingerprint, "agent-a"))?.state).toBe("pending");
  });

  it("tells subscribers about changes, including changes made through another instance (PostgreSQL)", async () => {
    const other = await second();
    const seen: string[] = [];
    const unsubscribe = store.subscribe((id) => seen.push(id));
    const input = newApproval();
    await (factory.name === "postgres" ? other : store).createPending(input);
    await (factory.name === "postgres" ? other : store).decide({ id: input.id, action: "approve", approver: "a", reason: "r", nowMs: T0 + 1 });
    await expect.poll(() => seen.filter((id) => id === input.id).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    unsubscribe();
  });
});
