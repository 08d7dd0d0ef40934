/**
 * @module tap/ext-proc/record-headers
 * Turns Envoy header maps into plain records for the audit row, dropping credentials (authorization,
 * cookies, token-like names) and masking detector matches in the values that stay.
 */
import type { HeaderMap__Output } from "../../protos/generated/envoy/config/core/v3/HeaderMap.js";
import type { MaskConfig } from "../mask/mask-config.js";
import { maskText } from "../mask/text-detectors.js";

const DROPPED = new Set(["authorization", "proxy-authorization", "cookie", "set-cookie", "x-auth-request-access-token"]);
const TOKEN_LIKE = /token|secret|passw|api[-_]?key|credential|session|signature/i;

/** Header values as strings (ext_proc sends them in raw_value bytes; older Envoys in value). */
export function headerMapToEntries(map: HeaderMap__Output | null | undefined): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const header of map?.headers ?? []) {
    const raw = header.raw_value;
    const value = raw.length > 0 ? raw.toString("utf8") : header.value;
    out.push([header.key.toLowerCase(), value]);
  }
  return out;
}

export function firstHeader(entries: ReadonlyArray<[string, string]>, name: string): string | undefined {
  for (const [key, value] of entries) if (key === name) return value;
  return undefined;
}

/** Recordable headers (duplicates joined with ", ") and the names of the ones left out. */
export function recordableHeaders(
  entries: ReadonlyArray<[string, string]>,
  config: MaskConfig,
): { headers: Record<string, string>; redacted: string[] } {
  // A Map, then fromEntries: a header literally named "__proto__" stays an ordinary own property.
  const headers = new Map<string, string>();
  const redacted: string[] = [];
  for (const [key, value] of entries) {
    if (DROPPED.has(key) || (!key.startsWith(":") && TOKEN_LIKE.test(key))) {
      if (!redacted.includes(key)) redacted.push(key);
      continue;
    }
    const masked = maskText(value, config).text;
    const previous = headers.get(key);
    headers.set(key, previous === undefined ? masked : `${previous}, ${masked}`);
  }
  return { headers: Object.fromEntries(headers), redacted };
}
