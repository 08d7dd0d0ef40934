/**
 * @module test/unit/authz/kube/request-attributes
 * Table-driven tests of parseKubeRequest against kube-apiserver's RequestInfoFactory (requestinfo.go and its
 * requestinfo_test.go at k8s.io/apiserver 24a394e5), plus Airlock's own rules and refusals.
 */
import { describe, expect, it } from "vitest";
import { parseKubeRequest } from "../../../../authz/kube/request-attributes.js";
import type { KubeRequestAttributes, KubeRequestErrorCode } from "../../../../authz/kube/request-attributes.js";

type Expected = Partial<Omit<KubeRequestAttributes, "parts" | "query">> & { readonly parts?: readonly string[] };

interface Case {
  readonly method: string;
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly expect: Expected;
}

interface ErrorCase {
  readonly method: string;
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly code: KubeRequestErrorCode;
}

const WEBSOCKET: Readonly<Record<string, string>> = {
  connection: "Upgrade",
  upgrade: "websocket",
  "sec-websocket-protocol": "v5.channel.k8s.io",
};
const SPDY: Readonly<Record<string, string>> = {
  connection: "Upgrade",
  upgrade: "SPDY/3.1",
  "x-stream-protocol-version": "v4.channel.k8s.io",
};

function attributes(method: string, url: string, headers: Readonly<Record<string, string>> = {}): KubeRequestAttributes {
  const result = parseKubeRequest(method, url, headers);
  if (!result.ok) throw new Error(`expected ${method} ${url} to parse, got ${result.code}: ${result.message}`);
  return result.attributes;
}

function check(c: Case): void {
  const a = attributes(c.method, c.url, c.headers);
  const { parts, ...rest } = c.expect;
  expect(a).toMatchObject(rest);
  if (parts !== undefined) expect(a.parts).toEqual(parts);
  expect(a.rawPath).toBe(c.url);
}

/** Shorthand for a resource request expectation: [verb, apiPrefix, group, version, namespace, resource, subresource, name, parts]. */
function r(
  kubeVerb: string,
  apiPrefix: string,
  apiGroup: string,
  apiVersion: string,
  namespace: string,
  resource: string,
  subresource: string,
  name: string,
  parts: readonly string[],
): Expected {
  return { resourceRequest: true, kubeVerb, verb: kubeVerb, apiPrefix, apiGroup, apiVersion, namespace, resource, subresource, name, parts };
}

