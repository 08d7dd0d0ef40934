/**
 * @module tap/mask/response-plan
 * The content-type policy: decides, from response headers and request attributes, whether a response
 * body is masked (and how), may skip processing (explicit config only), or is blocked (fail closed).
 */
import type { MaskConfig, SkipRule } from "./mask-config.js";
import { EmptyBodyMasker, JsonBodyMasker } from "./json-body-masker.js";
import { kindForResource } from "./mask-kube-object.js";
import type { BodyMasker, MaskErrorCode } from "./mask-result.js";
import { kubePathHints } from "./kube-path-hints.js";
import { TextStreamMasker } from "./text-stream-masker.js";
import { WatchStreamMasker } from "./watch-stream-masker.js";

/** Kubernetes request attributes as ext_authz reports them (all optional: metadata may be absent). */
export interface KubeRequestAttributes {
  readonly verb?: string | undefined;
  readonly apiGroup?: string | undefined;
  readonly resource?: string | undefined;
  readonly subresource?: string | undefined;
  readonly namespace?: string | undefined;
  readonly name?: string | undefined;
}

export interface ResponseDescription {
  readonly contentType: string | undefined;
  readonly contentEncoding: string | undefined;
  /** The raw request path including the query (`:path`). */
  readonly path: string | undefined;
  readonly kube?: KubeRequestAttributes | undefined;
}

export type BodyFraming = "json" | "watch" | "text" | "empty";

export type ResponsePlan =
  | { readonly action: "mask"; readonly framing: BodyFraming; readonly masker: BodyMasker }
  | { readonly action: "skip"; readonly reason: string }
  | { readonly action: "block"; readonly code: MaskErrorCode; readonly message: string };

/**
 * Resources whose bodies are always inspected, even if a skip rule matches: a skip rule is a speed
 * knob and must not become a way to read Secrets, Helm storage, tokens or certificates unmasked.
 */
const NEVER_SKIPPED = new Set(["secrets", "configmaps", "serviceaccounts/token", "certificatesigningrequests"]);

export function parseMediaType(contentType: string | undefined): { type: string; params: Map<string, string> } | undefined {
  if (contentType === undefined || contentType.trim() === "") return undefined;
  const [typePart, ...paramParts] = contentType.split(";");
  const params = new Map<string, string>();
  for (const part of paramParts) {
    const eq = part.indexOf("=");
    if (eq === -1) continue;
    params.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim().replace(/^"|"$/g, ""));
  }
  return { type: (typePart ?? "").trim().toLowerCase(), params };
}

/** `*` matches one path segment, `**` any number of characters; the query is ignored. */
export function pathGlobMatches(glob: string, path: string): boolean {
  const queryStart = path.indexOf("?");
  const bare = queryStart === -1 ? path : path.slice(0, queryStart);
  let source = "^";
  for (let i = 0; i < glob.length; i++) {
    const c = glob.charAt(i);
    if (c === "*" && glob.charAt(i + 1) === "*") {
      source += ".*";
      i++;
    } else if (c === "*") source += "[^/]*";
    else source += c.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`${source}$`).test(bare);
}

function resourceKey(resource: string | undefined, subresource: string | undefined): string | undefined {
  if (resource === undefined || resource === "") return undefined;
  return subresource ? `${resource}/${subresource}` : resource;
}

function skipRuleMatches(rule: SkipRule, description: ResponseDescription): boolean {
  if ("pathGlob" in rule) return description.path !== undefined && pathGlobMatches(rule.pathGlob, description.path);
  const kube = description.kube;
  const key = resourceKey(kube?.resource, kube?.subresource);
  if (key === undefined || kube?.verb === undefined) return false;
  return (rule.resource === key || rule.resource === "*") && (rule.verbs.includes(kube.verb) || rule.verbs.includes("*"));
}

/** Decides how to treat a response body. Pure; the returned masker is fresh for this response. */
export function planResponseMasking(description: ResponseDescription, config: MaskConfig): ResponsePlan {
  const hints = kubePathHints(description.path);
  const resource = description.kube?.resource ?? hints.resource;
  const subresource = description.kube?.subresource ?? hints.subresource;
  const key = resourceKey(resource, subresource);
  const hintedKey = resourceKey(hints.resource, hints.subresource);
  const protectedResource =
    (key !== undefined && NEVER_SKIPPED.has(key)) || (hintedKey !== undefined && NEVER_SKIPPED.has(hintedKey)) ||
    (resource !== undefined && NEVER_SKIPPED.has(resource)) || (hints.resource !== undefined && NEVER_SKIPPED.has(hints.resource));
  if (!protectedResource) {
    const rule = config.skipBodyFor.find((r) => skipRuleMatches(r, description));
    if (rule) return { action: "skip", reason: "pathGlob" in rule ? `skip rule ${rule.pathGlob}` : `skip rule ${rule.resource}` };
  }

  const encoding = description.contentEncoding?.trim().toLowerCase();
  if (encoding !== undefined && encoding !== "" && encoding !== "identity") {
    return { action: "block", code: "content_encoded", message: `response content-encoding "${encoding}" cannot be inspected` };
  }
  const media = parseMediaType(description.contentType);
  if (media === undefined) {
    return { action: "mask", framing: "empty", masker: new EmptyBodyMasker("a response body without a content-type cannot be inspected") };
  }
  const charset = media.params.get("charset")?.toLowerCase();
  if (charset !== undefined && charset !== "utf-8" && charset !== "utf8") {
    return { action: "block", code: "unsupported_content_type", message: `response charset "${charset}" cannot be inspected` };
  }
  const fallbackKind = kindForResource(resource, subresource);
  if (media.type === "application/json") {
    // kube-apiserver labels JSON watch streams plain application/json; the request says it is a watch.
    const isWatch = media.params.get("stream") === "watch" || description.kube?.verb === "watch" || hints.isWatch;
    if (isWatch) return { action: "mask", framing: "watch", masker: new WatchStreamMasker(config, fallbackKind) };
    return { action: "mask", framing: "json", masker: new JsonBodyMasker(config, fallbackKind) };
  }
  if (media.type === "text/plain") return { action: "mask", framing: "text", masker: new TextStreamMasker(config) };
  return {
    action: "block",
    code: "unsupported_content_type",
    message: `response content-type "${media.type}" cannot be inspected; request application/json`,
  };
}
