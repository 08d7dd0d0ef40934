/**
 * @module authz/exchange/agent-scope
 * The `airlock_scope` claim of exchanged tokens: parsing it strictly, narrowing it on request, and the pure check
 * ext_authz runs after the policy (a scope can only take away what the policy allows, never add).
 */
import { compileGlobSet } from "../policy/glob-set.js";
import type { GlobSet } from "../policy/glob-set.js";

/** Name of the JWT claim that carries the scope. */
export const AGENT_SCOPE_CLAIM = "airlock_scope";

/**
 * What an exchanged token may touch, on top of (never instead of) the policy.
 * - `namespaces`: namespace names or `*` globs; a namespaced resource request must name a listed namespace.
 *   Cluster-scoped and all-namespace resource requests are outside every namespace scope. Absent = no limit.
 * - `readOnly`: only `get`/`list`/`watch` on resources and `get`/`head` on non-resource URLs.
 */
export interface AgentScope {
  readonly namespaces?: readonly string[];
  readonly readOnly?: boolean;
}

/** The attributes {@link scopeAllows} needs (a subset of KubeRequestAttributes). */
export interface ScopeRequestAttributes {
  readonly verb: string;
  readonly namespace: string;
  readonly resourceRequest: boolean;
}

export type ScopeVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Most namespaces one scope may list; keeps claims small and checks cheap. */
export const MAX_SCOPE_NAMESPACES = 64;

/**
 * A namespace name (RFC 1123 label, ≤ 63 characters) in which `*` may stand for any run of characters. The same
 * `*`-only glob language as the policy, so the scope reads like the rules it narrows.
 */
const NAMESPACE_PATTERN = /^[a-z0-9*](?:[-a-z0-9*]{0,61}[a-z0-9*])?$/;

const READ_ONLY_RESOURCE_VERBS = new Set(["get", "list", "watch"]);
const READ_ONLY_NON_RESOURCE_VERBS = new Set(["get", "head"]);

/** True when `value` is a namespace name or namespace glob the scope language accepts. */
export function isNamespacePattern(value: string): boolean {
  return NAMESPACE_PATTERN.test(value);
}

// Compiled once per namespaces array: the verifier hands out the same frozen claims object for a reused token.
const compiled = new WeakMap<readonly string[], GlobSet>();

function namespaceSet(namespaces: readonly string[]): GlobSet {
  let set = compiled.get(namespaces);
  if (set === undefined) {
    set = compileGlobSet(namespaces);
    compiled.set(namespaces, set);
  }
  return set;
}

/**
 * Decides whether a request stays inside the scope. Pure; `undefined` (no scope claim) allows everything, because
 * then the policy alone decides. Call it only after the policy allowed the request.
 *
 * @example
 * const verdict = scopeAllows({ namespaces: ["dev-*"], readOnly: true }, { verb: "delete", namespace: "dev-a", resourceRequest: true });
 * // → { ok: false, reason: "the token's scope is read-only; delete is not a read" }
 */
export function scopeAllows(scope: AgentScope | undefined, attributes: ScopeRequestAttributes): ScopeVerdict {
  if (scope === undefined) return { ok: true };
  if (scope.readOnly === true) {
    const reads = attributes.resourceRequest ? READ_ONLY_RESOURCE_VERBS : READ_ONLY_NON_RESOURCE_VERBS;
    if (!reads.has(attributes.verb)) {
      return { ok: false, reason: `the token's scope is read-only; ${attributes.verb} is not a read` };
    }
  }
  // Non-resource URLs (/version, /api, /apis discovery) live in no namespace; kubectl needs them to work at all,
  // and the policy still governs them.
  if (scope.namespaces !== undefined && attributes.resourceRequest) {
    if (attributes.namespace === "") {
      return {
        ok: false,
        reason: "the token is scoped to namespaces; cluster-scoped and all-namespace requests are outside it",
      };
    }
    if (!namespaceSet(scope.namespaces).matches(attributes.namespace)) {
      return { ok: false, reason: `namespace "${attributes.namespace}" is outside the token's scope` };
    }
  }
  return { ok: true };
}

/** Outcome of {@link readAgentScope}: a malformed claim is a failure, and the caller must deny. */
export type ReadAgentScopeResult =
  | { readonly ok: true; readonly scope: AgentScope | undefined }
  | { readonly ok: false; readonly reason: string };

const readCache = new WeakMap<object, ReadAgentScopeResult>();

function malformed(reason: string): ReadAgentScopeResult {
  return { ok: false, reason: `the token's ${AGENT_SCOPE_CLAIM} claim is malformed: ${reason}` };
}

/** Validates an untrusted scope value (claim content); returns a frozen copy or why it is refused. */
export function parseAgentScope(value: unknown): ReadAgentScopeResult {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return malformed("not an object");
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (key !== "namespaces" && key !== "readOnly") return malformed(`unknown member "${key.slice(0, 40)}"`);
  }
  const scope: { namespaces?: readonly string[]; readOnly?: boolean } = {};
  if (Object.hasOwn(record, "readOnly")) {
    if (typeof record.readOnly !== "boolean") return malformed("readOnly is not a boolean");
    scope.readOnly = record.readOnly;
  }
  if (Object.hasOwn(record, "namespaces")) {
    const list: unknown = record.namespaces;
    if (!Array.isArray(list)) return malformed("namespaces is not a list");
    // An empty list would mean "no namespace at all": never issued, so it can only be tampering or a bug.
    if (list.length === 0 || list.length > MAX_SCOPE_NAMESPACES) {
      return malformed(`namespaces must list 1 to ${MAX_SCOPE_NAMESPACES} entries`);
    }
    const namespaces: string[] = [];
    for (const entry of list as unknown[]) {
      if (typeof entry !== "string" || !isNamespacePattern(entry)) return malformed("namespaces holds an invalid name");
      namespaces.push(entry);
    }
    scope.namespaces = Object.freeze(namespaces);
  }
  return { ok: true, scope: Object.freeze(scope) };
}