describe("resource paths", () => {
  // mirrors requestinfo_test.go TestGetAPIRequestInfo successCases, verbatim (Airlock's verb equals kubeVerb here).
  // One deliberate difference: kube's table says APIPrefix "api" for /apis/extensions/... but never asserts it;
  // requestinfo.go sets APIPrefix to the first segment, "apis", which is what we expect.
  const cases: Case[] = [
    { method: "GET", url: "/api/v1/namespaces", expect: r("list", "api", "", "v1", "", "namespaces", "", "", ["namespaces"]) },
    { method: "GET", url: "/api/v1/namespaces/other", expect: r("get", "api", "", "v1", "other", "namespaces", "", "other", ["namespaces", "other"]) },
    { method: "GET", url: "/api/v1/namespaces/other/pods", expect: r("list", "api", "", "v1", "other", "pods", "", "", ["pods"]) },
    { method: "GET", url: "/api/v1/namespaces/other/pods/foo", expect: r("get", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo"]) },
    { method: "HEAD", url: "/api/v1/namespaces/other/pods/foo", expect: r("get", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo"]) },
    { method: "GET", url: "/api/v1/pods", expect: r("list", "api", "", "v1", "", "pods", "", "", ["pods"]) },
    { method: "HEAD", url: "/api/v1/pods", expect: r("list", "api", "", "v1", "", "pods", "", "", ["pods"]) },
    // special verbs
    { method: "GET", url: "/api/v1/proxy/namespaces/other/pods/foo", expect: r("proxy", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo"]) },
    {
      method: "GET",
      url: "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource",
      expect: r("proxy", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo", "subpath", "not", "a", "subresource"]),
    },
    { method: "GET", url: "/api/v1/watch/pods", expect: r("watch", "api", "", "v1", "", "pods", "", "", ["pods"]) },
    { method: "GET", url: "/api/v1/pods?watch=true", expect: r("watch", "api", "", "v1", "", "pods", "", "", ["pods"]) },
    { method: "GET", url: "/api/v1/pods?watch=false", expect: r("list", "api", "", "v1", "", "pods", "", "", ["pods"]) },
    { method: "GET", url: "/api/v1/watch/namespaces/other/pods", expect: r("watch", "api", "", "v1", "other", "pods", "", "", ["pods"]) },
    { method: "GET", url: "/api/v1/namespaces/other/pods?watch=1", expect: r("watch", "api", "", "v1", "other", "pods", "", "", ["pods"]) },
    { method: "GET", url: "/api/v1/namespaces/other/pods?watch=0", expect: r("list", "api", "", "v1", "other", "pods", "", "", ["pods"]) },
    // subresource identification
    {
      method: "GET",
      url: "/api/v1/namespaces/other/pods/foo/status",
      expect: r("get", "api", "", "v1", "other", "pods", "status", "foo", ["pods", "foo", "status"]),
    },
    {
      method: "GET",
      url: "/api/v1/namespaces/other/pods/foo/proxy/subpath",
      expect: r("get", "api", "", "v1", "other", "pods", "proxy", "foo", ["pods", "foo", "proxy", "subpath"]),
    },
    {
      method: "PUT",
      url: "/api/v1/namespaces/other/finalize",
      expect: r("update", "api", "", "v1", "other", "namespaces", "finalize", "other", ["namespaces", "other", "finalize"]),
    },
    {
      method: "PUT",
      url: "/api/v1/namespaces/other/status",
      expect: r("update", "api", "", "v1", "other", "namespaces", "status", "other", ["namespaces", "other", "status"]),
    },
    // verb identification
    { method: "PATCH", url: "/api/v1/namespaces/other/pods/foo", expect: r("patch", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo"]) },
    { method: "DELETE", url: "/api/v1/namespaces/other/pods/foo", expect: r("delete", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo"]) },
    { method: "POST", url: "/api/v1/namespaces/other/pods", expect: r("create", "api", "", "v1", "other", "pods", "", "", ["pods"]) },
    // deletecollection verb identification
    { method: "DELETE", url: "/api/v1/nodes", expect: r("deletecollection", "api", "", "v1", "", "nodes", "", "", ["nodes"]) },
    { method: "DELETE", url: "/api/v1/namespaces", expect: r("deletecollection", "api", "", "v1", "", "namespaces", "", "", ["namespaces"]) },
    { method: "DELETE", url: "/api/v1/namespaces/other/pods", expect: r("deletecollection", "api", "", "v1", "other", "pods", "", "", ["pods"]) },
    {
      method: "DELETE",
      url: "/apis/extensions/v1/namespaces/other/pods",
      expect: r("deletecollection", "apis", "extensions", "v1", "other", "pods", "", "", ["pods"]),
    },
    // api group identification
    { method: "POST", url: "/apis/extensions/v1/namespaces/other/pods", expect: r("create", "apis", "extensions", "v1", "other", "pods", "", "", ["pods"]) },
    // api version identification
    {
      method: "POST",
      url: "/apis/extensions/v1beta3/namespaces/other/pods",
      expect: r("create", "apis", "extensions", "v1beta3", "other", "pods", "", "", ["pods"]),
    },
  ];
  it.each(cases)("$method $url", check);
});

describe("non-resource requests", () => {
  // mirrors requestinfo_test.go TestGetAPIRequestInfo errorCases and TestGetNonAPIRequestInfo: fewer than 3 segments
  // (4 under /apis) or an unknown prefix is a non-resource request whose verb is the lower-cased HTTP method.
  const nonResource = (verb: string, path: string): Expected => ({
    resourceRequest: false,
    verb,
    kubeVerb: verb,
    apiPrefix: "",
    apiGroup: "",
    apiVersion: "",
    namespace: "",
    resource: "",
    subresource: "",
    name: "",
    parts: [],
    path,
  });
  const cases: Case[] = [
    { method: "GET", url: "/", expect: nonResource("get", "/") },
    { method: "GET", url: "/api/version/", expect: nonResource("get", "/api/version/") },
    { method: "GET", url: "/apis/group/version/", expect: nonResource("get", "/apis/group/version/") },
    { method: "GET", url: "/badprefix/version/resource", expect: nonResource("get", "/badprefix/version/resource") },
    { method: "GET", url: "/apis/version/resource", expect: nonResource("get", "/apis/version/resource") },
    { method: "GET", url: "/not-api/version/resource", expect: nonResource("get", "/not-api/version/resource") },
    { method: "GET", url: "/apis/extensions/v1beta1", expect: nonResource("get", "/apis/extensions/v1beta1") },
    { method: "GET", url: "/apis/extensions/v1beta1/", expect: nonResource("get", "/apis/extensions/v1beta1/") },
    { method: "GET", url: "/api/version", expect: nonResource("get", "/api/version") },
    { method: "GET", url: "/api", expect: nonResource("get", "/api") },
    // the discovery and health endpoints kubectl and controllers use
    { method: "GET", url: "/healthz", expect: nonResource("get", "/healthz") },
    { method: "GET", url: "/livez?verbose", expect: nonResource("get", "/livez") },
    { method: "GET", url: "/readyz/etcd", expect: nonResource("get", "/readyz/etcd") },
    { method: "GET", url: "/version", expect: nonResource("get", "/version") },
    { method: "GET", url: "/openapi/v3", expect: nonResource("get", "/openapi/v3") },
    { method: "GET", url: "/openapi/v3/apis/apps/v1?hash=ABC123", expect: nonResource("get", "/openapi/v3/apis/apps/v1") },
    { method: "GET", url: "/openapi/v2", expect: nonResource("get", "/openapi/v2") },
    { method: "GET", url: "/apis", expect: nonResource("get", "/apis") },
    { method: "GET", url: "/apis/apps", expect: nonResource("get", "/apis/apps") },
    { method: "GET", url: "/apis/apps/v1", expect: nonResource("get", "/apis/apps/v1") },
    { method: "GET", url: "/api/v1", expect: nonResource("get", "/api/v1") },
    { method: "GET", url: "/.well-known/openid-configuration", expect: nonResource("get", "/.well-known/openid-configuration") },
    { method: "GET", url: "/metrics", expect: nonResource("get", "/metrics") },
    { method: "POST", url: "/healthz", expect: nonResource("post", "/healthz") },
    { method: "HEAD", url: "/version", expect: nonResource("head", "/version") },
    { method: "DELETE", url: "/logs/kube.log", expect: nonResource("delete", "/logs/kube.log") },
  ];
  it.each(cases)("$method $url", check);

  // mirrors longrunning.go BasicLongRunningRequestCheck: non-resource /debug/pprof/ requests are long-running.
  it("marks /debug/pprof/ as long-running and nothing else non-resource", () => {
    expect(attributes("GET", "/debug/pprof/profile?seconds=30").longRunning).toBe(true);
    expect(attributes("GET", "/debug/pprof").longRunning).toBe(false);
    expect(attributes("GET", "/healthz").longRunning).toBe(false);
  });
});

describe("resource or not", () => {
  // mirrors requestinfo_test.go TestGetNonAPIRequestInfo, verbatim. Its "empty" case (URL "") is refused instead:
  // Envoy never sends an empty :path, and a request target must be origin-form (see "refusals").
  it.each([
    ["/api/version/resource", true],
    ["/apis/group/version/resource/name/subresource", true],
    ["/api/version/resource/name/subresource", true],
    ["/apis/batch/v1/job", true],
    ["/apis/batch/v1/job/foo", true],
    ["/apis/batch/v1/job/foo/scale", true],
    ["/not-api/version/resource", false],
    ["/apis/extensions/v1beta1", false],
    ["/apis/extensions/v1beta1/", false],
    ["/api/version", false],
    ["/api", false],
    ["/", false],
  ] as const)("GET %s → resourceRequest %s", (url, resourceRequest) => {
    expect(attributes("GET", url).resourceRequest).toBe(resourceRequest);
  });

  it("splits resource/name/subresource for the groupless and grouped forms", () => {
    expect(attributes("GET", "/apis/group/version/resource/name/subresource")).toMatchObject({
      apiGroup: "group",
      apiVersion: "version",
      resource: "resource",
      name: "name",
      subresource: "subresource",
      kubeVerb: "get",
    });
    expect(attributes("GET", "/apis/batch/v1/job/foo/scale")).toMatchObject({ apiGroup: "batch", resource: "job", name: "foo", subresource: "scale" });
  });
});

describe("namespaces and their subresources", () => {
  // mirrors requestinfo.go: namespaceSubresources = {status, finalize}; anything else after /namespaces/{ns} is a
  // namespaced resource and the parts shift to it.
  const cases: Case[] = [
    { method: "DELETE", url: "/api/v1/namespaces/other", expect: r("delete", "api", "", "v1", "other", "namespaces", "", "other", ["namespaces", "other"]) },
    { method: "GET", url: "/api/v1/namespaces/other/status", expect: r("get", "api", "", "v1", "other", "namespaces", "status", "other", ["namespaces", "other", "status"]) },
    { method: "PATCH", url: "/api/v1/namespaces/other/status", expect: r("patch", "api", "", "v1", "other", "namespaces", "status", "other", ["namespaces", "other", "status"]) },
    // "status" as a namespace name: two parts, no shift
    { method: "GET", url: "/api/v1/namespaces/status", expect: r("get", "api", "", "v1", "status", "namespaces", "", "status", ["namespaces", "status"]) },
    { method: "GET", url: "/api/v1/namespaces/other/configmaps", expect: r("list", "api", "", "v1", "other", "configmaps", "", "", ["configmaps"]) },
    {
      method: "GET",
      url: "/api/v1/namespaces/other/pods/foo/status/extra",
      expect: r("get", "api", "", "v1", "other", "pods", "status", "foo", ["pods", "foo", "status", "extra"]),
    },
    {
      method: "PUT",
      url: "/apis/apps/v1/namespaces/prod/deployments/web/scale",
      expect: r("update", "apis", "apps", "v1", "prod", "deployments", "scale", "web", ["deployments", "web", "scale"]),
    },
    { method: "POST", url: "/api/v1/namespaces", expect: r("create", "api", "", "v1", "", "namespaces", "", "", ["namespaces"]) },
    { method: "GET", url: "/api/v1/nodes/node-1", expect: r("get", "api", "", "v1", "", "nodes", "", "node-1", ["nodes", "node-1"]) },
    { method: "GET", url: "/api/v1/pods/", expect: r("list", "api", "", "v1", "", "pods", "", "", ["pods"]) },
  ];
  it.each(cases)("$method $url", check);
});

describe("watch and list from the query", () => {
  // mirrors requestinfo.go: a name-less get becomes watch when ListOptions.Watch decodes true
  // (runtime.Convert_Slice_string_To_bool: only "0" and EqualFold "false" are false, the empty string is true),
  // else list; only the first value counts.
  const w = (url: string, kubeVerb: string): Case => ({ method: "GET", url, expect: { kubeVerb, verb: kubeVerb } });
  const cases: Case[] = [
    w("/api/v1/pods?watch=TRUE", "watch"),
    w("/api/v1/pods?watch=yes", "watch"),
    w("/api/v1/pods?watch=", "watch"),
    w("/api/v1/pods?watch", "watch"),
    w("/api/v1/pods?watch=False", "list"),
    w("/api/v1/pods?watch=FALSE", "list"),
    w("/api/v1/pods?watch=false&watch=true", "list"),
    w("/api/v1/pods?watch=true&watch=false", "watch"),
    w("/api/v1/pods?resourceVersion=0&limit=500", "list"),
    w("/api/v1/pods?allowWatchBookmarks=true&resourceVersion=123&timeoutSeconds=300&watch=true", "watch"),
    w("/apis/apps/v1/namespaces/prod/deployments?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan", "watch"),
    // the deprecated path-prefix watch of a single object keeps its name and is never list
    { method: "GET", url: "/api/v1/watch/namespaces/other/pods/foo", expect: r("watch", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo"]) },
    // a named get stays get whatever the query says
    w("/api/v1/namespaces/other/pods/foo?watch=true", "get"),
    // Go's EqualFold folds U+017F to "s": "falſe" decodes false when ListOptions decode...
    w("/api/v1/pods?watch=fal%C5%BFe", "list"),
    // ...but the decode-failure fallback lower-cases and compares, so with an invalid label selector it is true.
    w("/api/v1/pods?watch=fal%C5%BFe&labelSelector=a+b", "watch"),
    // a decode failure still honours a true watch
    w("/api/v1/pods?watch=true&limit=ten", "watch"),
  ];
  it.each(cases)("$method $url", check);

  it("marks watch (via query or path prefix) as long-running and list as not", () => {
    expect(attributes("GET", "/api/v1/pods?watch=1").longRunning).toBe(true);
    expect(attributes("GET", "/api/v1/watch/pods").longRunning).toBe(true);
    expect(attributes("GET", "/api/v1/pods").longRunning).toBe(false);
    expect(attributes("GET", "/api/v1/namespaces/a/pods/b").longRunning).toBe(false);
  });
});

describe("field and label selectors", () => {
  // mirrors requestinfo_test.go TestSelectorParsing, verbatim.
  const s = (method: string, url: string, kubeVerb: string, name: string, fieldSelector: string, labelSelector: string): Case => ({
    method,
    url,
    expect: { kubeVerb, name, fieldSelector, labelSelector },
  });
  const kubeCases: Case[] = [
    s("GET", "/apis/group/version/resource", "list", "", "", ""),
    s("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1", "list", "name1", "metadata.name=name1", ""),
    s("GET", "/apis/group/version/resource?watch=true&fieldSelector=metadata.name=name1", "watch", "name1", "metadata.name=name1", ""),
    s("GET", "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux", "list", "", "foo=bar", "baz=qux"),
    s("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo", "list", "", "metadata.name=name1,foo", ""),
    s("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=true", "watch", "", "metadata.name=name1,foo", ""),
    s("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=false", "list", "", "metadata.name=name1,foo", ""),
    s("DELETE", "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux", "deletecollection", "", "foo=bar", "baz=qux"),
    s(
      "GET",
      "/apis/group/version/resource?fieldSelector=metadata.name=foo&fieldSelector=metadata.name=bar&labelSelector=foo=bar&labelSelector=foo=baz",
      "list",
      "foo",
      "metadata.name=foo",
      "foo=bar",
    ),
    s("GET", "/apis/group/version/resource/name?fieldSelector=foo=bar&labelSelector=foo=bar", "get", "name", "", ""),
    s("GET", "/apis/group/version/watch/resource?fieldSelector=metadata.name=foo&labelSelector=foo=bar", "watch", "", "", ""),
    s("GET", "/apis/group/version/watch/resource/name?fieldSelector=metadata.name=foo&labelSelector=foo=bar", "watch", "name", "", ""),
  ];
  it.each(kubeCases)("kube: $method $url", check);

  // mirrors fields.ParseSelector + RequiresExactMatch("metadata.name") + content.IsPathSegmentName, and
  // labels.Parse / strconv.ParseInt failures that make the ListOptions decode (and so the name) fail.
  const ourCases: Case[] = [
    // what `kubectl get pod foo -w` sends
    s("GET", "/api/v1/namespaces/ns/pods?fieldSelector=metadata.name%3Dfoo&watch=true", "watch", "foo", "metadata.name=foo", ""),
    s("GET", "/api/v1/pods?fieldSelector=metadata.name%3D%3Dfoo", "list", "foo", "metadata.name==foo", ""),
    s("GET", "/api/v1/pods?fieldSelector=metadata.name!%3Dfoo", "list", "", "metadata.name!=foo", ""),
    s("GET", "/api/v1/pods?fieldSelector=status.phase%3DRunning,metadata.name%3Dfoo", "list", "foo", "status.phase=Running,metadata.name=foo", ""),
    // terms are sorted before the first metadata.name match is taken
    s("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dzed,metadata.name%3Dabc", "list", "abc", "metadata.name=zed,metadata.name=abc", ""),
    // escaped comma is data; the unescaped value is the name
    s("GET", "/api/v1/pods?fieldSelector=metadata.name%3Da%5C,b", "list", "a,b", "metadata.name=a\\,b", ""),
    // names that are not valid path segments are not taken
    s("GET", "/api/v1/pods?fieldSelector=metadata.name%3D..", "list", "", "metadata.name=..", ""),
    s("GET", "/api/v1/pods?fieldSelector=metadata.name%3Da%2Fb", "list", "", "metadata.name=a/b", ""),
    s("GET", "/api/v1/pods?fieldSelector=metadata.name%3Da%25b", "list", "", "metadata.name=a%b", ""),
    // an invalid field selector term anywhere fails the decode
    s("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dfoo,bogus", "list", "", "metadata.name=foo,bogus", ""),
    s("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dfoo%5C", "list", "", "metadata.name=foo\\", ""),
    // label selectors: valid ones keep the name, invalid ones drop it
    s("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dfoo&labelSelector=app+in+(a,b),!legacy,tier%3Dweb", "list", "foo", "metadata.name=foo", "app in (a,b),!legacy,tier=web"),
    s("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dfoo&labelSelector=example.com/app+notin+()", "list", "foo", "metadata.name=foo", "example.com/app notin ()"),
    s("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dfoo&labelSelector=gen%3E5", "list", "foo", "metadata.name=foo", "gen>5"),
    s("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dfoo&labelSelector=gen%3Efive", "list", "", "metadata.name=foo", "gen>five"),
    s("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dfoo&labelSelector=Example.com/app", "list", "", "metadata.name=foo", "Example.com/app"),
    s("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dfoo&labelSelector=a+b", "list", "", "metadata.name=foo", "a b"),
    // non-int64 limit / timeoutSeconds fail the decode; an empty limit is not an int either
    s("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dfoo&limit=500", "list", "foo", "metadata.name=foo", ""),
    s("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dfoo&limit=", "list", "", "metadata.name=foo", ""),
    s("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dfoo&timeoutSeconds=9223372036854775808&watch=1", "watch", "", "metadata.name=foo", ""),
    // deletecollection never takes a name from the selector (only the get branch does), but records the selectors
    s("DELETE", "/api/v1/namespaces/ns/pods?fieldSelector=metadata.name%3Dfoo", "deletecollection", "", "metadata.name=foo", ""),
    // selectors are not recorded for named verbs
    s("DELETE", "/api/v1/namespaces/ns/pods/foo?labelSelector=a%3Db", "delete", "foo", "", ""),
  ];
  it.each(ourCases)("$method $url", check);
});

describe("exec, attach and port-forward are create-class", () => {
  // Airlock rule over kube's RequestInfo: WebSocket upgrades are GET (kubectl >= 1.31, KEP-4006), SPDY is POST; both
  // are create for policy, as kube 1.35's AuthorizePodWebsocketUpgradeCreatePermission adds a create check.
  // kubeVerb keeps what requestinfo.go computes.
  const x = (method: string, url: string, headers: Readonly<Record<string, string>>, kubeVerb: string, subresource: string, upgrade: boolean): Case => ({
    method,
    url,
    headers,
    expect: { verb: "create", kubeVerb, resource: "pods", subresource, name: "web-0", namespace: "prod", longRunning: true, upgrade },
  });
  const cases: Case[] = [
    x("GET", "/api/v1/namespaces/prod/pods/web-0/exec?command=sh&stdin=true&stdout=true&tty=true", WEBSOCKET, "get", "exec", true),
    x("POST", "/api/v1/namespaces/prod/pods/web-0/exec?command=sh&stdin=true&stdout=true&tty=true", SPDY, "create", "exec", true),
    x("GET", "/api/v1/namespaces/prod/pods/web-0/attach?stdin=true&stdout=true", WEBSOCKET, "get", "attach", true),
    x("POST", "/api/v1/namespaces/prod/pods/web-0/attach?stdout=true", SPDY, "create", "attach", true),
    x("GET", "/api/v1/namespaces/prod/pods/web-0/portforward?ports=8080", { connection: "Upgrade", upgrade: "websocket", "sec-websocket-protocol": "SPDY/3.1+portforward.k8s.io" }, "get", "portforward", true),
    x("POST", "/api/v1/namespaces/prod/pods/web-0/portforward", SPDY, "create", "portforward", true),
    // without upgrade headers, and with odd methods, still create
    x("GET", "/api/v1/namespaces/prod/pods/web-0/exec?command=id", {}, "get", "exec", false),
    x("HEAD", "/api/v1/namespaces/prod/pods/web-0/exec", {}, "get", "exec", false),
    x("DELETE", "/api/v1/namespaces/prod/pods/web-0/exec", {}, "delete", "exec", false),
    x("PUT", "/api/v1/namespaces/prod/pods/web-0/attach", {}, "update", "attach", false),
  ];
  it.each(cases)("$method $url", check);

  const others: Case[] = [
    // log is long-running but stays a read
    { method: "GET", url: "/api/v1/namespaces/prod/pods/web-0/log?follow=true&container=app", expect: { verb: "get", kubeVerb: "get", subresource: "log", longRunning: true } },
    { method: "PATCH", url: "/api/v1/namespaces/prod/pods/web-0/ephemeralcontainers", expect: { verb: "patch", kubeVerb: "patch", subresource: "ephemeralcontainers", longRunning: false } },
    { method: "POST", url: "/api/v1/namespaces/prod/pods/web-0/eviction", expect: { verb: "create", kubeVerb: "create", subresource: "eviction", longRunning: false } },
    // the rule is about pods only
    { method: "GET", url: "/apis/example.com/v1/namespaces/prod/widgets/w/exec", expect: { verb: "get", kubeVerb: "get", resource: "widgets", subresource: "exec", longRunning: true } },
  ];
  it.each(others)("$method $url", check);
});

describe("proxy subresources and path verbs", () => {
  // mirrors requestinfo.go: a proxy *subresource* keeps its subpath in parts; the deprecated proxy *path verb* has
  // no subresource (specialVerbsNoSubresources). Airlock rule: an upgrade through a proxy subresource is create.
  const cases: Case[] = [
    {
      method: "GET",
      url: "/api/v1/namespaces/prod/pods/web-0/proxy/metrics",
      expect: { ...r("get", "api", "", "v1", "prod", "pods", "proxy", "web-0", ["pods", "web-0", "proxy", "metrics"]), longRunning: true },
    },
    {
      method: "GET",
      url: "/api/v1/namespaces/prod/pods/web-0:8080/proxy/",
      expect: { ...r("get", "api", "", "v1", "prod", "pods", "proxy", "web-0:8080", ["pods", "web-0:8080", "proxy"]), longRunning: true },
    },
    {
      method: "POST",
      url: "/api/v1/namespaces/prod/services/https:grafana:443/proxy/api/dashboards/db",
      expect: r("create", "api", "", "v1", "prod", "services", "proxy", "https:grafana:443", ["services", "https:grafana:443", "proxy", "api", "dashboards", "db"]),
    },
    {
      method: "GET",
      url: "/api/v1/nodes/node-1/proxy/stats/summary",
      expect: { ...r("get", "api", "", "v1", "", "nodes", "proxy", "node-1", ["nodes", "node-1", "proxy", "stats", "summary"]), longRunning: true },
    },
    {
      method: "GET",
      url: "/api/v1/nodes/node-1/proxy/configz",
      expect: r("get", "api", "", "v1", "", "nodes", "proxy", "node-1", ["nodes", "node-1", "proxy", "configz"]),
    },
    // the kubelet's own exec endpoint reached over nodes/proxy with a WebSocket GET
    {
      method: "GET",
      url: "/api/v1/nodes/node-1/proxy/exec/prod/web-0/app?command=sh&input=1&output=1&tty=1",
      headers: WEBSOCKET,
      expect: { verb: "create", kubeVerb: "get", resource: "nodes", subresource: "proxy", name: "node-1", upgrade: true, longRunning: true },
    },
    {
      method: "GET",
      url: "/api/v1/namespaces/prod/services/web/proxy/ws",
      headers: WEBSOCKET,
      expect: { verb: "create", kubeVerb: "get", resource: "services", subresource: "proxy", upgrade: true },
    },
    // deprecated path verb: proxy with a node
    { method: "GET", url: "/api/v1/proxy/nodes/node-1/stats", expect: { ...r("proxy", "api", "", "v1", "", "nodes", "", "node-1", ["nodes", "node-1", "stats"]), longRunning: true } },
    { method: "POST", url: "/api/v1/proxy/namespaces/prod/services/web/x", expect: r("proxy", "api", "", "v1", "prod", "services", "", "web", ["services", "web", "x"]) },
    // a proxy path verb with a single part: a collection proxy
    { method: "GET", url: "/api/v1/proxy/nodes", expect: r("proxy", "api", "", "v1", "", "nodes", "", "", ["nodes"]) },
  ];
  it.each(cases)("$method $url", check);
});

describe("API groups, CRDs and versions", () => {
  // mirrors requestinfo.go: /apis/{group}/{version}/... where the group may contain dots (CRDs, aggregated APIs).
  const cases: Case[] = [
    {
      method: "GET",
      url: "/apis/stable.example.com/v1/namespaces/ns/crontabs/my-cron",
      expect: r("get", "apis", "stable.example.com", "v1", "ns", "crontabs", "", "my-cron", ["crontabs", "my-cron"]),
    },
    { method: "GET", url: "/apis/cert-manager.io/v1/certificates", expect: r("list", "apis", "cert-manager.io", "v1", "", "certificates", "", "", ["certificates"]) },
    {
      method: "DELETE",
      url: "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/crontabs.stable.example.com",
      expect: r("delete", "apis", "apiextensions.k8s.io", "v1", "", "customresourcedefinitions", "", "crontabs.stable.example.com", ["customresourcedefinitions", "crontabs.stable.example.com"]),
    },
    {
      method: "PUT",
      url: "/apis/stable.example.com/v1/namespaces/ns/crontabs/my-cron/status",
      expect: r("update", "apis", "stable.example.com", "v1", "ns", "crontabs", "status", "my-cron", ["crontabs", "my-cron", "status"]),
    },
    {
      method: "PATCH",
      url: "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
      expect: r("patch", "apis", "rbac.authorization.k8s.io", "v1", "", "clusterroles", "", "admin", ["clusterroles", "admin"]),
    },
    {
      method: "POST",
      url: "/apis/authentication.k8s.io/v1/namespaces/ns/serviceaccounts/default/token",
      // resource after the namespace is not a namespace subresource, so parts shift; group is the URL's group
      expect: r("create", "apis", "authentication.k8s.io", "v1", "ns", "serviceaccounts", "token", "default", ["serviceaccounts", "default", "token"]),
    },
    {
      method: "POST",
      url: "/api/v1/namespaces/ns/serviceaccounts/default/token",
      expect: r("create", "api", "", "v1", "ns", "serviceaccounts", "token", "default", ["serviceaccounts", "default", "token"]),
    },
    {
      method: "PUT",
      url: "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-1/approval",
      expect: r("update", "apis", "certificates.k8s.io", "v1", "", "certificatesigningrequests", "approval", "csr-1", ["certificatesigningrequests", "csr-1", "approval"]),
    },
    { method: "GET", url: "/apis/metrics.k8s.io/v1beta1/nodes", expect: r("list", "apis", "metrics.k8s.io", "v1beta1", "", "nodes", "", "", ["nodes"]) },
    { method: "GET", url: "/apis/apps/v1/watch/namespaces/prod/deployments", expect: r("watch", "apis", "apps", "v1", "prod", "deployments", "", "", ["deployments"]) },
  ];
  it.each(cases)("$method $url", check);
});

describe("path decoding (Go url.Parse semantics)", () => {
  // The apiserver reads URL.Path, i.e. the percent-decoded path; RequestInfo is computed from that.
  const cases: Case[] = [
    { method: "GET", url: "/%61pi/v1/pods", expect: { resourceRequest: true, apiPrefix: "api", kubeVerb: "list", resource: "pods", path: "/api/v1/pods" } },
    { method: "GET", url: "/api/v1/namespaces/default/pods/my%2Dpod", expect: { name: "my-pod", path: "/api/v1/namespaces/default/pods/my-pod" } },
    { method: "GET", url: "/api/v1/namespaces/default/configmaps/caf%C3%A9", expect: { name: "café" } },
    { method: "GET", url: "/api/v1/namespaces/default/pods/a+b", expect: { name: "a+b" } },
    { method: "GET", url: "/api/v1/namespaces/default/pods/a%25b", expect: { name: "a%b" } },
    // query: "+" is a space and %XX decodes; raw values are recorded
    { method: "GET", url: "/api/v1/pods?labelSelector=app+in+%28a%2Cb%29", expect: { labelSelector: "app in (a,b)" } },
  ];
  it.each(cases)("$method $url", check);

  it("keeps the raw path exactly and exposes a null-prototype, frozen query", () => {
    const a = attributes("GET", "/api/v1/pods?__proto__=x&b=1&b=2&flag");
    expect(a.rawPath).toBe("/api/v1/pods?__proto__=x&b=1&b=2&flag");
    expect(Object.getPrototypeOf(a.query)).toBeNull();
    expect(a.query.__proto__).toEqual(["x"]);
    expect(a.query.b).toEqual(["1", "2"]);
    expect(a.query.flag).toEqual([""]);
    expect(Object.isFrozen(a.query)).toBe(true);
    expect(Object.isFrozen(a.query.b)).toBe(true);
    expect(Object.isFrozen(a)).toBe(true);
    expect(Object.isFrozen(a.parts)).toBe(true);
  });
});

describe("upgrade detection", () => {
  // Envoy performs an upgrade only with Connection: upgrade (a token) and an Upgrade header.
  const u = (headers: Readonly<Record<string, string>>, upgrade: boolean): Case => ({ method: "GET", url: "/api/v1/namespaces/a/pods/b/exec", headers, expect: { upgrade } });
  const cases: Case[] = [
    u(WEBSOCKET, true),
    u(SPDY, true),
    u({ connection: "keep-alive, Upgrade", upgrade: "websocket" }, true),
    u({ connection: "upgrade", upgrade: "WebSocket" }, true),
    u({ upgrade: "websocket" }, false),
    u({ connection: "Upgrade" }, false),
    u({ connection: "keep-alive", upgrade: "websocket" }, false),
  ];
  it.each(cases)("$headers", check);
});

describe("refusals", () => {
  // kube's RequestInfo gives "" for unknown methods on resource paths (Pinniped then denies the empty verb); we refuse
  // unknown methods everywhere. Paths and queries that Go would decode ambiguously, or that no client produces, are
  // refused (fail closed) rather than guessed.
  const cases: ErrorCase[] = [
    { method: "OPTIONS", url: "/api/v1/pods", code: "UNSUPPORTED_METHOD" },
    { method: "CONNECT", url: "/api/v1/namespaces/a/pods/b/exec", code: "UNSUPPORTED_METHOD" },
    { method: "TRACE", url: "/healthz", code: "UNSUPPORTED_METHOD" },
    { method: "PROPFIND", url: "/api/v1/pods", code: "UNSUPPORTED_METHOD" },
    { method: "get", url: "/api/v1/pods", code: "UNSUPPORTED_METHOD" },
    { method: "", url: "/api/v1/pods", code: "UNSUPPORTED_METHOD" },
    // mirrors requestinfo.go: a special path verb with nothing after it is an error ("unable to determine kind...")
    { method: "GET", url: "/api/v1/watch", code: "INCOMPLETE_RESOURCE_PATH" },
    { method: "GET", url: "/apis/apps/v1/proxy", code: "INCOMPLETE_RESOURCE_PATH" },
    // invalid escapes (Go's url.Parse fails too)
    { method: "GET", url: "/api/v1/pods/%zz", code: "MALFORMED_PATH" },
    { method: "GET", url: "/api/v1/pods/%4", code: "MALFORMED_PATH" },
    { method: "GET", url: "/api/v1/pods/%", code: "MALFORMED_PATH" },
    // dangerous decodings
    { method: "GET", url: "/api/v1/namespaces/a/pods/b%00c", code: "MALFORMED_PATH" },
    { method: "GET", url: "/api/v1/namespaces/a/pods/b%0A", code: "MALFORMED_PATH" },
    { method: "GET", url: "/api/v1/namespaces/a/pods/b%2Fexec", code: "MALFORMED_PATH" },
    { method: "GET", url: "/api/v1/namespaces/a/pods/b%2fexec", code: "MALFORMED_PATH" },
    { method: "GET", url: "/api/v1/namespaces/a/pods/b%5Cexec", code: "MALFORMED_PATH" },
    { method: "GET", url: "/api/v1/namespaces/a/pods/b\\exec", code: "MALFORMED_PATH" },
    { method: "GET", url: "/api/v1/namespaces/a/pods/%FF", code: "MALFORMED_PATH" },
    { method: "GET", url: "/api/v1/namespaces/a/pods/%C3", code: "MALFORMED_PATH" },
    // dot segments and empty segments, raw or encoded
    { method: "GET", url: "/api/v1/namespaces/a/pods/..", code: "MALFORMED_PATH" },
    { method: "GET", url: "/api/v1/namespaces/a/pods/../../secrets", code: "MALFORMED_PATH" },
    { method: "GET", url: "/api/v1/namespaces/a/./pods", code: "MALFORMED_PATH" },
    { method: "GET", url: "/api/v1/namespaces/a/pods/%2E%2E", code: "MALFORMED_PATH" },
    { method: "GET", url: "/api/v1/namespaces//pods", code: "MALFORMED_PATH" },
    { method: "GET", url: "//api/v1/pods", code: "MALFORMED_PATH" },
    { method: "GET", url: "/api/v1/pods//", code: "MALFORMED_PATH" },
    // not origin-form, or characters a request target cannot hold
    { method: "GET", url: "api/v1/pods", code: "MALFORMED_PATH" },
    { method: "GET", url: "*", code: "MALFORMED_PATH" },
    { method: "GET", url: "", code: "MALFORMED_PATH" },
    { method: "GET", url: "http://kube/api/v1/pods", code: "MALFORMED_PATH" },
    { method: "GET", url: "/api/v1/pods#frag", code: "MALFORMED_PATH" },
    { method: "GET", url: "/api/v1/pods/a b", code: "MALFORMED_PATH" },
    { method: "GET", url: "/api/v1/pods/café", code: "MALFORMED_PATH" },
    // queries: bad escapes, raw ';' (Go drops the pair silently), control characters
    { method: "GET", url: "/api/v1/pods?watch=%G1", code: "MALFORMED_QUERY" },
    { method: "GET", url: "/api/v1/pods?watch=1%", code: "MALFORMED_QUERY" },
    { method: "GET", url: "/api/v1/pods?watch=true;x=1", code: "MALFORMED_QUERY" },
    { method: "GET", url: "/api/v1/pods?fieldSelector=metadata.name%3Da%00b", code: "MALFORMED_QUERY" },
    { method: "GET", url: "/api/v1/pods?labelSelector=%FF", code: "MALFORMED_QUERY" },
    // pseudo-headers that disagree with what is being parsed
    { method: "GET", url: "/api/v1/pods", headers: { ":method": "DELETE" }, code: "PSEUDO_HEADER_MISMATCH" },
    { method: "GET", url: "/api/v1/pods", headers: { ":path": "/api/v1/secrets" }, code: "PSEUDO_HEADER_MISMATCH" },
    { method: "GET", url: "/" + "a".repeat(70_000), code: "REQUEST_TARGET_TOO_LONG" },
  ];
  it.each(cases)("$method $url → $code", (c) => {
    const result = parseKubeRequest(c.method, c.url, c.headers ?? {});
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.code).toBe(c.code);
      expect(result.message).not.toBe("");
    }
  });

  it("accepts matching pseudo-headers and tolerates their absence", () => {
    const headers = { ":method": "GET", ":path": "/api/v1/pods?watch=1", ":authority": "kube", authorization: "Bearer x" };
    expect(parseKubeRequest("GET", "/api/v1/pods?watch=1", headers)).toMatchObject({ ok: true, attributes: { kubeVerb: "watch" } });
  });

  it("refuses more than 10,000 query parameters", () => {
    const result = parseKubeRequest("GET", "/api/v1/pods?" + "a=1&".repeat(10_001), {});
    expect(result).toMatchObject({ ok: false, code: "MALFORMED_QUERY" });
  });
});
