/**
 * @module authz/kube/request-attributes
 * Kubernetes request attributes from the method, raw `:path` and headers of an Envoy Check, computed rule for rule
 * like kube-apiserver's RequestInfoFactory (k8s.io/apiserver pkg/endpoints/request/requestinfo.go), plus Airlock's
 * "exec/attach/portforward are create" rule.
 */
import { decideListQuery } from "./list-options.js";
import { parseRequestUrl } from "./request-url.js";
import type { RequestUrlErrorCode } from "./request-url.js";

export interface KubeRequestAttributes {
  /** Effective verb for policy: `kubeVerb`, except that Airlock makes connect-style subresources `create`. */
  readonly verb: string;
  /** Exactly what kube-apiserver's RequestInfo computes. */
  readonly kubeVerb: string;
  readonly resourceRequest: boolean;
  /** "api" | "apis" | "" (non-resource). */
  readonly apiPrefix: string;
  /** "" for the core group. */
  readonly apiGroup: string;
  readonly apiVersion: string;
  readonly namespace: string;
  readonly resource: string;
  readonly subresource: string;
  readonly name: string;
  /** RequestInfo.Parts: `resource/name/subresource/...` after the namespace; empty for non-resource requests. */
  readonly parts: readonly string[];
  /** Percent-decoded path without the query (Go's `URL.Path`). */
  readonly path: string;
  /** Exactly as received (Envoy sends the raw undecoded `:path` with query). */
  readonly rawPath: string;
  /** Decoded query parameters, values in arrival order (null-prototype, frozen). */
  readonly query: Readonly<Record<string, readonly string[]>>;
  /** Raw first `fieldSelector`, recorded for list/watch/deletecollection as kube does (not for path-prefix verbs). */
  readonly fieldSelector: string;
  /** Raw first `labelSelector`, recorded like `fieldSelector`. */
  readonly labelSelector: string;
  /** kube's BasicLongRunningRequestCheck: watch/proxy verbs; attach/exec/proxy/log/portforward subresources. */
  readonly longRunning: boolean;
  /** An HTTP upgrade as Envoy performs it: `Connection` lists `upgrade` and `Upgrade` is set (WebSocket, SPDY/3.1). */
  readonly upgrade: boolean;
}

/**
 * Closed set of reasons a request cannot be attributed; each one denies.
 * - `UNSUPPORTED_METHOD`: not GET/HEAD/POST/PUT/PATCH/DELETE (kube would compute the empty verb, which no policy may
 *   match; Pinniped denies it for the same reason).
 * - `MALFORMED_PATH` / `MALFORMED_QUERY` / `REQUEST_TARGET_TOO_LONG`: see {@link RequestUrlErrorCode}.
 * - `INCOMPLETE_RESOURCE_PATH`: a `watch`/`proxy` path verb with nothing after it (kube answers 500).
 * - `PSEUDO_HEADER_MISMATCH`: `:method`/`:path` in the headers disagree with the method/path given.
 */
export type KubeRequestErrorCode =
  | "UNSUPPORTED_METHOD"
  | RequestUrlErrorCode
  | "INCOMPLETE_RESOURCE_PATH"
  | "PSEUDO_HEADER_MISMATCH";

export type ParseKubeRequestResult =
  | { readonly ok: true; readonly attributes: KubeRequestAttributes }
  | { readonly ok: false; readonly code: KubeRequestErrorCode; readonly message: string };

const EMPTY_PARTS: readonly string[] = Object.freeze([]);

/** requestinfo.go's method → verb table; anything else is refused rather than given kube's empty verb. */
function methodVerb(method: string): string | undefined {
  switch (method) {
    case "GET":
    case "HEAD":
      return "get";
    case "POST":
      return "create";
    case "PUT":
      return "update";
    case "PATCH":
      return "patch";
    case "DELETE":
      return "delete";
    default:
      return undefined;
  }
}

/** kube's `BasicLongRunningRequestCheck(sets.NewString("watch","proxy"), sets.NewString("attach","exec","proxy","log","portforward"))`. */
function isLongRunningSubresource(subresource: string): boolean {
  return subresource === "attach" || subresource === "exec" || subresource === "proxy" || subresource === "log" || subresource === "portforward";
}

/** Subresources that open an interactive stream into a pod; kube ≥ 1.35 also checks `create` for their WebSocket GETs. */
function isPodConnectSubresource(subresource: string): boolean {
  return subresource === "exec" || subresource === "attach" || subresource === "portforward";
}

/** Case-insensitive search for the ASCII token text `upgrade`, the way client-go's `httpstream.IsUpgradeRequest` looks. */
function mentionsUpgrade(connection: string | undefined): boolean {
  return connection !== undefined && connection.length >= 7 && connection.toLowerCase().includes("upgrade");
}

function hasUpgradeToken(connection: string | undefined): boolean {
  if (connection === undefined) return false;
  for (const token of connection.split(",")) {
    if (token.trim().toLowerCase() === "upgrade") return true;
  }
  return false;
}

function fail(code: KubeRequestErrorCode, message: string): ParseKubeRequestResult {
  return { ok: false, code, message };
}

/**
 * Parses the request as kube-apiserver's RequestInfoFactory (APIPrefixes api/apis, GrouplessAPIPrefixes api) would,
 * after decoding the path like Go's `url.ParseRequestURI` (see request-url for the stricter refusals). `headers` is
 * Envoy's map: lower-case keys, pseudo-headers included.
 *
 * Airlock's rules on top (only `verb` changes; `kubeVerb` stays kube's):
 * - `pods/exec`, `pods/attach`, `pods/portforward` are `create` whatever the method: WebSocket exec is a GET, and
 *   `get pods/exec` was enough to exec before kube 1.35's AuthorizePodWebsocketUpgradeCreatePermission.
 * - An upgrade (WebSocket/SPDY) through a `proxy` subresource (`nodes/proxy`, `pods/proxy`, `services/proxy`) is
 *   `create`: over `nodes/proxy` it reaches the kubelet's own exec/attach/portforward endpoints.
 */
