/**
 * @module test/integration/gateway/gateway-test-peers
 * Real peers for the Envoy-faithful gateway's tests: gRPC ext_authz/ext_proc doubles, an HTTPS upstream, a client.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import type * as net from "node:net";
import type * as tls from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import * as grpc from "@grpc/grpc-js";
import { loadEnvoyServices } from "../../../protos/load.js";
import type { CheckRequest__Output } from "../../../protos/generated/envoy/service/auth/v3/CheckRequest.js";
import type { CheckResponse } from "../../../protos/generated/envoy/service/auth/v3/CheckResponse.js";
import type { ProcessingRequest__Output } from "../../../protos/generated/envoy/service/ext_proc/v3/ProcessingRequest.js";
import type { ProcessingResponse } from "../../../protos/generated/envoy/service/ext_proc/v3/ProcessingResponse.js";
import type { EnvoyFaithfulGatewayOptions } from "../../gateway/envoy-faithful-gateway.js";

export interface ThrowAwayCert {
  readonly cert: Buffer;
  readonly key: Buffer;
  cleanup(): void;
}

/** A self-signed certificate for 127.0.0.1 made by the openssl CLI (it is its own CA). */
export function makeThrowAwayCert(): ThrowAwayCert {
  const dir = mkdtempSync(join(tmpdir(), "gateway-cert-"));
  const result = spawnSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
      "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
    { encoding: "utf8" },
  );
  if (result.status !== 0) throw new Error(`openssl failed: ${result.stderr}`);
  return {
    cert: readFileSync(join(dir, "cert.pem")),
    key: readFileSync(join(dir, "key.pem")),
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface ThrowAwayCa {
  /** The CA certificate: what an agent's kubeconfig carries as certificate-authority. */
  readonly caCert: Buffer;
  /** A serving certificate it signed, for DNS:localhost and IP:127.0.0.1, and that certificate's key. */
  readonly cert: Buffer;
  readonly key: Buffer;
  cleanup(): void;
}

function openssl(args: readonly string[]): void {
  const result = spawnSync("openssl", args, { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`openssl ${args[0] ?? ""} failed: ${result.stderr}`);
}

/**
 * A CA and a serving certificate signed by it, like the sidecar's per-pod certificate (README "Listener TLS"):
 * clients trust the CA only, never the leaf itself.
 */
export function makeThrowAwayCa(commonName = "airlock-sidecar"): ThrowAwayCa {
  const dir = mkdtempSync(join(tmpdir(), "gateway-ca-"));
  const at = (name: string): string => join(dir, name);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(["req", "-x509", ...ec, "-days", "1", "-subj", "/CN=airlock-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", at("ca.key"), "-out", at("ca.crt")]);
  openssl(["req", ...ec, "-subj", `/CN=${commonName}`, "-keyout", at("tls.key"), "-out", at("tls.csr")]);
  writeFileSync(at("ext.cnf"), "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n");
  openssl(["x509", "-req", "-in", at("tls.csr"), "-CA", at("ca.crt"), "-CAkey", at("ca.key"), "-CAcreateserial", "-days", "1",
    "-extfile", at("ext.cnf"), "-out", at("tls.crt")]);
  return {
    caCert: readFileSync(at("ca.crt")),
    cert: readFileSync(at("tls.crt")),
    key: readFileSync(at("tls.key")),
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export type CheckHandler = (req: CheckRequest__Output) => Promise<CheckResponse | grpc.ServiceError> | CheckResponse | grpc.ServiceError;

export interface AuthzDouble {
  readonly address: string;
  readonly requests: CheckRequest__Output[];
  handler: CheckHandler;
  /** Forgets the requests and allows everything again (between tests). */
  reset(): void;
  close(): Promise<void>;
}

/** The default Check answer: OK. */
const allowAll: CheckHandler = () => ({ status: { code: 0 } });

export function grpcError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

function isServiceError(v: CheckResponse | grpc.ServiceError): v is grpc.ServiceError {
  return v instanceof Error;
}

/** A real grpc-js server implementing envoy.service.auth.v3.Authorization/Check with a swappable handler. */
export async function startAuthzDouble(): Promise<AuthzDouble> {
  const server = new grpc.Server();
  const double: AuthzDouble = {
    address: "",
    requests: [],
    handler: allowAll,
    reset() {
      double.requests.length = 0;
      double.handler = allowAll;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => {
          resolve();
        });
      }),
  };
  server.addService(loadEnvoyServices().authorization.service, {
    Check: (call: grpc.ServerUnaryCall<CheckRequest__Output, CheckResponse>, callback: grpc.sendUnaryData<CheckResponse>) => {
      double.requests.push(call.request);
      void Promise.resolve(double.handler(call.request)).then((r) => {
        if (isServiceError(r)) callback(r);
        else callback(null, r);
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => {
      if (err) reject(err);
      else resolve(p);
    });
  });
  return Object.assign(double, { address: `127.0.0.1:${port}` });
}

export type ProcStream = grpc.ServerDuplexStream<ProcessingRequest__Output, ProcessingResponse>;
export type ProcHandler = (call: ProcStream, messages: ProcessingRequest__Output[]) => void;

export interface ProcDouble {
  readonly address: string;
  /** Every message of every stream, in arrival order. */
  readonly messages: ProcessingRequest__Output[];
  streams: number;
  handler: ProcHandler;
  /** Forgets messages and streams and passes everything through again (between tests). */
  reset(): void;
  close(): Promise<void>;
}

/** The reply a pass-through processor gives: the matching oneof with an empty CommonResponse (CONTINUE). */
export function continueReply(req: ProcessingRequest__Output): ProcessingResponse {
  switch (req.request) {
    case "request_headers":
      return { request_headers: { response: {} } };
    case "response_headers":
      return { response_headers: { response: {} } };
    case "request_body":
      return { request_body: { response: {} } };
    case "response_body":
      return { response_body: { response: {} } };
    case "request_trailers":
      return { request_trailers: {} };
    case "response_trailers":
      return { response_trailers: {} };
    case undefined:
      return {};
  }
  return {};
}

/**
 * A processor that calls `onMessage` for each message of a stream and ends its side when the gateway ends its own;
 * `onMessage` writes the replies it wants (none, for a processor that stays silent).
 */
export function onEachMessage(onMessage: (req: ProcessingRequest__Output, call: ProcStream) => void): ProcHandler {
  return (call) => {
    call.on("data", (req: ProcessingRequest__Output) => {
      onMessage(req, call);
    });
    call.on("end", () => {
      call.end();
    });
  };
}

export const passThrough: ProcHandler = onEachMessage((req, call) => {
  call.write(continueReply(req));
});

/** A real grpc-js server implementing envoy.service.ext_proc.v3.ExternalProcessor/Process. */
export async function startProcDouble(): Promise<ProcDouble> {
  const server = new grpc.Server();
  const double: ProcDouble = {
    address: "",
    messages: [],
    streams: 0,
    handler: passThrough,
    reset() {
      double.messages.length = 0;
      double.streams = 0;
      double.handler = passThrough;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
  server.addService(loadEnvoyServices().externalProcessor.service, {
    Process: (call: ProcStream) => {
      double.streams += 1;
      call.on("data", (req: ProcessingRequest__Output) => {
        double.messages.push(req);
      });
      call.on("error", () => {
        // the gateway cancelled the stream
      });
      double.handler(call, double.messages);
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => {
      if (err) reject(err);
      else resolve(p);
    });
  });
  return Object.assign(double, { address: `127.0.0.1:${port}` });
}

export interface UpstreamRequestRecord {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: readonly string[];
  readonly body: Buffer;
}

export type UpstreamHandler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

export interface UpstreamDouble {
  readonly url: string;
  readonly requests: UpstreamRequestRecord[];
  handler: UpstreamHandler;
  /** Forgets the requests and answers the default Status again (between tests). */
  reset(): void;
  close(): Promise<void>;
}

/** The default upstream answer: 200 with a JSON Status. */
const statusOk: UpstreamHandler = (_req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  res.end('{"kind":"Status"}');
};

/** A real HTTPS server (the kube-apiserver stand-in) that also accepts WebSocket upgrades and echoes. */
export async function startHttpsUpstream(cert: ThrowAwayCert): Promise<UpstreamDouble> {
  const sockets = new Set<net.Socket>();
  const double: UpstreamDouble = {
    url: "",
    requests: [],
    handler: statusOk,
    reset() {
      double.requests.length = 0;
      double.handler = statusOk;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          resolve();
        });
      }),
  };
  const server = https.createServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      double.requests.push({ method: req.method ?? "", url: req.url ?? "", rawHeaders: req.rawHeaders, body });
      double.handler(req, res, body);
    });
  });
  server.on("secureConnection", (s: net.Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex) => {
    double.requests.push({ method: req.method ?? "", url: req.url ?? "", rawHeaders: req.rawHeaders, body: Buffer.alloc(0) });
    socket.write("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-protocol: v5.channel.k8s.io\r\n\r\n");
    socket.on("data", (d: Buffer) => socket.write(Buffer.concat([Buffer.from("echo:"), d])));
    socket.on("error", () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return Object.assign(double, { url: `https://127.0.0.1:${port}` });
}

/** The three doubles a gateway test file starts once and shares between its tests. */
export interface GatewayPeers {
  readonly authz: AuthzDouble;
  readonly proc: ProcDouble;
  readonly upstream: UpstreamDouble;
  /** The peer part of the gateway's options: these doubles, the upstream's certificate trusted. */
  readonly gatewayOptions: Pick<EnvoyFaithfulGatewayOptions, "authzAddress" | "extProcAddress" | "upstream">;
  /** Between tests: every double forgets what it saw and answers by default again. */
  reset(): void;
  close(): Promise<void>;
}

/** Starts the ext_authz and ext_proc doubles and the HTTPS upstream (serving `upstreamCert`). */
export async function startGatewayPeers(upstreamCert: ThrowAwayCert): Promise<GatewayPeers> {
  const [authz, proc, upstream] = await Promise.all([startAuthzDouble(), startProcDouble(), startHttpsUpstream(upstreamCert)]);
  return {
    authz,
    proc,
    upstream,
    gatewayOptions: { authzAddress: authz.address, extProcAddress: proc.address, upstream: { url: upstream.url, ca: upstreamCert.cert } },
    reset() {
      authz.reset();
      proc.reset();
      upstream.reset();
    },
    close: async () => {
      await Promise.all([authz.close(), proc.close(), upstream.close()]);
    },
  };
}

export interface ClientResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
  readonly body: Buffer;
  /** Whether the body ended cleanly (false on a reset). */
  readonly complete: boolean;
  /** For https: the ALPN protocol the server picked (false: none was negotiated). */
  readonly alpnProtocol: string | false | null;
}

/** How an https client trusts and greets the gateway's listener (a kubeconfig's certificate-authority, Go's ALPN offer). */
export interface ClientTls {
  readonly ca: Buffer;
  /** ALPN offer; Go's net/http offers ["h2", "http/1.1"]. Absent: no ALPN extension (node's https default). */
  readonly alpn?: readonly string[];
  readonly maxVersion?: tls.SecureVersion;
}

/** An HTTP/1.1 request to the gateway (http, or https with `tls`) with the raw request target kept as given. */
export function request(
  base: string,
  opts: { method?: string; path: string; headers?: Record<string, string | string[]>; body?: Buffer | string; onChunk?: (c: Buffer) => void; tls?: ClientTls },
): Promise<ClientResponse> {
  const url = new URL(base);
  const common = { host: url.hostname, port: url.port, method: opts.method ?? "GET", path: opts.path, headers: opts.headers ?? {}, agent: false } as const;
  const clientTls = opts.tls;
  return new Promise((resolve, reject) => {
    const onResponse = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      let complete = false;
      res.on("data", (c: Buffer) => {
        chunks.push(c);
        opts.onChunk?.(c);
      });
      res.on("end", () => {
        complete = true;
      });
      const alpnProtocol = "alpnProtocol" in res.socket ? (res.socket as tls.TLSSocket).alpnProtocol : null;
      res.on("close", () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks), complete: complete && res.complete, alpnProtocol });
      });
      res.on("error", () => {
        // reset: resolved by "close"
      });
    };
    const req = url.protocol === "https:"
      ? https.request(
        {
          ...common,
          ...(clientTls !== undefined ? { ca: clientTls.ca } : {}),
          rejectUnauthorized: true,
          ...(clientTls?.alpn !== undefined ? { ALPNProtocols: [...clientTls.alpn] } : {}),
          ...(clientTls?.maxVersion !== undefined ? { maxVersion: clientTls.maxVersion } : {}),
        },
        onResponse,
      )
      : http.request(common, onResponse);
    req.on("error", reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** Header value(s) of a name in a flat rawHeaders list, lower-cased names. */
export function rawValues(rawHeaders: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) if ((rawHeaders[i] ?? "").toLowerCase() === name) out.push(rawHeaders[i + 1] ?? "");
  return out;
}
