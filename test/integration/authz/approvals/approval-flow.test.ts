/**
 * @module test/integration/authz/approvals/approval-flow.test
 * End-to-end approval flows over the embedded store: Check outcome → approver HTTP API (inject) → retried Check,
 * N-of-M, self-approval, expiry, rejection, hold mode, bad input, audit events and webhook notifications.
 */
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { buildApprovalApp } from "../../../../authz/approvals/approval-app.js";
import type { ApprovalView } from "../../../../authz/approvals/approval-app.js";
import { createApprovalService } from "../../../../authz/approvals/approval-service.js";
import type { ApprovalAuditEvent, ApprovalService } from "../../../../authz/approvals/approval-service.js";
import { buildApprovalStatusResponse } from "../../../../authz/approvals/approval-status.js";
import { parseApprovalsConfig } from "../../../../authz/approvals/approvals-config.js";
import type { ApprovalsConfigInput } from "../../../../authz/approvals/approvals-config.js";
import type { ApprovalStore } from "../../../../authz/approvals/approval-store.js";
import { openSqliteApprovalStore } from "../../../../authz/approvals/sqlite-approval-store.js";
import { createWebhookNotifier } from "../../../../authz/approvals/webhook-notifier.js";
import type { ApprovalWebhookPayload } from "../../../../authz/approvals/webhook-notifier.js";
import { AGENT_ISSUER, createTokenIssuer, onceSettings, pendingInput } from "./approval-fixtures.js";
import type { TokenIssuer } from "./approval-fixtures.js";

const AGENT = "system:serviceaccount:agents:claude";
let issuer: TokenIssuer;
let tokens: Record<"alice" | "bob" | "carol" | "dbaDan" | "agent" | "agentIssuer" | "selfApprover" | "wrongAudience", string>;

beforeAll(async () => {
  issuer = await createTokenIssuer();
  tokens = {
    alice: await issuer.mint({ sub: "alice", groups: ["sre"] }),
    bob: await issuer.mint({ sub: "bob", groups: ["sre", "oncall"] }),
    carol: await issuer.mint({ sub: "carol", groups: ["sre"] }),
    dbaDan: await issuer.mint({ sub: "dan", groups: ["dba"] }),
    agent: await issuer.mint({ sub: "bot", groups: ["sre", "agents"] }),
    agentIssuer: await issuer.mint({ sub: "bot2", groups: ["sre"], iss: AGENT_ISSUER }),
    selfApprover: await issuer.mint({ sub: AGENT, groups: ["sre"] }),
    wrongAudience: await issuer.mint({ sub: "alice", groups: ["sre"], aud: "airlock-agents" }),
  };
});

