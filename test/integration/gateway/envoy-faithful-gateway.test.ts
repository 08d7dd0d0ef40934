/**
 * @module test/integration/gateway/envoy-faithful-gateway.test
 * Pins each Envoy behaviour the test gateway reproduces, against real gRPC peers and a real HTTPS upstream.
 */
import { existsSync } from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startEnvoyFaithfulGateway, type EnvoyFaithfulGateway } from "../../gateway/envoy-faithful-gateway.js";
import { loadGatewaySettings, type GatewaySettings } from "../../gateway/gateway-settings.js";
import type { ProcessingRequest__Output } from "../../../protos/generated/envoy/service/ext_proc/v3/ProcessingRequest.js";
import {
  continueReply,
  grpcError,
  makeThrowAwayCert,
  onEachMessage,
  rawValues,
  request,
  startGatewayPeers,
  type AuthzDouble,
  type GatewayPeers,
  type ProcDouble,
  type ThrowAwayCert,
  type UpstreamDouble,
} from "./gateway-test-peers.js";

const FIXTURE = fileURLToPath(new URL("../../gateway/fixtures/minimal-bootstrap.yaml", import.meta.url));
const SIDECAR = fileURLToPath(new URL("../../../envoy/sidecar.yaml", import.meta.url));

let cert: ThrowAwayCert;
let peers: GatewayPeers;
let authz: AuthzDouble;
let proc: ProcDouble;
let upstream: UpstreamDouble;
let gateway: EnvoyFaithfulGateway | null = null;
const base: GatewaySettings = loadGatewaySettings(FIXTURE);

beforeAll(async () => {
  cert = makeThrowAwayCert();
  peers = await startGatewayPeers(cert);
  ({ authz, proc, upstream } = peers);
});

afterAll(async () => {
  await peers.close();
  cert.cleanup();
});

afterEach(async () => {
  await gateway?.close();
  gateway = null;
  peers.reset();
});

async function start(settings: GatewaySettings = base): Promise<string> {
  gateway = await startEnvoyFaithfulGateway({
    settings,
    ...peers.gatewayOptions,
    // A listener with a DownstreamTlsContext (envoy/sidecar.yaml) serves the throw-away 127.0.0.1 certificate.
    ...(settings.downstreamTls !== null ? { listen: { host: "127.0.0.1", port: 0, tls: { cert: cert.cert, key: cert.key } } } : {}),
  });
  return gateway.url;
}

function withAuthz(patch: Partial<NonNullable<GatewaySettings["extAuthz"]>>, s: GatewaySettings = base): GatewaySettings {
  if (s.extAuthz === null) throw new Error("fixture has ext_authz");
  return { ...s, extAuthz: { ...s.extAuthz, ...patch } };
}

function withProc(patch: Partial<NonNullable<GatewaySettings["extProc"]>>, s: GatewaySettings = base): GatewaySettings {
  if (s.extProc === null) throw new Error("fixture has ext_proc");
  return { ...s, extProc: { ...s.extProc, ...patch } };
}

function kinds(messages: readonly ProcessingRequest__Output[]): string[] {
  return messages.map((m) => m.request ?? "none");
}

function procHeader(m: ProcessingRequest__Output | undefined, name: string): string | undefined {
  const h = (m?.request_headers ?? m?.response_headers)?.headers?.headers.find((x) => x.key === name);
  return h === undefined ? undefined : h.raw_value.toString("latin1");
}

describe("settings from the Bootstrap", () => {
  it("reads envoy/sidecar.yaml (or the fixture until it exists) into the settings the gateway honours", () => {
    const s = existsSync(SIDECAR) ? loadGatewaySettings(SIDECAR) : base;
    // The sidecar wires ext_authz → ext_proc → router with fail-closed settings (DESIGN.md §8).
    expect(s.extAuthz?.failureModeAllow).toBe(false);
    expect(s.extProc?.failureModeAllow).toBe(false);
    expect(s.extProc?.forwardingNamespacesUntyped).toContain("envoy.filters.http.ext_authz");
    const upgradeRoute = s.virtualHosts[0]?.routes.find((r) => r.extProc.disabled);
    expect(upgradeRoute?.extAuthz.disableRequestBodyBuffering).toBe(true);
    expect(upgradeRoute?.upgradeConfigs.get("websocket") ?? s.upgradeConfigs.get("websocket")).toBe(true);
  });

  it("fixture: defaults filled as Envoy's protos state them", () => {
    // route_components.proto: route timeout default 15 s, "0s" disables it; processing_mode.proto defaults.
    const route = base.virtualHosts[0]?.routes[1];
    expect(route?.timeoutMs).toBe(0);
    expect(base.extAuthz?.statusOnError).toBe(403);
    expect(base.extProc?.processingMode.requestTrailerMode).toBe("SKIP");
    expect(base.streamIdleTimeoutMs).toBe(300_000);
  });
});

