/**
 * @module authz/policy/compile-policy
 * Turns AccessPolicy YAML into a frozen CompiledPolicy (globs and CEL compiled once), and locates the shipped baseline.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { LineCounter, parseDocument } from "yaml";
import { compileCelCondition } from "./cel-condition.js";
import type { CelCondition } from "./cel-condition.js";
import { compileGlobSet } from "./glob-set.js";
import type { GlobSet } from "./glob-set.js";
import { formatIssuePath, parseServiceAccountRef, validatePolicyDocument } from "./policy-document.js";
import type { PolicyRuleDocument } from "./policy-document.js";

/** The closed set of reasons a policy can be refused; translated to text once, in the error list. */
export type PolicyErrorCode = "POLICY_READ_FAILED" | "POLICY_YAML_INVALID" | "POLICY_SCHEMA_INVALID" | "POLICY_CEL_INVALID";

export class PolicyLoadError extends Error {
  override readonly name = "PolicyLoadError";
  constructor(
    readonly code: PolicyErrorCode,
    readonly errors: readonly string[],
  ) {
    super(`${code}: ${errors.join("; ")}`);
  }
}

export type RuleEffect = "Allow" | "Deny" | "RequireApproval";

export interface ServiceAccountRef {
  readonly namespace: string;
  readonly name: string;
}

export interface CompiledApproval {
  readonly approverGroups: readonly string[];
  readonly minApprovals: number;
  readonly grant: "once" | "window";
  readonly ttlSeconds: number;
}

/** One entry of `resources`: a resource glob (`pods`) or `resource/subresource` globs (`pods/exec`); bare `*` is everything. */
export interface ResourcePattern {
  /** Bare `*`: every resource and every subresource (RBAC semantics). */
  readonly everything: boolean;
  readonly resource: GlobSet;
  /** undefined: only requests without a subresource; otherwise the subresource glob. */
  readonly subresource: GlobSet | undefined;
}

export interface CompiledClaim {
  readonly name: string;
  readonly strings: GlobSet | undefined;
  readonly scalars: readonly (number | boolean)[];
}

export interface CompiledRule {
  readonly id: string;
  /** Position in the document, for messages (`rules[3]`). */
  readonly index: number;
  readonly description: string | undefined;
  readonly effect: RuleEffect;
  readonly message: string | undefined;
  readonly verbs: GlobSet;
  readonly target:
    | {
        readonly kind: "resource";
        readonly apiGroups: GlobSet | undefined;
        readonly resources: readonly ResourcePattern[];
        readonly namespaces: GlobSet | undefined;
        /** The rule lists "" (cluster-scoped requests). */
        readonly clusterScoped: boolean;
        readonly resourceNames: GlobSet | undefined;
      }
    | { readonly kind: "nonResource"; readonly urls: GlobSet };
  readonly subjects:
    | {
        readonly users: GlobSet | undefined;
        readonly groups: GlobSet | undefined;
        /** Every named claim must match; string values are globs, numbers and booleans compare exactly. */
        readonly claims: readonly CompiledClaim[];
      }
    | undefined;
  readonly when: CelCondition | undefined;
  readonly approval: CompiledApproval | undefined;
  readonly serviceAccount: ServiceAccountRef | undefined;
}

export interface CompiledPolicy {
  /** Short sha256 of the source text: recorded with every decision. */
  readonly version: string;
  /** Where it came from (file name). */
  readonly source: string;
  readonly name: string | undefined;
  readonly defaultEffect: "Deny";
  readonly rules: readonly CompiledRule[];
  /**
   * For each verb a rule names, the rules (in policy order) whose verbs match it, `*` rules included:
   * the hot path scans only these. A verb not in the map falls back to `rules`.
   */
  readonly rulesByVerb: ReadonlyMap<string, readonly CompiledRule[]>;
  readonly serviceAccounts: {
    readonly default: ServiceAccountRef | undefined;
    readonly namespaces: readonly { readonly glob: GlobSet; readonly serviceAccount: ServiceAccountRef }[];
  };
}

export type PolicyParseResult =
  | { readonly ok: true; readonly policy: CompiledPolicy }
  | { readonly ok: false; readonly code: PolicyErrorCode; readonly errors: readonly string[] };

export function policyVersion(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex").slice(0, 12);
}

function requireRef(text: string): ServiceAccountRef {
  const ref = parseServiceAccountRef(text);
  // The schema already validated every reference; this only narrows the type.
  if (ref === undefined) throw new TypeError(`invalid ServiceAccount reference ${JSON.stringify(text)}`);
  return Object.freeze(ref);
}

function compileResourcePattern(pattern: string): ResourcePattern {
  if (pattern === "*") return Object.freeze({ everything: true, resource: compileGlobSet(["*"]), subresource: undefined });
  const slash = pattern.indexOf("/");
  if (slash < 0) return Object.freeze({ everything: false, resource: compileGlobSet([pattern]), subresource: undefined });
  return Object.freeze({
    everything: false,
    resource: compileGlobSet([pattern.slice(0, slash)]),
    subresource: compileGlobSet([pattern.slice(slash + 1)]),
  });
}

