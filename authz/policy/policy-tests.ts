/**
 * @module authz/policy/policy-tests
 * `airlock policy test FILE`: runs YAML test cases (user + request line + body → expected effect/rule) against a policy.
 */
import { readFile } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { parseDocument } from "yaml";
import { z } from "zod";
import type { KubeRequestAttributes } from "../kube/request-attributes.js";
import { loadPolicyFile } from "./compile-policy.js";
import type { CompiledPolicy } from "./compile-policy.js";
import { evaluatePolicy } from "./evaluate-policy.js";
import type { PolicyEffect, RequestBodyState } from "./evaluate-policy.js";
import { formatIssuePath, RULE_EFFECTS } from "./policy-document.js";

/** Turns an HTTP method and raw path (with query) into request attributes, or returns an error message. */
export type RequestLineParser = (method: string, rawPath: string) => KubeRequestAttributes | string;

const caseSchema = z.strictObject({
  name: z.string().min(1, "must not be empty"),
  user: z.strictObject({
    subject: z.string().min(1, "must not be empty"),
    groups: z.array(z.string()).default([]),
    claims: z.record(z.string(), z.unknown()).default({}),
  }),
  request: z.string().min(1, "must not be empty"),
  body: z.unknown().optional(),
  /** Defaults to "complete" with a body and "absent" without; set it to test partial-body handling. */
  bodyState: z.enum(["absent", "complete", "partial", "unparseable"]).optional(),
  expect: z.enum(RULE_EFFECTS),
  rule: z.string().min(1, "must not be empty").optional(),
});

const suiteSchema = z.strictObject({
  policy: z.string().min(1, "must not be empty"),
  cases: z.array(caseSchema).min(1, "must not be empty"),
});

export type PolicyTestSuite = z.output<typeof suiteSchema>;

export interface PolicyTestCaseResult {
  readonly name: string;
  readonly passed: boolean;
  readonly expected: { readonly effect: PolicyEffect; readonly rule: string | undefined };
  /** undefined when the request line could not be parsed. */
  readonly actual: { readonly effect: PolicyEffect; readonly rules: readonly string[]; readonly reason: string } | undefined;
  /** Readable expected/actual lines for a failed case. */
  readonly diff: string | undefined;
}

export interface PolicyTestReport {
  readonly ok: boolean;
  readonly passed: number;
  readonly failed: number;
  readonly results: readonly PolicyTestCaseResult[];
  /** Problems with the test file itself (YAML, schema, policy); when set, no case ran. */
  readonly errors: readonly string[];
}

const REQUEST_LINE = /^([A-Za-z]+)[ \t]+(\/\S*)$/;

export function parsePolicyTestSuite(
  text: string,
  sourceName: string,
): { ok: true; suite: PolicyTestSuite } | { ok: false; errors: readonly string[] } {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((error) => {
        const pos = error.linePos?.[0];
        const where = pos === undefined ? "" : `:${pos.line}:${pos.col}`;
        return `${sourceName}${where}: ${error.message.split("\n")[0] ?? error.message}`;
      }),
    };
  }
  const parsed = suiteSchema.safeParse(doc.toJS({ maxAliasCount: 100 }));
  if (!parsed.success) {
    return {
      ok: false,
      errors: parsed.error.issues.map((issue) => `${sourceName}: ${formatIssuePath(issue.path)}: ${issue.message}`),
    };
  }
  return { ok: true, suite: parsed.data };
}

function describe(effect: PolicyEffect, rules: readonly string[]): string {
  return rules.length === 0 ? effect : `${effect} (rules: ${rules.join(", ")})`;
}

/** Runs every case of a test file against `policy` (the file's own `policy:` key is not read here). */
export function runPolicyTests(
  policy: CompiledPolicy,
  testsYamlText: string,
  sourceName: string,
  parseRequest: RequestLineParser,
): PolicyTestReport {
  const suite = parsePolicyTestSuite(testsYamlText, sourceName);
  if (!suite.ok) return { ok: false, passed: 0, failed: 0, results: [], errors: suite.errors };

  const results = suite.suite.cases.map((testCase, index): PolicyTestCaseResult => {
    const expected = { effect: testCase.expect, rule: testCase.rule };
    const expectedText = testCase.rule === undefined ? testCase.expect : `${testCase.expect} (rule ${testCase.rule})`;
    const line = REQUEST_LINE.exec(testCase.request.trim());
    const parsed =
      line === null
        ? `cases[${index}].request: must look like "METHOD /path?query"`
        : parseRequest((line[1] ?? "").toUpperCase(), line[2] ?? "");
    if (typeof parsed === "string") {
      return {
        name: testCase.name,
        passed: false,
        expected,
        actual: undefined,
        diff: `- expected: ${expectedText}\n+ actual:   request not parsed: ${parsed}`,
      };
    }
    const bodyState: RequestBodyState = testCase.bodyState ?? (testCase.body === undefined ? "absent" : "complete");
    const decision = evaluatePolicy(policy, {
      attributes: parsed,
      user: { subject: testCase.user.subject, groups: testCase.user.groups, claims: testCase.user.claims },
      body: { state: bodyState, object: testCase.body ?? null },
    });
    const ruleIds = decision.rules.map((rule) => rule.id);
    const passed =
      decision.effect === testCase.expect && (testCase.rule === undefined || ruleIds.includes(testCase.rule));
    return {
      name: testCase.name,
      passed,
      expected,
      actual: { effect: decision.effect, rules: ruleIds, reason: decision.reason },
      diff: passed
        ? undefined
        : `- expected: ${expectedText}\n+ actual:   ${describe(decision.effect, ruleIds)}\n  reason:   ${decision.reason}`,
    };
  });
  const passed = results.filter((result) => result.passed).length;
  return { ok: passed === results.length, passed, failed: results.length - passed, results, errors: [] };
}

/** Reads a test file, loads the policy it names (relative to the test file) and runs it. */
export async function runPolicyTestFile(testsPath: string, parseRequest: RequestLineParser): Promise<PolicyTestReport> {
  const sourceName = basename(testsPath);
  let text: string;
  try {
    text = await readFile(testsPath, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unknown error";
    return { ok: false, passed: 0, failed: 0, results: [], errors: [`${sourceName}: cannot read test file (${code})`] };
  }
  const suite = parsePolicyTestSuite(text, sourceName);
  if (!suite.ok) return { ok: false, passed: 0, failed: 0, results: [], errors: suite.errors };
  const loaded = await loadPolicyFile(resolve(dirname(testsPath), suite.suite.policy));
  if (!loaded.ok) return { ok: false, passed: 0, failed: 0, results: [], errors: loaded.errors };
  return runPolicyTests(loaded.policy, text, sourceName, parseRequest);
}

/** Plain-text report for the CLI. */
export function formatPolicyTestReport(report: PolicyTestReport): string {
  if (report.errors.length > 0) return report.errors.join("\n");
  const lines = report.results.map((result) =>
    result.passed ? `PASS ${result.name}` : `FAIL ${result.name}\n${(result.diff ?? "").replace(/^/gm, "     ")}`,
  );
  lines.push(`${report.passed} passed, ${report.failed} failed`);
  return lines.join("\n");
}
