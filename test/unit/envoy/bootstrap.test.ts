/**
 * @module test/unit/envoy/bootstrap.test
 * Decodes every envoy/*.yaml with Envoy's own protos (strictly) and checks the fail-closed invariants the
 * gateway depends on; negative cases prove the decoder rejects typos, unknown types and bad values.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  EnvoyConfigError,
  type EnvoyConfigIssueCode,
  type JsonObject,
  type JsonValue,
  anyTypeName,
  asArray,
  asObject,
  decodeEnvoyYaml,
  durationToMs,
  findCluster,
  findHttpConnectionManagers,
  findHttpFilter,
  loadEnvoyBootstrapFile,
  matchRoute,
  perRouteConfig,
  pick,
  routesOf,
  validateEnvoyJson,
} from "../../helpers/envoy-bootstrap.js";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const envoyDir = join(repoRoot, "envoy");
const configFiles = readdirSync(envoyDir).filter((f) => f.endsWith(".yaml")).sort();

const EXT_AUTHZ = "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
const EXT_AUTHZ_PER_ROUTE = "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute";
const EXT_PROC = "envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor";
const EXT_PROC_PER_ROUTE = "envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute";
const ROUTER = "envoy.extensions.filters.http.router.v3.Router";
const HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const UPSTREAM_TLS = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
const DOWNSTREAM_TLS = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
/** TlsParameters.TlsProtocol names in ascending order (TLS_AUTO is resolved by the caller). */
const TLS_VERSIONS = ["TLSv1_0", "TLSv1_1", "TLSv1_2", "TLSv1_3"];
const KUBE_MAX_BODY_BYTES = 3 * 1024 * 1024;

/** Request targets kubectl/client-go send, and whether kube-apiserver treats them as long-running. */
const LONG_RUNNING_TARGETS = [
  "/api/v1/namespaces/prod/pods/web-0/exec?command=sh&stdin=true&stdout=true&tty=true",
  "/api/v1/namespaces/prod/pods/web-0/attach?stdin=true",
  "/api/v1/namespaces/prod/pods/web-0/portforward?ports=8080",
  "/api/v1/namespaces/prod/pods/web-0/log?follow=true",
  "/api/v1/namespaces/prod/secrets?watch=1&resourceVersion=10",
  "/apis/apps/v1/namespaces/prod/deployments?watch=true",
  "/api/v1/watch/namespaces/prod/pods",
  "/apis/apps/v1/watch/deployments",
  "/api/v1/namespaces/prod/pods/web-0/proxy/metrics",
  "/api/v1/nodes/node-1/proxy/stats/summary",
];
const UPGRADE_TARGETS = LONG_RUNNING_TARGETS.filter((t) => /\/(exec|attach|portforward)\?/.test(t));
const ORDINARY_TARGETS = [
  "/api/v1/namespaces/prod/secrets",
  "/api/v1/namespaces/prod/secrets/db",
  "/apis/apps/v1/namespaces/prod/deployments/web",
  "/api/v1/namespaces/prod/pods/web-0/status",
  "/version",
  "/openapi/v3",
];

