/**
 * @module authz/kube/request-url
 * Splits and decodes the raw request target Envoy hands to ext_authz (`:path`, undecoded, with query) the way Go's
 * `url.ParseRequestURI` + `URL.Query()` do for kube-apiserver, refusing the ambiguous encodings a policy must not guess.
 */

/**
 * Closed set of reasons a request target is refused. Every refusal denies the request (fail closed).
 * - `MALFORMED_PATH`: not origin-form, a character outside printable ASCII (or `#`, `\`), an invalid or dangerous
 *   percent escape, invalid UTF-8, an empty, `.` or `..` segment.
 * - `MALFORMED_QUERY`: invalid escape, raw `;`, control characters, invalid UTF-8, or too many parameters.
 * - `REQUEST_TARGET_TOO_LONG`: longer than anything Envoy's header limits let through.
 */
export type RequestUrlErrorCode = "MALFORMED_PATH" | "MALFORMED_QUERY" | "REQUEST_TARGET_TOO_LONG";

export interface RequestUrl {
  /** Percent-decoded path, exactly as Go's `URL.Path` would hold it (trailing slash kept). */
  readonly path: string;
  /** Decoded path segments with the leading and (single) trailing slash trimmed, like kube's `splitPath`. */
  readonly segments: readonly string[];
  /** Decoded query parameters in arrival order per key (`URL.Query()`); a null-prototype, frozen record. */
  readonly query: Readonly<Record<string, readonly string[]>>;
  /** Number of parameters (pairs) in `query`. */
  readonly parameterCount: number;
}

export type ParseRequestUrlResult =
  | { readonly ok: true; readonly url: RequestUrl }
  | { readonly ok: false; readonly code: RequestUrlErrorCode; readonly message: string };

/** Envoy's default `max_request_headers_kb` is 60 KiB, so nothing longer can legitimately arrive. */
const MAX_REQUEST_TARGET_CHARS = 65_536;
/** Go's `url.ParseQuery` refuses more than 10,000 parameters (GODEBUG `urlmaxqueryparams`); so do we. */
const MAX_QUERY_PARAMETERS = 10_000;

const EMPTY_QUERY: Readonly<Record<string, readonly string[]>> = Object.freeze(Object.create(null) as Record<string, readonly string[]>);

function fail(code: RequestUrlErrorCode, message: string): ParseRequestUrlResult {
  return { ok: false, code, message };
}