describe("ext_authz CheckRequest", () => {
  it("carries the header map with pseudo-headers, the raw undecoded path with query, and the stream attributes", async () => {
    const url = await start();
    const res = await request(url, {
      path: "/api/v1/namespaces/a%20b/pods?labelSelector=app%3Dx&limit=5",
      headers: { Authorization: "Bearer agent", "X-Dup": ["one", "two"], "x-envoy-auth-partial-body": "spoofed" },
    });
    expect(res.status).toBe(200);
    const http = authz.requests[0]?.attributes?.request?.http;
    // attribute_context.proto HttpRequest.path: "The request target, as it appears in the first line of the
    // HTTP request. This includes the URL path and query-string. No decoding is performed."
    expect(http?.path).toBe("/api/v1/namespaces/a%20b/pods?labelSelector=app%3Dx&limit=5");
    expect(http?.method).toBe("GET");
    expect(http?.protocol).toBe("HTTP/1.1");
    expect(http?.scheme).toBe("http");
    // check_request_utils.cc setHttpRequest: headers.iterate → lower-case keys, pseudo-headers included,
    // "Merge duplicate headers" with ",".
    expect(http?.headers[":method"]).toBe("GET");
    expect(http?.headers[":path"]).toBe(http?.path);
    expect(http?.headers[":authority"]).toBe(http?.host);
    expect(http?.headers["authorization"]).toBe("Bearer agent");
    expect(http?.headers["x-dup"]).toBe("one,two");
    // "Skip any client EnvoyAuthPartialBody header, which could interfere with internal use." (GET: no body
    // was buffered, so Envoy does not add its own either.)
    expect(http?.headers["x-envoy-auth-partial-body"]).toBeUndefined();
    expect(http?.body).toBe("");
    expect(http?.size).toBe("0");
    // HCM generate_request_id: x-request-id is generated and added to the request; id is the stream id.
    expect(http?.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(http?.id).toMatch(/^\d+$/);
    expect(rawValues(upstream.requests[0]?.rawHeaders ?? [], "x-request-id")).toEqual([http?.headers["x-request-id"]]);
    // Per-route check_settings.context_extensions → attributes.context_extensions.
    expect(authz.requests[0]?.attributes?.context_extensions).toEqual({ route_class: "default" });
    expect(authz.requests[0]?.attributes?.source?.address?.socket_address?.address).toBe("127.0.0.1");
  });

  it("serves HTTP/2 prior knowledge (h2c) and reports protocol HTTP/2", async () => {
    const url = await start();
    const session = http2.connect(url);
    const { status, protocol } = await new Promise<{ status: number; protocol: string | undefined }>((resolve, reject) => {
      const stream = session.request({ ":path": "/api/v1/pods", ":method": "GET" });
      stream.on("response", (h) => {
        stream.resume();
        stream.on("end", () => {
          resolve({ status: Number(h[":status"]), protocol: authz.requests[0]?.attributes?.request?.http?.protocol });
        });
      });
      stream.on("error", reject);
    });
    session.close();
    expect(status).toBe(200);
    expect(protocol).toBe("HTTP/2");
  });

  it("with_request_body: partial-body header, raw_body per pack_as_bytes, the whole body still goes upstream", async () => {
    const url = await start();
    // ext_authz.cc isBufferFull + check_request_utils.cc: `length = min(buffer, max_request_bytes)`,
    // x-envoy-auth-partial-body = length != buffer length.
    const big = Buffer.from("0123456789abcdefXYZ");
    const res = await request(url, { method: "POST", path: "/api/v1/namespaces/d/configmaps", body: big, headers: { "content-type": "application/json" } });
    expect(res.status).toBe(200);
    const http = authz.requests[0]?.attributes?.request?.http;
    expect(http?.raw_body.toString()).toBe("0123456789abcdef");
    expect(http?.body).toBe("");
    expect(http?.headers["x-envoy-auth-partial-body"]).toBe("true");
    expect(upstream.requests[0]?.body.toString()).toBe(big.toString());

    await request(url, { method: "POST", path: "/api/v1/namespaces/d/configmaps", body: "{}" });
    const small = authz.requests[1]?.attributes?.request?.http;
    expect(small?.raw_body.toString()).toBe("{}");
    expect(small?.headers["x-envoy-auth-partial-body"]).toBe("false");
    expect(small?.size).toBe("2");
  });

  it("pack_as_bytes false: the body travels as a UTF-8 string with invalid bytes replaced by '!'", async () => {
    const s = withAuthz({ withRequestBody: { maxRequestBytes: 64, allowPartialMessage: true, packAsBytes: false } });
    const url = await start(s);
    await request(url, { method: "PUT", path: "/x", body: Buffer.from([0x68, 0x69, 0xff, 0x21]) });
    // check_request_utils.cc: `httpreq.set_body(MessageUtil::sanitizeUtf8String(data))`.
    expect(authz.requests[0]?.attributes?.request?.http?.body).toBe("hi!!");
  });

  it("allow_partial_message false: a body over max_request_bytes is a 413 and the server is never called", async () => {
    const s = withAuthz({ withRequestBody: { maxRequestBytes: 4, allowPartialMessage: false, packAsBytes: true } });
    const url = await start(s);
    // ext_authz.proto BufferSettings: "…the filter will return 413 (Payload Too Large)… has precedence over
    // failure_mode_allow"; ext_authz.cc decodeHeaders sets the decoder buffer limit to max_request_bytes.
    const res = await request(url, { method: "POST", path: "/x", body: "12345" });
    expect(res.status).toBe(413);
    expect(authz.requests).toHaveLength(0);
    expect(upstream.requests).toHaveLength(0);
  });

  it("skips buffering on routes with disable_request_body_buffering", async () => {
    const url = await start();
    upstream.handler = (_req, res) => {
      res.writeHead(200);
      res.end();
    };
    await request(url, { method: "POST", path: "/api/v1/namespaces/d/pods/p/exec", body: "abc" });
    const http = authz.requests[0]?.attributes?.request?.http;
    // ext_authz.cc: `buffer_data_ = … && !check_settings.disable_request_body_buffering() && …`.
    expect(http?.headers["x-envoy-auth-partial-body"]).toBeUndefined();
    expect(http?.raw_body.length).toBe(0);
    expect(authz.requests[0]?.attributes?.context_extensions).toEqual({ route_class: "upgrade" });
  });
});

describe("ext_authz CheckResponse", () => {
  it("OK: header set/add/append_action, headers_to_remove ignoring pseudo-headers and Host, response headers, query", async () => {
    authz.handler = () => ({
      status: { code: 0 },
      ok_response: {
        headers: [
          { header: { key: "authorization", value: "Bearer gateway" }, append_action: "OVERWRITE_IF_EXISTS_OR_ADD" },
          { header: { key: "x-added", value: "1" }, append_action: "APPEND_IF_EXISTS_OR_ADD" },
          { header: { key: "x-added", value: "2" }, append_action: "APPEND_IF_EXISTS_OR_ADD" },
          { header: { key: "x-absent-only", value: "new" }, append_action: "ADD_IF_ABSENT" },
        ],
        // ext_authz.cc: "We don't allow removing any :-prefixed headers, nor Host, as removing them would
        // make the request malformed."
        headers_to_remove: ["impersonate-user", ":authority", "host", ":path"],
        response_headers_to_add: [{ header: { key: "x-decision", value: "allow" }, append_action: "OVERWRITE_IF_EXISTS_OR_ADD" }],
        query_parameters_to_set: [{ key: "limit", value: "500" }],
        query_parameters_to_remove: ["pretty"],
      },
    });
    const url = await start();
    const res = await request(url, {
      path: "/api/v1/pods?pretty=true&limit=5",
      headers: { authorization: "Bearer agent", "impersonate-user": "admin", "x-absent-only": "kept" },
    });
    expect(res.status).toBe(200);
    expect(res.headers["x-decision"]).toBe("allow");
    const up = upstream.requests[0];
    expect(rawValues(up?.rawHeaders ?? [], "authorization")).toEqual(["Bearer gateway"]);
    expect(rawValues(up?.rawHeaders ?? [], "x-added")).toEqual(["1", "2"]);
    expect(rawValues(up?.rawHeaders ?? [], "x-absent-only")).toEqual(["kept"]);
    expect(rawValues(up?.rawHeaders ?? [], "impersonate-user")).toEqual([]);
    expect(rawValues(up?.rawHeaders ?? [], "host")).toHaveLength(1);
    expect(up?.url).toBe("/api/v1/pods?limit=500");
  });

  it("OK under the sidecar's decoder_header_mutation_rules {disallow_is_error}: setting host fails the request", async () => {
    authz.handler = () => ({ status: { code: 0 }, ok_response: { headers: [{ header: { key: "host", value: "evil" }, append_action: "OVERWRITE_IF_EXISTS_OR_ADD" }] } });
    const rules = { allowAllRouting: false, allowEnvoy: false, disallowSystem: false, disallowAll: false, allowExpression: null, disallowExpression: null, disallowIsError: true };
    const url = await start(withAuthz({ decoderHeaderMutationRules: rules }));
    const res = await request(url, { path: "/api/v1/pods" });
    // mutation_rules.cc: host is a routing header; disallow_is_error turns the rejection into a failure.
    expect(res.status).toBe(500);
    expect(upstream.requests).toHaveLength(0);
  });

  it("Denied: a local reply with denied_response status, headers (several Set-Cookie) and body", async () => {
    authz.handler = () => ({
      status: { code: grpc.status.PERMISSION_DENIED },
      denied_response: {
        status: { code: "TooManyRequests" },
        headers: [
          { header: { key: "retry-after", value: "5" }, append_action: "OVERWRITE_IF_EXISTS_OR_ADD" },
          { header: { key: "content-type", value: "application/json" }, append_action: "OVERWRITE_IF_EXISTS_OR_ADD" },
          { header: { key: "set-cookie", value: "a=1" }, append: { value: true } },
          { header: { key: "set-cookie", value: "b=2" }, append: { value: true } },
        ],
        body: '{"kind":"Status","code":429}',
      },
    });
    const url = await start();
    const res = await request(url, { path: "/api/v1/namespaces/prod/secrets/db" });
    expect(res.status).toBe(429);
    expect(res.headers["retry-after"]).toBe("5");
    expect(res.headers["content-type"]).toBe("application/json");
    expect(rawValues(res.rawHeaders, "set-cookie")).toEqual(["a=1", "b=2"]);
    expect(res.body.toString()).toBe('{"kind":"Status","code":429}');
    // Denied requests never reach the upstream nor ext_proc (ext_proc is after ext_authz in the chain).
    expect(upstream.requests).toHaveLength(0);
    expect(proc.streams).toBe(0);
  });

  it("Denied without denied_response: 403 (GrpcClientImpl: 'The default HTTP status code for denied response is 403')", async () => {
    authz.handler = () => ({ status: { code: grpc.status.PERMISSION_DENIED } });
    const url = await start();
    expect((await request(url, { path: "/api/v1/pods" })).status).toBe(403);
  });

  it("gRPC error → status_on_error (403 by default, the sidecar's 503) with failure_mode_allow false", async () => {
    authz.handler = () => grpcError(grpc.status.UNAVAILABLE, "down");
    let url = await start();
    // ext_authz.cc onComplete CheckStatus::Error: sendLocalReply(config_->statusOnError(), EMPTY_STRING…).
    const res = await request(url, { path: "/api/v1/pods" });
    expect(res.status).toBe(403);
    expect(res.body.length).toBe(0);
    await gateway?.close();
    url = await start(withAuthz({ statusOnError: 503 }));
    expect((await request(url, { path: "/api/v1/pods" })).status).toBe(503);
    expect(upstream.requests).toHaveLength(0);
  });

  it("timeout → the error path (the deadline is the grpc_service timeout)", async () => {
    authz.handler = () =>
      new Promise((resolve) => {
        setTimeout(() => {
          resolve({ status: { code: 0 } });
        }, 600);
      });
    const url = await start(withAuthz({ timeoutMs: 100 }));
    const res = await request(url, { path: "/api/v1/pods" });
    expect(res.status).toBe(403);
    expect(upstream.requests).toHaveLength(0);
  });

  it("dynamic_metadata is stored under envoy.filters.http.ext_authz and forwarded to ext_proc metadata_context", async () => {
    authz.handler = () => ({
      status: { code: 0 },
      dynamic_metadata: { fields: { decision_id: { stringValue: "d-123", kind: "stringValue" } } },
    });
    const url = await start();
    await request(url, { path: "/api/v1/pods" });
    // ext_proc.cc addDynamicMetadata: forwarding_namespaces.untyped copied into metadata_context; ext_authz.cc
    // onComplete adds ext_authz_duration on OK.
    const md = proc.messages[0]?.metadata_context?.filter_metadata["envoy.filters.http.ext_authz"];
    expect(md?.fields["decision_id"]?.stringValue).toBe("d-123");
    expect(md?.fields["ext_authz_duration"]?.numberValue).toBeTypeOf("number");
    expect(kinds(proc.messages)).toContain("response_headers");
    const rh = proc.messages.find((m) => m.request === "response_headers");
    expect(rh?.metadata_context?.filter_metadata["envoy.filters.http.ext_authz"]?.fields["decision_id"]?.stringValue).toBe("d-123");
  });
});

describe("ext_proc", () => {
  it("STREAMED response: one message per chunk, each reply replaces its chunk, chunks flush as they come", async () => {
    let releaseSecond: () => void = () => undefined;
    const secondGate = new Promise<void>((r) => {
      releaseSecond = r;
    });
    upstream.handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"type":"ADDED"}\n');
      void secondGate.then(() => {
        res.end('{"type":"MODIFIED"}\n');
      });
    };
    proc.handler = onEachMessage((req, call) => {
      if (req.request === "response_body") {
        const body = req.response_body?.body.toString() ?? "";
        call.write({ response_body: { response: { body_mutation: { body: Buffer.from(body.toUpperCase()) } } } });
      } else {
        call.write(continueReply(req));
      }
    });
    const url = await start();
    const chunks: string[] = [];
    const res = await request(url, {
      path: "/api/v1/pods?watch=1",
      onChunk: (c) => {
        chunks.push(c.toString());
        releaseSecond();
      },
    });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('{"TYPE":"ADDED"}\n{"TYPE":"MODIFIED"}\n');
    // The first chunk reached the client before the upstream wrote the second one (flush per chunk).
    expect(chunks[0]).toBe('{"TYPE":"ADDED"}\n');
    const bodies = proc.messages.filter((m) => m.request === "response_body");
    expect(bodies.map((m) => m.response_body?.body.toString())).toEqual(['{"type":"ADDED"}\n', '{"type":"MODIFIED"}\n', ""]);
    expect(bodies.map((m) => m.response_body?.end_of_stream)).toEqual([false, false, true]);
  });

  it("removes content-length when the body can be mutated (STREAMED) so HTTP/1 goes chunked", async () => {
    upstream.handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": "11" });
      res.end('{"a":"bcd"}');
    };
    proc.handler = onEachMessage((req, call) => {
      if (req.request === "response_body") call.write({ response_body: { response: { body_mutation: { body: Buffer.from('{"a":"***masked***"}') } } } });
      else call.write(continueReply(req));
    });
    const url = await start();
    const res = await request(url, { path: "/api/v1/namespaces/d/secrets/s" });
    // processor_state.h shouldRemoveContentLength: STREAMED → "In http1 codec, removing content length will
    // enable chunked encoding whenever feasible." The processor still saw the original header.
    expect(procHeader(proc.messages.find((m) => m.request === "response_headers"), "content-length")).toBe("11");
    expect(res.headers["content-length"]).toBeUndefined();
    expect(res.headers["transfer-encoding"]).toBe("chunked");
    expect(res.body.toString()).toBe('{"a":"***masked***"}');
    // A content-length body marks end_of_stream on its last data chunk (no extra empty message).
    const bodies = proc.messages.filter((m) => m.request === "response_body");
    expect(bodies.at(-1)?.response_body?.end_of_stream).toBe(true);
  });

  it("request header mutations use raw_value; x-envoy-* and :authority are not settable by default", async () => {
    proc.handler = onEachMessage((req, call) => {
      if (req.request === "request_headers") {
        call.write({
          request_headers: {
            response: {
              header_mutation: {
                set_headers: [
                  { header: { key: "x-from-proc", raw_value: Buffer.from("yes") } },
                  { header: { key: "x-envoy-sneaky", raw_value: Buffer.from("1") } },
                  { header: { key: ":authority", raw_value: Buffer.from("evil.example") } },
                ],
                remove_headers: [":path", "host"],
              },
            },
          },
        });
      } else call.write(continueReply(req));
    });
    const url = await start();
    const res = await request(url, { path: "/api/v1/pods" });
    expect(res.status).toBe(200);
    const raw = upstream.requests[0]?.rawHeaders ?? [];
    // mutation_rules.cc: routing headers and x-envoy-* are refused (ignored without disallow_is_error);
    // ":" headers and host can never be removed.
    expect(rawValues(raw, "x-from-proc")).toEqual(["yes"]);
    expect(rawValues(raw, "x-envoy-sneaky")).toEqual([]);
    expect(rawValues(raw, "host")[0]).not.toBe("evil.example");
    expect(upstream.requests[0]?.url).toBe("/api/v1/pods");
    // Header values reach the processor in raw_value (send_header_raw_value).
    expect(procHeader(proc.messages[0], ":path")).toBe("/api/v1/pods");
  });

  it("immediate_response before the response started: status, headers and body go to the client", async () => {
    proc.handler = onEachMessage((req, call) => {
      if (req.request === "request_headers") {
        call.write({
          immediate_response: {
            status: { code: "Forbidden" },
            headers: { set_headers: [{ header: { key: "content-type", raw_value: Buffer.from("application/json") } }] },
            body: Buffer.from('{"kind":"Status","reason":"Masked"}'),
          },
        });
      }
    });
    const url = await start();
    const res = await request(url, { path: "/api/v1/pods" });
    expect(res.status).toBe(403);
    expect(res.headers["content-type"]).toBe("application/json");
    expect(res.body.toString()).toBe('{"kind":"Status","reason":"Masked"}');
    expect(upstream.requests).toHaveLength(0);
  });

  it("immediate_response after the response started: the stream is reset (the client sees a broken body)", async () => {
    upstream.handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write("first-chunk");
      setTimeout(() => res.end("second-chunk"), 50);
    };
    proc.handler = (call) => {
      let bodies = 0;
      call.on("data", (req: ProcessingRequest__Output) => {
        if (req.request === "response_body") {
          bodies += 1;
          if (bodies === 1) call.write(continueReply(req));
          else call.write({ immediate_response: { status: { code: "InternalServerError" }, body: Buffer.from("cannot mask") } });
        } else call.write(continueReply(req));
      });
      call.on("end", () => {
        call.end();
      });
    };
    const url = await start();
    const res = await request(url, { path: "/api/v1/pods" });
    // sendLocalReply after response headers were sent resets the stream (HTTP/1: the connection closes).
    expect(res.status).toBe(200);
    expect(res.complete).toBe(false);
    expect(res.body.toString()).toBe("first-chunk");
  });

  it("mode_override is honoured in header replies only with allow_mode_override", async () => {
    const noBodies = withProc({ processingMode: { ...base.extProc!.processingMode, responseBodyMode: "NONE" } });
    proc.handler = onEachMessage((req, call) => {
      const r = continueReply(req);
      if (req.request === "request_headers") r.mode_override = { response_body_mode: "STREAMED", response_header_mode: "SEND" };
      call.write(r);
    });
    let url = await start(noBodies);
    await request(url, { path: "/api/v1/namespaces/d/secrets" });
    // ext_proc.cc onReceiveMessage: "allow_mode_override set to true and filter is waiting for header
    // processing response. Otherwise, the response mode_override proto field is ignored."
    expect(kinds(proc.messages)).toContain("response_body");
    await gateway?.close();
    proc.messages.length = 0;
    url = await start(withProc({ allowModeOverride: false }, noBodies));
    await request(url, { path: "/api/v1/namespaces/d/secrets" });
    expect(kinds(proc.messages)).toEqual(["request_headers", "response_headers"]);
  });

  it("BUFFERED response: one whole-body message; its header mutation applies; a content-length mismatch is a 500", async () => {
    upstream.handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": "11" });
      res.write('{"a":');
      setTimeout(() => res.end('"bcd"}'), 20);
    };
    let keepLength = true;
    proc.handler = onEachMessage((req, call) => {
      if (req.request !== "response_body") {
        call.write(continueReply(req));
        return;
      }
      const body = keepLength ? Buffer.from('{"a":"***"}') : Buffer.from('{"a":"*"}');
      call.write({
        response_body: {
          response: {
            header_mutation: { set_headers: [{ header: { key: "x-masked", raw_value: Buffer.from("1") } }] },
            body_mutation: { body },
          },
        },
      });
    });
    const buffered = withProc({ processingMode: { ...base.extProc!.processingMode, responseBodyMode: "BUFFERED" } });
    const url = await start(buffered);
    const res = await request(url, { path: "/api/v1/namespaces/d/secrets/s" });
    // processing_mode.proto BUFFERED: the whole body in one message; with header mode SEND the content-length
    // stays and "it is external processor's responsibility to set the content length correctly".
    const bodies = proc.messages.filter((m) => m.request === "response_body");
    expect(bodies.map((m) => [m.response_body?.body.toString(), m.response_body?.end_of_stream])).toEqual([['{"a":"bcd"}', true]]);
    expect(res.status).toBe(200);
    expect(res.headers["x-masked"]).toBe("1");
    expect(res.headers["content-length"]).toBe("11");
    expect(res.body.toString()).toBe('{"a":"***"}');
    keepLength = false;
    // processor_state.cc: "mismatch between content length and the length of the mutated body" → 500.
    expect((await request(url, { path: "/api/v1/namespaces/d/secrets/s" })).status).toBe(500);
  });

  it("message_timeout while streaming the body: the response already started, so the stream is reset", async () => {
    upstream.handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write("one");
      setTimeout(() => res.end("two"), 30);
    };
    proc.handler = (call) => {
      let bodies = 0;
      call.on("data", (req: ProcessingRequest__Output) => {
        if (req.request === "response_body") {
          bodies += 1;
          if (bodies > 1) return;
        }
        call.write(continueReply(req));
      });
      call.on("end", () => {
        call.end();
      });
    };
    const url = await start(withProc({ messageTimeoutMs: 150 }));
    const res = await request(url, { path: "/api/v1/pods" });
    expect(res.status).toBe(200);
    expect(res.complete).toBe(false);
    expect(res.body.toString()).toBe("one");
  });

  it("message_timeout: no reply in time → 504 (ext_proc.cc onMessageTimeout, StatusCode::GatewayTimeout)", async () => {
    proc.handler = (call) => {
      call.on("data", (req: ProcessingRequest__Output) => {
        if (req.request !== "response_headers") call.write(continueReply(req));
      });
      call.on("end", () => {
        call.end();
      });
      call.on("cancelled", () => undefined);
    };
    const url = await start(withProc({ messageTimeoutMs: 150 }));
    const res = await request(url, { path: "/api/v1/pods" });
    expect(res.status).toBe(504);
  });

  it("a stream error is a 500 with failure_mode_allow false; a clean close lets the request through", async () => {
    proc.handler = (call) => {
      call.on("data", () => {
        call.emit("error", grpcError(grpc.status.INTERNAL, "boom"));
      });
    };
    let url = await start();
    expect((await request(url, { path: "/api/v1/pods" })).status).toBe(500);
    await gateway?.close();
    // external_processor.proto: "if the server closes the gRPC stream cleanly, then Envoy proceeds without
    // consulting the server."
    proc.handler = (call) => {
      call.on("data", () => {
        call.end();
      });
    };
    url = await start();
    const res = await request(url, { path: "/api/v1/pods" });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('{"kind":"Status"}');
  });
});

