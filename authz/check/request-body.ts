/**
 * @module authz/check/request-body
 * Turns the body Envoy buffered into the Check (raw_body with pack_as_bytes, else body) into what policy `when`
 * expressions see as `object`, and says whether it is complete: a partial or unreadable body can never allow.
 */
import { parse as parseYaml } from "yaml";

export type RequestBodyState = "absent" | "complete" | "partial" | "unparseable";

export interface ParsedRequestBody {
  readonly state: RequestBodyState;
  /** The decoded body (JSON or YAML) or null when absent, partial or not decodable. */
  readonly object: unknown;
  /** The bytes as received, for fingerprints and masked previews. */
  readonly bytes: Buffer | undefined;
  /** Media type without parameters, lower-case. */
  readonly mediaType: string;
}

const JSON_MEDIA_TYPES = new Set([
  "application/json",
  "application/merge-patch+json",
  "application/strategic-merge-patch+json",
  "application/json-patch+json",
]);
const YAML_MEDIA_TYPES = new Set(["application/apply-patch+yaml", "application/yaml"]);

export function mediaTypeOf(contentType: string | undefined): string {
  return (contentType ?? "").split(";", 1)[0]?.trim().toLowerCase() ?? "";
}

function decode(mediaType: string, bytes: Buffer): { ok: true; value: unknown } | { ok: false } {
  try {
    if (JSON_MEDIA_TYPES.has(mediaType)) return { ok: true, value: JSON.parse(bytes.toString("utf8")) as unknown };
    if (YAML_MEDIA_TYPES.has(mediaType)) {
      // Aliases are how "billion laughs" documents blow up; Kubernetes manifests have no use for many of them.
      return { ok: true, value: parseYaml(bytes.toString("utf8"), { maxAliasCount: 16, strict: true }) as unknown };
    }
  } catch {
    return { ok: false };
  }
  return { ok: false };
}

/**
 * @param headers Envoy's lower-cased header map of the Check request.
 * @param body the UTF-8 `body` field (used when `raw_body` is empty).
 * @param rawBody the `raw_body` bytes (`pack_as_bytes: true`).
 */
export function parseRequestBody(headers: Readonly<Record<string, string>>, body: string, rawBody: Buffer | undefined): ParsedRequestBody {
  const mediaType = mediaTypeOf(headers["content-type"]);
  const bytes = rawBody && rawBody.length > 0 ? rawBody : body.length > 0 ? Buffer.from(body, "utf8") : undefined;
  const declaredLength = headers["content-length"] === undefined ? undefined : Number(headers["content-length"]);
  // Envoy marks a body cut at max_request_bytes; a Content-Length longer than what arrived means the same.
  const partial =
    headers["x-envoy-auth-partial-body"] === "true" ||
    (declaredLength !== undefined && Number.isFinite(declaredLength) && declaredLength > (bytes?.length ?? 0));
  if (bytes === undefined) {
    return { state: partial ? "partial" : "absent", object: null, bytes, mediaType };
  }
  if (partial) return { state: "partial", object: null, bytes, mediaType };
  const decoded = decode(mediaType, bytes);
  return decoded.ok
    ? { state: "complete", object: decoded.value, bytes, mediaType }
    : { state: "unparseable", object: null, bytes, mediaType };
}