interface Env {
  readonly store: ApprovalStore;
  readonly service: ApprovalService;
  readonly app: ReturnType<typeof buildApprovalApp>;
  readonly audit: ApprovalAuditEvent[];
  clock: number;
  decide(id: string, who: keyof typeof tokens, action: "approve" | "reject", reason?: string): Promise<{ status: number; body: unknown }>;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function makeEnv(overrides: Partial<ApprovalsConfigInput> = {}, extra: { notifierUrl?: string } = {}): Env {
  const dir = mkdtempSync(join(tmpdir(), "airlock-approval-flow-"));
  const parsed = parseApprovalsConfig({
    store: { kind: "sqlite", path: join(dir, "approvals.db") },
    publicUrl: "https://airlock.example/",
    agentGroups: ["agents"],
    agentIssuers: [AGENT_ISSUER],
    retryAfterSeconds: 7,
    ...overrides,
  });
  if (!parsed.ok) throw new Error(parsed.errors.join("; "));
  const config = parsed.config;
  const store = openSqliteApprovalStore({ path: config.store.kind === "sqlite" ? config.store.path : "" });
  const audit: ApprovalAuditEvent[] = [];
  const notifier =
    extra.notifierUrl === undefined
      ? undefined
      : createWebhookNotifier({ url: extra.notifierUrl, timeoutMs: 2000, maxAttempts: 5, initialBackoffMs: 10, maxBackoffMs: 50, maxQueueLength: 100 });
  const env: Env = {
    store,
    audit,
    clock: 1_750_000_000_000,
    service: undefined as unknown as ApprovalService,
    app: undefined as unknown as ReturnType<typeof buildApprovalApp>,
    async decide(id, who, action, reason = "looks right") {
      const res = await env.app.inject({
        method: "POST",
        url: `/v1/approvals/${id}/${action}`,
        headers: { authorization: `Bearer ${tokens[who]}` },
        payload: { reason },
      });
      return { status: res.statusCode, body: res.json() };
    },
  };
  const service = createApprovalService({
    store,
    config,
    recordApproval: (e) => {
      audit.push(e);
    },
    ...(notifier === undefined ? {} : { notifier }),
    nowMs: () => env.clock,
  });
  const app = buildApprovalApp({ service, verifyApproverToken: issuer.verify });
  Object.assign(env, { service, app });
  cleanups.push(async () => {
    await notifier?.drain();
    notifier?.close();
    service.close();
    await app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return env;
}

describe("Check → approve over HTTP → retried Check", () => {
  it("answers 429 with Retry-After and a Status, then allows the retried request once after approval", async () => {
    const env = makeEnv();
    const first = await env.service.resolvePendingRequest(pendingInput("fp-delete-web"));
    expect(first).toMatchObject({
      kind: "pending",
      retryAfterSeconds: 7,
      ruleId: "deleting-workloads-needs-a-human",
      approvalsReceived: 0,
      approvalsRequired: 1,
    });
    if (first.kind !== "pending") throw new Error("unreachable");
    expect(first.approveUrl).toBe(`https://airlock.example/v1/approvals/${first.approvalId}`);
    const status = buildApprovalStatusResponse(first);
    expect(status?.httpStatus).toBe(429);
    expect(status?.headers["retry-after"]).toBe("7");
    expect(status?.body).toMatchObject({ kind: "Status", code: 429, reason: "PendingApproval", details: { name: first.approvalId, retryAfterSeconds: 7 } });
    expect(status?.body.message).toContain(`airlock approvals approve ${first.approvalId}`);

    // a retry before approval finds the same record (idempotent by fingerprint + requester)
    const retry = await env.service.resolvePendingRequest(pendingInput("fp-delete-web", { requester: { subject: AGENT, groups: ["agents"], sessionId: "sess-2" } }));
    expect(retry).toMatchObject({ kind: "pending", approvalId: first.approvalId });

    const list = await env.app.inject({ method: "GET", url: "/v1/approvals?state=pending", headers: { authorization: `Bearer ${tokens.alice}` } });
    expect(list.statusCode).toBe(200);
    expect((list.json<{ items: ApprovalView[] }>()).items.map((i) => i.id)).toEqual([first.approvalId]);

    const approved = await env.decide(first.approvalId, "alice", "approve", "rollback agreed in INC-42");
    expect(approved.status).toBe(200);
    expect(approved.body).toMatchObject({ id: first.approvalId, state: "approved", approvers: ["alice"] });

    env.clock += 5000;
    expect(await env.service.resolvePendingRequest(pendingInput("fp-delete-web"))).toEqual({
      kind: "granted",
      approvalId: first.approvalId,
      grant: "once",
      ruleId: "deleting-workloads-needs-a-human",
    });
    // single use: the next identical request needs a new approval
    const after = await env.service.resolvePendingRequest(pendingInput("fp-delete-web"));
    expect(after.kind).toBe("pending");
    expect(after.approvalId).not.toBe(first.approvalId);

    const shown = await env.app.inject({ method: "GET", url: `/v1/approvals/${first.approvalId}`, headers: { authorization: `Bearer ${tokens.bob}` } });
    expect(shown.json<ApprovalView>()).toMatchObject({
      state: "consumed",
      preview: { method: "DELETE", attributes: { namespace: "prod-a", resource: "deployments", name: "web" } },
      requester: { subject: AGENT, sessionId: "sess-1" },
      history: [
        { action: "created", actor: AGENT },
        { action: "approved", actor: "alice", reason: "rollback agreed in INC-42" },
        { action: "consumed", actor: AGENT },
      ],
    });
    expect(env.audit.map((e) => [e.action, e.actor])).toEqual([
      ["created", AGENT],
      ["approved", "alice"],
      ["consumed", AGENT],
      ["created", AGENT],
    ]);
    expect(env.audit[1]).toMatchObject({
      approvalId: first.approvalId,
      timeMicros: (env.clock - 5000) * 1000,
      reason: "rollback agreed in INC-42",
      fingerprint: "fp-delete-web",
      requesterSubject: AGENT,
      requesterSession: "sess-1",
      ruleId: "deleting-workloads-needs-a-human",
    });
  });

  it("a window grant allows the same request until its TTL, then asks again", async () => {
    const env = makeEnv();
    const input = pendingInput("fp-window", { settings: { ...onceSettings, grant: "window", ttlSeconds: 60 } });
    const first = await env.service.resolvePendingRequest(input);
    expect((await env.decide(first.approvalId, "alice", "approve")).status).toBe(200);
    for (let i = 0; i < 3; i++) {
      env.clock += 10_000;
      expect(await env.service.resolvePendingRequest(input)).toMatchObject({ kind: "granted", grant: "window", approvalId: first.approvalId });
    }
    env.clock += 31_000;
    const again = await env.service.resolvePendingRequest(input);
    expect(again.kind).toBe("pending");
    expect(again.approvalId).not.toBe(first.approvalId);
    expect((await env.service.get(first.approvalId))?.state).toBe("expired");
    expect(env.audit.filter((e) => e.action === "expired").map((e) => e.approvalId)).toEqual([first.approvalId]);
  });

  it("needs 2 of 3 distinct approvers; the same approver twice is 409 and counted once", async () => {
    const env = makeEnv();
    const input = pendingInput("fp-2of3", { settings: { ...onceSettings, minApprovals: 2 } });
    const first = await env.service.resolvePendingRequest(input);
    expect((await env.decide(first.approvalId, "alice", "approve")).body).toMatchObject({ state: "pending", approvers: ["alice"] });
    const dup = await env.decide(first.approvalId, "alice", "approve", "again");
    expect(dup).toMatchObject({ status: 409, body: { error: { code: "conflict", reason: "duplicate_approver" } } });
    expect(await env.service.resolvePendingRequest(input)).toMatchObject({ kind: "pending", approvalsReceived: 1, approvalsRequired: 2 });
    expect(buildApprovalStatusResponse(await env.service.resolvePendingRequest(input))?.body.message).toContain("1 of 2 approvals");
    expect((await env.decide(first.approvalId, "bob", "approve")).body).toMatchObject({ state: "approved", approvers: ["alice", "bob"] });
    const third = await env.decide(first.approvalId, "carol", "approve");
    expect(third).toMatchObject({ status: 409, body: { error: { reason: "already_decided" } } });
    expect(await env.service.resolvePendingRequest(input)).toMatchObject({ kind: "granted", approvalId: first.approvalId });
  });

  it("refuses self-approval, approvers outside the rule's groups, and any identity that could be an agent", async () => {
    const env = makeEnv();
    const { approvalId } = await env.service.resolvePendingRequest(pendingInput("fp-self"));
    expect(await env.decide(approvalId, "selfApprover", "approve")).toMatchObject({ status: 403, body: { error: { code: "forbidden", reason: "self_approval" } } });
    expect(await env.decide(approvalId, "dbaDan", "approve")).toMatchObject({ status: 403, body: { error: { reason: "not_an_approver" } } });
    expect(await env.decide(approvalId, "agent", "approve")).toMatchObject({ status: 403, body: { error: { reason: "agent_identity" } } });
    expect(await env.decide(approvalId, "agentIssuer", "approve")).toMatchObject({ status: 403, body: { error: { reason: "agent_identity" } } });
    expect(await env.decide(approvalId, "wrongAudience", "approve")).toMatchObject({ status: 401, body: { error: { code: "unauthenticated" } } });
    const noToken = await env.app.inject({ method: "GET", url: "/v1/approvals" });
    expect(noToken.statusCode).toBe(401);
    expect(noToken.headers["www-authenticate"]).toContain("Bearer");
    const dan = await env.app.inject({ method: "GET", url: `/v1/approvals/${approvalId}`, headers: { authorization: `Bearer ${tokens.dbaDan}` } });
    expect(dan.statusCode).toBe(403);
    const danList = await env.app.inject({ method: "GET", url: "/v1/approvals", headers: { authorization: `Bearer ${tokens.dbaDan}` } });
    expect(danList.json()).toEqual({ items: [] });
    expect((await env.service.get(approvalId))?.state).toBe("pending");
    expect(env.audit.map((e) => e.action)).toEqual(["created"]);
  });

  it("expires a pending approval: acting on it is 409, the next retry opens a new approval", async () => {
    const env = makeEnv();
    const input = pendingInput("fp-expire", { settings: { ...onceSettings, ttlSeconds: 60 } });
    const first = await env.service.resolvePendingRequest(input);
    env.clock += 60_000;
    expect(await env.decide(first.approvalId, "alice", "approve")).toMatchObject({ status: 409, body: { error: { reason: "expired" } } });
    const second = await env.service.resolvePendingRequest(input);
    expect(second.kind).toBe("pending");
    expect(second.approvalId).not.toBe(first.approvalId);
    expect(env.audit.filter((e) => e.action === "expired")).toHaveLength(1);
    // the sweep finds nothing more to expire for the old one, and expires the new one after its TTL
    env.clock += 60_000;
    expect(await env.service.sweepExpired()).toBe(1);
    expect(await env.service.sweepExpired()).toBe(0);
  });

  it("passes the approver's rejection reason to the agent as a 403 Status", async () => {
    const env = makeEnv();
    const input = pendingInput("fp-reject");
    const { approvalId } = await env.service.resolvePendingRequest(input);
    const rejected = await env.decide(approvalId, "bob", "reject", "prod freeze until Monday");
    expect(rejected).toMatchObject({ status: 200, body: { state: "rejected", rejection: { by: "bob", reason: "prod freeze until Monday" } } });
    const outcome = await env.service.resolvePendingRequest(input);
    expect(outcome).toEqual({ kind: "rejected", approvalId, reason: "prod freeze until Monday", approver: "bob", ruleId: "deleting-workloads-needs-a-human" });
    const status = buildApprovalStatusResponse(outcome);
    expect(status?.httpStatus).toBe(403);
    expect(status?.body.message).toContain("rejected by bob: prod freeze until Monday");
    expect(await env.decide(approvalId, "alice", "approve")).toMatchObject({ status: 409 });
  });
});

describe("approver API input handling", () => {
  it("404s unknown ids and 400s malformed input with path-qualified messages", async () => {
    const env = makeEnv();
    const auth = { authorization: `Bearer ${tokens.alice}` };
    const unknown = await env.app.inject({ method: "GET", url: "/v1/approvals/apr_0000000000000000", headers: auth });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ error: { code: "not_found" } });
    expect((await env.decide("apr_0000000000000000", "alice", "approve")).status).toBe(404);

    const { approvalId } = await env.service.resolvePendingRequest(pendingInput("fp-bad"));
    const malformed = await env.app.inject({
      method: "POST",
      url: `/v1/approvals/${approvalId}/approve`,
      headers: { ...auth, "content-type": "application/json" },
      payload: '{"reason": ',
    });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json()).toMatchObject({ error: { code: "bad_request", message: "body: malformed JSON" } });
    const missing = await env.app.inject({ method: "POST", url: `/v1/approvals/${approvalId}/approve`, headers: auth, payload: {} });
    expect(missing.statusCode).toBe(400);
    expect(missing.json<{ error: { message: string } }>().error.message).toMatch(/^body\.reason: /);
    const blank = await env.app.inject({ method: "POST", url: `/v1/approvals/${approvalId}/reject`, headers: auth, payload: { reason: "   " } });
    expect(blank.json()).toMatchObject({ error: { message: "body.reason: a reason is required" } });
    const extraKey = await env.app.inject({ method: "POST", url: `/v1/approvals/${approvalId}/approve`, headers: auth, payload: { reason: "x", force: true } });
    expect(extraKey.statusCode).toBe(400);
    const badQuery = await env.app.inject({ method: "GET", url: "/v1/approvals?state=maybe&limit=0", headers: auth });
    expect(badQuery.statusCode).toBe(400);
    expect(badQuery.json<{ error: { message: string } }>().error.message).toMatch(/query\.state: .*; query\.limit: /);
    const badId = await env.app.inject({ method: "GET", url: "/v1/approvals/a%20b", headers: auth });
    expect(badId.json<{ error: { message: string } }>().error.message).toMatch(/^params\.id: /);
    expect((await env.service.get(approvalId))?.state).toBe("pending");
  });

  it("serves an OpenAPI document describing the routes", async () => {
    const env = makeEnv();
    const res = await env.app.inject({ method: "GET", url: "/openapi.json" });
    expect(res.statusCode).toBe(200);
    const doc = res.json<{ openapi: string; paths: Record<string, Record<string, unknown>> }>();
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths).sort()).toEqual(["/v1/approvals", "/v1/approvals/{id}", "/v1/approvals/{id}/approve", "/v1/approvals/{id}/reject"]);
    expect(JSON.stringify(doc.paths["/v1/approvals/{id}/approve"])).toContain('"reason"');
  });
});

