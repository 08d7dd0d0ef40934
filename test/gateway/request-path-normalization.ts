/**
 * @module test/gateway/request-path-normalization
 * The HCM's path handling before any filter runs: escaped slashes, normalize_path (RFC 3986), merge_slashes.
 */
import type { EscapedSlashesAction } from "./gateway-settings.js";

export type PathNormalizationResult =
  | { readonly kind: "continue"; readonly path: string }
  | { readonly kind: "reject" }
  | { readonly kind: "redirect"; readonly path: string };

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * PathUtil::canonicalPath (Chromium's URL path canonicalisation as Envoy uses it): backslashes become
 * slashes, percent-encoded unreserved characters are decoded and other escapes upper-cased, characters that
 * must be escaped are escaped, and "." / ".." segments (also in %2E form) are resolved (RFC 3986 §5.2.4).
 * Returns null for an invalid path.
 */
export function canonicalPath(path: string): string | null {
  if (!path.startsWith("/")) return null;
  let decoded = "";
  for (let i = 0; i < path.length; i++) {
    const c = path[i] ?? "";
    if (c === "%" && /^[0-9A-Fa-f]{2}$/.test(path.slice(i + 1, i + 3))) {
      const ch = String.fromCharCode(parseInt(path.slice(i + 1, i + 3), 16));
      decoded += UNRESERVED.test(ch) ? ch : `%${path.slice(i + 1, i + 3).toUpperCase()}`;
      i += 2;
    } else if (c === "\\") {
      decoded += "/";
    } else if (/[\s"<>`{}^|]/.test(c) || c.charCodeAt(0) > 0x7e) {
      decoded += encodeURIComponent(c);
    } else {
      decoded += c;
    }
  }
  const out: string[] = [];
  const segments = decoded.split("/").slice(1);
  segments.forEach((seg, i) => {
    const last = i === segments.length - 1;
    if (seg === ".") {
      if (last) out.push("");
    } else if (seg === "..") {
      out.pop();
      if (last) out.push("");
    } else {
      out.push(seg);
    }
  });
  return `/${out.join("/")}`;
}

/**
 * ConnectionManagerUtility::maybeNormalizePath, on the path without its query: escaped-slash handling first,
 * then normalize_path, then merge_slashes. REJECT_REQUEST answers 400; UNESCAPE_AND_REDIRECT answers 307.
 */
export function normalizeRequestPath(
  rawPath: string,
  opts: { readonly normalizePath: boolean; readonly mergeSlashes: boolean; readonly escapedSlashes: EscapedSlashesAction },
): PathNormalizationResult {
  const q = rawPath.indexOf("?");
  let path = q >= 0 ? rawPath.slice(0, q) : rawPath;
  const query = q >= 0 ? rawPath.slice(q) : "";
  if (/%2f|%5c/i.test(path)) {
    switch (opts.escapedSlashes) {
      case "KEEP_UNCHANGED":
        break;
      case "REJECT_REQUEST":
        return { kind: "reject" };
      case "UNESCAPE_AND_REDIRECT":
        return { kind: "redirect", path: path.replace(/%2f/gi, "/").replace(/%5c/gi, "\\") + query };
      case "UNESCAPE_AND_FORWARD":
        path = path.replace(/%2f/gi, "/").replace(/%5c/gi, "\\");
        break;
    }
  }
  if (opts.normalizePath) {
    const canonical = canonicalPath(path);
    if (canonical === null) return { kind: "reject" };
    path = canonical;
  }
  if (opts.mergeSlashes) path = path.replace(/\/{2,}/g, "/");
  return { kind: "continue", path: path + query };
}