function compileRule(rule: PolicyRuleDocument, index: number, sourceName: string, errors: string[]): CompiledRule | undefined {
  let when: CelCondition | undefined;
  if (rule.when !== undefined) {
    const compiled = compileCelCondition(rule.when);
    if (!compiled.ok) {
      errors.push(`${sourceName}: ${formatIssuePath(["rules", index, "when"])}: ${compiled.error}`);
      return undefined;
    }
    when = compiled.condition;
  }
  const target: CompiledRule["target"] =
    rule.nonResourceURLs !== undefined
      ? Object.freeze({ kind: "nonResource", urls: compileGlobSet(rule.nonResourceURLs) })
      : Object.freeze({
          kind: "resource",
          apiGroups: rule.apiGroups === undefined ? undefined : compileGlobSet(rule.apiGroups),
          resources: Object.freeze((rule.resources ?? ["*"]).map(compileResourcePattern)),
          namespaces:
            rule.namespaces === undefined ? undefined : compileGlobSet(rule.namespaces.filter((ns) => ns !== "")),
          clusterScoped: rule.namespaces?.includes("") ?? false,
          resourceNames: rule.resourceNames === undefined ? undefined : compileGlobSet(rule.resourceNames),
        });
  const subjects: CompiledRule["subjects"] =
    rule.subjects === undefined
      ? undefined
      : Object.freeze({
          users: rule.subjects.users === undefined ? undefined : compileGlobSet(rule.subjects.users),
          groups: rule.subjects.groups === undefined ? undefined : compileGlobSet(rule.subjects.groups),
          claims: Object.freeze(
            Object.entries(rule.subjects.claims ?? {}).map(([name, value]): CompiledClaim => {
              const accepted = Array.isArray(value) ? value : [value];
              const strings = accepted.filter((v): v is string => typeof v === "string");
              return Object.freeze({
                name,
                strings: strings.length === 0 ? undefined : compileGlobSet(strings),
                scalars: Object.freeze(accepted.filter((v): v is number | boolean => typeof v !== "string")),
              });
            }),
          ),
        });
  return Object.freeze({
    id: rule.id,
    index,
    description: rule.description,
    effect: rule.effect,
    message: rule.message,
    verbs: compileGlobSet(rule.verbs),
    target,
    subjects,
    when,
    approval:
      rule.approval === undefined
        ? undefined
        : Object.freeze({
            approverGroups: Object.freeze([...rule.approval.approverGroups]),
            minApprovals: rule.approval.minApprovals,
            grant: rule.approval.grant,
            ttlSeconds: rule.approval.ttl,
          }),
    serviceAccount: rule.serviceAccount === undefined ? undefined : requireRef(rule.serviceAccount),
  });
}

/**
 * Parses and compiles a policy. Never throws on bad input: every problem is returned, each prefixed
 * with `sourceName` and a path (`rules[3].approval.approverGroups`) or, for YAML syntax, `line:col`.
 */
export function parsePolicy(text: string, sourceName: string): PolicyParseResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      code: "POLICY_YAML_INVALID",
      errors: doc.errors.map((error) => {
        const pos = error.linePos?.[0] ?? lineCounter.linePos(error.pos[0]);
        // yaml's messages can quote a source excerpt after a newline; keep the first line only.
        const message = error.message.split("\n")[0] ?? error.message;
        return `${sourceName}:${pos.line}:${pos.col}: ${message}`;
      }),
    };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    return {
      ok: false,
      code: "POLICY_YAML_INVALID",
      errors: [`${sourceName}: ${error instanceof Error ? error.message : "cannot convert YAML"}`],
    };
  }
  const validated = validatePolicyDocument(value, sourceName);
  if (!validated.ok) return { ok: false, code: "POLICY_SCHEMA_INVALID", errors: validated.errors };
  const document = validated.document;

  const errors: string[] = [];
  const rules: CompiledRule[] = [];
  document.rules.forEach((rule, index) => {
    const compiled = compileRule(rule, index, sourceName, errors);
    if (compiled !== undefined) rules.push(compiled);
  });
  if (errors.length > 0) return { ok: false, code: "POLICY_CEL_INVALID", errors };

  const verbs = new Set(rules.flatMap((rule) => rule.verbs.patterns.filter((verb) => verb !== "*")));
  const rulesByVerb = new Map<string, readonly CompiledRule[]>();
  for (const verb of verbs) rulesByVerb.set(verb, Object.freeze(rules.filter((rule) => rule.verbs.matches(verb))));

  const mapping = document.serviceAccounts;
  const policy: CompiledPolicy = Object.freeze({
    version: policyVersion(text),
    source: sourceName,
    name: document.metadata?.name,
    defaultEffect: document.defaults.effect,
    rules: Object.freeze(rules),
    rulesByVerb,
    serviceAccounts: Object.freeze({
      default: mapping?.default === undefined ? undefined : requireRef(mapping.default),
      namespaces: Object.freeze(
        Object.entries(mapping?.namespaces ?? {}).map(([glob, ref]) =>
          Object.freeze({ glob: compileGlobSet([glob]), serviceAccount: requireRef(ref) }),
        ),
      ),
    }),
  });
  return { ok: true, policy };
}

/** Reads and compiles a policy file; the file's base name is the source name in messages. */
export async function loadPolicyFile(path: string): Promise<PolicyParseResult> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unknown error";
    return { ok: false, code: "POLICY_READ_FAILED", errors: [`${basename(path)}: cannot read policy file (${code})`] };
  }
  return parsePolicy(text, basename(path));
}

/** The package root: the nearest directory above this module holding package.json (works from source and dist/). */
function findPackageRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return start;
    dir = parent;
  }
}

/** Absolute path of the shipped agent baseline policy (`policies/agent-baseline.yaml`). */
export const BASELINE_POLICY_PATH: string = join(
  findPackageRoot(dirname(fileURLToPath(import.meta.url))),
  "policies",
  "agent-baseline.yaml",
);
