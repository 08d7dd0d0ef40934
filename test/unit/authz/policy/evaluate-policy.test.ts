import { describe, expect, it } from "vitest";
import { evaluatePolicy } from "../../../../authz/policy/evaluate-policy.js";
import type { KubeRequestAttributes } from "../../../../authz/kube/request-attributes.js";
import { compilePolicy, decide, ruleIds } from "../../../fixtures/policy/decide.js";

const layered = compilePolicy(`
serviceAccounts:
  default: airlock/view
  namespaces: { "dev-*": airlock/dev-edit, "*": airlock/ns-view }
rules:
  - id: read
    subjects: { groups: [agents] }
    verbs: [get, list, watch]
    resources: ["*"]
    effect: Allow
  - id: write-dev
    subjects: { groups: [agents] }
    verbs: [create, update, patch, delete]
    apiGroups: [apps]
    resources: [deployments]
    namespaces: [dev-*]
    effect: Allow
    serviceAccount: airlock/rule-sa
  - id: prod-delete
    verbs: [delete, deletecollection]
    apiGroups: [apps]
    resources: [deployments]
    namespaces: [prod-*]
    effect: RequireApproval
    approval: { approverGroups: [sre], ttl: 10m }
  - id: prod-delete-second
    verbs: [delete]
    resources: ["*"]
    namespaces: [prod-*]
    effect: RequireApproval
    approval: { approverGroups: [oncall], minApprovals: 2 }
  - id: no-secrets-in-kube-system
    verbs: ["*"]
    resources: [secrets]
    namespaces: [kube-system]
    effect: Deny
    message: no secrets here
  - id: no-cluster-admin
    verbs: ["*"]
    resources: [clusterroles]
    resourceNames: [cluster-admin]
    effect: Deny
  - id: no-exec
    verbs: [create]
    resources: [pods/exec, pods/attach]
    effect: Deny
  - id: status-reads
    subjects: { users: ["robot-*"] }
    verbs: [get]
    resources: ["*/status"]
    effect: Allow
  - id: health
    verbs: [get]
    nonResourceURLs: [/healthz*, /version]
    effect: Allow
`);

describe("rule combination", () => {
  it("allows by the matching Allow rule and names it", () => {
    const decision = decide(layered, "GET /api/v1/namespaces/dev-a/pods");
    expect(decision).toMatchObject({ effect: "Allow", defaulted: false, approval: undefined, policyVersion: layered.version });
    expect(ruleIds(decision)).toEqual(["read"]);
    expect(decision.reason).toBe("allowed by rule read");
  });

  it("falls back to the default Deny when nothing matches", () => {
    const decision = decide(layered, "POST /api/v1/namespaces/dev-a/configmaps");
    expect(decision).toMatchObject({ effect: "Deny", defaulted: true, rules: [], serviceAccount: undefined });
    expect(decision.reason).toBe("no rule matched; default Deny");
    expect(decide(layered, "GET /api/v1/namespaces/dev-a/pods", { groups: ["humans"] }).defaulted).toBe(true);
  });

  it("lets Deny override Allow and lists every matching Deny", () => {
    const decision = decide(layered, "GET /api/v1/namespaces/kube-system/secrets/token");
    expect(decision.effect).toBe("Deny");
    expect(decision.rules).toEqual([{ id: "no-secrets-in-kube-system", effect: "Deny", message: "no secrets here" }]);
    expect(decision.serviceAccount).toBeUndefined();
  });

  it("puts RequireApproval above Allow, with the first rule's settings and all rules listed", () => {
    const decision = decide(layered, "DELETE /apis/apps/v1/namespaces/prod-a/deployments/web");
    expect(decision.effect).toBe("RequireApproval");
    expect(ruleIds(decision)).toEqual(["prod-delete", "prod-delete-second"]);
    expect(decision.approval).toEqual({ approverGroups: ["sre"], minApprovals: 1, grant: "once", ttlSeconds: 600 });
    expect(decision.reason).toBe("approval required by rule prod-delete, prod-delete-second");
  });

  it("puts Deny above RequireApproval", () => {
    const decision = decide(layered, "DELETE /api/v1/namespaces/kube-system/secrets/x");
    expect(decision.effect).toBe("Deny");
    expect(ruleIds(decision)).toEqual(["no-secrets-in-kube-system"]);
  });

  it("denies a request without a verb outright", () => {
    const attributes = { ...baseAttributes(), verb: "" };
    const decision = evaluatePolicy(layered, { attributes, user: agent, body: { state: "absent", object: null } });
    expect(decision).toMatchObject({ effect: "Deny", defaulted: false, rules: [] });
  });
});