describe("hold mode", () => {
  it("keeps the Check open until an approver decides, then allows", async () => {
    const env = makeEnv({ pendingMode: "hold", holdSeconds: 30 });
    const input = pendingInput("fp-hold");
    const held = env.service.resolvePendingRequest(input);
    await expect.poll(async () => (await env.store.findOpen("fp-hold", AGENT))?.id ?? null).not.toBeNull();
    const id = (await env.store.findOpen("fp-hold", AGENT))!.id;
    expect((await env.decide(id, "carol", "approve")).status).toBe(200);
    expect(await held).toMatchObject({ kind: "granted", approvalId: id });
  });

  it("answers pending when the Check's signal aborts first", async () => {
    const env = makeEnv({ pendingMode: "hold", holdSeconds: 30 });
    const controller = new AbortController();
    const held = env.service.resolvePendingRequest({ ...pendingInput("fp-hold-abort"), signal: controller.signal });
    await expect.poll(async () => (await env.store.findOpen("fp-hold-abort", AGENT))?.id ?? null).not.toBeNull();
    controller.abort();
    expect(await held).toMatchObject({ kind: "pending" });
  });
});

describe("webhook notifications", () => {
  it("posts created and decided events with Slack-compatible text, retrying a failing receiver", async () => {
    const received: ApprovalWebhookPayload[] = [];
    let failuresLeft = 2;
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        if (failuresLeft > 0) {
          failuresLeft--;
          res.writeHead(503).end();
          return;
        }
        received.push(JSON.parse(body) as ApprovalWebhookPayload);
        res.writeHead(200).end("ok");
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => {
            resolve();
          });
        }),
    );
    const { port } = server.address() as AddressInfo;
    const env = makeEnv({}, { notifierUrl: `http://127.0.0.1:${port}/hook` });
    const { approvalId } = await env.service.resolvePendingRequest(pendingInput("fp-hook"));
    await env.decide(approvalId, "alice", "reject", "use a canary first");
    await expect.poll(() => received.length, { timeout: 10_000 }).toBe(2);
    expect(received.map((r) => r.event)).toEqual(["created", "rejected"]);
    expect(received[0]?.text).toContain("Approval needed");
    expect(received[0]?.text).toContain(approvalId);
    expect(received[1]).toMatchObject({ approval: { id: approvalId, state: "rejected", rejectedBy: "alice", reason: "use a canary first" } });
  });
});
