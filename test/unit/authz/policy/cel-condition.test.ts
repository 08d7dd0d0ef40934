import * as cel from "@bufbuild/cel";
import { describe, expect, it, vi } from "vitest";
import { compileCelCondition } from "../../../../authz/policy/cel-condition.js";
import { parsePolicy } from "../../../../authz/policy/compile-policy.js";
import { compilePolicy, decide, POLICY_HEADER, ruleIds } from "../../../fixtures/policy/decide.js";

// Count parse/plan calls to prove CEL is compiled when the policy is, never per request.
vi.mock("@bufbuild/cel", async (importOriginal) => {
  const original = await importOriginal<typeof import("@bufbuild/cel")>();
  return { ...original, parse: vi.fn(original.parse), plan: vi.fn(original.plan) };
});

const privileged = { spec: { containers: [{ name: "c", image: "x", securityContext: { privileged: true } }] } };
const plain = { spec: { containers: [{ name: "c", image: "x" }] } };

const policy = compilePolicy(`
rules:
  - id: create-pods
    subjects: { groups: [agents] }
    verbs: [create, update, patch]
    resources: [pods]
    when: "!has(object.metadata) || !has(object.metadata.labels) || !('forbidden' in object.metadata.labels)"
    effect: Allow
  - id: no-privileged
    verbs: [create, update, patch]
    resources: [pods]
    when: "podContainers(object).exists(c, has(c.securityContext) && has(c.securityContext.privileged) && c.securityContext.privileged == true)"
    effect: Deny
  - id: big-replicas-need-approval
    verbs: [create]
    resources: [configmaps]
    when: "object.data.size > 3"
    effect: RequireApproval
    approval: { approverGroups: [sre] }
  - id: configmaps-by-name
    subjects: { groups: [agents] }
    verbs: [create]
    resources: [configmaps]
    when: "object.metadata.name.startsWith('ok-')"
    effect: Allow
  - id: request-and-user
    verbs: [get]
    resources: [pods]
    when: "request.namespace == 'dev' && 'agents' in user.groups && user.subject.startsWith('agent:') && user.claims.team == 'a'"
    effect: Allow
`);

describe("CEL conditions", () => {
  it("compiles each expression once, at policy load", () => {
    const parse = vi.mocked(cel.parse);
    const plan = vi.mocked(cel.plan);
    parse.mockClear();
    plan.mockClear();
    const compiled = compilePolicy(`
rules:
  - { id: a, verbs: [get], resources: [pods], when: "request.name == 'x'", effect: Allow }
  - { id: b, verbs: [get], resources: [pods], when: "request.namespace == 'y'", effect: Allow }
`);
    expect(parse).toHaveBeenCalledTimes(2);
    expect(plan).toHaveBeenCalledTimes(2);
    for (let i = 0; i < 100; i++) decide(compiled, "GET /api/v1/namespaces/y/pods/x");
    expect(parse).toHaveBeenCalledTimes(2);
    expect(plan).toHaveBeenCalledTimes(2);
    expect(decide(compiled, "GET /api/v1/namespaces/y/pods/x").effect).toBe("Allow");
  });

  it("sees request, user and claims", () => {
    const claims = { team: "a" };
    expect(ruleIds(decide(policy, "GET /api/v1/namespaces/dev/pods/x", { claims }))).toEqual(["request-and-user"]);
    expect(decide(policy, "GET /api/v1/namespaces/prod/pods/x", { claims }).defaulted).toBe(true);
    expect(decide(policy, "GET /api/v1/namespaces/dev/pods/x", { claims, subject: "human:x" }).defaulted).toBe(true);
  });

  it("sees the parsed body as object", () => {
    expect(decide(policy, "POST /api/v1/namespaces/a/pods", { body: plain }).effect).toBe("Allow");
    const denied = decide(policy, "POST /api/v1/namespaces/a/pods", { body: privileged });
    expect(denied.effect).toBe("Deny");
    expect(ruleIds(denied)).toEqual(["no-privileged"]);
    expect(denied.bodyRequired).toBe(true);
  });

  it("counts an evaluation error as matched for Deny/RequireApproval and not matched for Allow", () => {
    // configmaps: object.data missing → error in both rules.
    const decision = decide(policy, "POST /api/v1/namespaces/a/configmaps", { body: { metadata: { name: "ok-1" } } });
    expect(decision.effect).toBe("RequireApproval");
    expect(ruleIds(decision)).toEqual(["big-replicas-need-approval"]);
    expect(decision.reason).toMatch(/rule big-replicas-need-approval: when failed \(.+\): treated as matched/);

    const allowOnly = compilePolicy(`
rules:
  - { id: a, verbs: [create], resources: [configmaps], when: "object.metadata.name.startsWith('ok-')", effect: Allow }
`);
    const refused = decide(allowOnly, "POST /api/v1/namespaces/a/configmaps", { body: { kind: "ConfigMap" } });
    expect(refused).toMatchObject({ effect: "Deny", defaulted: true });
    expect(refused.reason).toMatch(/rule a: when failed \(.+\): not applied/);
    expect(decide(allowOnly, "POST /api/v1/namespaces/a/configmaps", { body: { metadata: { name: "ok-2" } } }).effect).toBe("Allow");
  });

  it("never allows on a partial or unparseable body, and applies guardrails that need it", () => {
    for (const bodyState of ["partial", "unparseable"] as const) {
      const decision = decide(policy, "POST /api/v1/namespaces/a/pods", { body: plain, bodyState });
      expect(decision.effect).toBe("Deny");
      expect(ruleIds(decision)).toEqual(["no-privileged"]);
      expect(decision.reason).toContain(`rule no-privileged needs the request body, which is ${bodyState}: treated as matched`);
      const allowOnly = decide(policy, "POST /api/v1/namespaces/a/configmaps", {
        body: { metadata: { name: "ok-1" }, data: {} },
        bodyState,
      });
      expect(allowOnly.effect).toBe("RequireApproval");
    }
  });

  it("reports bodyRequired only when a candidate rule reads object", () => {
    expect(decide(policy, "GET /api/v1/namespaces/dev/pods/x").bodyRequired).toBe(false);
    expect(decide(policy, "POST /api/v1/namespaces/a/pods", { body: plain }).bodyRequired).toBe(true);
  });

  it("sees a missing body as null", () => {
    // create-pods: !has(null.metadata) → true; no-privileged: podContainers(null) → [] → false.
    expect(ruleIds(decide(policy, "POST /api/v1/namespaces/a/pods"))).toEqual(["create-pods"]);
  });

  it("finds pod specs and containers in every template-bearing shape", () => {
    const condition = compileCelCondition("podSpecs(object).size() == 1 && podContainers(object).exists(c, c.name == 'x')");
    if (!condition.ok) throw new Error(condition.error);
    const container = { name: "x" };
    const shapes = [
      { spec: { containers: [container] } },
      { template: { spec: { initContainers: [container] } } },
      { spec: { template: { spec: { containers: [container] } } } },
      { spec: { jobTemplate: { spec: { template: { spec: { ephemeralContainers: [container] } } } } } },
    ];
    for (const object of shapes) {
      expect(condition.condition.evaluate({ request: {}, object, user: {} })).toEqual({ ok: true, value: true });
    }
    const none = compileCelCondition("podSpecs(object).size() == 0 && podContainers(object).size() == 0");
    if (!none.ok) throw new Error(none.error);
    for (const object of [null, [1, 2], "text", { spec: "x" }, { metadata: {} }]) {
      expect(none.condition.evaluate({ request: {}, object, user: {} })).toEqual({ ok: true, value: true });
    }
  });
});

