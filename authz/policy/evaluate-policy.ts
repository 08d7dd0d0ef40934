/**
 * @module authz/policy/evaluate-policy
 * The pure policy decision: match a parsed Kubernetes request and user against a CompiledPolicy → Allow / Deny / RequireApproval.
 */
import type { KubeRequestAttributes } from "../kube/request-attributes.js";
import type { CelConditionInput } from "./cel-condition.js";
import type { CompiledPolicy, CompiledRule, ServiceAccountRef } from "./compile-policy.js";

export interface PolicyUser {
  readonly subject: string;
  readonly groups: readonly string[];
  readonly claims: Readonly<Record<string, unknown>>;
}

/**
 * What the caller knows about the request body: none sent, fully buffered and parsed, cut off at the
 * buffering limit, or present but not parseable (e.g. protobuf, invalid JSON).
 */
export type RequestBodyState = "absent" | "complete" | "partial" | "unparseable";

export interface PolicyInput {
  readonly attributes: KubeRequestAttributes;
  readonly user: PolicyUser;
  readonly body: { readonly state: RequestBodyState; readonly object: unknown };
}

export type PolicyEffect = "Allow" | "Deny" | "RequireApproval";

export interface ApprovalSettings {
  readonly approverGroups: readonly string[];
  readonly minApprovals: number;
  readonly grant: "once" | "window";
  readonly ttlSeconds: number;
}

export interface MatchedRule {
  readonly id: string;
  readonly effect: PolicyEffect;
  readonly message: string | undefined;
}

export interface PolicyDecision {
  readonly effect: PolicyEffect;
  /** The rules that produced the decision (all matching rules of the deciding effect, in policy order). */
  readonly rules: readonly MatchedRule[];
  readonly approval: ApprovalSettings | undefined;
  /** True when no rule matched and the policy default decided. */
  readonly defaulted: boolean;
  readonly policyVersion: string;
  /** Human-readable explanation; also records CEL errors and body-state overrides. Never contains body values. */
  readonly reason: string;
  /** The ServiceAccount to act as upstream (Allow and RequireApproval only). */
  readonly serviceAccount: ServiceAccountRef | undefined;
  /** Some candidate rule's `when` reads `object`: the decision depends on the request body. */
  readonly bodyRequired: boolean;
}

/** Verbs whose empty namespace means "every namespace" rather than "cluster-scoped". */
const COLLECTION_VERBS = new Set(["list", "watch", "deletecollection"]);

/**
 * Does the rule's request pattern (everything but subjects and `when`) match?
 *
 * `failClosed` is set for Deny and RequireApproval rules, which widen in two places where the request
 * reaches further than its attributes say: an all-namespaces list/watch/deletecollection (namespace "")
 * spans every namespace the rule names, and a request without a name (list, create) may touch any
 * named object. Allow rules never widen.
 */
function targetMatches(rule: CompiledRule, attributes: KubeRequestAttributes, failClosed: boolean): boolean {
  if (!rule.verbs.matches(attributes.verb)) return false;
  const target = rule.target;
  if (target.kind === "nonResource") {
    return !attributes.resourceRequest && target.urls.matches(attributes.path);
  }
  if (!attributes.resourceRequest) return false;
  if (target.apiGroups !== undefined && !target.apiGroups.matches(attributes.apiGroup)) return false;
  let resourceMatched = false;
  for (const pattern of target.resources) {
    if (
      pattern.everything ||
      (pattern.resource.matches(attributes.resource) &&
        (pattern.subresource === undefined
          ? attributes.subresource === ""
          : attributes.subresource !== "" && pattern.subresource.matches(attributes.subresource)))
    ) {
      resourceMatched = true;
      break;
    }
  }
  if (!resourceMatched) return false;
  if (target.namespaces !== undefined || target.clusterScoped) {
    const namespace = attributes.namespace;
    if (namespace === "") {
      if (!target.clusterScoped && !(failClosed && COLLECTION_VERBS.has(attributes.verb))) return false;
    } else if (target.namespaces === undefined || !target.namespaces.matches(namespace)) {
      return false;
    }
  }
  if (target.resourceNames !== undefined) {
    if (attributes.name === "") return failClosed;
    if (!target.resourceNames.matches(attributes.name)) return false;
  }
  return true;
}

function subjectsMatch(rule: CompiledRule, user: PolicyUser): boolean {
  const subjects = rule.subjects;
  if (subjects === undefined) return true;
  if (subjects.users !== undefined || subjects.groups !== undefined) {
    const byUser = subjects.users?.matches(user.subject) ?? false;
    const byGroup = !byUser && (subjects.groups?.matchesAny(user.groups) ?? false);
    if (!byUser && !byGroup) return false;
  }
  for (const claim of subjects.claims) {
    if (!Object.hasOwn(user.claims, claim.name)) return false;
    const raw = user.claims[claim.name];
    const values: readonly unknown[] = Array.isArray(raw) ? (raw as unknown[]) : [raw];
    const accepted = values.some((value) =>
      typeof value === "string"
        ? (claim.strings?.matches(value) ?? false)
        : (typeof value === "number" || typeof value === "boolean") && claim.scalars.includes(value),
    );
    if (!accepted) return false;
  }
  return true;
}

interface EvaluationContext {
  readonly input: PolicyInput;
  readonly bodyUsable: boolean;
  celInput: CelConditionInput | undefined;
  readonly notes: string[];
}

