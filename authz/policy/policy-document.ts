/**
 * @module authz/policy/policy-document
 * The zod 4 schema of the YAML `AccessPolicy` document and its path-qualified error messages.
 */
import { z } from "zod";

/**
 * Verbs a rule may name. Resource verbs are the ones Airlock's request parser derives from the HTTP
 * method and path (as kube-apiserver's RequestInfo does); non-resource verbs are lower-case HTTP
 * methods, as in RBAC. `escalate`, `bind`, `impersonate`, `approve`, `sign` and `use` are accepted so
 * RBAC-shaped policies read naturally, but they are authorization-check verbs that no HTTP request
 * carries: a rule that names only them never matches (the baseline closes those paths through the
 * writes that would exercise them). An unknown verb is an error, because a typo in a Deny rule would
 * otherwise silently never match.
 */
export const POLICY_VERBS = [
  "*",
  "get",
  "list",
  "watch",
  "create",
  "update",
  "patch",
  "delete",
  "deletecollection",
  "proxy",
  "escalate",
  "bind",
  "impersonate",
  "approve",
  "sign",
  "use",
  "post",
  "put",
  "head",
  "options",
] as const;
export type PolicyVerb = (typeof POLICY_VERBS)[number];

export const RULE_EFFECTS = ["Allow", "Deny", "RequireApproval"] as const;

/** Longest approval TTL accepted: a week. Longer standing grants defeat the point of per-request approval. */
export const MAX_APPROVAL_TTL_SECONDS = 7 * 24 * 3600;
export const DEFAULT_APPROVAL_TTL_SECONDS = 15 * 60;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const RULE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
// Anchored, no nested quantifiers: cannot backtrack.
const TTL = /^(?:(\d{1,4})h)?(?:(\d{1,6})m)?(?:(\d{1,7})s)?$/;

/** "ns/name" → parts, or undefined when it is not a valid ServiceAccount reference. */
export function parseServiceAccountRef(text: string): { namespace: string; name: string } | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const namespace = text.slice(0, slash);
  const name = text.slice(slash + 1);
  if (!DNS_LABEL.test(namespace) || !DNS_SUBDOMAIN.test(name)) return undefined;
  return { namespace, name };
}

/** "1h30m", "15m", "90s" → seconds, or undefined. */
export function parseTtlSeconds(text: string): number | undefined {
  const match = TTL.exec(text);
  if (match === null || text.length === 0) return undefined;
  const [, hours, minutes, seconds] = match;
  return Number(hours ?? 0) * 3600 + Number(minutes ?? 0) * 60 + Number(seconds ?? 0);
}

const nonEmptyString = z.string().min(1, "must not be empty");
const stringList = z.array(z.string()).min(1, "must not be empty");
const globList = z.array(nonEmptyString).min(1, "must not be empty");

const serviceAccountRef = z.string().refine((text) => parseServiceAccountRef(text) !== undefined, {
  error: 'must be "namespace/name" of a ServiceAccount',
});

const CLAIM_VALUE_ERROR = "must be a string, number or boolean, or a list of them";
const claimScalar = z.union([z.string(), z.number(), z.boolean()], { error: CLAIM_VALUE_ERROR });

const subjectsSchema = z
  .strictObject({
    users: globList.optional(),
    groups: globList.optional(),
    claims: z
      .record(
        nonEmptyString,
        z.union([claimScalar, z.array(claimScalar).min(1, "must not be empty")], { error: CLAIM_VALUE_ERROR }),
      )
      .optional(),
  })
  .refine((s) => s.users !== undefined || s.groups !== undefined || s.claims !== undefined, {
    error: "must name at least one of users, groups, claims (omit subjects to match everyone)",
  });

const approvalSchema = z.strictObject({
  approverGroups: z.array(nonEmptyString).min(1, "must not be empty"),
  minApprovals: z.int().min(1, "must be at least 1").max(10, "must be at most 10").default(1),
  grant: z.enum(["once", "window"]).default("once"),
  ttl: z
    .string()
    .default("15m")
    .transform((text, ctx) => {
      const seconds = parseTtlSeconds(text);
      if (seconds === undefined || seconds <= 0 || seconds > MAX_APPROVAL_TTL_SECONDS) {
        ctx.addIssue({
          code: "custom",
          message: `must be a duration like "15m", "1h30m" or "90s", between 1s and ${MAX_APPROVAL_TTL_SECONDS / 3600}h`,
        });
        return z.NEVER;
      }
      return seconds;
    }),
});