describe("CEL compile errors", () => {
  const check = (when: string): string | undefined => {
    const result = parsePolicy(
      `${POLICY_HEADER}rules:\n  - id: r\n    verbs: [get]\n    resources: [pods]\n    effect: Deny\n    when: ${JSON.stringify(when)}\n`,
      "p.yaml",
    );
    return result.ok ? undefined : result.errors.join("\n");
  };

  it.each([
    ["request.verb ==", /^p\.yaml: rules\[0\]\.when: syntax error: /],
    ["request.verbb == 'get'", /request has no field 'verbb'/],
    ["user.email == 'x'", /user has no field 'email'/],
    ["requests.verb == 'get'", /undeclared reference to 'requests'/],
    ["nosuch(request.verb)", /undeclared function 'nosuch'/],
    ["1 + 'a' == 2", /no matching overload for '\+' applied to \(int, string\)/],
    ["request.verb == 1", /no matching overload for '==' applied to \(string, int\)/],
    ["request.longRunning.startsWith('x')", /no matching overload/],
    ["request.verb", /must evaluate to bool, not string/],
    ["request.parts.size()", /must evaluate to bool, not int/],
    ["request.verb.name == 'x'", /does not support field selection/],
    ["!request.verb", /no matching overload/],
  ])("%s is refused", (when, pattern) => {
    expect(check(when)).toMatch(pattern);
  });

  it.each([
    "request.verb == 'get' && request.parts[0] == 'pods' && request.query['watch'].exists(v, v == 'true')",
    "object.spec.replicas > 3 || object.spec.replicas == 2.0",
    "type(object) == list",
    "has(object.metadata) && object.metadata.name.matches('^a[0-9]+$')",
    "[1, 2].map(x, x * 2).exists(x, x == 4) && {'a': 1}.a == 1",
    "user.groups.all(g, g != 'banned') && size(user.claims) >= 0",
    "request.upgrade ? request.longRunning : !request.resourceRequest",
    "object.spec.containers.exists(object, object.name == 'x')",
  ])("%s compiles", (when) => {
    expect(check(when)).toBeUndefined();
  });

  it("marks whether the expression reads object (a shadowing loop variable does not count)", () => {
    const reads = compileCelCondition("object.spec == null");
    const shadowed = compileCelCondition("request.parts.exists(object, object == 'x')");
    const none = compileCelCondition("request.verb == 'get'");
    expect(reads.ok && reads.condition.referencesObject).toBe(true);
    expect(shadowed.ok && shadowed.condition.referencesObject).toBe(false);
    expect(none.ok && none.condition.referencesObject).toBe(false);
  });
});
