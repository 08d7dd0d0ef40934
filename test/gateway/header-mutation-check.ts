/**
 * @module test/gateway/header-mutation-check
 * Envoy's HeaderMutationRules checker (filters/common/mutation_rules/mutation_rules.cc), as a pure function.
 */
import type { HeaderMutationRulesSettings } from "./gateway-settings.js";

export type MutationOperation = "set" | "append" | "remove";
/** OK: apply; IGNORE: skip silently (counted as rejected_header_mutations); FAIL: the filter answers 500. */
export type MutationVerdict = "ok" | "ignore" | "fail";

/** Rules an unset `mutation_rules` means (every field false / unset). */
export const DEFAULT_MUTATION_RULES: HeaderMutationRulesSettings = Object.freeze({
  allowAllRouting: false,
  allowEnvoy: false,
  disallowSystem: false,
  disallowAll: false,
  allowExpression: null,
  disallowExpression: null,
  disallowIsError: false,
});

/** ext_proc.cc ImmediateMutationChecker: a fixed permissive rule set for immediate responses. */
export const IMMEDIATE_RESPONSE_MUTATION_RULES: HeaderMutationRulesSettings = Object.freeze({
  ...DEFAULT_MUTATION_RULES,
  allowAllRouting: true,
  allowEnvoy: true,
});

// mutation_rules.cc ExtraRoutingHeaders: Host (":authority"), HostLegacy ("host"), :method, :scheme.
const ROUTING_HEADERS = new Set([":authority", "host", ":method", ":scheme"]);

/** HeaderUtility::headerValueIsValid: no NUL, CR or LF. */
export function headerValueIsValid(value: string): boolean {
  return !/[\0\r\n]/.test(value);
}

/** HeaderUtility::headerNameIsValid: an RFC 7230 token, or a pseudo-header. */
export function headerNameIsValid(name: string): boolean {
  return /^:?[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name);
}

function isAllowed(rules: HeaderMutationRulesSettings, op: MutationOperation, name: string): boolean {
  // "No matter what, you can't remove the "host" or any ":" headers." (HeaderUtility::isModifiableHeader)
  if (op === "remove" && (name.startsWith(":") || name === "host")) return false;
  if (rules.disallowExpression !== null && new RegExp(`^(?:${rules.disallowExpression})$`).test(name)) return false;
  if (rules.allowExpression !== null && new RegExp(`^(?:${rules.allowExpression})$`).test(name)) return true;
  if (rules.disallowAll) return false;
  if (!rules.allowAllRouting && ROUTING_HEADERS.has(name)) return false;
  // System headers never take multiple values, so "append" to them is refused.
  if (name.startsWith(":") && (op === "append" || rules.disallowSystem)) return false;
  if (!rules.allowEnvoy && name.startsWith("x-envoy")) return false;
  return true;
}

function isValidValue(name: string, value: string): boolean {
  if (!name.startsWith(":") && !headerValueIsValid(value)) return false;
  if ((name === "host" || name === ":authority") && (value.length === 0 || /[\s/?#@]/.test(value))) return false;
  if (name === ":scheme" && !/^[a-z][a-z0-9+.-]*$/i.test(value)) return false;
  if (name === ":status") {
    const status = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!Number.isInteger(status) || status < 200) return false;
  }
  return true;
}

/** Checker::check: allowed and (for set/append) a valid value → ok; otherwise ignore, or fail with disallow_is_error. */
export function checkHeaderMutation(
  rules: HeaderMutationRulesSettings,
  op: MutationOperation,
  name: string,
  value: string,
): MutationVerdict {
  const key = name.toLowerCase();
  if (isAllowed(rules, op, key) && (op === "remove" || isValidValue(key, value))) return "ok";
  return rules.disallowIsError ? "fail" : "ignore";
}