const ruleSchema = z
  .strictObject({
    id: z.string().regex(RULE_ID, "must be 1-128 characters of letters, digits, '.', '_', ':' or '-'"),
    description: z.string().optional(),
    subjects: subjectsSchema.optional(),
    verbs: z.array(z.enum(POLICY_VERBS)).min(1, "must not be empty"),
    apiGroups: stringList.optional(),
    resources: globList.optional(),
    namespaces: stringList.optional(),
    resourceNames: globList.optional(),
    nonResourceURLs: z
      .array(z.string().startsWith("/", "must start with '/'"))
      .min(1, "must not be empty")
      .optional(),
    when: nonEmptyString.optional(),
    effect: z.enum(RULE_EFFECTS),
    approval: approvalSchema.optional(),
    serviceAccount: serviceAccountRef.optional(),
    message: z.string().optional(),
  })
  .superRefine((rule, ctx) => {
    if (rule.effect === "RequireApproval" && rule.approval === undefined) {
      ctx.addIssue({ code: "custom", path: ["approval"], message: "is required when effect is RequireApproval" });
    }
    if (rule.effect !== "RequireApproval" && rule.approval !== undefined) {
      ctx.addIssue({ code: "custom", path: ["approval"], message: "is only allowed when effect is RequireApproval" });
    }
    if (rule.effect === "Deny" && rule.serviceAccount !== undefined) {
      ctx.addIssue({ code: "custom", path: ["serviceAccount"], message: "is meaningless on a Deny rule" });
    }
    const isNonResource = rule.nonResourceURLs !== undefined;
    if (isNonResource && rule.resources !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["nonResourceURLs"],
        message: "a rule matches either resources or nonResourceURLs, not both",
      });
    }
    if (!isNonResource && rule.resources === undefined) {
      ctx.addIssue({ code: "custom", path: ["resources"], message: "is required (or set nonResourceURLs)" });
    }
    if (isNonResource) {
      for (const key of ["apiGroups", "namespaces", "resourceNames"] as const) {
        if (rule[key] !== undefined) {
          ctx.addIssue({ code: "custom", path: [key], message: "does not apply to a nonResourceURLs rule" });
        }
      }
    }
  });

const serviceAccountsSchema = z.strictObject({
  default: serviceAccountRef.optional(),
  namespaces: z.record(nonEmptyString, serviceAccountRef).optional(),
});

export const accessPolicySchema = z
  .strictObject({
    apiVersion: z.literal("airlock.dev/v1alpha1"),
    kind: z.literal("AccessPolicy"),
    metadata: z.strictObject({ name: z.string().optional() }).optional(),
    // Only Deny: an allow-by-default gateway for an untrusted agent is not a configuration we support.
    defaults: z.strictObject({ effect: z.literal("Deny") }).default({ effect: "Deny" }),
    serviceAccounts: serviceAccountsSchema.optional(),
    rules: z.array(ruleSchema),
  })
  .superRefine((doc, ctx) => {
    const firstIndex = new Map<string, number>();
    doc.rules.forEach((rule, index) => {
      const earlier = firstIndex.get(rule.id);
      if (earlier === undefined) firstIndex.set(rule.id, index);
      else {
        ctx.addIssue({
          code: "custom",
          path: ["rules", index, "id"],
          message: `duplicate rule id "${rule.id}" (first used at rules[${earlier}])`,
        });
      }
    });
  });

export type AccessPolicyDocument = z.output<typeof accessPolicySchema>;
export type PolicyRuleDocument = AccessPolicyDocument["rules"][number];

/** `["rules", 3, "approval"]` → `rules[3].approval`. */
export function formatIssuePath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else {
      const name = String(key);
      const plain = /^[A-Za-z_$][\w$-]*$/.test(name);
      out += plain ? (out === "" ? name : `.${name}`) : `[${JSON.stringify(name)}]`;
    }
  }
  return out === "" ? "(document)" : out;
}

function describeIssue(issue: z.core.$ZodIssue): { path: PropertyKey[]; message: string }[] {
  const path = [...issue.path];
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => ({ path: [...path, key], message: "unknown field" }));
  }
  if (issue.code === "invalid_type") {
    if (issue.input === undefined) return [{ path, message: "is required" }];
    return [{ path, message: `must be ${issue.expected === "array" ? "a list" : `a ${issue.expected}`}` }];
  }
  if (issue.code === "invalid_value") {
    const message =
      issue.values.length === 1
        ? `must be ${JSON.stringify(issue.values[0])}`
        : `must be one of ${issue.values.map((v) => String(v)).join(", ")}`;
    return [{ path, message }];
  }
  // Our own messages (custom, too_small, union, format) are already phrased for operators.
  return [{ path, message: issue.message }];
}

/**
 * Validates a plain value (already parsed from YAML) against the schema. Messages never echo input
 * values, only paths and what was expected.
 */
export function validatePolicyDocument(
  value: unknown,
  sourceName: string,
): { ok: true; document: AccessPolicyDocument } | { ok: false; errors: readonly string[] } {
  const result = accessPolicySchema.safeParse(value, { reportInput: true });
  if (result.success) return { ok: true, document: result.data };
  const errors = result.error.issues.flatMap((issue) =>
    describeIssue(issue).map(({ path, message }) => `${sourceName}: ${formatIssuePath(path)}: ${message}`),
  );
  return { ok: false, errors };
}
