/**
 * @module test/integration/gateway/listener-tls.test
 * The agent listener's DownstreamTlsContext (envoy/sidecar.yaml) reproduced by the test gateway: kubectl-like HTTPS
 * clients that trust only the per-pod CA, ALPN, TLS versions, WebSocket upgrades over TLS, and HTTP/2 over TLS.
 */
import { fileURLToPath } from "node:url";
import { readFileSync } from "node:fs";
import * as http2 from "node:http2";
import * as tls from "node:tls";
import { parse as parseYaml } from "yaml";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EnvoyFaithfulGatewayError, startEnvoyFaithfulGateway, type EnvoyFaithfulGateway } from "../../gateway/envoy-faithful-gateway.js";
import {
  GatewaySettingsError,
  gatewaySettingsFromBootstrap,
  loadGatewaySettings,
  type DownstreamTlsSettings,
  type GatewaySettings,
} from "../../gateway/gateway-settings.js";
import {
  makeThrowAwayCa,
  makeThrowAwayCert,
  rawValues,
  request,
  startGatewayPeers,
  type AuthzDouble,
  type GatewayPeers,
  type ClientTls,
  type ProcDouble,
  type ThrowAwayCa,
  type ThrowAwayCert,
  type UpstreamDouble,
} from "./gateway-test-peers.js";

const SIDECAR = fileURLToPath(new URL("../../../envoy/sidecar.yaml", import.meta.url));
const CENTRAL = fileURLToPath(new URL("../../../envoy/central.yaml", import.meta.url));
const FIXTURE = fileURLToPath(new URL("../../gateway/fixtures/minimal-bootstrap.yaml", import.meta.url));

const sidecar = loadGatewaySettings(SIDECAR);

let upstreamCert: ThrowAwayCert;
let podCa: ThrowAwayCa;
let otherCa: ThrowAwayCa;
let peers: GatewayPeers;
let authz: AuthzDouble;
let proc: ProcDouble;
let upstream: UpstreamDouble;
let gateway: EnvoyFaithfulGateway | null = null;

beforeAll(async () => {
  upstreamCert = makeThrowAwayCert();
  podCa = makeThrowAwayCa();
  otherCa = makeThrowAwayCa("someone-else");
  peers = await startGatewayPeers(upstreamCert);
  ({ authz, proc, upstream } = peers);
});

afterAll(async () => {
  await peers.close();
  upstreamCert.cleanup();
  podCa.cleanup();
  otherCa.cleanup();
});

afterEach(async () => {
  await gateway?.close();
  gateway = null;
  peers.reset();
});

function withTls(patch: Partial<DownstreamTlsSettings>, s: GatewaySettings = sidecar): GatewaySettings {
  if (s.downstreamTls === null) throw new Error("settings have no DownstreamTlsContext");
  return { ...s, downstreamTls: { ...s.downstreamTls, ...patch } };
}

async function start(settings: GatewaySettings = sidecar): Promise<string> {
  gateway = await startEnvoyFaithfulGateway({
    settings,
    ...peers.gatewayOptions,
    listen: { host: "127.0.0.1", port: 0, tls: { cert: podCa.cert, key: podCa.key } },
  });
  return gateway.url;
}

/** What client-go's transport does: trust the kubeconfig's certificate-authority, offer h2 and http/1.1. */
function kubectlTls(): ClientTls {
  return { ca: podCa.caCert, alpn: ["h2", "http/1.1"] };
}

interface RawExchange {
  readonly alpn: string | false | null;
  readonly protocol: string | null;
  /** The response head up to the blank line, or null if the connection ended before one arrived. */
  readonly head: string | null;
  readonly received: Buffer;
  readonly socket: tls.TLSSocket;
}