function str(value: JsonValue | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function websocketEnabled(upgradeConfigs: JsonValue | undefined): boolean | undefined {
  for (const uc of asArray(upgradeConfigs)) {
    if (str(pick(uc, "upgrade_type"))?.toLowerCase() === "websocket") {
      const enabled = pick(uc, "enabled");
      return enabled === undefined ? true : enabled === true;
    }
  }
  return undefined;
}

/**
 * The security invariants of a gateway config, as a list of human-readable violations (empty = good).
 * Written as a function so the negative tests can prove each check actually bites.
 */
function invariantViolations(doc: JsonObject): string[] {
  const v: string[] = [];
  const fail = (msg: string): void => {
    v.push(msg);
  };

  // Admin: absent, or on a unix socket only (it can dump the upstream credential).
  const admin = asObject(pick(doc, "admin"));
  if (admin && (pick(admin, "address", "pipe", "path") === undefined || pick(admin, "address", "socket_address") !== undefined)) {
    fail("admin must be absent or bound to a unix socket (address.pipe) only");
  }

  const hcms = findHttpConnectionManagers(doc);
  if (hcms.length === 0) fail("no HttpConnectionManager found");
  for (const { listener, hcm } of hcms) {
    const at = `listener ${listener}`;
    const authz = findHttpFilter(hcm, EXT_AUTHZ);
    const proc = findHttpFilter(hcm, EXT_PROC);
    const router = findHttpFilter(hcm, ROUTER);
    const filterCount = asArray(pick(hcm, "http_filters")).length;
    if (!authz) fail(`${at}: no ext_authz filter`);
    if (!proc) fail(`${at}: no ext_proc filter`);
    if (!router || router.index !== filterCount - 1) fail(`${at}: router must be the last HTTP filter`);
    if (authz && proc && !(authz.index < proc.index)) fail(`${at}: ext_authz must run before ext_proc`);
    if (authz && authz.index !== 0) fail(`${at}: ext_authz must be the first HTTP filter`);

    if (authz) {
      const c = authz.config;
      if (pick(c, "failure_mode_allow") !== false) fail(`${at}: ext_authz failure_mode_allow must be explicitly false`);
      if (pick(c, "transport_api_version") !== "V3") fail(`${at}: ext_authz transport_api_version must be V3`);
      if (str(pick(c, "grpc_service", "envoy_grpc", "cluster_name")) !== "airlock") fail(`${at}: ext_authz must call cluster airlock via envoy_grpc`);
      if (pick(c, "with_request_body", "pack_as_bytes") !== true) fail(`${at}: ext_authz with_request_body.pack_as_bytes must be true`);
      if (pick(c, "with_request_body", "allow_partial_message") !== true) fail(`${at}: ext_authz allow_partial_message must be true (Airlock denies partial bodies itself)`);
      const maxBytes = pick(c, "with_request_body", "max_request_bytes");
      if (typeof maxBytes !== "number" || maxBytes < KUBE_MAX_BODY_BYTES) fail(`${at}: ext_authz max_request_bytes must cover kube-apiserver's 3 MiB`);
      const timeout = str(pick(c, "grpc_service", "timeout"));
      if (timeout === undefined) fail(`${at}: ext_authz grpc_service.timeout must be explicit (the default is 200 ms)`);
      const idle = str(pick(hcm, "stream_idle_timeout"));
      if (timeout !== undefined && idle !== undefined && durationToMs(timeout) >= durationToMs(idle)) fail(`${at}: ext_authz timeout must be below stream_idle_timeout`);
      if (pick(c, "clear_route_cache") === true) fail(`${at}: ext_authz must not clear the route cache`);
    }
    if (proc) {
      const c = proc.config;
      if (pick(c, "failure_mode_allow") !== false) fail(`${at}: ext_proc failure_mode_allow must be explicitly false`);
      if (str(pick(c, "grpc_service", "envoy_grpc", "cluster_name")) !== "airlock") fail(`${at}: ext_proc must call cluster airlock via envoy_grpc`);
      if (pick(c, "observability_mode") === true) fail(`${at}: ext_proc observability_mode ignores the processor's answers (no masking)`);
      if (pick(c, "processing_mode", "response_body_mode") !== "STREAMED") fail(`${at}: ext_proc response_body_mode must be STREAMED`);
      if (pick(c, "processing_mode", "response_header_mode") !== "SEND") fail(`${at}: ext_proc response_header_mode must be SEND`);
      if (pick(c, "processing_mode", "request_header_mode") !== "SEND") fail(`${at}: ext_proc request_header_mode must be SEND`);
      const reqBody = pick(c, "processing_mode", "request_body_mode");
      if (reqBody !== undefined && reqBody !== "NONE") fail(`${at}: ext_proc request_body_mode must be NONE by default`);
      if (pick(c, "allow_mode_override") !== true) fail(`${at}: ext_proc allow_mode_override must be true`);
      if (!asArray(pick(c, "metadata_options", "forwarding_namespaces", "untyped")).includes("envoy.filters.http.ext_authz")) {
        fail(`${at}: ext_proc must receive ext_authz dynamic metadata (forwarding_namespaces.untyped)`);
      }
      const mt = str(pick(c, "message_timeout"));
      if (mt === undefined || durationToMs(mt) <= 0) fail(`${at}: ext_proc message_timeout must be explicit and positive`);
      if (pick(c, "grpc_service", "timeout") !== undefined) fail(`${at}: ext_proc grpc_service.timeout would cut long watches`);
      if (pick(c, "disable_clear_route_cache") !== true) fail(`${at}: ext_proc must not clear the route cache`);
    }

    if (websocketEnabled(pick(hcm, "upgrade_configs")) !== true) fail(`${at}: HCM upgrade_configs must allow websocket`);
    if (pick(hcm, "normalize_path") !== true) fail(`${at}: normalize_path must be true`);
    if (pick(hcm, "merge_slashes") !== true) fail(`${at}: merge_slashes must be true`);
    const escaped = pick(hcm, "path_with_escaped_slashes_action");
    if (escaped !== "REJECT_REQUEST" && escaped !== "KEEP_UNCHANGED") fail(`${at}: escaped slashes must be rejected or kept, never rewritten`);
    if (pick(hcm, "use_remote_address") !== true) fail(`${at}: use_remote_address must be true (don't trust client XFF)`);
    if (pick(hcm, "preserve_external_request_id") === true) fail(`${at}: the agent must not choose x-request-id`);
    if (pick(hcm, "request_timeout") !== undefined && str(pick(hcm, "request_timeout")) !== "0s") fail(`${at}: an HCM request_timeout would cut watches`);

    const logs = asArray(pick(hcm, "access_log"));
    if (logs.length === 0) fail(`${at}: no access log`);
    const logText = JSON.stringify(logs).toUpperCase();
    for (const secret of ["%REQ(AUTHORIZATION)%", "%REQ(COOKIE)%", "%DOWNSTREAM_PEER_CERT%", "%REQUEST_HEADERS%"]) {
      if (logText.includes(secret)) fail(`${at}: access log must not record ${secret}`);
    }

    const routes = routesOf(hcm);
    const clusters = new Set(asArray(pick(doc, "static_resources", "clusters")).map((c) => str(pick(c, "name"))));
    for (const route of routes) {
      const name = str(pick(route, "name")) ?? "<unnamed>";
      const cluster = str(pick(route, "route", "cluster"));
      if (cluster === undefined || !clusters.has(cluster)) fail(`${at} route ${name}: must route to a defined cluster`);
      const ws = websocketEnabled(pick(route, "route", "upgrade_configs"));
      const upgrades = ws ?? true; // a route without its own upgrade_configs inherits the HCM's websocket
      const procRoute = perRouteConfig(route, proc?.name ?? "envoy.filters.http.ext_proc");
      const authzRoute = perRouteConfig(route, authz?.name ?? "envoy.filters.http.ext_authz");
      if (procRoute && anyTypeName(procRoute) !== EXT_PROC_PER_ROUTE) fail(`${at} route ${name}: ext_proc per-route config has the wrong type`);
      if (authzRoute && anyTypeName(authzRoute) !== EXT_AUTHZ_PER_ROUTE) fail(`${at} route ${name}: ext_authz per-route config has the wrong type`);
      if (pick(authzRoute, "disabled") === true) fail(`${at} route ${name}: ext_authz must never be disabled`);
      if (upgrades) {
        const procBodiesOff =
          pick(procRoute, "disabled") === true ||
          (["NONE", undefined].includes(str(pick(procRoute, "overrides", "processing_mode", "request_body_mode"))) &&
            pick(procRoute, "overrides", "processing_mode", "response_body_mode") === "NONE");
        if (!procBodiesOff) fail(`${at} route ${name}: allows upgrades but ext_proc is not disabled / body-less there`);
        if (pick(authzRoute, "check_settings", "disable_request_body_buffering") !== true) fail(`${at} route ${name}: allows upgrades but buffers the request body for ext_authz`);
        if (str(pick(route, "route", "timeout")) !== "0s") fail(`${at} route ${name}: upgrade routes need timeout 0s`);
      }
    }
    for (const target of LONG_RUNNING_TARGETS) {
      const route = matchRoute(routes, target);
      if (!route) {
        fail(`${at}: no route for ${target}`);
        continue;
      }
      if (str(pick(route, "route", "timeout")) !== "0s") fail(`${at}: long-running ${target} needs route timeout 0s (route ${str(pick(route, "name"))})`);
      const idle = str(pick(route, "route", "idle_timeout"));
      if (idle === undefined || durationToMs(idle) < 600_000) fail(`${at}: long-running ${target} needs an idle_timeout of at least 10 min`);
    }
    for (const target of UPGRADE_TARGETS) {
      const route = matchRoute(routes, target);
      if (!route || websocketEnabled(pick(route, "route", "upgrade_configs")) !== true) fail(`${at}: ${target} must allow websocket upgrades`);
    }
    for (const target of ORDINARY_TARGETS) {
      const route = matchRoute(routes, target);
      const timeout = str(pick(route, "route", "timeout"));
      if (!route || timeout === undefined || durationToMs(timeout) <= 0 || durationToMs(timeout) > 120_000) {
        fail(`${at}: ordinary ${target} needs a finite route timeout (<= 120 s)`);
      }
      if (route && websocketEnabled(pick(route, "route", "upgrade_configs")) !== false) fail(`${at}: ordinary ${target} must not allow upgrades`);
    }
  }

  // Upstreams.
  const airlock = findCluster(doc, "airlock");
  if (!airlock) fail("no airlock cluster");
  const airlockOptions = asObject(pick(airlock, "typed_extension_protocol_options", HTTP_OPTIONS));
  if (anyTypeName(airlockOptions) !== HTTP_OPTIONS || pick(airlockOptions, "explicit_http_config", "http2_protocol_options") === undefined) {
    fail("airlock cluster must speak HTTP/2 (gRPC) via explicit_http_config.http2_protocol_options");
  }
  const kube = findCluster(doc, "kube-apiserver");
  if (!kube) fail("no kube-apiserver cluster");
  const kubeOptions = asObject(pick(kube, "typed_extension_protocol_options", HTTP_OPTIONS));
  if (pick(kubeOptions, "explicit_http_config", "http_protocol_options") === undefined) {
    fail("kube-apiserver cluster must be HTTP/1.1 (explicit_http_config.http_protocol_options): upgrades need it");
  }
  const tls = asObject(pick(kube, "transport_socket", "typed_config"));
  if (anyTypeName(tls) !== UPSTREAM_TLS) fail("kube-apiserver cluster must use TLS (UpstreamTlsContext)");
  const validation = pick(tls, "common_tls_context", "validation_context");
  if (pick(validation, "trusted_ca", "filename") === undefined && pick(validation, "trusted_ca", "inline_string") === undefined) {
    fail("kube-apiserver TLS must verify the server against a CA (validation_context.trusted_ca)");
  }
  if (asArray(pick(validation, "match_typed_subject_alt_names")).length === 0) fail("kube-apiserver TLS must pin the server name (match_typed_subject_alt_names)");
  if (pick(validation, "trust_chain_verification") === "ACCEPT_UNTRUSTED") fail("kube-apiserver TLS must not accept untrusted chains");
  if (!str(pick(tls, "sni"))) fail("kube-apiserver TLS must send SNI");
  const alpn = asArray(pick(tls, "common_tls_context", "alpn_protocols"));
  if (alpn.length > 0 && alpn.some((p) => p !== "http/1.1")) fail("kube-apiserver ALPN must offer only http/1.1");

  // Buffers large enough for the ext_authz body.
  for (const listener of asArray(pick(doc, "static_resources", "listeners"))) {
    const limit = pick(listener, "per_connection_buffer_limit_bytes");
    if (typeof limit !== "number" || limit < KUBE_MAX_BODY_BYTES) fail(`listener ${str(pick(listener, "name"))}: per_connection_buffer_limit_bytes must hold a 3 MiB body`);
  }

  // The agent-facing listener speaks TLS, on loopback too: client-go applies a kubeconfig's user credentials
  // (token, tokenFile, exec plugin) only to TLS transports, so a plaintext listener never sees the agent's JWT.
  for (const listener of asArray(pick(doc, "static_resources", "listeners"))) {
    asArray(pick(listener, "filter_chains")).forEach((chain, i) => {
      const at = `listener ${str(pick(listener, "name"))} filter_chains[${i}]`;
      const tls = asObject(pick(chain, "transport_socket", "typed_config"));
      if (str(pick(chain, "transport_socket", "name")) !== "envoy.transport_sockets.tls" || anyTypeName(tls) !== DOWNSTREAM_TLS) {
        fail(`${at}: the agent listener must terminate TLS (transport_socket envoy.transport_sockets.tls with a DownstreamTlsContext)`);
        return;
      }
      const common = pick(tls, "common_tls_context");
      const min = str(pick(common, "tls_params", "tls_minimum_protocol_version"));
      if (min !== "TLSv1_2" && min !== "TLSv1_3") fail(`${at}: tls_minimum_protocol_version must be explicit and at least TLSv1_2`);
      const max = str(pick(common, "tls_params", "tls_maximum_protocol_version"));
      if (max !== undefined && max !== "TLS_AUTO" && TLS_VERSIONS.indexOf(max) < TLS_VERSIONS.indexOf(min ?? "TLSv1_2")) {
        fail(`${at}: tls_maximum_protocol_version is below the minimum`);
      }
      const certs = asArray(pick(common, "tls_certificates"));
      if (certs.length === 0) fail(`${at}: the listener needs a server certificate (tls_certificates)`);
      for (const cert of certs) {
        if (str(pick(cert, "private_key", "filename")) === undefined) {
          fail(`${at}: the private key must come from a file mounted into the Envoy container only, never inline in the config`);
        }
      }
      // WebSocket upgrades (exec/attach/port-forward) are HTTP/1.1; h2 would need extended CONNECT.
      if (!asArray(pick(common, "alpn_protocols")).includes("http/1.1")) fail(`${at}: ALPN must offer http/1.1 (the WebSocket upgrades need it)`);
    });
  }
  return v;
}

function expectRejected(text: string, code: EnvoyConfigIssueCode, pathPart?: string): void {
  let caught: unknown;
  try {
    decodeEnvoyYaml(text, "mutated.yaml");
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(EnvoyConfigError);
  const issues = (caught as EnvoyConfigError).issues;
  expect(issues.map((i) => i.code)).toContain(code);
  if (pathPart !== undefined) expect(issues.some((i) => i.code === code && i.path.includes(pathPart))).toBe(true);
}

function mutate(text: string, from: string, to: string): string {
  expect(text.includes(from), `fixture text ${JSON.stringify(from)} present`).toBe(true);
  return text.replace(from, to);
}

const sidecarPath = join(envoyDir, "sidecar.yaml");
const sidecarText = readFileSync(sidecarPath, "utf8");

describe("envoy/*.yaml decode as envoy.config.bootstrap.v3.Bootstrap", () => {
  it("finds the configs", () => {
    expect(configFiles).toContain("sidecar.yaml");
  });

  describe.each(configFiles)("%s", (file) => {
    const decoded = loadEnvoyBootstrapFile(join(envoyDir, file));

    it("round-trips through the binary protobuf encoding", () => {
      expect(decoded.encodedBytes).toBeGreaterThan(500);
      const listeners = pick(decoded.json, "static_resources", "listeners");
      const message = decoded.message.toJSON() as { static_resources?: { listeners?: unknown[] } };
      expect(message.static_resources?.listeners?.length).toBe(asArray(listeners).length);
    });

    it("holds every gateway invariant", () => {
      expect(invariantViolations(decoded.json)).toEqual([]);
    });
  });
});

describe("sidecar.yaml specifics", () => {
  const { json } = loadEnvoyBootstrapFile(sidecarPath);

  it("terminates TLS on loopback with HTTP/1.1 only and the key from the Envoy-only mount", () => {
    const listener = asArray(pick(json, "static_resources", "listeners"))[0];
    const tls = asObject(pick(listener, "filter_chains", 0, "transport_socket", "typed_config"));
    expect(anyTypeName(tls)).toBe(DOWNSTREAM_TLS);
    // h2 would carry WebSocket only with extended CONNECT (RFC 8441), which kubectl's dialer does not do.
    expect(pick(tls, "common_tls_context", "alpn_protocols")).toEqual(["http/1.1"]);
    expect(pick(tls, "common_tls_context", "tls_params")).toEqual({ tls_minimum_protocol_version: "TLSv1_2", tls_maximum_protocol_version: "TLSv1_3" });
    expect(pick(tls, "common_tls_context", "tls_certificates")).toEqual([
      { certificate_chain: { filename: "/etc/airlock/sidecar-tls/tls.crt" }, private_key: { filename: "/etc/airlock/sidecar-tls/tls.key" } },
    ]);
    // No client certificates: the agent authenticates with its JWT.
    expect(pick(tls, "require_client_certificate")).toBeUndefined();
    expect(pick(tls, "common_tls_context", "validation_context")).toBeUndefined();
  });

  it("listens on loopback only and has no admin interface", () => {
    for (const listener of asArray(pick(json, "static_resources", "listeners"))) {
      expect(pick(listener, "address", "socket_address", "address")).toBe("127.0.0.1");
    }
    expect(pick(json, "admin")).toBeUndefined();
  });

  it("lets the ext_authz hold fit: gRPC timeout 35s, above Envoy's 200 ms default and below the idle timeout", () => {
    const { hcm } = findHttpConnectionManagers(json)[0]!;
    const authz = findHttpFilter(hcm, EXT_AUTHZ)!;
    expect(pick(authz.config, "grpc_service", "timeout")).toBe("35s");
    expect(durationToMs(str(pick(hcm, "stream_idle_timeout"))!)).toBeGreaterThan(35_000);
  });

  it("routes each Kubernetes request class to the intended route", () => {
    const { hcm } = findHttpConnectionManagers(json)[0]!;
    const routes = routesOf(hcm);
    const routeName = (target: string): string | undefined => str(pick(matchRoute(routes, target), "name"));
    expect(routeName("/api/v1/namespaces/a/pods/b/exec?command=ls")).toBe("upgrade_exec_attach_portforward");
    expect(routeName("/api/v1/namespaces/a/pods/b/portforward")).toBe("upgrade_exec_attach_portforward");
    expect(routeName("/api/v1/namespaces/a/pods/b/proxy/")).toBe("upgrade_proxy");
    expect(routeName("/api/v1/namespaces/a/secrets?watch=true")).toBe("watch_query");
    expect(routeName("/api/v1/watch/secrets")).toBe("watch_path");
    expect(routeName("/api/v1/namespaces/a/pods/b/log")).toBe("pod_log");
    expect(routeName("/api/v1/namespaces/a/pods/b/execute")).toBe("default");
    expect(routeName("/api/v1/namespaces/a/secrets")).toBe("default");
  });

  it("tags every route class for ext_authz via context_extensions", () => {
    const { hcm } = findHttpConnectionManagers(json)[0]!;
    for (const route of routesOf(hcm)) {
      expect(pick(perRouteConfig(route, "envoy.filters.http.ext_authz"), "check_settings", "context_extensions", "airlock.route_class")).toEqual(expect.any(String));
    }
  });
});

describe("central.yaml specifics", () => {
  const { json } = loadEnvoyBootstrapFile(join(envoyDir, "central.yaml"));

  it("terminates TLS for agents and keeps admin on an owner-only unix socket", () => {
    const listener = asArray(pick(json, "static_resources", "listeners"))[0];
    const tls = asObject(pick(listener, "filter_chains", 0, "transport_socket", "typed_config"));
    expect(anyTypeName(tls)).toBe("envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext");
    expect(asArray(pick(tls, "common_tls_context", "tls_certificates")).length).toBe(1);
    expect(pick(json, "admin", "address", "pipe", "path")).toEqual(expect.stringMatching(/\.sock$/));
    expect(pick(json, "admin", "address", "pipe", "mode")).toBe(0o600);
  });
});

describe("invariant checks bite", () => {
  const cases: readonly [string, string, string, RegExp][] = [
    ["ext_authz fail-open", "failure_mode_allow: false\n                      failure_mode_allow_header_add", "failure_mode_allow: true\n                      failure_mode_allow_header_add", /ext_authz failure_mode_allow/],
    ["ext_proc fail-open", "failure_mode_allow: false\n                      processing_mode", "failure_mode_allow: true\n                      processing_mode", /ext_proc failure_mode_allow/],
    ["response body buffered", "response_body_mode: STREAMED", "response_body_mode: BUFFERED", /response_body_mode must be STREAMED/],
    ["body as string", "pack_as_bytes: true", "pack_as_bytes: false", /pack_as_bytes/],
    ["no mode override", "allow_mode_override: true", "allow_mode_override: false", /allow_mode_override/],
    ["ext_proc on upgrades", "ExtProcPerRoute\n                              disabled: true", "ExtProcPerRoute\n                              disabled: false", /allows upgrades but ext_proc/],
    ["watch timeout", "timeout: 0s\n                            idle_timeout: 3660s", "timeout: 15s\n                            idle_timeout: 3660s", /needs route timeout 0s/],
    ["untrusted TLS", "trusted_ca:\n                filename: /etc/airlock/kube-ca/ca.crt", "trust_chain_verification: ACCEPT_UNTRUSTED", /verify the server against a CA/],
    ["HTTP/2 to kube-apiserver", "http_protocol_options: {}", "http2_protocol_options: {}", /HTTP\/1\.1/],
    ["websocket on the default route", "timeout: 65s\n                            upgrade_configs:\n                              - upgrade_type: websocket\n                                enabled: false", "timeout: 65s\n                            upgrade_configs:\n                              - upgrade_type: websocket\n                                enabled: true", /allows upgrades but ext_proc|must not allow upgrades/],
  ];

  it.each(cases)("%s", (_label, from, to, expected) => {
    const { json } = decodeEnvoyYaml(mutate(sidecarText, from, to), "mutated.yaml");
    expect(invariantViolations(json).join("\n")).toMatch(expected);
  });

  it.each([
    ["TLS 1.0 allowed", "tls_minimum_protocol_version: TLSv1_2\n                  tls_maximum_protocol_version: TLSv1_3", "tls_minimum_protocol_version: TLSv1_0\n                  tls_maximum_protocol_version: TLSv1_3", /at least TLSv1_2/],
    ["no explicit minimum version", "tls_minimum_protocol_version: TLSv1_2\n                  tls_maximum_protocol_version: TLSv1_3", "tls_maximum_protocol_version: TLSv1_3", /at least TLSv1_2/],
    ["maximum below minimum", "tls_minimum_protocol_version: TLSv1_2\n                  tls_maximum_protocol_version: TLSv1_3", "tls_minimum_protocol_version: TLSv1_3\n                  tls_maximum_protocol_version: TLSv1_2", /below the minimum/],
    ["h2-only ALPN", 'alpn_protocols: ["http/1.1"]\n                tls_certificates', 'alpn_protocols: ["h2"]\n                tls_certificates', /ALPN must offer http\/1\.1/],
    ["an inline private key", "private_key: { filename: /etc/airlock/sidecar-tls/tls.key }", 'private_key: { inline_string: "-----BEGIN PRIVATE KEY-----" }', /never inline/],
    ["no server certificate", "tls_certificates:\n                  - certificate_chain: { filename: /etc/airlock/sidecar-tls/tls.crt }\n                    private_key: { filename: /etc/airlock/sidecar-tls/tls.key }", "tls_certificates: []", /needs a server certificate/],
  ] as const)("agent listener TLS: %s", (_label, from, to, expected) => {
    const { json } = decodeEnvoyYaml(mutate(sidecarText, from, to), "mutated.yaml");
    expect(invariantViolations(json).join("\n")).toMatch(expected);
  });

  it("flags a plaintext agent listener (client-go would never send the agent's token)", () => {
    const plaintext = sidecarText.replace(/\n {8}- transport_socket:\n[\s\S]*?\n {10}filters:\n/, "\n        - filters:\n");
    expect(plaintext).not.toBe(sidecarText);
    const { json } = decodeEnvoyYaml(plaintext, "mutated.yaml");
    expect(pick(json, "static_resources", "listeners", 0, "filter_chains", 0, "transport_socket")).toBeUndefined();
    expect(invariantViolations(json)).toEqual([expect.stringMatching(/must terminate TLS/)]);
  });

  it("flags a TCP admin interface", () => {
    const text = `${sidecarText}\nadmin:\n  address:\n    socket_address: { address: 0.0.0.0, port_value: 9901 }\n`;
    expect(invariantViolations(decodeEnvoyYaml(text).json).join("\n")).toMatch(/admin must be absent/);
  });

  it("accepts an admin interface on a unix socket", () => {
    const text = `${sidecarText}\nadmin:\n  address:\n    pipe: { path: /var/run/envoy/admin.sock, mode: 384 }\n`;
    expect(invariantViolations(decodeEnvoyYaml(text).json)).toEqual([]);
  });
});

describe("the strict decoder rejects", () => {
  it("a typo'd field name, with its path", () => {
    expectRejected(mutate(sidecarText, "pack_as_bytes: true", "pack_as_byte: true"), "unknown_field", "with_request_body.pack_as_byte");
  });

  it("a camelCase field name", () => {
    expectRejected(mutate(sidecarText, "allow_mode_override: true", "allowModeOverride: true"), "camel_case_field", "allowModeOverride");
  });

  it("an unknown @type", () => {
    expectRejected(mutate(sidecarText, "ext_authz.v3.ExtAuthz\n", "ext_authz.v3.ExtAuthzz\n"), "unknown_type", "http_filters[0].typed_config");
  });

  it("an Any without @type", () => {
    expectRejected(mutate(sidecarText, '"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n', "unknown_key: 1\n"), "any_missing_type");
  });

  it("an invalid enum name", () => {
    expectRejected(mutate(sidecarText, "response_body_mode: STREAMED", "response_body_mode: STREAMING"), "unknown_enum", "processing_mode.response_body_mode");
  });

  it("a duration without unit", () => {
    expectRejected(mutate(sidecarText, "message_timeout: 2s", "message_timeout: 2"), "invalid_duration", "message_timeout");
  });

  it("a string where a bool belongs", () => {
    expectRejected(mutate(sidecarText, "allow_partial_message: true", 'allow_partial_message: "yes"'), "wrong_type", "allow_partial_message");
  });

  it("an out-of-range integer", () => {
    expectRejected(mutate(sidecarText, "port_value: 16445", "port_value: -1"), "out_of_range", "port_value");
  });

  it("a protoc-gen-validate violation (max_request_bytes must be > 0)", () => {
    expectRejected(mutate(sidecarText, "max_request_bytes: 3145728", "max_request_bytes: 0"), "constraint_violated", "max_request_bytes");
  });

  it("a missing required oneof (a route without an action)", () => {
    const issues = validateEnvoyJson({ name: "r", match: { prefix: "/" } }, "envoy.config.route.v3.Route");
    expect(issues).toEqual([expect.objectContaining({ code: "constraint_violated" })]);
    expect(issues[0]?.message).toMatch(/route \| redirect/);
  });

  it("two members of one oneof", () => {
    expectRejected(mutate(sidecarText, "                            prefix: /\n                          route:\n                            cluster: kube-apiserver\n                            timeout: 65s", "                            prefix: /\n                            path: /x\n                          route:\n                            cluster: kube-apiserver\n                            timeout: 65s"), "oneof_conflict");
  });

  it("an empty YAML value", () => {
    expectRejected(mutate(sidecarText, "allow_mode_override: true", "allow_mode_override:"), "null_value", "allow_mode_override");
  });

  it("a deprecated field", () => {
    expectRejected(mutate(sidecarText, "stream_idle_timeout: 300s", "stream_idle_timeout: 300s\n                access_log_flush_interval: 1s"), "deprecated", "access_log_flush_interval");
  });

  it("duplicate YAML keys", () => {
    expectRejected(mutate(sidecarText, "merge_slashes: true", "merge_slashes: true\n                merge_slashes: false"), "yaml_invalid");
  });

  it("and validates other message types on request", () => {
    const issues = validateEnvoyJson({ failure_mode_allow: false, grpc_service: { envoy_grpc: { cluster_name: "airlock" } }, bogus: 1 }, EXT_AUTHZ);
    expect(issues).toEqual([expect.objectContaining({ code: "unknown_field", path: "bogus" })]);
    expect(validateEnvoyJson({}, "envoy.not.a.Type")).toEqual([expect.objectContaining({ code: "unknown_type" })]);
  });
});

describe("decoder details", () => {
  const HCM = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
  const minimalHcm = { stat_prefix: "x", route_config: {}, http_filters: [] };

  it("reads protobuf-JSON durations", () => {
    expect(durationToMs("0s")).toBe(0);
    expect(durationToMs("1.5s")).toBe(1500);
    expect(durationToMs("0.000000001s")).toBeCloseTo(0.000001);
    expect(() => durationToMs("1m")).toThrow(/invalid duration/);
    expect(validateEnvoyJson({ ...minimalHcm, stream_idle_timeout: "5m" }, HCM)).toEqual([expect.objectContaining({ code: "invalid_duration", path: "stream_idle_timeout" })]);
  });

  it("applies protoc-gen-validate bounds to wrapper types", () => {
    expect(validateEnvoyJson({ ...minimalHcm, max_request_headers_kb: 0 }, HCM)).toEqual([expect.objectContaining({ code: "constraint_violated", path: "max_request_headers_kb" })]);
    expect(validateEnvoyJson({ ...minimalHcm, max_request_headers_kb: 96 }, HCM)).toEqual([]);
  });

  it("applies min_len and required-field rules", () => {
    expect(validateEnvoyJson({ ...minimalHcm, stat_prefix: "" }, HCM)).toEqual([expect.objectContaining({ code: "constraint_violated", path: "stat_prefix" })]);
    expect(validateEnvoyJson({ failure_mode_allow: false }, EXT_PROC)).toEqual([expect.objectContaining({ code: "constraint_violated", path: "grpc_service" })]);
  });

  it("accepts Struct payloads of any shape but rejects a list there", () => {
    const base = { name: "r", match: { prefix: "/" }, route: { cluster: "c" } };
    expect(validateEnvoyJson({ ...base, metadata: { filter_metadata: { airlock: { a: [1, "b", null, { c: true }] } } } }, "envoy.config.route.v3.Route")).toEqual([]);
    expect(validateEnvoyJson({ ...base, metadata: { filter_metadata: { airlock: [1] } } }, "envoy.config.route.v3.Route")).toEqual([expect.objectContaining({ code: "wrong_type" })]);
  });

  it("accepts 64-bit integers as strings and rejects fractions", () => {
    const cluster = { name: "c", connect_timeout: "1s", per_connection_buffer_limit_bytes: 1.5 };
    expect(validateEnvoyJson(cluster, "envoy.config.cluster.v3.Cluster")).toEqual([expect.objectContaining({ code: "wrong_type", path: "per_connection_buffer_limit_bytes" })]);
    expect(validateEnvoyJson({ stats_server_version_override: "18446744073709551615" }, "envoy.config.bootstrap.v3.Bootstrap")).toEqual([]);
    expect(validateEnvoyJson({ stats_server_version_override: "18446744073709551616" }, "envoy.config.bootstrap.v3.Bootstrap")).toEqual([expect.objectContaining({ code: "out_of_range" })]);
  });

  it("names nested Any payloads in issue paths", () => {
    const issues = validateEnvoyJson(
      { ...minimalHcm, http_filters: [{ name: "r", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router", nope: 1 } }] },
      HCM,
    );
    expect(issues).toEqual([expect.objectContaining({ code: "unknown_field", path: "http_filters[0].typed_config<envoy.extensions.filters.http.router.v3.Router>.nope" })]);
  });
});