/** Value of an ASCII hex digit, or -1. */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * Validates and decodes the path part. Go's `unescape(s, encodePath)` accepts any `%XX` and nothing else; on top of
 * that (and deliberately stricter than kube-apiserver) we refuse:
 * - `%2F` (encoded `/`): Go decodes it into a real `/` that kube's `splitPath` then splits on, so `pods/x%2Fexec`
 *   *is* `pods/x/exec` to the apiserver, while any other hop (a proxy subresource target, a log line, a human reading
 *   the approval) sees one segment. No Kubernetes name may contain `/` (`IsPathSegmentName`), so nothing valid is lost.
 * - `%5C` and raw `\`: some stacks treat backslash as a separator; Kubernetes names never contain it.
 * - control characters (`%00`-`%1F`, `%7F`): no valid Kubernetes name or URL contains them, and NUL truncates
 *   strings in C-based tooling downstream (audit, logs).
 * - bytes that are not valid UTF-8 once decoded (Go would keep them; we cannot represent them faithfully).
 */
function decodePath(raw: string): string | undefined {
  let hasEscape = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return undefined;
      const byte = hi * 16 + lo;
      if (byte < 0x20 || byte === 0x7f || byte === 0x2f || byte === 0x5c) return undefined;
      hasEscape = true;
      i += 2;
    } else if (c <= 0x20 || c >= 0x7f || c === 0x23 /* # */ || c === 0x5c /* \ */) {
      return undefined;
    }
  }
  if (!hasEscape) return raw;
  try {
    // Every `%` is followed by two hex digits (checked above), so this only throws on invalid UTF-8.
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/**
 * Go's `QueryUnescape`: `+` is a space, `%XX` any byte. Returns undefined on an invalid escape, invalid UTF-8 or a
 * decoded control character (kube would accept those, but no selector or option legitimately contains one).
 */
function decodeQueryComponent(raw: string, start: number, end: number): string | undefined {
  let needsDecode = false;
  for (let i = start; i < end; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x25) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi < 0 || lo < 0 || i + 2 >= end) return undefined;
      const byte = hi * 16 + lo;
      if (byte < 0x20 || byte === 0x7f) return undefined;
      needsDecode = true;
      i += 2;
    } else if (c === 0x2b /* + */) {
      needsDecode = true;
    }
  }
  const slice = raw.slice(start, end);
  if (!needsDecode) return slice;
  try {
    return decodeURIComponent(slice.replaceAll("+", " "));
  } catch {
    return undefined;
  }
}

/**
 * Go's `url.ParseQuery`, except that where Go silently drops a pair (raw `;`, bad escape) we refuse the whole query:
 * the handler and the authorizer would otherwise have to agree on what was dropped.
 */
function parseQuery(raw: string, start: number): { query: Readonly<Record<string, readonly string[]>>; count: number } | string {
  if (start >= raw.length) return { query: EMPTY_QUERY, count: 0 };
  const query = Object.create(null) as Record<string, string[]>;
  let count = 0;
  let pos = start;
  while (pos <= raw.length) {
    let amp = raw.indexOf("&", pos);
    if (amp < 0) amp = raw.length;
    if (amp > pos) {
      let eq = -1;
      for (let i = pos; i < amp; i++) {
        const c = raw.charCodeAt(i);
        if (c === 0x3b /* ; */) return "raw ';' in query (Go drops such pairs; refused)";
        if (c <= 0x20 || c >= 0x7f || c === 0x23 /* # */) return "invalid character in query";
        if (c === 0x3d /* = */ && eq < 0) eq = i;
      }
      const keyEnd = eq < 0 ? amp : eq;
      const key = decodeQueryComponent(raw, pos, keyEnd);
      const value = eq < 0 ? "" : decodeQueryComponent(raw, eq + 1, amp);
      if (key === undefined || value === undefined) return "invalid escape in query";
      if (++count > MAX_QUERY_PARAMETERS) return "too many query parameters";
      const existing = query[key];
      if (existing === undefined) query[key] = [value];
      else existing.push(value);
    }
    pos = amp + 1;
  }
  for (const key in query) Object.freeze(query[key]);
  return { query: Object.freeze(query), count };
}

/** Parses an origin-form request target (`/path?query`) as kube-apiserver would see it, or refuses it. */
export function parseRequestUrl(rawPath: string): ParseRequestUrlResult {
  if (rawPath.length > MAX_REQUEST_TARGET_CHARS) {
    return fail("REQUEST_TARGET_TOO_LONG", `request target longer than ${MAX_REQUEST_TARGET_CHARS} characters`);
  }
  if (rawPath.charCodeAt(0) !== 0x2f /* / */) return fail("MALFORMED_PATH", "request target is not origin-form");
  const q = rawPath.indexOf("?");
  const rawPathPart = q < 0 ? rawPath : rawPath.slice(0, q);
  const path = decodePath(rawPathPart);
  if (path === undefined) return fail("MALFORMED_PATH", "invalid or refused character or escape in path");

  // kube's splitPath trims slashes and splits; we additionally refuse empty interior segments (`//`), more than one
  // trailing slash, and `.`/`..` segments: kube would take them literally (e.g. namespace "" from
  // `/api/v1/namespaces//pods`, name ".." that IsPathSegmentName forbids), other hops might normalise them, and no
  // client library produces them.
  let segments: string[];
  if (path === "/") {
    segments = [];
  } else {
    const end = path.charCodeAt(path.length - 1) === 0x2f ? path.length - 1 : path.length;
    segments = path.slice(1, end).split("/");
    for (const segment of segments) {
      if (segment === "" || segment === "." || segment === "..") {
        return fail("MALFORMED_PATH", "empty, '.' or '..' path segment");
      }
    }
  }

  const parsed = q < 0 ? { query: EMPTY_QUERY, count: 0 } : parseQuery(rawPath, q + 1);
  if (typeof parsed === "string") return fail("MALFORMED_QUERY", parsed);
  return { ok: true, url: { path, segments: Object.freeze(segments), query: parsed.query, parameterCount: parsed.count } };
}