/**
 * Reads the scope out of verified claims. No claim → `{ ok: true, scope: undefined }` (tokens of other issuers);
 * anything but a well-formed scope → `{ ok: false }`, which must deny (fail closed).
 */
export function readAgentScope(claims: Readonly<Record<string, unknown>>): ReadAgentScopeResult {
  const cached = readCache.get(claims);
  if (cached !== undefined) return cached;
  const result = Object.hasOwn(claims, AGENT_SCOPE_CLAIM)
    ? parseAgentScope(claims[AGENT_SCOPE_CLAIM])
    : ({ ok: true, scope: undefined } as const);
  // Only frozen claims can be cached by identity: a mutable object could change under the cache.
  if (Object.isFrozen(claims)) readCache.set(claims, result);
  return result;
}

/**
 * True when every namespace `requested` matches also matches `granted`. Sound for `*`-only globs: if the granted
 * glob matches the requested pattern's text, each requested `*` is absorbed by a granted `*`, so every expansion of
 * the requested pattern matches too.
 */
function covered(granted: readonly string[] | undefined, requested: string): boolean {
  return granted === undefined || namespaceSet(granted).matches(requested);
}

/** What a client asked for with the `scope` parameter; absent members inherit the grant. */
export interface RequestedScope {
  readonly namespaces?: readonly string[];
  readonly readOnly?: boolean;
}

/**
 * Narrows the scope a trust rule grants to what the client requested. A request can only take away: namespaces
 * outside the grant are refused (never silently dropped, so the client learns its mistake), read-only can be
 * added but never removed.
 */
export function narrowScope(
  granted: AgentScope,
  requested: RequestedScope | undefined,
): { readonly ok: true; readonly scope: AgentScope } | { readonly ok: false; readonly reason: string } {
  const readOnly = granted.readOnly === true || requested?.readOnly === true;
  let namespaces = granted.namespaces;
  if (requested?.namespaces !== undefined) {
    const outside = requested.namespaces.filter((namespace) => !covered(granted.namespaces, namespace));
    if (outside.length > 0) {
      return { ok: false, reason: `requested namespaces are not granted: ${outside.join(", ")}` };
    }
    namespaces = requested.namespaces;
  }
  const scope: { namespaces?: readonly string[]; readOnly?: boolean } = {};
  if (namespaces !== undefined) scope.namespaces = Object.freeze([...namespaces]);
  if (readOnly) scope.readOnly = true;
  return { ok: true, scope: Object.freeze(scope) };
}

/** Read-only marker in the OAuth `scope` parameter. */
export const READ_ONLY_SCOPE_TOKEN = "read-only";
/** Prefix of a namespace entry in the OAuth `scope` parameter. */
export const NAMESPACE_SCOPE_PREFIX = "namespace:";

/**
 * Parses the RFC 6749 §3.3 `scope` parameter: space-separated `read-only` and `namespace:<name-or-glob>` tokens.
 * Unknown tokens are refused (RFC 6749 `invalid_scope`) instead of ignored.
 */
export function parseScopeParameter(text: string): { readonly ok: true; readonly scope: RequestedScope } | { readonly ok: false; readonly reason: string } {
  const tokens = text.split(" ").filter((token) => token !== "");
  if (tokens.length === 0) return { ok: false, reason: "scope is empty" };
  if (tokens.length > MAX_SCOPE_NAMESPACES + 1) return { ok: false, reason: "scope lists too many entries" };
  let readOnly = false;
  const namespaces: string[] = [];
  for (const token of tokens) {
    if (token === READ_ONLY_SCOPE_TOKEN) {
      readOnly = true;
    } else if (token.startsWith(NAMESPACE_SCOPE_PREFIX)) {
      const name = token.slice(NAMESPACE_SCOPE_PREFIX.length);
      if (!isNamespacePattern(name)) return { ok: false, reason: `"${token.slice(0, 80)}" is not a valid namespace` };
      if (!namespaces.includes(name)) namespaces.push(name);
    } else {
      return { ok: false, reason: `unknown scope "${token.slice(0, 80)}"; expected "read-only" or "namespace:<name>"` };
    }
  }
  const scope: { namespaces?: readonly string[]; readOnly?: boolean } = {};
  if (namespaces.length > 0) scope.namespaces = namespaces;
  if (readOnly) scope.readOnly = true;
  return { ok: true, scope };
}

/** The `scope` response parameter for a granted scope; empty string when nothing is narrowed. */
export function formatScopeParameter(scope: AgentScope): string {
  return [
    ...(scope.readOnly === true ? [READ_ONLY_SCOPE_TOKEN] : []),
    ...(scope.namespaces ?? []).map((namespace) => `${NAMESPACE_SCOPE_PREFIX}${namespace}`),
  ].join(" ");
}