function conditionMatches(rule: CompiledRule, context: EvaluationContext): boolean {
  const when = rule.when;
  if (when === undefined) return true;
  const failClosed = rule.effect !== "Allow";
  if (when.referencesObject && !context.bodyUsable) {
    // A rule that needs the body never allows on a body it cannot see, and a guardrail that needs it
    // applies anyway.
    context.notes.push(
      `rule ${rule.id} needs the request body, which is ${context.input.body.state}: ${failClosed ? "treated as matched" : "not applied"}`,
    );
    return failClosed;
  }
  context.celInput ??= {
    request: context.input.attributes,
    object: context.input.body.state === "complete" ? (context.input.body.object ?? null) : null,
    user: {
      subject: context.input.user.subject,
      groups: context.input.user.groups,
      claims: context.input.user.claims,
    },
  };
  const result = when.evaluate(context.celInput);
  if (result.ok) return result.value;
  context.notes.push(
    `rule ${rule.id}: when failed (${result.error}): ${failClosed ? "treated as matched" : "not applied"}`,
  );
  return failClosed;
}

function toMatched(rule: CompiledRule): MatchedRule {
  return { id: rule.id, effect: rule.effect, message: rule.message };
}

function mappedServiceAccount(policy: CompiledPolicy, namespace: string): ServiceAccountRef | undefined {
  if (namespace !== "") {
    for (const entry of policy.serviceAccounts.namespaces) {
      if (entry.glob.matches(namespace)) return entry.serviceAccount;
    }
  }
  return policy.serviceAccounts.default;
}

function explain(prefix: string, notes: readonly string[]): string {
  return notes.length === 0 ? prefix : `${prefix}; ${notes.join("; ")}`;
}

/**
 * Decides one request. Pure and synchronous.
 *
 * Combination: any matching Deny → Deny (all matching Deny rules listed); else any matching
 * RequireApproval → RequireApproval (settings of the first, all listed); else any matching Allow →
 * Allow; else the policy default (Deny, `defaulted: true`). CEL is only evaluated for rules whose
 * request pattern and subjects matched, and Allow conditions only when nothing stronger matched.
 */
export function evaluatePolicy(policy: CompiledPolicy, input: PolicyInput): PolicyDecision {
  const attributes = input.attributes;
  if (attributes.verb === "") {
    // The request parser could not derive a verb; no rule should get a chance to allow that.
    return decision("Deny", NO_RULES, undefined, false, policy, "request has no recognisable verb", undefined, false);
  }

  // Hot path: no allocation until a rule matches.
  let denyCandidates: CompiledRule[] | undefined;
  let approvalCandidates: CompiledRule[] | undefined;
  let allowCandidates: CompiledRule[] | undefined;
  let bodyRequired = false;
  for (const rule of policy.rulesByVerb.get(attributes.verb) ?? policy.rules) {
    if (!targetMatches(rule, attributes, rule.effect !== "Allow")) continue;
    if (!subjectsMatch(rule, input.user)) continue;
    if (rule.when?.referencesObject === true) bodyRequired = true;
    if (rule.effect === "Deny") (denyCandidates ??= []).push(rule);
    else if (rule.effect === "RequireApproval") (approvalCandidates ??= []).push(rule);
    else (allowCandidates ??= []).push(rule);
  }

  const state = input.body.state;
  const context: EvaluationContext = {
    input,
    bodyUsable: state === "complete" || state === "absent",
    celInput: undefined,
    notes: [],
  };

  const denied = denyCandidates?.filter((rule) => conditionMatches(rule, context));
  if (denied !== undefined && denied.length > 0) {
    const reason = explain(`denied by rule ${denied.map((r) => r.id).join(", ")}`, context.notes);
    return decision("Deny", denied.map(toMatched), undefined, false, policy, reason, undefined, bodyRequired);
  }

  const needsApproval = approvalCandidates?.filter((rule) => conditionMatches(rule, context));
  const firstApproval = needsApproval?.[0];
  if (needsApproval !== undefined && firstApproval !== undefined) {
    const reason = explain(`approval required by rule ${needsApproval.map((r) => r.id).join(", ")}`, context.notes);
    const serviceAccount =
      needsApproval.find((rule) => rule.serviceAccount !== undefined)?.serviceAccount ??
      mappedServiceAccount(policy, attributes.namespace);
    return decision(
      "RequireApproval",
      needsApproval.map(toMatched),
      firstApproval.approval,
      false,
      policy,
      reason,
      serviceAccount,
      bodyRequired,
    );
  }

  const allowed = allowCandidates?.filter((rule) => conditionMatches(rule, context));
  if (allowed !== undefined && allowed.length > 0) {
    const reason = explain(`allowed by rule ${allowed.map((r) => r.id).join(", ")}`, context.notes);
    const serviceAccount =
      allowed.find((rule) => rule.serviceAccount !== undefined)?.serviceAccount ??
      mappedServiceAccount(policy, attributes.namespace);
    return decision("Allow", allowed.map(toMatched), undefined, false, policy, reason, serviceAccount, bodyRequired);
  }

  const reason = explain(`no rule matched; default ${policy.defaultEffect}`, context.notes);
  return decision(policy.defaultEffect, NO_RULES, undefined, true, policy, reason, undefined, bodyRequired);
}

const NO_RULES: readonly MatchedRule[] = Object.freeze([]);

// One literal with every field in a fixed order, so all decisions share a hidden class.
function decision(
  effect: PolicyEffect,
  rules: readonly MatchedRule[],
  approval: ApprovalSettings | undefined,
  defaulted: boolean,
  policy: CompiledPolicy,
  reason: string,
  serviceAccount: ServiceAccountRef | undefined,
  bodyRequired: boolean,
): PolicyDecision {
  return { effect, rules, approval, defaulted, policyVersion: policy.version, reason, serviceAccount, bodyRequired };
}
