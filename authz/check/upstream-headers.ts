/**
 * @module authz/check/upstream-headers
 * Pure rules for the request headers Airlock removes or rewrites before a request goes upstream: the agent's own
 * credential and every spoofable identity header go, and content negotiation is narrowed to what ext_proc can mask.
 */

/** Header-name prefixes a client must never get through to kube-apiserver (identity forgery, front-proxy spoofing). */
const FORBIDDEN_PREFIXES = ["impersonate-", "x-remote-", "x-forwarded-"] as const;
/** Exact header names that carry client credentials or would stop response masking. */
const FORBIDDEN_NAMES = new Set(["authorization", "proxy-authorization", "cookie", "accept-encoding", "forwarded", "x-real-ip"]);

/** True for a header the agent sent that must not reach the API server. Names are lower-case (Envoy's map). */
export function isForbiddenClientHeader(name: string): boolean {
  if (FORBIDDEN_NAMES.has(name)) return true;
  for (const prefix of FORBIDDEN_PREFIXES) if (name.startsWith(prefix)) return true;
  return false;
}

/**
 * Every forbidden header present in the request, plus `authorization` and `accept-encoding` even when absent.
 * Pseudo-headers are skipped (Envoy ignores their removal anyway). Envoy applies `headers_to_remove` after the
 * header mutations, so the caller must drop from this list every name it sets (its own credential).
 */
export function headersToRemove(requestHeaders: Readonly<Record<string, string>>): string[] {
  const names = new Set<string>(["authorization", "accept-encoding"]);
  for (const name of Object.keys(requestHeaders)) {
    if (name.startsWith(":")) continue;
    if (isForbiddenClientHeader(name)) names.add(name);
  }
  return [...names];
}

/** Media types ext_proc can inspect; anything else (protobuf, CBOR, YAML) would have to fail closed downstream. */
function isMaskableMediaRange(range: string): boolean {
  const type = range.split(";", 1)[0]?.trim().toLowerCase() ?? "";
  return type === "application/json";
}

/**
 * Narrows the agent's Accept header to JSON. Table negotiation (`application/json;as=Table;v=v1;g=meta.k8s.io`)
 * and watch streams stay JSON, so they are kept as sent; protobuf, CBOR and YAML ranges are dropped; wildcards are
 * replaced by plain JSON. An Accept that keeps nothing becomes `application/json`.
 */
export function maskableAccept(accept: string | undefined): string {
  if (accept === undefined || accept.trim() === "") return "application/json";
  const kept: string[] = [];
  for (const raw of accept.split(",")) {
    const range = raw.trim();
    if (range !== "" && isMaskableMediaRange(range)) kept.push(range);
  }
  if (kept.length === 0) return "application/json";
  // A trailing plain JSON range keeps negotiation working when the server cannot produce a Table for this kind.
  if (!kept.some((range) => range.toLowerCase().replace(/\s+/g, "") === "application/json")) kept.push("application/json");
  return kept.join(",");
}