describe("upgrades", () => {
  function upgrade(url: string, path: string, type = "websocket"): Promise<{ head: string; socket: net.Socket }> {
    const { port } = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = net.connect(Number(port), "127.0.0.1", () => {
        socket.write(
          `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: ${type}\r\nSec-WebSocket-Version: 13\r\n` +
            `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\nAuthorization: Bearer agent\r\n\r\n`,
        );
      });
      let buf = "";
      socket.on("data", (d: Buffer) => {
        buf += d.toString("latin1");
        const end = buf.indexOf("\r\n\r\n");
        if (end >= 0) {
          socket.removeAllListeners("data");
          resolve({ head: buf.slice(0, end), socket });
        }
      });
      socket.on("error", reject);
    });
  }

  it("WebSocket exec passes through after an OK Check, without ext_proc, then pipes raw bytes", async () => {
    const url = await start();
    const { head, socket } = await upgrade(url, "/api/v1/namespaces/d/pods/p/exec?command=ls&stdout=true");
    expect(head.split("\r\n")[0]).toBe("HTTP/1.1 101 Switching Protocols");
    const echoed = await new Promise<string>((resolve) => {
      socket.once("data", (d: Buffer) => {
        resolve(d.toString());
      });
      socket.write("ping");
    });
    socket.destroy();
    expect(echoed).toBe("echo:ping");
    const check = authz.requests[0]?.attributes?.request?.http;
    expect(check?.headers["upgrade"]).toBe("websocket");
    expect(check?.path).toBe("/api/v1/namespaces/d/pods/p/exec?command=ls&stdout=true");
    // ExtProcPerRoute.disabled on the upgrade route: no ext_proc stream at all.
    expect(proc.streams).toBe(0);
    expect(rawValues(upstream.requests[0]?.rawHeaders ?? [], "upgrade")).toEqual(["websocket"]);
  });

  it("a denied WebSocket upgrade gets the denial and never reaches the upstream", async () => {
    authz.handler = () => ({ status: { code: grpc.status.PERMISSION_DENIED } });
    const url = await start();
    const { head, socket } = await upgrade(url, "/api/v1/namespaces/d/pods/p/exec");
    socket.destroy();
    expect(head.split("\r\n")[0]).toBe("HTTP/1.1 403 Forbidden");
    expect(upstream.requests).toHaveLength(0);
  });

  it("an upgrade type the route/HCM does not enable (SPDY/3.1, or websocket on a non-upgrade route) is a 403 before ext_authz", async () => {
    const url = await start();
    const spdy = await upgrade(url, "/api/v1/namespaces/d/pods/p/exec", "SPDY/3.1");
    spdy.socket.destroy();
    expect(spdy.head.split("\r\n")[0]).toBe("HTTP/1.1 403 Forbidden");
    const ws = await upgrade(url, "/api/v1/pods", "websocket");
    ws.socket.destroy();
    expect(ws.head.split("\r\n")[0]).toBe("HTTP/1.1 403 Forbidden");
    // conn_manager_impl.cc: upgrade rejected → sendLocalReply(Code::Forbidden, …, UpgradeFailed).
    expect(authz.requests).toHaveLength(0);
  });
});

