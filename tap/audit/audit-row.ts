/**
 * @module tap/audit/audit-row
 * Pure construction of the ClickHouse rows (requests, approvals) from audit events: merge, bound, redact.
 */
import type { ApprovalEvent, DecisionEvent, ExchangeEvent, ResponseOutcome } from "./audit-event.js";

/** Column order of `requests`: the canonical form hashed into the chain follows it exactly. */
export const REQUEST_COLUMNS = [
  "time_us", "session_id", "request_id", "decision_id", "subject", "groups", "workload_identity",
  "method", "verb", "api_group", "api_version", "resource", "subresource", "namespace", "name", "path",
  "effect", "rule_ids", "policy_version", "approval_id", "reason",
  "request_headers", "request_body", "request_body_truncated",
  "response_status", "response_body", "response_truncated", "response_outcome",
  "request_bytes", "response_bytes", "check_latency_us", "upstream_latency_us",
  "gateway_instance", "chain_id", "chain_seq", "prev_hash",
] as const;

export const APPROVAL_COLUMNS = [
  "time_us", "approval_id", "action", "actor", "reason", "fingerprint",
  "requester_subject", "requester_session_id", "rule_id",
  "gateway_instance", "chain_id", "chain_seq", "prev_hash",
] as const;

/** Columns whose ClickHouse type is numeric: read back as numbers (some servers quote 64-bit integers). */
export const NUMERIC_COLUMNS: ReadonlySet<string> = new Set([
  "time_us", "request_body_truncated", "response_status", "response_truncated", "request_bytes", "response_bytes",
  "check_latency_us", "upstream_latency_us", "chain_seq",
]);

export type AuditTable = "requests" | "approvals";

/** The chain-independent part of a request row. */
export interface RequestRowBody {
  time_us: number;
  session_id: string;
  request_id: string;
  decision_id: string;
  subject: string;
  groups: string[];
  workload_identity: string;
  method: string;
  verb: string;
  api_group: string;
  api_version: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
  path: string;
  /** A DecisionEffect, or `Unknown` for an exchange whose decision this instance never saw. */
  effect: string;
  rule_ids: string[];
  policy_version: string;
  approval_id: string;
  reason: string;
  request_headers: string;
  request_body: string;
  request_body_truncated: number;
  response_status: number;
  response_body: string;
  response_truncated: number;
  response_outcome: ResponseOutcome;
  request_bytes: number;
  response_bytes: number;
  check_latency_us: number;
  upstream_latency_us: number;
}

export interface ApprovalRowBody {
  time_us: number;
  approval_id: string;
  action: string;
  actor: string;
  reason: string;
  fingerprint: string;
  requester_subject: string;
  requester_session_id: string;
  rule_id: string;
}

/** Chain columns appended by the sink; `hash` covers every other column. */
export interface ChainColumns {
  gateway_instance: string;
  chain_id: string;
  chain_seq: number;
  prev_hash: string;
  hash: string;
}

export type RequestRow = RequestRowBody & ChainColumns;
export type ApprovalRow = ApprovalRowBody & ChainColumns;

export interface RowLimits {
  readonly requestBodyMaxBytes: number;
  readonly responseBodyMaxBytes: number;
}

/** Header names whose values are credentials whatever the caller did; the value is replaced, the name kept. */
const SECRET_HEADERS = new Set([
  "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token",
  "x-amz-security-token", "x-goog-iam-authorization-token",
]);
export const REDACTED = "[REDACTED]";

// Backstops for bodies: a JWT (three base64url parts, header starting `eyJ`) or a PEM block.
const JWT_PATTERN = /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g;
const PEM_PATTERN = /-----BEGIN [A-Z0-9 ]+-----[\s\S]*?(?:-----END [A-Z0-9 ]+-----|$)/g;

/** Replace token- and certificate-shaped substrings; cheap when neither marker is present. */
export function scrubSecrets(text: string): string {
  let out = text;
  if (out.includes("eyJ")) out = out.replace(JWT_PATTERN, REDACTED);
  if (out.includes("-----BEGIN ")) out = out.replace(PEM_PATTERN, REDACTED);
  return out;
}

/**
 * Headers as a JSON object string, sorted by lower-cased name, secret values redacted. Written out
 * directly (this runs for every audit row); a header set with a name an object treats specially (array
 * indices sort first, `__proto__` is not an own key), with lone surrogates, or with names that collide
 * once lower-cased goes through a plain object instead, so a given header set always yields the same text.
 */
export function redactHeaders(headers: Readonly<Record<string, string>>): string {
  const entries: [string, string][] = [];
  for (const key of Object.keys(headers)) entries.push([key.toLowerCase(), headers[key] ?? ""]);
  entries.sort(byName);
  let out = "{";
  for (let i = 0; i < entries.length; i++) {
    const [name, value] = entries[i] ?? ["", ""];
    if (SPECIAL_NAME.test(name) || (i > 0 && entries[i - 1]?.[0] === name)) return redactHeadersViaObject(entries);
    if (i > 0) out += ",";
    out += `${JSON.stringify(name)}:${JSON.stringify(redactedValue(name, value))}`;
  }
  return `${out}}`;
}

const SPECIAL_NAME = /^(?:0|[1-9][0-9]*|__proto__)$|[\uD800-\uDFFF]/;

