import { describe, expect, it } from "vitest";
import type { PolicyEffect } from "../../../../authz/policy/evaluate-policy.js";
import { decide, loadBaseline, ruleIds } from "../../../fixtures/policy/decide.js";
import type { DecideOptions } from "../../../fixtures/policy/decide.js";

const baseline = loadBaseline();

interface PathCase {
  /** Row in agent_guardrails.md §2 and what the agent tries. */
  readonly path: string;
  readonly request: string;
  readonly options?: DecideOptions;
  readonly effect: PolicyEffect;
  readonly rule: string;
}

const podSpec = (extra: Record<string, unknown> = {}, container: Record<string, unknown> = {}) => ({
  containers: [{ name: "app", image: "registry.example/app:1", ...container }],
  ...extra,
});
const deployment = (spec: Record<string, unknown>) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name: "web", namespace: "dev-a" },
  spec: { replicas: 1, selector: { matchLabels: { app: "web" } }, template: { metadata: { labels: { app: "web" } }, spec } },
});

const cases: PathCase[] = [
  // §2.1
  {
    path: "#1 escalate: a ClusterRole granting everything",
    request: "POST /apis/rbac.authorization.k8s.io/v1/clusterroles",
    options: { body: { kind: "ClusterRole", metadata: { name: "all" }, rules: [{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }] } },
    effect: "Deny",
    rule: "no-role-writes",
  },
  {
    path: "#4 aggregation: a ClusterRole labelled aggregate-to-admin",
    request: "PATCH /apis/rbac.authorization.k8s.io/v1/clusterroles/mine",
    options: { body: { metadata: { labels: { "rbac.authorization.k8s.io/aggregate-to-admin": "true" } } } },
    effect: "Deny",
    rule: "no-role-writes",
  },
  {
    path: "#5 a Role granting impersonate",
    request: "POST /apis/rbac.authorization.k8s.io/v1/namespaces/dev-a/roles",
    options: { body: { kind: "Role", rules: [{ apiGroups: [""], resources: ["serviceaccounts"], verbs: ["impersonate"] }] } },
    effect: "Deny",
    rule: "no-role-writes",
  },
  {
    path: "#2 bind: ClusterRoleBinding to cluster-admin",
    request: "POST /apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    options: {
      body: {
        kind: "ClusterRoleBinding",
        metadata: { name: "pwn" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
        subjects: [{ kind: "ServiceAccount", name: "default", namespace: "dev-a" }],
      },
    },
    effect: "Deny",
    rule: "no-clusterrolebinding-writes",
  },
  {
    path: "#2 bind: RoleBinding to cluster-admin in a namespace",
    request: "POST /apis/rbac.authorization.k8s.io/v1/namespaces/dev-a/rolebindings",
    options: {
      body: {
        kind: "RoleBinding",
        metadata: { name: "pwn" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
        subjects: [{ kind: "ServiceAccount", name: "default", namespace: "dev-a" }],
      },
    },
    effect: "Deny",
    rule: "no-binding-powerful-roles",
  },
  {
    path: "#3 binding writes: RoleBinding to a modest role",
    request: "POST /apis/rbac.authorization.k8s.io/v1/namespaces/dev-a/rolebindings",
    options: {
      body: { kind: "RoleBinding", roleRef: { kind: "Role", name: "pod-reader" }, subjects: [{ kind: "User", name: "x" }] },
    },
    effect: "RequireApproval",
    rule: "rolebinding-changes-need-a-human",
  },
  {
    path: "#6 TokenRequest for a ServiceAccount",
    request: "POST /api/v1/namespaces/dev-a/serviceaccounts/deployer/token",
    options: { body: { kind: "TokenRequest", spec: { audiences: ["sts.amazonaws.com"], expirationSeconds: 3600 } } },
    effect: "Deny",
    rule: "no-token-requests",
  },
  {
    path: "#7 legacy ServiceAccount-token Secret",
    request: "POST /api/v1/namespaces/dev-a/secrets",
    options: {
      body: {
        kind: "Secret",
        metadata: { name: "forever", annotations: { "kubernetes.io/service-account.name": "deployer" } },
        type: "kubernetes.io/service-account-token",
      },
    },
    effect: "Deny",
    rule: "no-legacy-service-account-token-secrets",
  },
  {
    path: "#8 CSR create",
    request: "POST /apis/certificates.k8s.io/v1/certificatesigningrequests",
    options: {
      body: { kind: "CertificateSigningRequest", spec: { signerName: "kubernetes.io/kube-apiserver-client", request: "LS0t", usages: ["client auth"] } },
    },
    effect: "Deny",
    rule: "no-csr-create",
  },
  {
    path: "#8 CSR approval",
    request: "PUT /apis/certificates.k8s.io/v1/certificatesigningrequests/mine/approval",
    options: { body: { kind: "CertificateSigningRequest", status: { conditions: [{ type: "Approved", status: "True" }] } } },
    effect: "Deny",
    rule: "no-csr-approval",
  },
  {
    path: "#9 namespace PSA label to privileged",
    request: "PATCH /api/v1/namespaces/dev-a",
    options: { body: { metadata: { labels: { "pod-security.kubernetes.io/enforce": "privileged" } } } },
    effect: "Deny",
    rule: "no-pod-security-label-changes",
  },
  {
    path: "#9 PSA label removal via JSON patch",
    request: "PATCH /api/v1/namespaces/dev-a",
    options: { body: [{ op: "remove", path: "/metadata/labels/pod-security.kubernetes.io~1enforce" }] },
    effect: "Deny",
    rule: "no-uninspectable-patches",
  },
  {
    path: "#9 other namespace label changes",
    request: "PATCH /api/v1/namespaces/dev-a",
    options: { body: { metadata: { labels: { team: "other" } } } },
    effect: "RequireApproval",
    rule: "namespace-changes-need-a-human",
  },
  // §2.2
  {
    path: "#10 privileged pod",
    request: "POST /api/v1/namespaces/dev-a/pods",
    options: { body: { kind: "Pod", metadata: { name: "p" }, spec: podSpec({}, { securityContext: { privileged: true } }) } },
    effect: "Deny",
    rule: "no-privileged-containers",
  },
  {
    path: "#10 privileged init container in a Deployment",
    request: "POST /apis/apps/v1/namespaces/dev-a/deployments",
    options: {
      body: deployment({ ...podSpec(), initContainers: [{ name: "init", image: "x", securityContext: { privileged: true } }] }),
    },
    effect: "Deny",
    rule: "no-privileged-containers",
  },
  {
    path: "#10 SYS_ADMIN capability in a StatefulSet",
    request: "PUT /apis/apps/v1/namespaces/dev-a/statefulsets/db",
    options: {
      body: {
        kind: "StatefulSet",
        spec: { template: { spec: podSpec({}, { securityContext: { capabilities: { add: ["SYS_ADMIN"] } } }) } },
      },
    },
    effect: "Deny",
    rule: "no-dangerous-capabilities",
  },
  {
    path: "#10 hostNetwork DaemonSet",
    request: "POST /apis/apps/v1/namespaces/dev-a/daemonsets",
    options: { body: { kind: "DaemonSet", spec: { template: { spec: podSpec({ hostNetwork: true }) } } } },
    effect: "Deny",
    rule: "no-host-namespaces",
  },
  {
    path: "#10 hostPID Job",
    request: "POST /apis/batch/v1/namespaces/dev-a/jobs",
    options: { body: { kind: "Job", spec: { template: { spec: podSpec({ hostPID: true, restartPolicy: "Never" }) } } } },
    effect: "Deny",
    rule: "no-host-namespaces",
  },
  {
    path: "#10 hostIPC ReplicaSet",
    request: "POST /apis/apps/v1/namespaces/dev-a/replicasets",
    options: { body: { kind: "ReplicaSet", spec: { template: { spec: podSpec({ hostIPC: true }) } } } },
    effect: "Deny",
    rule: "no-host-namespaces",
  },
  {
    path: "#10 hostPath volume in a CronJob",
    request: "POST /apis/batch/v1/namespaces/dev-a/cronjobs",
    options: {
      body: {
        kind: "CronJob",
        spec: {
          schedule: "* * * * *",
          jobTemplate: { spec: { template: { spec: podSpec({ volumes: [{ name: "root", hostPath: { path: "/" } }] }) } } },
        },
      },
    },
    effect: "Deny",
    rule: "no-hostpath-volumes",
  },
  {
    path: "#10 hostPath added to a Deployment by strategic-merge patch",
    request: "PATCH /apis/apps/v1/namespaces/dev-a/deployments/web",
    options: { body: { spec: { template: { spec: { volumes: [{ name: "kubelet", hostPath: { path: "/var/lib/kubelet" } }] } } } } },
    effect: "Deny",
    rule: "no-hostpath-volumes",
  },
  {
    path: "#10 privileged container added by JSON patch",
    request: "PATCH /apis/apps/v1/namespaces/dev-a/deployments/web",
    options: {
      body: [{ op: "add", path: "/spec/template/spec/containers/0/securityContext", value: { privileged: true } }],
    },
    effect: "Deny",
    rule: "no-uninspectable-patches",
  },
  {
    path: "#10 workload body cut off at the buffer limit",
    request: "POST /apis/apps/v1/namespaces/dev-a/deployments",
    options: { body: {}, bodyState: "partial" },
    effect: "Deny",
    rule: "no-privileged-containers",
  },
  {
    path: "#11 ephemeral debug container",
    request: "PATCH /api/v1/namespaces/dev-a/pods/web/ephemeralcontainers",
    options: { body: { spec: { ephemeralContainers: [{ name: "debugger", image: "busybox", targetContainerName: "app" }] } } },
    effect: "Deny",
    rule: "no-ephemeral-containers",
  },
  {
    path: "#12 exec over WebSocket (GET)",
    request: "GET /api/v1/namespaces/dev-a/pods/web/exec?command=sh&stdin=true&stdout=true&tty=true",
    options: { upgrade: true },
    effect: "RequireApproval",
    rule: "exec-needs-a-human",
  },
  {
    path: "#12 exec over SPDY (POST)",
    request: "POST /api/v1/namespaces/dev-a/pods/web/exec?command=cat&command=%2Fvar%2Frun%2Fsecrets%2Fkubernetes.io%2Fserviceaccount%2Ftoken&stdout=true",
    options: { upgrade: true },
    effect: "RequireApproval",
    rule: "exec-needs-a-human",
  },
  {
    path: "#12 attach",
    request: "GET /api/v1/namespaces/dev-a/pods/web/attach?stdin=true&stdout=true",
    options: { upgrade: true },
    effect: "RequireApproval",
    rule: "exec-needs-a-human",
  },
  {
    path: "#12 port-forward over WebSocket",
    request: "GET /api/v1/namespaces/dev-a/pods/web/portforward?ports=5432",
    options: { upgrade: true },
    effect: "Deny",
    rule: "no-port-forward",
  },
  {
    path: "#13 pods/proxy",
    request: "GET /api/v1/namespaces/dev-a/pods/web:8080/proxy/admin",
    effect: "Deny",
    rule: "no-apiserver-proxy",
  },
  {
    path: "#13 services/proxy",
    request: "GET /api/v1/namespaces/dev-a/services/http:web:80/proxy/metrics",
    effect: "Deny",
    rule: "no-apiserver-proxy",
  },
  {
    path: "#13 deprecated /proxy/ path verb",
    request: "GET /api/v1/proxy/namespaces/dev-a/services/web/",
    effect: "Deny",
    rule: "no-proxy-verb",
  },
  {
    path: "#14 nodes/proxy GET (kubelet exec)",
    request: "GET /api/v1/nodes/node-1/proxy/exec/dev-a/web/app?command=id&output=1",
    effect: "Deny",
    rule: "no-kubelet-proxy",
  },
  {
    path: "#15 hostPath PersistentVolume",
    request: "POST /api/v1/persistentvolumes",
    options: { body: { kind: "PersistentVolume", spec: { capacity: { storage: "1Gi" }, hostPath: { path: "/etc/kubernetes" } } } },
    effect: "Deny",
    rule: "no-persistent-volume-writes",
  },
  {
    path: "#16 node label steering",
    request: "PATCH /api/v1/nodes/node-1",
    options: { body: { metadata: { labels: { "node-role.kubernetes.io/control-plane": "" } } } },
    effect: "Deny",
    rule: "no-node-writes",
  },
  {
    path: "deleting a Deployment in prod",
    request: "DELETE /apis/apps/v1/namespaces/prod-payments/deployments/api",
    effect: "RequireApproval",
    rule: "prod-deletes-need-a-human",
  },
  {
    path: "deleting every Deployment in prod",
    request: "DELETE /apis/apps/v1/namespaces/prod-payments/deployments",
    effect: "RequireApproval",
    rule: "prod-deletes-need-a-human",
  },
  {
    path: "scaling a prod Deployment",
    request: "PATCH /apis/apps/v1/namespaces/prod-payments/deployments/api/scale",
    options: { body: { spec: { replicas: 0 } } },
    effect: "RequireApproval",
    rule: "prod-changes-need-a-human",
  },
  // §2.3
  {
    path: "#17 mutating webhook",
    request: "POST /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
    options: { body: { kind: "MutatingWebhookConfiguration", webhooks: [{ name: "x.example", clientConfig: { url: "https://evil.example" } }] } },
    effect: "Deny",
    rule: "no-admission-webhook-changes",
  },
  {
    path: "#17 deleting a validating webhook",
    request: "DELETE /apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/gatekeeper",
    effect: "Deny",
    rule: "no-admission-webhook-changes",
  },
  {
    path: "#18 ValidatingAdmissionPolicyBinding",
    request: "DELETE /apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/restricted",
    effect: "Deny",
    rule: "no-admission-policy-changes",
  },
  {
    path: "#19 CRD with a conversion webhook",
    request: "POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    options: { body: { kind: "CustomResourceDefinition", spec: { conversion: { strategy: "Webhook" } } } },
    effect: "Deny",
    rule: "no-crd-changes",
  },
  {
    path: "#20 APIService hijack",
    request: "PUT /apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io",
    options: { body: { kind: "APIService", spec: { service: { namespace: "dev-a", name: "evil" } } } },
    effect: "Deny",
    rule: "no-apiservice-changes",
  },
  {
    path: "#21 confused deputy: Argo CD Application",
    request: "POST /apis/argoproj.io/v1alpha1/namespaces/argocd/applications",
    options: { body: { kind: "Application", spec: { source: { repoURL: "https://evil.example/repo" } } } },
    effect: "RequireApproval",
    rule: "deputy-crs-need-a-human",
  },
  {
    path: "#22 Service externalIPs",
    request: "POST /api/v1/namespaces/dev-a/services",
    options: { body: { kind: "Service", spec: { ports: [{ port: 443 }], externalIPs: ["10.0.0.1"] } } },
    effect: "Deny",
    rule: "no-service-external-ips",
  },
  {
    path: "#22 services/status loadBalancer.ingress",
    request: "PATCH /api/v1/namespaces/dev-a/services/web/status",
    options: { body: { status: { loadBalancer: { ingress: [{ ip: "10.0.0.1" }] } } } },
    effect: "Deny",
    rule: "no-service-status-writes",
  },
  {
    path: "#22 EndpointSlice write",
    request: "POST /apis/discovery.k8s.io/v1/namespaces/dev-a/endpointslices",
    options: { body: { kind: "EndpointSlice", endpoints: [{ addresses: ["10.0.0.1"] }] } },
    effect: "RequireApproval",
    rule: "endpoint-writes-need-a-human",
  },
  {
    path: "#23 CoreDNS ConfigMap in kube-system",
    request: "PUT /api/v1/namespaces/kube-system/configmaps/coredns",
    options: { body: { kind: "ConfigMap", data: { Corefile: ". { forward . 6.6.6.6 }" } } },
    effect: "Deny",
    rule: "no-writes-in-system-namespaces",
  },
  {
    path: "#24 deleting a NetworkPolicy",
    request: "DELETE /apis/networking.k8s.io/v1/namespaces/dev-a/networkpolicies/default-deny",
    effect: "RequireApproval",
    rule: "network-policy-changes-need-a-human",
  },
  {
    path: "#25 PriorityClass",
    request: "POST /apis/scheduling.k8s.io/v1/priorityclasses",
    options: { body: { kind: "PriorityClass", value: 1000000000 } },
    effect: "Deny",
    rule: "no-priority-class-writes",
  },
  {
    path: "#25 ResourceQuota change",
    request: "DELETE /api/v1/namespaces/dev-a/resourcequotas/compute",
    effect: "RequireApproval",
    rule: "quota-changes-need-a-human",
  },
];

describe("agent baseline: every guardrail path is caught", () => {
  it("compiles", () => {
    expect(baseline.name).toBe("agent-baseline");
    expect(baseline.rules.length).toBeGreaterThan(30);
  });

  it.each(cases)("$path → $effect by $rule", ({ request, options, effect, rule }) => {
    const decision = decide(baseline, request, { subject: "agent:claude-ci", groups: ["agents"], ...options });
    expect(decision.effect, decision.reason).toBe(effect);
    expect(ruleIds(decision)).toContain(rule);
    expect(decision.defaulted).toBe(false);
  });

  it("sends exec to the sre group, once, using the exec ServiceAccount", () => {
    const decision = decide(baseline, "GET /api/v1/namespaces/dev-a/pods/web/exec?command=sh", { upgrade: true });
    expect(decision.approval).toEqual({ approverGroups: ["sre"], minApprovals: 1, grant: "once", ttlSeconds: 900 });
    expect(decision.serviceAccount).toEqual({ namespace: "airlock", name: "agent-exec" });
  });

  it("does not let group membership lift a guardrail", () => {
    for (const groups of [["agents", "sre"], ["system:masters"], []]) {
      expect(decide(baseline, "GET /api/v1/nodes/n/proxy/", { groups }).effect).toBe("Deny");
    }
  });
});

describe("agent baseline: ordinary work is allowed", () => {
  it.each([
    ["listing pods", "GET /api/v1/namespaces/dev-a/pods"],
    ["listing pods in every namespace", "GET /api/v1/pods?limit=500"],
    ["watching deployments", "GET /apis/apps/v1/namespaces/prod-a/deployments?watch=true&resourceVersion=10"],
    ["getting a deployment in prod", "GET /apis/apps/v1/namespaces/prod-a/deployments/web"],
    ["reading pod logs (masked downstream)", "GET /api/v1/namespaces/prod-a/pods/web/log?container=app&tailLines=100"],
    ["listing events", "GET /apis/events.k8s.io/v1/namespaces/prod-a/events"],
    ["listing nodes", "GET /api/v1/nodes"],
    ["reading a CRD-backed resource", "GET /apis/monitoring.coreos.com/v1/namespaces/prod-a/servicemonitors"],
    ["discovery", "GET /apis"],
    ["group discovery", "GET /apis/apps/v1"],
    ["openapi", "GET /openapi/v3"],
    ["version", "GET /version"],
  ])("%s", (_name, request) => {
    const decision = decide(baseline, request);
    expect(decision.effect, decision.reason).toBe("Allow");
    expect(decision.serviceAccount).toEqual({ namespace: "airlock", name: "agent-view" });
  });

  it("allows reading Secrets for agents only, because values are masked downstream", () => {
    const read = decide(baseline, "GET /api/v1/namespaces/prod-a/secrets/db");
    expect(read.effect).toBe("Allow");
    expect(ruleIds(read)).toContain("agents-read-secrets-masked");
    expect(decide(baseline, "GET /api/v1/secrets").effect).toBe("Allow");
    expect(decide(baseline, "GET /api/v1/namespaces/prod-a/secrets/db", { groups: ["contractors"] })).toMatchObject({
      effect: "Deny",
      defaulted: true,
    });
  });

  it("allows safe workload changes outside prod with the edit ServiceAccount", () => {
    const decision = decide(baseline, "POST /apis/apps/v1/namespaces/dev-a/deployments", {
      body: deployment({ ...podSpec({}, { securityContext: { runAsNonRoot: true, capabilities: { drop: ["ALL"] } } }) }),
    });
    expect(decision.effect, decision.reason).toBe("Allow");
    expect(decision.serviceAccount).toEqual({ namespace: "airlock", name: "agent-edit" });
    expect(decision.bodyRequired).toBe(true);
    expect(decide(baseline, "PATCH /apis/apps/v1/namespaces/staging-x/deployments/web", { body: { spec: { replicas: 3 } } }).effect).toBe(
      "Allow",
    );
    expect(decide(baseline, "DELETE /apis/apps/v1/namespaces/dev-a/deployments/web").effect).toBe("Allow");
  });

  it("denies by default what the baseline does not mention", () => {
    expect(decide(baseline, "POST /api/v1/namespaces/dev-a/secrets", { body: { kind: "Secret", type: "Opaque" } })).toMatchObject({
      effect: "Deny",
      defaulted: true,
    });
    expect(decide(baseline, "GET /api/v1/namespaces/dev-a/pods", { groups: [] }).defaulted).toBe(true);
  });
});
