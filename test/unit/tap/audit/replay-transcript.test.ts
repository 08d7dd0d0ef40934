/**
 * @module test/unit/tap/audit/replay-transcript.test
 * kubectl-style actions and transcript assembly (ordering, approvals, split halves).
 */
import { describe, expect, it } from "vitest";
import { buildTranscript, kubectlAction, renderTranscriptText, type TimelineRow } from "../../../../tap/audit/replay-transcript.js";

const k = (verb: string, resource: string, extra: Partial<Parameters<typeof kubectlAction>[0]> = {}): string =>
  kubectlAction({ verb, resource, api_group: "", subresource: "", namespace: "", name: "", path: "", method: "", ...extra });

describe("kubectlAction", () => {
  it.each([
    [k("get", "pods", { namespace: "prod", name: "web-1" }), "kubectl get pods web-1 -n prod"],
    [k("list", "pods"), "kubectl get pods -A"],
    [k("list", "deployments", { api_group: "apps", namespace: "prod" }), "kubectl get deployments.apps -n prod"],
    [k("watch", "pods", { namespace: "prod" }), "kubectl get pods -n prod --watch"],
    [k("delete", "deployments", { api_group: "apps", namespace: "prod", name: "web" }), "kubectl delete deployments.apps web -n prod"],
    [k("deletecollection", "pods", { namespace: "dev" }), "kubectl delete pods --all -n dev"],
    [k("create", "pods", { subresource: "exec", namespace: "prod", name: "web-1" }), "kubectl exec web-1 -n prod -- …"],
    [k("get", "pods", { subresource: "log", namespace: "prod", name: "web-1" }), "kubectl logs web-1 -n prod"],
    [k("create", "pods", { subresource: "portforward", namespace: "prod", name: "db-0" }), "kubectl port-forward db-0 -n prod"],
    [k("patch", "deployments", { api_group: "apps", subresource: "scale", namespace: "prod", name: "web" }), "kubectl scale deployments.apps/web -n prod"],
    [k("create", "serviceaccounts", { subresource: "token", namespace: "prod", name: "sa" }), "kubectl create serviceaccounts/sa/token -n prod"],
    [k("escalate", "clusterroles", { api_group: "rbac.authorization.k8s.io", name: "admin" }), "kubectl escalate clusterroles.rbac.authorization.k8s.io admin"],
    [k("get", "", { path: "/version", method: "GET" }), "kubectl get --raw /version"],
    [k("post", "", { path: "/api/v1/x", method: "post" }), "POST /api/v1/x"],
  ])("%s", (actual, expected) => {
    expect(actual).toBe(expected);
  });
});

function row(overrides: Partial<TimelineRow>): TimelineRow {
  return {
    time_us: 1, time: "2026-11-30 00:00:00.000001", request_id: "r", decision_id: "d", subject: "agent", method: "GET",
    verb: "get", api_group: "", resource: "pods", subresource: "", namespace: "prod", name: "p", path: "/api/v1/namespaces/prod/pods/p",
    effect: "Allow", rule_ids: ["r1"], approval_id: "", reason: "", response_status: 200, response_outcome: "complete",
    response_truncated: 0, response_bytes: 10, ...overrides,
  };
}

describe("buildTranscript", () => {
  it("orders requests and approvals by time and summarises effects", () => {
    const t = buildTranscript("s", [row({ time_us: "30" }), row({ time_us: 10, effect: "Deny", response_status: 0, response_outcome: "not_forwarded", reason: "no" })],
      [{ time_us: "20", time: "t20", approval_id: "a1", action: "approved", actor: "alice", reason: "ok", rule_id: "r1" }]);
    expect(t.entries.map((e) => e.timeMicros)).toEqual([10, 20, 30]);
    expect(t.summary).toEqual({ Allow: 1, Deny: 1 });
    const text = renderTranscriptText(t);
    expect(text).toContain("DENIED    kubectl get pods p -n prod [rule r1] : no");
    expect(text).toContain('APPROVAL  a1 approved by alice: "ok"');
  });

  it("prints a decision recorded as missing and its exchange-only half as one request", () => {
    const t = buildTranscript("s", [
      row({ time_us: 1, response_status: 0, response_outcome: "missing" }),
      row({ time_us: 2, effect: "Unknown", subject: "", response_status: 404, response_outcome: "complete" }),
    ], []);
    expect(t.entries).toHaveLength(1);
    expect(t.entries[0]).toMatchObject({ effect: "Allow", status: 404, outcome: "complete" });
  });

  it("marks an allowed request without response", () => {
    const t = buildTranscript("s", [row({ response_status: 0, response_outcome: "missing" })], []);
    expect(renderTranscriptText(t)).toContain("ALLOWED   kubectl get pods p -n prod (missing) [rule r1]");
  });
});
