import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { BASELINE_POLICY_PATH } from "../../../../authz/policy/compile-policy.js";
import { formatPolicyTestReport, runPolicyTestFile, runPolicyTests } from "../../../../authz/policy/policy-tests.js";
import { compilePolicy } from "../../../fixtures/policy/decide.js";
import { parseRequestLine } from "../../../fixtures/policy/parse-request-line.js";

const parse = (method: string, rawPath: string) => parseRequestLine(method, rawPath);

const policyYaml = `apiVersion: airlock.dev/v1alpha1
kind: AccessPolicy
rules:
  - { id: read, subjects: { groups: [agents] }, verbs: [get, list, watch], resources: ["*"], effect: Allow }
  - id: prod-delete
    verbs: [delete]
    apiGroups: [apps]
    resources: [deployments]
    namespaces: [prod-*]
    effect: RequireApproval
    approval: { approverGroups: [sre] }
  - id: no-privileged
    verbs: [create]
    resources: [pods]
    when: "podContainers(object).exists(c, has(c.securityContext) && has(c.securityContext.privileged) && c.securityContext.privileged)"
    effect: Deny
`;

const cases = `policy: ./policy.yaml
cases:
  - name: agents list pods
    user: { subject: agent:a, groups: [agents] }
    request: GET /api/v1/namespaces/dev/pods
    expect: Allow
    rule: read
  - name: deleting in prod needs a human
    user: { subject: agent:a, groups: [agents] }
    request: "DELETE /apis/apps/v1/namespaces/prod-a/deployments/web"
    expect: RequireApproval
    rule: prod-delete
  - name: privileged pod
    user: { subject: agent:a, groups: [agents] }
    request: POST /api/v1/namespaces/dev/pods
    body: { spec: { containers: [ { name: c, securityContext: { privileged: true } } ] } }
    expect: Deny
    rule: no-privileged
  - name: partial body
    user: { subject: agent:a }
    request: POST /api/v1/namespaces/dev/pods
    body: {}
    bodyState: partial
    expect: Deny
`;

describe("policy test runner", () => {
  const policy = compilePolicy(policyYaml);

  it("passes matching cases", () => {
    const report = runPolicyTests(policy, cases, "cases.yaml", parse);
    expect(report).toMatchObject({ ok: true, passed: 4, failed: 0, errors: [] });
    expect(formatPolicyTestReport(report)).toContain("4 passed, 0 failed");
  });

  it("fails with a readable diff on the wrong effect or rule", () => {
    const report = runPolicyTests(
      policy,
      `policy: ./policy.yaml
cases:
  - { name: wrong effect, user: { subject: a, groups: [agents] }, request: "GET /api/v1/namespaces/dev/pods", expect: Deny }
  - { name: wrong rule, user: { subject: a, groups: [agents] }, request: "GET /api/v1/namespaces/dev/pods", expect: Allow, rule: other }
  - { name: bad line, user: { subject: a }, request: "fetch pods", expect: Deny }
  - { name: bad path, user: { subject: a }, request: "BREW /api/v1/pods", expect: Deny }
`,
      "cases.yaml",
      parse,
    );
    expect(report).toMatchObject({ ok: false, passed: 0, failed: 4 });
    expect(report.results[0]?.diff).toBe(
      "- expected: Deny\n+ actual:   Allow (rules: read)\n  reason:   allowed by rule read",
    );
    expect(report.results[1]?.diff).toContain("- expected: Allow (rule other)\n+ actual:   Allow (rules: read)");
    expect(report.results[2]?.diff).toContain('must look like "METHOD /path?query"');
    expect(report.results[3]?.diff).toMatch(/request not parsed: UNSUPPORTED_METHOD/);
    const text = formatPolicyTestReport(report);
    expect(text).toContain("FAIL wrong effect\n     - expected: Deny");
    expect(text).toContain("0 passed, 4 failed");
  });

  it("reports problems in the test file itself", () => {
    const report = runPolicyTests(policy, "cases:\n  - { name: x, expect: Maybe }\n", "cases.yaml", parse);
    expect(report.ok).toBe(false);
    expect(report.errors).toContain("cases.yaml: policy: Invalid input: expected string, received undefined");
    expect(report.errors.some((e) => e.startsWith("cases.yaml: cases[0].user:"))).toBe(true);
  });

  it("loads the policy named by the test file, relative to it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "airlock-policy-tests-"));
    try {
      writeFileSync(join(dir, "policy.yaml"), policyYaml);
      writeFileSync(join(dir, "cases.yaml"), cases);
      const report = await runPolicyTestFile(join(dir, "cases.yaml"), parse);
      expect(report).toMatchObject({ ok: true, passed: 4 });
      writeFileSync(join(dir, "cases.yaml"), cases.replace("./policy.yaml", "./missing.yaml"));
      expect((await runPolicyTestFile(join(dir, "cases.yaml"), parse)).errors).toEqual([
        "missing.yaml: cannot read policy file (ENOENT)",
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("shipped example test file", () => {
  it("passes against the shipped baseline", async () => {
    const report = await runPolicyTestFile(
      join(dirname(BASELINE_POLICY_PATH), "agent-baseline.tests.yaml"),
      parse,
    );
    expect(report.errors).toEqual([]);
    expect(report.results.filter((r) => !r.passed).map((r) => `${r.name}\n${r.diff ?? ""}`)).toEqual([]);
    expect(report.passed).toBe(6);
  });
});