/** A WebSocket Upgrade (what kubectl exec sends) written by hand over a TLS connection. */
function tlsUpgrade(url: string, path: string, alpn: readonly string[] | undefined, ca: Buffer = podCa.caCert): Promise<RawExchange> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port: Number(port), ca, ...(alpn !== undefined ? { ALPNProtocols: [...alpn] } : {}) }, () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\nAuthorization: Bearer agent-jwt\r\n\r\n`,
      );
    });
    let received = Buffer.alloc(0);
    let settled = false;
    const settle = (head: string | null): void => {
      if (settled) return;
      settled = true;
      socket.removeAllListeners("data");
      resolve({ alpn: socket.alpnProtocol, protocol: socket.getProtocol(), head, received, socket });
    };
    socket.on("data", (d: Buffer) => {
      received = Buffer.concat([received, d]);
      const end = received.indexOf("\r\n\r\n");
      if (end >= 0) settle(received.subarray(0, end).toString("latin1"));
    });
    socket.on("close", () => {
      settle(null);
    });
    let secured = false;
    socket.once("secureConnect", () => {
      secured = true;
    });
    socket.on("error", (err: Error) => {
      // After the handshake, a reset is an answer like a close; before it, the handshake failed.
      if (secured) {
        settle(null);
        return;
      }
      if (settled) return;
      settled = true;
      reject(err);
    });
  });
}

describe("settings: the listener's DownstreamTlsContext", () => {
  it("reads envoy/sidecar.yaml: HTTP/1.1-only ALPN, TLS 1.2-1.3, the certificate files in the Envoy-only mount", () => {
    expect(sidecar.downstreamTls).toEqual({
      alpnProtocols: ["http/1.1"],
      minimumProtocolVersion: "TLSv1_2",
      maximumProtocolVersion: "TLSv1_3",
      certificateChainFile: "/etc/airlock/sidecar-tls/tls.crt",
      privateKeyFile: "/etc/airlock/sidecar-tls/tls.key",
    });
  });

  it("reads envoy/central.yaml with the server defaults of common.proto TlsParameters (maximum TLSv1_3)", () => {
    const central = loadGatewaySettings(CENTRAL);
    expect(central.downstreamTls?.alpnProtocols).toEqual(["h2", "http/1.1"]);
    expect(central.downstreamTls?.minimumProtocolVersion).toBe("TLSv1_2");
    expect(central.downstreamTls?.maximumProtocolVersion).toBe("TLSv1_3");
  });

  it("keeps a plaintext listener plaintext", () => {
    expect(loadGatewaySettings(FIXTURE).downstreamTls).toBeNull();
  });

  const sidecarDoc = (): Record<string, unknown> => parseYaml(readFileSync(SIDECAR, "utf8")) as Record<string, unknown>;
  /** The DownstreamTlsContext of the parsed sidecar.yaml, for in-place mutation. */
  function tlsContext(doc: Record<string, unknown>): Record<string, unknown> {
    const listeners = (doc["static_resources"] as { listeners: { filter_chains: { transport_socket: { typed_config: Record<string, unknown> } }[] }[] }).listeners;
    const chain = listeners[0]?.filter_chains[0];
    if (chain === undefined) throw new Error("sidecar.yaml has a filter chain");
    return chain.transport_socket.typed_config;
  }
  const common = (ctx: Record<string, unknown>): Record<string, unknown> => ctx["common_tls_context"] as Record<string, unknown>;

  it.each<[string, (ctx: Record<string, unknown>) => void, string]>([
    ["client certificates", (ctx) => { ctx["require_client_certificate"] = true; }, "require_client_certificate"],
    ["a validation context", (ctx) => { common(ctx)["validation_context"] = { trusted_ca: { filename: "/ca.crt" } }; }, "validation_context"],
    ["a cipher list", (ctx) => { (common(ctx)["tls_params"] as Record<string, unknown>)["cipher_suites"] = ["ECDHE-ECDSA-AES128-GCM-SHA256"]; }, "cipher_suites"],
    ["SDS certificates", (ctx) => { common(ctx)["tls_certificate_sds_secret_configs"] = [{ name: "x" }]; }, "tls_certificate_sds_secret_configs"],
    ["two certificates", (ctx) => {
      const certs = common(ctx)["tls_certificates"] as unknown[];
      certs.push(certs[0]);
    }, "tls_certificates"],
    ["session tickets", (ctx) => { ctx["session_timeout"] = "60s"; }, "session_timeout"],
  ])("refuses what it would not reproduce: %s", (_label, mutateCtx, pathPart) => {
    const doc = sidecarDoc();
    mutateCtx(tlsContext(doc));
    let caught: unknown;
    try {
      gatewaySettingsFromBootstrap(doc);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(GatewaySettingsError);
    expect((caught as GatewaySettingsError).code).toBe("unsupported_feature");
    expect((caught as GatewaySettingsError).path).toContain(pathPart);
  });

  it("refuses a transport socket other than TLS and a maximum version below the minimum", () => {
    const raw = sidecarDoc();
    const listeners = (raw["static_resources"] as { listeners: { filter_chains: { transport_socket: Record<string, unknown> }[] }[] }).listeners;
    const socket = listeners[0]?.filter_chains[0]?.transport_socket;
    if (socket === undefined) throw new Error("sidecar.yaml has a transport socket");
    socket["name"] = "envoy.transport_sockets.raw_buffer";
    expect(() => gatewaySettingsFromBootstrap(raw)).toThrow(/unsupported_feature .*transport_socket\.name/);
    const inverted = sidecarDoc();
    (common(tlsContext(inverted))["tls_params"] as Record<string, unknown>)["tls_maximum_protocol_version"] = "TLSv1_1";
    expect(() => gatewaySettingsFromBootstrap(inverted)).toThrow(/bad_bootstrap .*tls_params/);
  });
});

describe("starting the gateway", () => {
  async function refusal(promise: Promise<EnvoyFaithfulGateway>): Promise<EnvoyFaithfulGatewayError> {
    try {
      gateway = await promise;
    } catch (error) {
      expect(error).toBeInstanceOf(EnvoyFaithfulGatewayError);
      return error as EnvoyFaithfulGatewayError;
    }
    throw new Error("the gateway started");
  }

  it("refuses a TLS listener without key material, naming the files it stands for", async () => {
    const error = await refusal(startEnvoyFaithfulGateway({ settings: sidecar, ...peers.gatewayOptions }));
    expect(error.code).toBe("tls_material_missing");
    expect(error.message).toContain("/etc/airlock/sidecar-tls/tls.crt");
  });

  it("refuses key material for a plaintext listener", async () => {
    const error = await refusal(startEnvoyFaithfulGateway({
      settings: loadGatewaySettings(FIXTURE),
      ...peers.gatewayOptions,
      listen: { host: "127.0.0.1", port: 0, tls: { cert: podCa.cert, key: podCa.key } },
    }));
    expect(error.code).toBe("tls_material_unexpected");
  });

  it("refuses a key that does not match the certificate, without echoing either", async () => {
    const error = await refusal(startEnvoyFaithfulGateway({
      settings: sidecar,
      ...peers.gatewayOptions,
      listen: { host: "127.0.0.1", port: 0, tls: { cert: podCa.cert, key: otherCa.key } },
    }));
    expect(error.code).toBe("tls_material_invalid");
    expect(error.message).not.toMatch(/BEGIN|PRIVATE/);
  });
});

describe("HTTPS on the agent listener (envoy/sidecar.yaml)", () => {
  it("a kubectl-like client (the kubeconfig's CA, ALPN h2,http/1.1) gets HTTP/1.1, and its bearer token reaches ext_authz", async () => {
    const url = await start();
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const res = await request(url, { path: "/api/v1/namespaces/default/pods?limit=1", headers: { Authorization: "Bearer agent-jwt" }, tls: kubectlTls() });
    expect(res.status).toBe(200);
    expect(res.alpnProtocol).toBe("http/1.1");
    const attributes = authz.requests[0]?.attributes;
    expect(attributes?.request?.http?.headers["authorization"]).toBe("Bearer agent-jwt");
    // HTTP/1 has no :scheme; Envoy takes it from the connection's encryption.
    expect(attributes?.request?.http?.scheme).toBe("https");
    expect(attributes?.request?.http?.protocol).toBe("HTTP/1.1");
    // setAttrContextPeer: the local principal is the serving certificate's first URI SAN, else DNS SAN.
    expect(attributes?.destination?.principal).toBe("localhost");
    expect(attributes?.source?.principal).toBe("");
    expect(attributes?.source?.certificate).toBe("");
    // use_remote_address: x-forwarded-proto is overwritten with the downstream's real scheme.
    expect(rawValues(upstream.requests[0]?.rawHeaders ?? [], "x-forwarded-proto")).toEqual(["https"]);
    expect(upstream.requests[0]?.url).toBe("/api/v1/namespaces/default/pods?limit=1");
  });

  it("a client that offers no ALPN is served HTTP/1.1 after the preface sniff", async () => {
    const url = await start();
    const res = await request(url, { path: "/version", tls: { ca: podCa.caCert } });
    expect(res.status).toBe(200);
    expect(res.alpnProtocol).toBe(false);
    expect(authz.requests[0]?.attributes?.request?.http?.scheme).toBe("https");
  });

  it("a client that does not trust the pod's CA never completes the handshake, and nothing reaches ext_authz", async () => {
    const url = await start();
    await expect(request(url, { path: "/version", tls: { ca: otherCa.caCert, alpn: ["http/1.1"] } })).rejects.toThrow(/certificate|verify/i);
    expect(authz.requests).toHaveLength(0);
    expect(upstream.requests).toHaveLength(0);
  });

  it("a plaintext HTTP request to the TLS listener is not served", async () => {
    const url = await start();
    const plain = url.replace(/^https:/, "http:");
    const outcome = await request(plain, { path: "/version", headers: { Authorization: "Bearer agent-jwt" } }).then(
      (res) => res.status,
      () => "failed",
    );
    expect(outcome).not.toBe(200);
    expect(authz.requests).toHaveLength(0);
  });

  it("enforces the configured protocol versions (TLS 1.2 allowed by the sidecar; a TLS 1.3 minimum refuses a 1.2-only client)", async () => {
    const url = await start();
    const ok = await request(url, { path: "/version", tls: { ca: podCa.caCert, alpn: ["http/1.1"], maxVersion: "TLSv1.2" } });
    expect(ok.status).toBe(200);
    await gateway?.close();
    const strict = await start(withTls({ minimumProtocolVersion: "TLSv1_3" }));
    await expect(request(strict, { path: "/version", tls: { ca: podCa.caCert, alpn: ["http/1.1"], maxVersion: "TLSv1.2" } })).rejects.toThrow(/version|alert|ssl/i);
    expect(authz.requests).toHaveLength(1);
  });
});

describe("WebSocket upgrades over TLS", () => {
  it("kubectl exec: 101 through the sidecar's listener even when the dialer offers h2, then raw bytes both ways", async () => {
    const url = await start();
    // A WebSocket dialer that shares net/http's TLS config offers h2 too (gorilla/websocket#601); with
    // ALPN http/1.1 only, the listener still answers in HTTP/1.1 and the Upgrade works.
    const ex = await tlsUpgrade(url, "/api/v1/namespaces/d/pods/p/exec?command=ls&stdout=true", ["h2", "http/1.1"]);
    expect(ex.alpn).toBe("http/1.1");
    expect(ex.head?.split("\r\n")[0]).toBe("HTTP/1.1 101 Switching Protocols");
    const echoed = await new Promise<string>((resolve) => {
      ex.socket.once("data", (d: Buffer) => {
        resolve(d.toString());
      });
      ex.socket.write("ping");
    });
    ex.socket.destroy();
    expect(echoed).toBe("echo:ping");
    const check = authz.requests[0]?.attributes?.request?.http;
    expect(check?.headers["upgrade"]).toBe("websocket");
    expect(check?.headers["authorization"]).toBe("Bearer agent-jwt");
    expect(check?.scheme).toBe("https");
    // The sidecar's upgrade route disables ext_proc: no stream at all.
    expect(proc.streams).toBe(0);
    expect(rawValues(upstream.requests[0]?.rawHeaders ?? [], "upgrade")).toEqual(["websocket"]);
  });

  it("a denied upgrade over TLS gets the denial and never reaches the upstream", async () => {
    authz.handler = () => ({ status: { code: 7 } });
    const url = await start();
    const ex = await tlsUpgrade(url, "/api/v1/namespaces/d/pods/p/exec", ["http/1.1"]);
    ex.socket.destroy();
    // The sidecar's ext_authz has no denied_response: Envoy's default 403.
    expect(ex.head?.split("\r\n")[0]).toBe("HTTP/1.1 403 Forbidden");
    expect(upstream.requests).toHaveLength(0);
  });

  it("why http/1.1 only: with h2 in the listener's ALPN, the same dialer is answered in HTTP/2 and its Upgrade fails", async () => {
    const url = await start(withTls({ alpnProtocols: ["h2", "http/1.1"] }));
    const ex = await tlsUpgrade(url, "/api/v1/namespaces/d/pods/p/exec?command=ls", ["h2", "http/1.1"]);
    ex.socket.destroy();
    expect(ex.alpn).toBe("h2");
    expect(ex.head).toBeNull();
    expect(authz.requests).toHaveLength(0);
  });
});

describe("HTTP/2 over TLS when the listener's ALPN offers h2", () => {
  it("serves h2 chosen by ALPN and reports protocol HTTP/2 with scheme https", async () => {
    const url = await start(withTls({ alpnProtocols: ["h2", "http/1.1"] }));
    const session = http2.connect(url, { ca: podCa.caCert });
    const status = await new Promise<number>((resolve, reject) => {
      const stream = session.request({ ":path": "/api/v1/pods", ":method": "GET", authorization: "Bearer agent-jwt" });
      stream.on("response", (h) => {
        stream.resume();
        stream.on("end", () => {
          resolve(Number(h[":status"]));
        });
      });
      stream.on("error", reject);
    });
    const alpn = session.alpnProtocol;
    session.close();
    expect(status).toBe(200);
    expect(alpn).toBe("h2");
    const http = authz.requests[0]?.attributes?.request?.http;
    expect(http?.protocol).toBe("HTTP/2");
    expect(http?.scheme).toBe("https");
    expect(http?.headers["authorization"]).toBe("Bearer agent-jwt");
  });
});
