/**
 * @module tap/mask/kube-path-hints
 * Hints from a Kubernetes API request path for choosing how to mask a response (watch framing, log
 * text, kind of kind-less objects). Never used to grant anything: authorization is ext_authz's job.
 */

export interface KubePathHints {
  readonly resource: string | undefined;
  readonly subresource: string | undefined;
  /** `watch=true|1` (any value but false/0, as kube-apiserver reads it) or the legacy `/watch/` segment. */
  readonly isWatch: boolean;
}

/** Parses `/api/v1/namespaces/ns/pods/p/log?follow=true` style paths; non-resource paths give no resource. */
export function kubePathHints(path: string | undefined): KubePathHints {
  if (path === undefined || path === "") return { resource: undefined, subresource: undefined, isWatch: false };
  const queryStart = path.indexOf("?");
  const rawPath = queryStart === -1 ? path : path.slice(0, queryStart);
  const query = queryStart === -1 ? "" : path.slice(queryStart + 1);
  let isWatch = false;
  for (const pair of query.split("&")) {
    const eq = pair.indexOf("=");
    const key = safeDecode(eq === -1 ? pair : pair.slice(0, eq));
    if (key !== "watch") continue;
    const value = eq === -1 ? "" : safeDecode(pair.slice(eq + 1));
    // kube-apiserver: a present watch parameter is true unless it parses as false ("false", "0").
    isWatch = !["false", "0", "f", "False", "FALSE"].includes(value);
  }
  const segments = rawPath.split("/").filter((s) => s !== "").map(safeDecode);
  let rest: string[];
  if (segments[0] === "api" && segments.length >= 2) rest = segments.slice(2);
  else if (segments[0] === "apis" && segments.length >= 3) rest = segments.slice(3);
  else return { resource: undefined, subresource: undefined, isWatch };
  if (rest[0] === "watch") {
    isWatch = true;
    rest = rest.slice(1);
  }
  if (rest[0] === "namespaces" && rest.length >= 3 && rest[2] !== "status" && rest[2] !== "finalize") rest = rest.slice(2);
  return { resource: rest[0], subresource: rest[2], isWatch };
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