describe("HCM behaviours of envoy/sidecar.yaml", () => {
  it("normalizes the path before ext_authz sees it, rejects escaped slashes and underscore headers", async () => {
    if (!existsSync(SIDECAR)) return;
    const url = await start(withAuthz({ timeoutMs: 2000 }, loadGatewaySettings(SIDECAR)));
    // The sidecar's listener speaks TLS (test/integration/gateway/listener-tls.test.ts covers it).
    const tls = { ca: cert.cert, alpn: ["h2", "http/1.1"] };
    // normalize_path (RFC 3986 dot segments) + merge_slashes, ConnectionManagerUtility::maybeNormalizePath.
    const ok = await request(url, { path: "/api/v1/./namespaces//default/../default/pods?limit=1", tls });
    expect(ok.status).toBe(200);
    expect(authz.requests[0]?.attributes?.request?.http?.path).toBe("/api/v1/namespaces/default/pods?limit=1");
    // path_with_escaped_slashes_action: REJECT_REQUEST → 400.
    expect((await request(url, { path: "/api/v1/namespaces/a%2Fb/pods", tls })).status).toBe(400);
    // headers_with_underscores_action: REJECT_REQUEST.
    expect((await request(url, { path: "/api/v1/pods", headers: { x_bad: "1" }, tls })).status).toBe(400);
    // use_remote_address + preserve_external_request_id false: the client cannot choose x-request-id.
    await request(url, { path: "/api/v1/pods", headers: { "x-request-id": "chosen-by-agent" }, tls });
    expect(authz.requests.at(-1)?.attributes?.request?.http?.headers["x-request-id"]).not.toBe("chosen-by-agent");
  });
});
