import { describe, expect, it } from "vitest";
import { parsePolicy } from "../../../../authz/policy/compile-policy.js";
import { parseServiceAccountRef, parseTtlSeconds } from "../../../../authz/policy/policy-document.js";
import { compilePolicy, POLICY_HEADER } from "../../../fixtures/policy/decide.js";

function errorsOf(body: string, source = "agent-baseline.yaml"): readonly string[] {
  const result = parsePolicy(POLICY_HEADER + body, source);
  if (result.ok) throw new Error("expected the policy to be refused");
  return result.errors;
}

const approvalRule = (approval: string): string => `rules:
  - id: exec
    verbs: [create]
    resources: [pods/exec]
    effect: RequireApproval
    approval: ${approval}
`;

describe("AccessPolicy schema", () => {
  it("accepts a minimal document and defaults to Deny", () => {
    const policy = compilePolicy("rules: []\n");
    expect(policy.defaultEffect).toBe("Deny");
    expect(policy.rules).toEqual([]);
    expect(Object.isFrozen(policy)).toBe(true);
  });

  it("qualifies errors with the file name and the path", () => {
    expect(errorsOf(approvalRule("{ approverGroups: [] }"))).toEqual([
      "agent-baseline.yaml: rules[0].approval.approverGroups: must not be empty",
    ]);
  });

  it("fills approval defaults and stores the TTL in seconds", () => {
    const policy = compilePolicy(approvalRule("{ approverGroups: [sre] }"));
    expect(policy.rules[0]?.approval).toEqual({ approverGroups: ["sre"], minApprovals: 1, grant: "once", ttlSeconds: 900 });
    const windowed = compilePolicy(approvalRule("{ approverGroups: [sre], minApprovals: 2, grant: window, ttl: 1h30m }"));
    expect(windowed.rules[0]?.approval).toEqual({ approverGroups: ["sre"], minApprovals: 2, grant: "window", ttlSeconds: 5400 });
  });

  it("rejects bad TTLs, grants and approval counts", () => {
    expect(errorsOf(approvalRule("{ approverGroups: [sre], ttl: 15 }"))[0]).toMatch(/rules\[0\]\.approval\.ttl: must be a string/);
    expect(errorsOf(approvalRule("{ approverGroups: [sre], ttl: 15x }"))[0]).toMatch(/rules\[0\]\.approval\.ttl: must be a duration/);
    expect(errorsOf(approvalRule("{ approverGroups: [sre], ttl: 0s }"))[0]).toMatch(/approval\.ttl: must be a duration/);
    expect(errorsOf(approvalRule("{ approverGroups: [sre], ttl: 200h }"))[0]).toMatch(/approval\.ttl/);
    expect(errorsOf(approvalRule("{ approverGroups: [sre], grant: forever }"))).toEqual([
      "agent-baseline.yaml: rules[0].approval.grant: must be one of once, window",
    ]);
    expect(errorsOf(approvalRule("{ approverGroups: [sre], minApprovals: 0 }"))).toEqual([
      "agent-baseline.yaml: rules[0].approval.minApprovals: must be at least 1",
    ]);
  });

  it("requires approval exactly when the effect is RequireApproval", () => {
    expect(errorsOf("rules:\n  - { id: a, verbs: [delete], resources: [pods], effect: RequireApproval }\n")).toEqual([
      "agent-baseline.yaml: rules[0].approval: is required when effect is RequireApproval",
    ]);
    expect(
      errorsOf("rules:\n  - { id: a, verbs: [delete], resources: [pods], effect: Allow, approval: { approverGroups: [sre] } }\n"),
    ).toEqual(["agent-baseline.yaml: rules[0].approval: is only allowed when effect is RequireApproval"]);
  });

  it("rejects unknown fields, verbs and effects, naming each", () => {
    expect(errorsOf("rules:\n  - { id: a, verb: [get], verbs: [got], resources: [pods], effect: Allw }\n")).toEqual([
      expect.stringMatching(/^agent-baseline\.yaml: rules\[0\]\.verbs\[0\]: must be one of \*, get, list/),
      "agent-baseline.yaml: rules[0].effect: must be one of Allow, Deny, RequireApproval",
      "agent-baseline.yaml: rules[0].verb: unknown field",
    ]);
    expect(errorsOf("rules: []\nextra: 1\n")).toEqual(["agent-baseline.yaml: extra: unknown field"]);
  });

  it("checks apiVersion, kind, defaults and required fields", () => {
    const result = parsePolicy("apiVersion: v1\nkind: Pod\ndefaults: { effect: Allow }\nrules:\n  - { verbs: [get], resources: [pods], effect: Allow }\n", "p.yaml");
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual([
      'p.yaml: apiVersion: must be "airlock.dev/v1alpha1"',
      'p.yaml: kind: must be "AccessPolicy"',
      'p.yaml: defaults.effect: must be "Deny"',
      "p.yaml: rules[0].id: is required",
    ]);
  });

  it("rejects duplicate rule ids, pointing at the first use", () => {
    expect(
      errorsOf("rules:\n  - { id: a, verbs: [get], resources: [pods], effect: Allow }\n  - { id: a, verbs: [get], resources: [pods], effect: Deny }\n"),
    ).toEqual(['agent-baseline.yaml: rules[1].id: duplicate rule id "a" (first used at rules[0])']);
  });

  it("keeps resource and non-resource rules apart", () => {
    expect(errorsOf("rules:\n  - { id: a, verbs: [get], resources: [pods], nonResourceURLs: [/healthz], effect: Allow }\n")).toEqual([
      "agent-baseline.yaml: rules[0].nonResourceURLs: a rule matches either resources or nonResourceURLs, not both",
    ]);
    expect(errorsOf("rules:\n  - { id: a, verbs: [get], apiGroups: [''], nonResourceURLs: [/healthz], effect: Allow }\n")).toEqual([
      "agent-baseline.yaml: rules[0].apiGroups: does not apply to a nonResourceURLs rule",
    ]);
    expect(errorsOf("rules:\n  - { id: a, verbs: [get], effect: Allow }\n")).toEqual([
      "agent-baseline.yaml: rules[0].resources: is required (or set nonResourceURLs)",
    ]);
    expect(errorsOf("rules:\n  - { id: a, verbs: [get], nonResourceURLs: [healthz], effect: Allow }\n")).toEqual([
      "agent-baseline.yaml: rules[0].nonResourceURLs[0]: must start with '/'",
    ]);
  });

  it("validates subjects and ServiceAccount references", () => {
    expect(errorsOf("rules:\n  - { id: a, subjects: {}, verbs: [get], resources: [pods], effect: Allow }\n")).toEqual([
      "agent-baseline.yaml: rules[0].subjects: must name at least one of users, groups, claims (omit subjects to match everyone)",
    ]);
    expect(errorsOf("rules:\n  - { id: a, verbs: [get], resources: [pods], effect: Allow, serviceAccount: nope }\n")).toEqual([
      'agent-baseline.yaml: rules[0].serviceAccount: must be "namespace/name" of a ServiceAccount',
    ]);
    expect(errorsOf("rules:\n  - { id: a, verbs: [get], resources: [pods], effect: Deny, serviceAccount: a/b }\n")).toEqual([
      "agent-baseline.yaml: rules[0].serviceAccount: is meaningless on a Deny rule",
    ]);
    expect(errorsOf("serviceAccounts: { namespaces: { 'prod-*': 'Bad/Name' } }\nrules: []\n")).toEqual([
      'agent-baseline.yaml: serviceAccounts.namespaces["prod-*"]: must be "namespace/name" of a ServiceAccount',
    ]);
    expect(
      errorsOf("rules:\n  - { id: a, subjects: { claims: { team: { x: 1 } } }, verbs: [get], resources: [pods], effect: Allow }\n")[0],
    ).toMatch(/^agent-baseline\.yaml: rules\[0\]\.subjects\.claims\.team: must be a string, number or boolean/);
  });

  it("reports YAML syntax errors with line and column", () => {
    const result = parsePolicy("apiVersion: airlock.dev/v1alpha1\nrules: [\n  - id: a\n", "broken.yaml");
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.code).toBe("POLICY_YAML_INVALID");
      expect(result.errors[0]).toMatch(/^broken\.yaml:\d+:\d+: /);
    }
    const duplicate = parsePolicy(`${POLICY_HEADER}rules: []\nrules: []\n`, "dup.yaml");
    expect(duplicate.ok ? [] : duplicate.errors).toEqual(["dup.yaml:4:1: Map keys must be unique"]);
  });

  it("gives the policy a short content hash as its version", () => {
    const a = compilePolicy("rules: []\n");
    const b = compilePolicy("rules: []\n# comment\n");
    expect(a.version).toMatch(/^[0-9a-f]{12}$/);
    expect(a.version).not.toBe(b.version);
    expect(compilePolicy("rules: []\n", "x.yaml").source).toBe("x.yaml");
  });

  it("parses ServiceAccount references and TTLs", () => {
    expect(parseServiceAccountRef("airlock/agent-view")).toEqual({ namespace: "airlock", name: "agent-view" });
    expect(parseServiceAccountRef("airlock")).toBeUndefined();
    expect(parseServiceAccountRef("Air/x")).toBeUndefined();
    expect(parseTtlSeconds("90s")).toBe(90);
    expect(parseTtlSeconds("2h")).toBe(7200);
    expect(parseTtlSeconds("")).toBeUndefined();
    expect(parseTtlSeconds("1m2h")).toBeUndefined();
  });
});