describe("matching", () => {
  it("matches subresources only when the rule names them", () => {
    expect(decide(layered, "POST /api/v1/namespaces/dev-a/pods/web/exec?command=sh", { upgrade: true }).effect).toBe("Deny");
    expect(decide(layered, "GET /api/v1/namespaces/dev-a/pods/web/exec?command=sh", { upgrade: true }).effect).toBe("Deny");
    expect(decide(layered, "GET /api/v1/namespaces/a/pods/web/status", { subject: "robot-1", groups: [] }).effect).toBe("Allow");
    expect(decide(layered, "GET /api/v1/namespaces/a/pods/web", { subject: "robot-1", groups: [] }).effect).toBe("Deny");
  });

  it("matches api groups", () => {
    expect(decide(layered, "DELETE /apis/apps/v1/namespaces/dev-a/deployments/web").effect).toBe("Allow");
    // extensions/deployments is a different group: write-dev names only apps.
    expect(decide(layered, "DELETE /apis/extensions/v1beta1/namespaces/dev-a/deployments/web").defaulted).toBe(true);
  });

  it("keeps namespace globs away from cluster-scoped requests for Allow rules", () => {
    expect(decide(layered, "DELETE /apis/apps/v1/namespaces/dev-a/deployments/web").effect).toBe("Allow");
    expect(decide(layered, "DELETE /apis/apps/v1/namespaces/qa/deployments/web").defaulted).toBe(true);
  });

  it("widens Deny/RequireApproval rules to all-namespace collections and unnamed requests", () => {
    // GET /api/v1/secrets lists kube-system's Secrets too.
    const all = decide(layered, "GET /api/v1/secrets");
    expect(all.effect).toBe("Deny");
    expect(ruleIds(all)).toEqual(["no-secrets-in-kube-system"]);
    // listing clusterroles returns cluster-admin as well.
    expect(ruleIds(decide(layered, "GET /apis/rbac.authorization.k8s.io/v1/clusterroles"))).toEqual(["no-cluster-admin"]);
    expect(decide(layered, "GET /apis/rbac.authorization.k8s.io/v1/clusterroles/view").effect).toBe("Allow");
    expect(ruleIds(decide(layered, "GET /apis/rbac.authorization.k8s.io/v1/clusterroles/cluster-admin"))).toEqual(["no-cluster-admin"]);
  });

  it("matches non-resource URLs with RBAC-style trailing globs, and only non-resource requests", () => {
    expect(ruleIds(decide(layered, "GET /healthz/etcd", { groups: [] }))).toEqual(["health"]);
    expect(ruleIds(decide(layered, "GET /version", { groups: [] }))).toEqual(["health"]);
    expect(decide(layered, "GET /version/x", { groups: [] }).defaulted).toBe(true);
    expect(decide(layered, "POST /healthz", { groups: [] }).defaulted).toBe(true);
    expect(decide(layered, "GET /api/v1/namespaces/a/pods/x", { groups: [] }).defaulted).toBe(true);
  });

  it("matches subjects by user glob, group or claims", () => {
    const policy = compilePolicy(`
rules:
  - id: by-user
    subjects: { users: ["agent:ci-*"] }
    verbs: [get]
    resources: [pods]
    effect: Allow
  - id: by-claims
    subjects: { groups: [agents], claims: { env: [staging, "dev-*"], tier: 2, admin: false } }
    verbs: [list]
    resources: [pods]
    effect: Allow
`);
    expect(decide(policy, "GET /api/v1/namespaces/a/pods/x", { subject: "agent:ci-7", groups: [] }).effect).toBe("Allow");
    expect(decide(policy, "GET /api/v1/namespaces/a/pods/x", { subject: "agent:cd-7", groups: [] }).effect).toBe("Deny");
    const claims = { env: "dev-3", tier: 2, admin: false };
    expect(decide(policy, "GET /api/v1/namespaces/a/pods", { claims }).effect).toBe("Allow");
    expect(decide(policy, "GET /api/v1/namespaces/a/pods", { claims: { ...claims, env: ["prod", "staging"] } }).effect).toBe("Allow");
    expect(decide(policy, "GET /api/v1/namespaces/a/pods", { claims: { ...claims, env: "prod" } }).effect).toBe("Deny");
    expect(decide(policy, "GET /api/v1/namespaces/a/pods", { claims: { ...claims, tier: "2" } }).effect).toBe("Deny");
    expect(decide(policy, "GET /api/v1/namespaces/a/pods", { claims: { env: "dev-3", tier: 2 } }).effect).toBe("Deny");
    expect(decide(policy, "GET /api/v1/namespaces/a/pods", { claims, groups: ["others"] }).effect).toBe("Deny");
  });
});

describe("ServiceAccount selection", () => {
  it("uses the deciding Allow rule's ServiceAccount first", () => {
    expect(decide(layered, "DELETE /apis/apps/v1/namespaces/dev-a/deployments/web").serviceAccount).toEqual({
      namespace: "airlock",
      name: "rule-sa",
    });
  });

  it("then the first matching namespace glob, then the default", () => {
    expect(decide(layered, "GET /api/v1/namespaces/dev-b/pods").serviceAccount).toEqual({ namespace: "airlock", name: "dev-edit" });
    expect(decide(layered, "GET /api/v1/namespaces/qa/pods").serviceAccount).toEqual({ namespace: "airlock", name: "ns-view" });
    expect(decide(layered, "GET /api/v1/nodes").serviceAccount).toEqual({ namespace: "airlock", name: "view" });
  });

  it("applies to RequireApproval decisions (the identity used once approved)", () => {
    expect(decide(layered, "DELETE /apis/apps/v1/namespaces/prod-a/deployments/web").serviceAccount).toEqual({
      namespace: "airlock",
      name: "ns-view",
    });
  });
});

const agent = { subject: "agent:x", groups: ["agents"], claims: {} };

function baseAttributes(): KubeRequestAttributes {
  return {
    verb: "get",
    kubeVerb: "get",
    resourceRequest: true,
    apiPrefix: "api",
    apiGroup: "",
    apiVersion: "v1",
    namespace: "dev-a",
    resource: "pods",
    subresource: "",
    name: "web",
    parts: ["pods", "web"],
    path: "/api/v1/namespaces/dev-a/pods/web",
    rawPath: "/api/v1/namespaces/dev-a/pods/web",
    query: {},
    fieldSelector: "",
    labelSelector: "",
    longRunning: false,
    upgrade: false,
  };
}
