/**
 * @module test/e2e/scenarios/agent-guardrails.test
 * One agent session on real parts: reads allowed, prod deletes approved by a human, RBAC escalation denied, exec
 * approved and port-forward denied, forged impersonation stripped, bad tokens refused, all of it audited and replayable.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runReplayCommand } from "../../../tap/audit/replay-command.js";
import { startE2eStack, type AuditRequestRow, type E2eStack } from "../../helpers/e2e-stack.js";

const AGENT_VIEW = "system:serviceaccount:airlock:agent-view";
const AGENT_ADMIN = "system:serviceaccount:airlock:agent-admin";
const AGENT_EXEC = "system:serviceaccount:airlock:agent-exec";

/** A request the session made, as its audit row must show it. */
interface Expected {
  readonly what: string;
  readonly match: (row: AuditRequestRow) => boolean;
}

let stack: E2eStack;
/** Set once beforeAll got a stack: afterAll must not hide a failed start behind a TypeError. */
let started = false;
let approverToken: string;
/** A namespace the agent may only read. */
let ns: string;
/** A prod-* namespace: deletes there need a human. */
let prodNs: string;
const expected: Expected[] = [];
const approvalIds: string[] = [];

function expectRow(what: string, match: (row: AuditRequestRow) => boolean): void {
  expected.push({ what, match });
}

async function mustAdmin(args: readonly string[]): Promise<string> {
  const result = await stack.admin(args);
  if (result.code !== 0) throw new Error(`admin kubectl ${args.slice(0, 3).join(" ")}: ${result.stderr}`);
  return result.stdout;
}

function statusMessage(body: string): string {
  return (JSON.parse(body) as { message?: string }).message ?? "";
}

beforeAll(async () => {
  stack = await startE2eStack({ name: "guardrails" });
  started = true;
  approverToken = await stack.issueApproverToken("sre-alice");
  ns = await stack.createNamespace("e2e-guard");
  prodNs = await stack.createNamespace("prod-e2e");
  await mustAdmin(["-n", prodNs, "create", "deployment", "web", "--image=registry.invalid/web:1"]);
  await mustAdmin(["-n", prodNs, "create", "deployment", "api", "--image=registry.invalid/api:1"]);
  // A pod no node will ever run: exec reaches the API server, which then has no kubelet to forward to.
  await mustAdmin(["-n", ns, "run", "shell", "--image=registry.invalid/shell:1", "--restart=Never", "--", "sleep", "3600"]);
  // kubectl port-forward refuses pods that are not Running before it sends anything; say this one is.
  await mustAdmin(["-n", ns, "patch", "pod", "shell", "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Running"}}']);
});

afterAll(async () => {
  if (started) await stack.close();
});

