/**
 * @module test/unit/authz/check/check-engine
 * The decision path end to end without transport: the shipped baseline policy, real parser and evaluator, and
 * recording doubles of Airlock's own approval and audit interfaces.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { CheckDecisionRecord, CheckOutcome, DenyOutcome } from "../../../../authz/check/check-outcome.js";
import { CheckEngine, type ApprovalGateInput, type ApprovalGateOutcome, type CheckHttpRequest } from "../../../../authz/check/check-engine.js";
import { credentialsConfigSchema } from "../../../../authz/credentials/credentials-config.js";
import { createUpstreamCredentials, type UpstreamCredentials } from "../../../../authz/credentials/upstream-credentials.js";
import type { AgentIdentity, VerifyTokenResult } from "../../../../authz/identity/token-verifier.js";
import { BASELINE_POLICY_PATH, loadPolicyFile, type CompiledPolicy } from "../../../../authz/policy/compile-policy.js";

let policy: CompiledPolicy;
let noCredentials: UpstreamCredentials;

beforeAll(async () => {
  const loaded = await loadPolicyFile(BASELINE_POLICY_PATH);
  if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
  policy = loaded.policy;
  noCredentials = await createUpstreamCredentials(credentialsConfigSchema.parse({ mode: "none" }));
});

const agentIdentity: AgentIdentity = {
  subject: "ci-bot",
  groups: ["agents"],
  sessionId: "session-1",
  issuer: "https://issuer.test",
  audience: ["airlock"],
  tokenId: "jti-1",
  issuedAtSeconds: 0,
  expiresAtSeconds: 0,
  claims: {},
};

function verifyToken(token: string): Promise<VerifyTokenResult> {
  if (token === "good") return Promise.resolve({ ok: true, identity: agentIdentity });
  if (token === "scoped") {
    return Promise.resolve({ ok: true, identity: { ...agentIdentity, claims: { airlock_scope: { namespaces: ["team-a"], readOnly: true } } } });
  }
  if (token === "bad-scope") return Promise.resolve({ ok: true, identity: { ...agentIdentity, claims: { airlock_scope: { readOnly: "yes" } } } });
  return Promise.resolve({ ok: false, code: "TOKEN_EXPIRED", message: "token expired 10s ago" });
}

interface Harness {
  engine: CheckEngine;
  records: CheckDecisionRecord[];
  approvalCalls: ApprovalGateInput[];
}

function harness(options: {
  approvals?: (input: ApprovalGateInput) => ApprovalGateOutcome;
  auditOk?: boolean;
  credentials?: UpstreamCredentials;
} = {}): Harness {
  const records: CheckDecisionRecord[] = [];
  const approvalCalls: ApprovalGateInput[] = [];
  const approvals = options.approvals;
  const engine = new CheckEngine({
    verifyToken,
    currentPolicy: () => policy,
    credentials: options.credentials ?? noCredentials,
    approvals: approvals
      ? {
          resolve: (input) => {
            approvalCalls.push(input);
            return Promise.resolve(approvals(input));
          },
        }
      : undefined,
    audit: {
      canAccept: () => (options.auditOk === false ? { ok: false, reason: "spool over its disk budget" } : { ok: true }),
      recordDecision: (record) => records.push(record),
    },
    maskRequestBody: (_type, body) => `[${body.length} bytes, masked]`,
    newId: () => "decision-1",
  });
  return { engine, records, approvalCalls };
}

function request(method: string, path: string, extra: Record<string, string> = {}, body?: unknown): CheckHttpRequest {
  const raw = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return {
    id: "req-1",
    method,
    path,
    headers: {
      ":method": method,
      ":path": path,
      ":authority": "127.0.0.1:16444",
      authorization: "Bearer good",
      ...(raw ? { "content-type": "application/json", "content-length": String(raw.length) } : {}),
      ...extra,
    },
    body: "",
    rawBody: raw,
  };
}

async function run(h: Harness, req: CheckHttpRequest): Promise<CheckOutcome> {
  return h.engine.check({ http: req, signal: new AbortController().signal });
}

function asDeny(outcome: CheckOutcome): DenyOutcome {
  if (outcome.code === "ALLOWED") throw new Error("expected a denial");
  return outcome;
}

describe("authentication", () => {
  it("answers 401 with a Status when the bearer token is missing", async () => {
    const h = harness();
    const req = request("GET", "/api/v1/pods");
    const { authorization: _dropped, ...headers } = req.headers;
    const outcome = asDeny(await run(h, { ...req, headers }));
    expect(outcome.code).toBe("UNAUTHENTICATED");
    expect(outcome.httpStatus).toBe(401);
    expect(outcome.status).toMatchObject({ kind: "Status", apiVersion: "v1", status: "Failure", code: 401, reason: "Unauthorized" });
    expect(h.records[0]).toMatchObject({ effect: "Unauthenticated", outcome: "UNAUTHENTICATED" });
  });

  it("answers 401 naming the verifier's code for a rejected token, never echoing the token", async () => {
    const h = harness();
    const outcome = asDeny(await run(h, request("GET", "/api/v1/pods", { authorization: "Bearer expired-token-value" })));
    expect(outcome.status.message).toContain("TOKEN_EXPIRED");
    expect(JSON.stringify(outcome)).not.toContain("expired-token-value");
    expect(JSON.stringify(h.records)).not.toContain("expired-token-value");
  });
});

describe("policy effects", () => {
  it("allows listing pods, strips the agent credential and forged identity headers, narrows Accept", async () => {
    const h = harness();
    const outcome = await run(
      h,
      request("GET", "/api/v1/namespaces/default/pods?limit=500", {
        "impersonate-user": "system:admin",
        "impersonate-group": "system:masters",
        "x-remote-user": "admin",
        accept: "application/vnd.kubernetes.protobuf, application/json",
        "accept-encoding": "gzip",
      }),
    );
    expect(outcome.code).toBe("ALLOWED");
    if (outcome.code !== "ALLOWED") return;
    expect(outcome.removeHeaders).toEqual(expect.arrayContaining(["authorization", "impersonate-user", "impersonate-group", "x-remote-user", "accept-encoding"]));
    expect(outcome.setHeaders).toContainEqual(["accept", "application/json"]);
    expect(outcome.metadata).toMatchObject({
      decision_id: "decision-1",
      request_id: "req-1",
      subject: "ci-bot",
      session_id: "session-1",
      effect: "Allow",
      kube: { verb: "list", resource: "pods", namespace: "default" },
    });
    expect(h.records[0]).toMatchObject({ effect: "Allow", kube: { verb: "list", resource: "pods" } });
    expect(h.records[0]?.requestHeaders.authorization).toBe("[redacted]");
  });

  it("never removes a header it sets: Envoy applies headers_to_remove after the set mutations", async () => {
    const dir = mkdtempSync(join(tmpdir(), "airlock-engine-"));
    writeFileSync(join(dir, "gw"), "gateway-token");
    const impersonate = await createUpstreamCredentials(credentialsConfigSchema.parse({ mode: "impersonate", gatewayTokenFile: join(dir, "gw") }));
    const outcome = await run(
      harness({ credentials: impersonate }),
      request("GET", "/api/v1/namespaces/default/pods", { "impersonate-user": "system:admin", "impersonate-group": "system:masters" }),
    );
    if (outcome.code !== "ALLOWED") throw new Error("expected an allow");
    const setNames = new Set(outcome.setHeaders.map(([name]) => name));
    expect(outcome.removeHeaders.filter((name) => setNames.has(name))).toEqual([]);
    // The client's forged values are replaced: the first set of each name overwrites, later ones append.
    expect(outcome.setHeaders.filter(([name]) => name === "impersonate-user")).toEqual([["impersonate-user", "airlock:ci-bot"]]);
    expect(outcome.setHeaders.filter(([name]) => name === "impersonate-group")).toEqual([["impersonate-group", "airlock:agents"]]);
    expect(outcome.setHeaders).toContainEqual(["authorization", "Bearer gateway-token"]);
  });

  it("allows reading a Secret (values are masked downstream)", async () => {
    const outcome = await run(harness(), request("GET", "/api/v1/namespaces/default/secrets/db"));
    expect(outcome.code).toBe("ALLOWED");
  });

  it("denies binding cluster-admin with a 403 Status naming the rule and decision", async () => {
    const h = harness();
    const binding = {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "pwn" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
      subjects: [{ kind: "ServiceAccount", name: "default", namespace: "default" }],
    };
    const outcome = asDeny(await run(h, request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {}, binding)));
    expect(outcome.httpStatus).toBe(403);
    expect(outcome.status.reason).toBe("Forbidden");
    expect(outcome.status.message).toMatch(/no-clusterrolebinding-writes/);
    expect(outcome.status.message).toContain("decision-1");
    expect(h.records[0]?.requestBody).toBe(`[${JSON.stringify(binding).length} bytes, masked]`);
  });

  it("denies a privileged pod and never allows a pod create on a partial body", async () => {
    const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "p" }, spec: { containers: [{ name: "c", image: "x", securityContext: { privileged: true } }] } };
    expect((await run(harness(), request("POST", "/api/v1/namespaces/dev/pods", {}, pod))).code).toBe("DENIED");
    const benign = { ...pod, spec: { containers: [{ name: "c", image: "x" }] } };
    const partial = await run(harness(), request("POST", "/api/v1/namespaces/dev/pods", { "x-envoy-auth-partial-body": "true" }, benign));
    expect(partial.code).not.toBe("ALLOWED");
  });

  it("answers 400 for a request kube-apiserver would not route", async () => {
    const outcome = asDeny(await run(harness(), request("TRACE", "/api/v1/pods")));
    expect(outcome.code).toBe("BAD_REQUEST");
    expect(outcome.httpStatus).toBe(400);
    const badEscape = asDeny(await run(harness(), request("GET", "/api/v1/namespaces/a%zz/pods")));
    expect(badEscape.code).toBe("BAD_REQUEST");
  });
});

describe("token scope (token exchange)", () => {
  it("only narrows: reads inside the scope are allowed, anything outside is denied before the policy", async () => {
    const h = harness();
    expect((await run(h, request("GET", "/api/v1/namespaces/team-a/pods", { authorization: "Bearer scoped" }))).code).toBe("ALLOWED");
    const otherNamespace = asDeny(await run(h, request("GET", "/api/v1/namespaces/team-b/pods", { authorization: "Bearer scoped" })));
    expect(otherNamespace.status.message).toContain("outside the token's scope");
    const write = asDeny(await run(h, request("DELETE", "/api/v1/namespaces/team-a/pods/p", { authorization: "Bearer scoped" })));
    expect(write.code).toBe("DENIED");
    // The scope never widens: a read the policy denies stays denied inside the scope.
    expect((await run(h, request("GET", "/api/v1/namespaces/team-a/pods/p/exec?command=sh", { authorization: "Bearer scoped", connection: "Upgrade", upgrade: "websocket" }))).code).not.toBe("ALLOWED");
  });

  it("refuses a malformed scope claim", async () => {
    const outcome = asDeny(await run(harness(), request("GET", "/api/v1/namespaces/team-a/pods", { authorization: "Bearer bad-scope" })));
    expect(outcome.code).toBe("UNAUTHENTICATED");
  });
});

describe("require approval", () => {
  const deleteProd = (): CheckHttpRequest => request("DELETE", "/apis/apps/v1/namespaces/prod-a/deployments/web");

  it("answers 429 + Retry-After with a PendingApproval Status carrying the approval id", async () => {
    const h = harness({
      approvals: () => ({ kind: "pending", approvalId: "ap-1", expiresAt: "2026-11-30T03:00:00Z", retryAfterSeconds: 5, approveUrl: "http://127.0.0.1:8181/v1/approvals/ap-1", ruleId: "prod-deletes-need-a-human", approvalsReceived: 0, approvalsRequired: 1 }),
    });
    const outcome = asDeny(await run(h, deleteProd()));
    expect(outcome.code).toBe("PENDING_APPROVAL");
    expect(outcome.httpStatus).toBe(429);
    expect(outcome.responseHeaders).toContainEqual(["retry-after", "5"]);
    expect(outcome.status).toMatchObject({ kind: "Status", reason: "PendingApproval", code: 429, details: { name: "ap-1", retryAfterSeconds: 5 } });
    expect(outcome.status.message).toContain("decision-1");
    expect(outcome.status.message).toContain("http://127.0.0.1:8181/v1/approvals/ap-1");
    expect(h.approvalCalls[0]).toMatchObject({ ruleId: "prod-deletes-need-a-human", requester: { subject: "ci-bot", sessionId: "session-1" } });
    expect(h.approvalCalls[0]?.settings.approverGroups).toEqual(["sre"]);
    expect(h.records[0]).toMatchObject({ effect: "RequireApproval", approvalId: "ap-1" });
  });

  it("gives the same fingerprint to the same request and a different one to another", async () => {
    const h = harness({ approvals: () => ({ kind: "pending", approvalId: "ap", expiresAt: "x", retryAfterSeconds: 1, approveUrl: "u", ruleId: "r", approvalsReceived: 0, approvalsRequired: 1 }) });
    await run(h, deleteProd());
    await run(h, deleteProd());
    await run(h, request("DELETE", "/apis/apps/v1/namespaces/prod-a/deployments/other"));
    const [a, b, c] = h.approvalCalls.map((call) => call.fingerprint);
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  });

  it("allows once granted, with the approval id in the metadata", async () => {
    const outcome = await run(harness({ approvals: () => ({ kind: "granted", approvalId: "ap-2", grant: "once", ruleId: "r" }) }), deleteProd());
    expect(outcome.code).toBe("ALLOWED");
    expect(outcome.metadata.approval_id).toBe("ap-2");
  });

  it("marks an allowed exec stream as one no ext_proc exchange will follow", async () => {
    const h = harness({ approvals: () => ({ kind: "granted", approvalId: "ap-4", grant: "once", ruleId: "exec-needs-a-human" }) });
    const outcome = await run(h, request("GET", "/api/v1/namespaces/dev/pods/web-0/exec?command=sh&stdin=true", { connection: "Upgrade", upgrade: "websocket" }));
    expect(outcome.code).toBe("ALLOWED");
    expect(h.records[0]?.exchangeExpected).toBe(false);
    await run(h, request("GET", "/api/v1/namespaces/dev/pods"));
    expect(h.records[1]?.exchangeExpected).toBe(true);
  });

  it("passes the approver's reason to the agent on rejection", async () => {
    const outcome = asDeny(await run(harness({ approvals: () => ({ kind: "rejected", approvalId: "ap-3", reason: "not during the freeze", approver: "alice", ruleId: "r" }) }), deleteProd()));
    expect(outcome.httpStatus).toBe(403);
    expect(outcome.status.message).toContain("not during the freeze");
    expect(outcome.status.message).toContain("alice");
  });

  it("never allows when no approval store is configured", async () => {
    const outcome = asDeny(await run(harness(), deleteProd()));
    expect(outcome.code).toBe("DENIED");
  });
});

describe("fail closed", () => {
  it("refuses with 503 when the audit sink cannot record", async () => {
    const outcome = asDeny(await run(harness({ auditOk: false }), request("GET", "/api/v1/pods")));
    expect(outcome).toMatchObject({ code: "AUDIT_UNAVAILABLE", httpStatus: 503 });
  });

  it("throws (→ gRPC error → Envoy denies) when no upstream credential can be made, and still records", async () => {
    const failing: UpstreamCredentials = { mode: "tokenRequest", credentialFor: () => Promise.reject(new Error("mint failed")) };
    const h = harness({ credentials: failing });
    await expect(run(h, request("GET", "/api/v1/pods"))).rejects.toThrow("mint failed");
    expect(h.records[0]).toMatchObject({ effect: "Error", outcome: "INTERNAL_ERROR" });
  });
});