function byName(a: readonly [string, string], b: readonly [string, string]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

function redactedValue(name: string, value: string): string {
  return SECRET_HEADERS.has(name) ? REDACTED : scrubSecrets(wellFormed(value));
}

function redactHeadersViaObject(sorted: readonly (readonly [string, string])[]): string {
  const out: Record<string, string> = {};
  for (const [name, value] of sorted) out[wellFormed(name)] = redactedValue(name, value);
  return JSON.stringify(out);
}

/** Lone surrogates would not survive a round trip through ClickHouse and would break the hash chain. */
export function wellFormed(text: string): string {
  return LONE_SURROGATE.test(text) ? text.replace(LONE_SURROGATE_G, "\uFFFD") : text;
}
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATE_G = new RegExp(LONE_SURROGATE.source, "g");

/** Cut to at most maxBytes of UTF-8 without splitting a character. */
export function boundUtf8(text: string, maxBytes: number): { text: string; truncated: boolean } {
  if (text.length <= maxBytes / 3 || Buffer.byteLength(text, "utf8") <= maxBytes) return { text, truncated: false };
  const buf = Buffer.from(text, "utf8");
  let end = maxBytes;
  // Step back over continuation bytes (10xxxxxx) so the cut lands on a character boundary.
  while (end > 0 && ((buf[end] ?? 0) & 0xc0) === 0x80) end--;
  return { text: buf.subarray(0, end).toString("utf8"), truncated: true };
}

function boundedBody(text: string, maxBytes: number): { text: string; truncated: boolean } {
  return boundUtf8(scrubSecrets(wellFormed(text)), maxBytes);
}

/**
 * One request row. `decision` is absent only when an exchange arrives for a decision this instance never
 * held (another replica decided, or the hold expired); `exchange` is absent for requests never forwarded
 * or whose response never came.
 */
export function buildRequestRow(
  decision: DecisionEvent | undefined,
  exchange: ExchangeEvent | undefined,
  limits: RowLimits,
  nowMicros: number,
): RequestRowBody {
  const outcome: ResponseOutcome = exchange !== undefined
    ? exchange.outcome
    : decision === undefined ? "missing"
    : decision.effect !== "Allow" ? "not_forwarded"
    : decision.noExchange ?? "missing";
  // ext_proc sees the whole request body; the decision's copy is the fallback for never-forwarded requests.
  const rawRequestBody = exchange !== undefined && exchange.maskedRequestBody !== "" ? exchange.maskedRequestBody : decision?.maskedRequestBody ?? "";
  const requestBody = boundedBody(rawRequestBody, limits.requestBodyMaxBytes);
  const responseBody = boundedBody(exchange?.maskedResponseBody ?? "", limits.responseBodyMaxBytes);
  const reasons = [decision?.reason ?? "", exchange?.reason ?? ""].filter((r) => r !== "");
  const s = (v: string | undefined): string => wellFormed(v ?? "");
  return {
    time_us: decision?.timeMicros ?? nowMicros,
    session_id: s(decision?.sessionId),
    request_id: s(decision?.requestId !== undefined && decision.requestId !== "" ? decision.requestId : exchange?.requestId),
    decision_id: s(decision?.decisionId ?? exchange?.decisionId),
    subject: s(decision?.subject),
    groups: (decision?.groups ?? []).map(wellFormed),
    workload_identity: s(decision?.workloadIdentity),
    method: s(decision?.method),
    verb: s(decision?.kube.verb),
    api_group: s(decision?.kube.apiGroup),
    api_version: s(decision?.kube.apiVersion),
    resource: s(decision?.kube.resource),
    subresource: s(decision?.kube.subresource),
    namespace: s(decision?.kube.namespace),
    name: s(decision?.kube.name),
    path: scrubSecrets(s(decision?.path)),
    effect: decision?.effect ?? "Unknown",
    rule_ids: (decision?.ruleIds ?? []).map(wellFormed),
    policy_version: s(decision?.policyVersion),
    approval_id: s(decision?.approvalId),
    reason: scrubSecrets(wellFormed(reasons.join("; "))),
    request_headers: redactHeaders(decision?.maskedRequestHeaders ?? {}),
    request_body: requestBody.text,
    request_body_truncated: requestBody.truncated ? 1 : 0,
    response_status: exchange?.responseStatus ?? 0,
    response_body: responseBody.text,
    response_truncated: exchange?.responseTruncated === true || responseBody.truncated ? 1 : 0,
    response_outcome: outcome,
    request_bytes: exchange?.requestBytes ?? Buffer.byteLength(decision?.maskedRequestBody ?? "", "utf8"),
    response_bytes: exchange?.responseBytes ?? 0,
    check_latency_us: decision?.checkLatencyMicros ?? 0,
    upstream_latency_us: exchange?.upstreamLatencyMicros ?? 0,
  };
}

export function buildApprovalRow(event: ApprovalEvent): ApprovalRowBody {
  return {
    time_us: event.timeMicros,
    approval_id: wellFormed(event.approvalId),
    action: event.action,
    actor: wellFormed(event.actor),
    reason: scrubSecrets(wellFormed(event.reason)),
    fingerprint: wellFormed(event.fingerprint),
    requester_subject: wellFormed(event.requesterSubject),
    requester_session_id: wellFormed(event.requesterSessionId),
    rule_id: wellFormed(event.ruleId),
  };
}