describe("an agent session through Airlock", () => {
  it("1. kubectl get pods is allowed, runs as agent-view, and is recorded", async () => {
    const result = await stack.kubectl(["-n", ns, "get", "pods", "-o", "json", "--request-timeout=20s"]);
    expect(result.code, result.stderr).toBe(0);
    const list = JSON.parse(result.stdout) as { items: { metadata: { name: string } }[] };
    expect(list.items.map((item) => item.metadata.name)).toContain("shell");

    const rows = await stack.waitForAuditRows((all) => all.some((row) => row.verb === "list" && row.resource === "pods" && row.namespace === ns));
    const row = rows.find((candidate) => candidate.verb === "list" && candidate.resource === "pods" && candidate.namespace === ns);
    expect(row).toMatchObject({ effect: "Allow", response_status: 200, workload_identity: AGENT_VIEW, subject: stack.agentSubject });
    expect(row?.rule_ids).toContain("agents-read");
    expectRow("list pods", (r) => r.verb === "list" && r.resource === "pods" && r.namespace === ns && r.effect === "Allow");
  });

  it("3. deleting a Deployment in prod-* waits for a human; kubectl's own retry then succeeds; the next delete needs a new approval", async () => {
    const deletion = stack.kubectlInBackground(["-n", prodNs, "delete", "deployment", "web", "--request-timeout=90s"], { timeoutMs: 90_000 });
    const pending = await stack.waitForPendingApproval(
      approverToken,
      (item) => item.ruleId === "prod-deletes-need-a-human" && item.requester.sessionId === stack.sessionId && JSON.stringify(item.preview).includes("web"),
    );
    // Still there while the approval is pending.
    expect((await stack.admin(["-n", prodNs, "get", "deployment", "web"])).code).toBe(0);
    const approved = await stack.approve(approverToken, pending.id, "e2e: rollback agreed");
    expect(approved.status, approved.body).toBe(200);
    approvalIds.push(pending.id);

    const result = await deletion.result;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('deployment.apps "web" deleted');
    const gone = await stack.admin(["-n", prodNs, "get", "deployment", "web"]);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toContain("NotFound");

    // Another object: a new fingerprint, so a new approval; nothing happens until someone decides.
    const second = stack.kubectlInBackground(["-n", prodNs, "delete", "deployment", "api", "--request-timeout=90s"], { timeoutMs: 90_000 });
    try {
      const next = await stack.waitForPendingApproval(
        approverToken,
        (item) => item.ruleId === "prod-deletes-need-a-human" && item.id !== pending.id && JSON.stringify(item.preview).includes("api"),
      );
      expect(next.id).not.toBe(pending.id);
      approvalIds.push(next.id);
      expect((await stack.admin(["-n", prodNs, "get", "deployment", "api"])).code).toBe(0);
    } finally {
      await second.stop();
    }
    expect((await stack.admin(["-n", prodNs, "get", "deployment", "api"])).code).toBe(0);

    const rows = await stack.waitForAuditRows((all) => all.some((row) => row.verb === "delete" && row.name === "web" && row.effect === "Allow"));
    const allowedDelete = rows.find((row) => row.verb === "delete" && row.name === "web" && row.effect === "Allow");
    expect(allowedDelete).toMatchObject({ approval_id: pending.id, workload_identity: AGENT_ADMIN, response_status: 200 });
    expectRow("pending delete web", (r) => r.verb === "delete" && r.name === "web" && r.effect === "RequireApproval" && r.approval_id === pending.id);
    expectRow("approved delete web", (r) => r.verb === "delete" && r.name === "web" && r.effect === "Allow");
    expectRow("pending delete api", (r) => r.verb === "delete" && r.name === "api" && r.effect === "RequireApproval");
  });

  it("4. binding cluster-admin is denied and kubectl prints Airlock's Status message with the rule id", async () => {
    const result = await stack.kubectl([
      "create", "clusterrolebinding", "e2e-takeover", "--clusterrole=cluster-admin", "--serviceaccount=airlock:agent-view", "--request-timeout=20s",
    ]);
    expect(result.code).not.toBe(0);
    // kubectl create prints "error: failed to create clusterrolebinding: <Status message>".
    expect(result.stderr).toContain("failed to create clusterrolebinding: airlock:");
    expect(result.stderr).toContain("denied by rule no-clusterrolebinding-writes");
    expect(result.stderr).toContain("Agents may not create or change ClusterRoleBindings.");
    expect((await stack.admin(["get", "clusterrolebinding", "e2e-takeover"])).code).not.toBe(0);
    expectRow("denied clusterrolebinding", (r) => r.resource === "clusterrolebindings" && r.verb === "create" && r.effect === "Deny" && r.rule_ids.includes("no-clusterrolebinding-writes"));
  });

  it("5. exec over WebSocket waits for approval, then reaches the API server; port-forward is denied", async () => {
    // kubectl 1.32 tries WebSocket first: the gateway answers 429 (pending); its SPDY fallback is refused (403).
    const first = await stack.kubectl(["-n", ns, "exec", "shell", "--", "cat", "/etc/hostname"], { timeoutMs: 30_000 });
    expect(first.code).not.toBe(0);
    const pending = await stack.waitForPendingApproval(
      approverToken,
      (item) => item.ruleId === "exec-needs-a-human" && item.requester.sessionId === stack.sessionId,
    );
    expect((await stack.approve(approverToken, pending.id, "e2e: look at the pod")).status).toBe(200);
    approvalIds.push(pending.id);
    // The same exec again: allowed once, as agent-exec. With no node behind the pod the API server then refuses
    // to proxy it, which this test accepts: what matters is that the upgrade got there.
    const second = await stack.kubectl(["-n", ns, "exec", "shell", "--", "cat", "/etc/hostname"], { timeoutMs: 30_000 });
    expect(second.stderr).not.toContain("PendingApproval");
    const rows = await stack.waitForAuditRows((all) => all.some((row) => row.subresource === "exec" && row.effect === "Allow"));
    const allowed = rows.find((row) => row.subresource === "exec" && row.effect === "Allow");
    expect(allowed).toMatchObject({ approval_id: pending.id, workload_identity: AGENT_EXEC, verb: "create" });

    // The same over a raw WebSocket upgrade, where the API server's own answer is visible.
    const path = `/api/v1/namespaces/${ns}/pods/shell/exec?command=id&stdout=true&stderr=true`;
    const refused = await stack.upgrade({ path });
    expect(refused.status).toBe(429);
    expect(refused.headers["retry-after"]).toBeDefined();
    expect(statusMessage(refused.body)).toContain("exec-needs-a-human");
    const raw = await stack.waitForPendingApproval(approverToken, (item) => item.ruleId === "exec-needs-a-human" && JSON.stringify(item.preview).includes("command=id"));
    expect((await stack.approve(approverToken, raw.id, "e2e: raw exec")).status).toBe(200);
    approvalIds.push(raw.id);
    const upstream = await stack.upgrade({ path });
    // kube-apiserver's own refusal (a pod with no host), not Airlock's: its message has no "airlock:" prefix.
    expect(upstream.status).toBe(400);
    expect(statusMessage(upstream.body)).toMatch(/does not have a host assigned/);

    const forward = await stack.kubectl(["-n", ns, "port-forward", "pod/shell", ":80"], { timeoutMs: 30_000 });
    expect(forward.code).not.toBe(0);
    const forwardRaw = await stack.upgrade({ path: `/api/v1/namespaces/${ns}/pods/shell/portforward?ports=80`, protocols: ["v4.channel.k8s.io"] });
    expect(forwardRaw.status).toBe(403);
    expect(statusMessage(forwardRaw.body)).toContain("no-port-forward");

    expectRow("pending exec", (r) => r.subresource === "exec" && r.effect === "RequireApproval");
    expectRow("approved exec", (r) => r.subresource === "exec" && r.effect === "Allow" && r.approval_id === pending.id);
    expectRow("approved raw exec", (r) => r.subresource === "exec" && r.effect === "Allow" && r.approval_id === raw.id);
    expectRow("denied port-forward", (r) => r.subresource === "portforward" && r.effect === "Deny" && r.rule_ids.includes("no-port-forward"));
  });

  it("6. forged Impersonate-* headers are stripped: the API server only ever sees agent-view", async () => {
    // If the headers reached kube-apiserver, agent-view (no `impersonate` right) would get "cannot impersonate".
    const listed = await stack.kubectl(["-n", ns, "get", "pods", "--as=testbed-admin", "--as-group=system:masters", "-o", "name", "--request-timeout=20s"]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain("pod/shell");

    // A read the policy allows but agent-view's RBAC does not: kube-apiserver's refusal names who it saw.
    const refused = await stack.kubectl([
      "get", "validatingwebhookconfigurations", "--as=testbed-admin", "--as-group=system:masters", "--request-timeout=20s",
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`User "${AGENT_VIEW}" cannot list resource "validatingwebhookconfigurations"`);
    expect(refused.stderr).not.toMatch(/impersonate/i);

    const raw = await stack.request({
      path: "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
      headers: { "impersonate-user": "testbed-admin", "impersonate-group": "system:masters", "x-remote-user": "testbed-admin" },
    });
    expect(raw.status).toBe(403);
    const message = statusMessage(raw.body);
    expect(message).not.toMatch(/^airlock:/);
    expect(message).toContain(AGENT_VIEW);
    expect(message).not.toMatch(/impersonate/i);
    expectRow("impersonating list", (r) => r.resource === "validatingwebhookconfigurations" && r.effect === "Allow" && r.response_status === 403);
  });

  it("7. an expired token and a token with too long a lifetime are refused with 401 and Airlock's message", async () => {
    const expired = await stack.signAgentToken({ issuedAtOffsetSeconds: -7200, lifetimeSeconds: 3600 });
    const tooLong = await stack.signAgentToken({ issuedAtOffsetSeconds: 0, lifetimeSeconds: 13 * 3600 });
    for (const [token, why] of [[expired, "token has expired"], [tooLong, "token lifetime exceeds"]] as const) {
      const raw = await stack.request({ path: `/api/v1/namespaces/${ns}/pods`, token });
      expect(raw.status, why).toBe(401);
      expect(statusMessage(raw.body)).toContain(why);
      const kubeconfig = stack.writeKubeconfig(why.replace(/\W+/g, "-"), token);
      const result = await stack.kubectl(["-n", ns, "get", "pods", "--request-timeout=20s"], { kubeconfig });
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain("You must be logged in to the server");
      expect(result.stderr).toContain(why);
    }
  });

  it("8. every request above is in the audit store, and airlock replay shows the session", async () => {
    const rows = await stack.waitForAuditRows((all) => expected.every((e) => all.some(e.match)), { timeoutMs: 20_000 });
    const missing = expected.filter((e) => !rows.some(e.match)).map((e) => e.what);
    expect(missing).toEqual([]);
    // Every decision in the session is the agent's (exchange-only rows, effect Unknown, carry no identity).
    for (const row of rows.filter((r) => r.effect !== "Unknown")) expect(row.subject).toBe(stack.agentSubject);

    // Refused tokens carry no trusted session; their rows are there all the same.
    const all = await stack.auditRows(null);
    const refusedTokens = all.filter((row) => row.response_status === 0 && row.reason.includes("token") && row.path.startsWith(`/api/v1/namespaces/${ns}/pods`));
    expect(refusedTokens.length).toBeGreaterThanOrEqual(2);

    let out = "";
    let err = "";
    const code = await runReplayCommand([stack.sessionId], { out: (t) => { out += t; }, err: (t) => { err += t; } }, stack.config.audit, {
      store: stack.airlock.audit.store,
    });
    expect(code, err).toBe(0);
    expect(out).toContain(`session ${stack.sessionId} (${stack.agentSubject})`);
    expect(out).toContain(`kubectl delete deployments.apps web -n ${prodNs}`);
    expect(out).toContain("kubectl create clusterrolebindings.rbac.authorization.k8s.io");
    expect(out).toContain(`kubectl exec shell -n ${ns}`);
    for (const id of approvalIds) expect(out).toContain(id);
    expect(out).toMatch(/APPROVAL\s+\S+ approved by sre-alice/);
    expect(out).toMatch(/summary: .*Allow \d+/);
  });
});