export function parseKubeRequest(method: string, rawPath: string, headers: Readonly<Record<string, string>>): ParseKubeRequestResult {
  const verbFromMethod = methodVerb(method);
  if (verbFromMethod === undefined) return fail("UNSUPPORTED_METHOD", "unsupported HTTP method");
  const pseudoMethod = headers[":method"];
  const pseudoPath = headers[":path"];
  if ((pseudoMethod !== undefined && pseudoMethod !== method) || (pseudoPath !== undefined && pseudoPath !== rawPath)) {
    return fail("PSEUDO_HEADER_MISMATCH", ":method or :path header disagrees with the request");
  }

  const parsedUrl = parseRequestUrl(rawPath);
  if (!parsedUrl.ok) return parsedUrl;
  const { path, segments, query, parameterCount } = parsedUrl.url;

  const connection = headers.connection;
  const upgradeHeader = headers.upgrade;
  const upgrade = hasUpgradeToken(connection) && upgradeHeader !== undefined && upgradeHeader.trim() !== "";

  // Start as a non-resource request until proven otherwise (verb = lower-case method).
  let apiPrefix = "";
  let apiGroup = "";
  let index = 0;
  const segmentCount = segments.length;
  let isResource = false;
  if (segmentCount >= 3) {
    const prefix = segments[0];
    if (prefix === "api") {
      apiPrefix = prefix;
      index = 1;
      isResource = true;
    } else if (prefix === "apis" && segmentCount >= 4) {
      // One part (the prefix) is consumed, so "do we have four parts?": /apis/{group}/{version}/{resource}.
      apiPrefix = prefix;
      apiGroup = segments[1] ?? "";
      index = 2;
      isResource = true;
    }
  }

  if (!isResource) {
    const verb = method.toLowerCase();
    return {
      ok: true,
      attributes: Object.freeze({
        verb,
        kubeVerb: verb,
        resourceRequest: false,
        apiPrefix: "",
        apiGroup: "",
        apiVersion: "",
        namespace: "",
        resource: "",
        subresource: "",
        name: "",
        parts: EMPTY_PARTS,
        path,
        rawPath,
        query,
        fieldSelector: "",
        labelSelector: "",
        longRunning: path.startsWith("/debug/pprof/"),
        upgrade,
      }),
    };
  }

  const apiVersion = segments[index++] ?? "";
  // At least one segment remains: 3 segments for /api, 4 for /apis.
  let kubeVerb: string;
  let verbViaPathPrefix = false;
  const first = segments[index];
  if (first === "watch" || first === "proxy") {
    if (segmentCount - index < 2) {
      return fail("INCOMPLETE_RESOURCE_PATH", "unable to determine kind and namespace from url");
    }
    kubeVerb = first;
    index++;
    verbViaPathPrefix = true;
  } else {
    kubeVerb = verbFromMethod;
  }

  // /namespaces/{namespace}/{resource}/...: parts become relative to the resource, unless what follows the
  // namespace is one of its own subresources (status, finalize).
  let namespace = "";
  if (segments[index] === "namespaces" && segmentCount - index > 1) {
    namespace = segments[index + 1] ?? "";
    if (segmentCount - index > 2) {
      const next = segments[index + 2];
      if (next !== "status" && next !== "finalize") index += 2;
    }
  }

  const parts = index === 0 ? segments : Object.freeze(segments.slice(index));
  const partCount = parts.length;
  let subresource = "";
  let name = "";
  // Parts: resource/name/subresource/other/stuff; the proxy path verb never has a subresource.
  if (partCount >= 3 && kubeVerb !== "proxy") subresource = parts[2] ?? "";
  if (partCount >= 2) name = parts[1] ?? "";
  const resource = parts[0] ?? "";

  if (name === "" && kubeVerb === "get") {
    const decision = decideListQuery(query, parameterCount);
    kubeVerb = decision.watch ? "watch" : "list";
    name = decision.name;
  }
  if (name === "" && kubeVerb === "delete") kubeVerb = "deletecollection";

  // Selectors are recorded only for the collection verbs, and not for the deprecated path-prefix verbs (their
  // single-object and multi-object endpoints don't support selectors consistently).
  let fieldSelector = "";
  let labelSelector = "";
  if (!verbViaPathPrefix && (kubeVerb === "list" || kubeVerb === "watch" || kubeVerb === "deletecollection")) {
    fieldSelector = query.fieldSelector?.[0] ?? "";
    labelSelector = query.labelSelector?.[0] ?? "";
  }

  let verb = kubeVerb;
  if (resource === "pods" && isPodConnectSubresource(subresource)) {
    verb = "create";
  } else if (subresource === "proxy" && (upgrade || mentionsUpgrade(connection))) {
    verb = "create";
  }

  return {
    ok: true,
    attributes: Object.freeze({
      verb,
      kubeVerb,
      resourceRequest: true,
      apiPrefix,
      apiGroup,
      apiVersion,
      namespace,
      resource,
      subresource,
      name,
      parts,
      path,
      rawPath,
      query,
      fieldSelector,
      labelSelector,
      longRunning: kubeVerb === "watch" || kubeVerb === "proxy" || isLongRunningSubresource(subresource),
      upgrade,
    }),
  };
}
