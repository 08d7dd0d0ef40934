/**
 * @module test/gateway/envoy-faithful-gateway
 * A test-only HTTP gateway that calls ext_authz and ext_proc over real gRPC exactly as Envoy would for envoy/sidecar.yaml.
 */
import type { Writable } from "node:stream";
import { X509Certificate, randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as https from "node:https";
import * as net from "node:net";
import * as tls from "node:tls";
import { Duplex } from "node:stream";
import * as grpc from "@grpc/grpc-js";
import { loadEnvoyServices } from "../../protos/load.js";
import type { CheckResponse__Output } from "../../protos/generated/envoy/service/auth/v3/CheckResponse.js";
import type { ProcessingRequest } from "../../protos/generated/envoy/service/ext_proc/v3/ProcessingRequest.js";
import type { ProcessingResponse__Output } from "../../protos/generated/envoy/service/ext_proc/v3/ProcessingResponse.js";
import type { CommonResponse__Output } from "../../protos/generated/envoy/service/ext_proc/v3/CommonResponse.js";
import type { HeaderMutation__Output } from "../../protos/generated/envoy/service/ext_proc/v3/HeaderMutation.js";
import type { ImmediateResponse__Output } from "../../protos/generated/envoy/service/ext_proc/v3/ImmediateResponse.js";
import type { Struct__Output } from "../../protos/generated/google/protobuf/Struct.js";
import { BodyReader } from "./body-reader.js";
import {
  applyOkDecision,
  applyOkResponseMutations,
  buildCheckRequest,
  decideCheckResponse,
  deniedReplyHeaders,
  httpStatusFromEnum,
  type AuthzDecision,
  type HeaderMutation,
  type Peer,
} from "./ext-authz-check.js";
import { ExtProcStream, type ExtProcEvent } from "./ext-proc-stream.js";
import {
  anyStringMatch,
  selectRoute,
  selectVirtualHost,
  type BodySendMode,
  type DownstreamTlsSettings,
  type ExtProcSettings,
  type GatewaySettings,
  type ProcessingModeSettings,
  type RouteSettings,
} from "./gateway-settings.js";
import { HeaderList } from "./header-list.js";
import { normalizeRequestPath } from "./request-path-normalization.js";
import {
  DEFAULT_MUTATION_RULES,
  IMMEDIATE_RESPONSE_MUTATION_RULES,
  checkHeaderMutation,
  headerNameIsValid,
  headerValueIsValid,
} from "./header-mutation-check.js";

export interface EnvoyFaithfulGatewayOptions {
  readonly settings: GatewaySettings;
  /** host:port of the ext_authz gRPC server (envoy.service.auth.v3.Authorization). */
  readonly authzAddress: string;
  /** host:port of the ext_proc gRPC server (envoy.service.ext_proc.v3.ExternalProcessor). */
  readonly extProcAddress: string;
  /**
   * The kube-apiserver: TLS verified against `ca`/`caFile`; `servername` (optional) is the DNS name used for
   * SNI and certificate name checks, like the cluster's UpstreamTlsContext `sni` + SAN matcher.
   */
  readonly upstream: { readonly url: string; readonly caFile?: string; readonly ca?: Buffer; readonly servername?: string };
  readonly listen?: {
    readonly host: "127.0.0.1";
    readonly port: 0;
    /**
     * The contents of the listener's DownstreamTlsContext certificate_chain / private_key files (which name
     * paths inside the Envoy container). Required exactly when the settings carry a DownstreamTlsContext.
     */
    readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  };
}

export interface EnvoyFaithfulGateway {
  /** `https://127.0.0.1:<port>` when the listener has a DownstreamTlsContext, else `http://…`. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export type EnvoyFaithfulGatewayErrorCode = "tls_material_missing" | "tls_material_unexpected" | "tls_material_invalid";

/** Refusals to start; never carries certificate or key bytes. */
export class EnvoyFaithfulGatewayError extends Error {
  constructor(
    readonly code: EnvoyFaithfulGatewayErrorCode,
    detail: string,
  ) {
    super(`${code}: ${detail}`);
    this.name = "EnvoyFaithfulGatewayError";
  }
}

const EXT_AUTHZ_NAMESPACE = "envoy.filters.http.ext_authz";
const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
// conn_manager_utility.cc: hop-by-hop headers the HCM strips (Connection/Upgrade kept on upgrades).
const HOP_BY_HOP = ["keep-alive", "proxy-connection", "transfer-encoding", "x-envoy-internal"];
// ConnectionManagerUtility::cleanInternalHeaders for a request that is not internal.
const INTERNAL_ONLY = [
  "x-envoy-retriable-status-codes", "x-envoy-retriable-header-names", "x-envoy-retry-on", "x-envoy-retry-grpc-on",
  "x-envoy-max-retries", "x-envoy-upstream-alt-stat-name", "x-envoy-upstream-rq-timeout-ms",
  "x-envoy-upstream-rq-per-try-timeout-ms", "x-envoy-upstream-rq-timeout-alt-response", "x-envoy-expected-rq-timeout-ms",
  "x-envoy-force-trace", "x-envoy-ip-tags", "x-envoy-original-url", "x-envoy-hedge-on-per-try-timeout",
];
const RESPONSE_HOP_BY_HOP = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"];

/** The downstream half of one HTTP exchange, HTTP/1.1 or HTTP/2 or an HTTP/1.1 upgrade on a raw socket. */
interface Downstream {
  readonly protocol: "HTTP/1.1" | "HTTP/2";
  readonly headers: HeaderList;
  /** end_stream on the request headers (no body follows). */
  readonly endStream: boolean;
  readonly body: BodyReader;
  readonly source: Peer;
  readonly destination: Peer;
  readonly upgrade: UpgradeSocket | null;
  started(): boolean;
  respond(headers: HeaderList, endStream: boolean): void;
  write(chunk: Buffer): Promise<void>;
  end(): void;
  /** Stream reset: HTTP/1 closes the connection, HTTP/2 sends RST_STREAM. */
  reset(): void;
  onClose(cb: () => void): void;
}

interface UpgradeSocket {
  readonly socket: Duplex;
  readonly head: Buffer;
}

/** A response on its way downstream: from the upstream or a router local reply. */
interface ResponseSource {
  readonly headers: HeaderList;
  readonly endStream: boolean;
  readonly body: BodyReader;
  /** Content-length (when known) lets the last data chunk carry end_stream as Envoy's codec does. */
  readonly contentLength: number | null;
}

function peerOf(address: string | undefined, port: number | undefined): Peer {
  return { address: (address ?? "").replace(/^::ffff:/, ""), port: port ?? 0 };
}

function streamId(): string {
  return randomBytes(8).readBigUInt64BE().toString();
}

function statusText(status: number): string {
  return http.STATUS_CODES[status] ?? "Unknown";
}

function flatHeaders(list: readonly [string, string][]): string[] {
  return list.flatMap(([k, v]) => [k, v]);
}

function sanitizeForNode(value: string): string {
  return value.replace(/[\r\n\0]/g, "");
}

function isUpgradeRequest(headers: HeaderList): boolean {
  const connection = headers.getAll("connection").join(",").toLowerCase();
  return headers.has("upgrade") && connection.split(",").some((t) => t.trim() === "upgrade");
}

function isWebSocketUpgrade(headers: HeaderList): boolean {
  return isUpgradeRequest(headers) && (headers.get("upgrade") ?? "").toLowerCase() === "websocket";
}

/** ProcessorState::shouldRemoveContentLength. */
function shouldRemoveContentLength(bodyMode: BodySendMode, sendHeaders: boolean): boolean {
  return bodyMode === "STREAMED" || bodyMode === "BUFFERED_PARTIAL" || (bodyMode === "BUFFERED" && !sendHeaders);
}

/** Writes one chunk downstream and resolves once the stream can take more (or is gone), as Envoy's codec does. */
function writeRespectingBackpressure(stream: Writable, chunk: Buffer): Promise<void> {
  if (stream.destroyed || stream.writableEnded) return Promise.resolve();
  if (stream.write(chunk)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.once("drain", done);
    stream.once("close", done);
  });
}

class HttpOneDownstream implements Downstream {
  readonly protocol = "HTTP/1.1" as const;
  readonly headers: HeaderList;
  readonly endStream: boolean;
  readonly body: BodyReader;
  readonly source: Peer;
  readonly destination: Peer;
  readonly upgrade = null;

  constructor(
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
    secure: boolean,
  ) {
    this.headers = requestHeaderList(req, secure);
    const te = req.headers["transfer-encoding"];
    const cl = Number(req.headers["content-length"] ?? "0");
    this.endStream = te === undefined && !(cl > 0);
    this.body = new BodyReader(this.endStream ? null : req);
    this.source = peerOf(req.socket.remoteAddress, req.socket.remotePort);
    this.destination = peerOf(req.socket.localAddress, req.socket.localPort);
  }

  started(): boolean {
    return this.res.headersSent;
  }

  respond(headers: HeaderList, endStream: boolean): void {
    const status = Number(headers.get(":status") ?? "500");
    this.res.writeHead(status, statusText(status), flatHeaders(headers.regular().map(([k, v]) => [k, sanitizeForNode(v)])));
    this.res.flushHeaders();
    if (endStream) this.res.end();
  }

  write(chunk: Buffer): Promise<void> {
    return writeRespectingBackpressure(this.res, chunk);
  }

  end(): void {
    if (!this.res.writableEnded) this.res.end();
  }

  reset(): void {
    this.res.socket?.destroy();
    this.req.socket.destroy();
  }

  onClose(cb: () => void): void {
    this.res.once("close", cb);
  }
}

/** HTTP/1 carries no :scheme; Envoy sets it from the connection's encryption (ConnectionManagerUtility::mutateRequestHeaders). */
function requestHeaderList(req: http.IncomingMessage, secure: boolean): HeaderList {
  const list = new HeaderList([
    [":authority", req.headers.host ?? ""],
    [":path", req.url ?? "/"],
    [":method", req.method ?? "GET"],
    [":scheme", secure ? "https" : "http"],
  ]);
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const key = (req.rawHeaders[i] ?? "").toLowerCase();
    // HTTP/1 Host becomes :authority in Envoy's header map.
    if (key === "host") continue;
    list.add(key, req.rawHeaders[i + 1] ?? "");
  }
  return list;
}

class HttpTwoDownstream implements Downstream {
  readonly protocol = "HTTP/2" as const;
  readonly headers: HeaderList;
  readonly endStream: boolean;
  readonly body: BodyReader;
  readonly source: Peer;
  readonly destination: Peer;
  readonly upgrade = null;
  private sentHeaders = false;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    rawHeaders: readonly string[],
    secure: boolean,
  ) {
    const pseudo: [string, string][] = [];
    const regular: [string, string][] = [];
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      const key = (rawHeaders[i] ?? "").toLowerCase();
      const value = rawHeaders[i + 1] ?? "";
      (key.startsWith(":") ? pseudo : regular).push([key, value]);
    }
    const order = [":authority", ":path", ":method", ":scheme"];
    pseudo.sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0]));
    this.headers = new HeaderList([...pseudo, ...regular]);
    if (!this.headers.has(":scheme")) this.headers.add(":scheme", secure ? "https" : "http");
    this.endStream = stream.endAfterHeaders;
    this.body = new BodyReader(this.endStream ? null : stream);
    this.source = peerOf(stream.session?.socket.remoteAddress, stream.session?.socket.remotePort);
    this.destination = peerOf(stream.session?.socket.localAddress, stream.session?.socket.localPort);
  }

  started(): boolean {
    return this.sentHeaders;
  }

  respond(headers: HeaderList, endStream: boolean): void {
    const out: http2.OutgoingHttpHeaders = { ":status": Number(headers.get(":status") ?? "500") };
    for (const [k, v] of headers.regular()) {
      if (RESPONSE_HOP_BY_HOP.includes(k)) continue;
      const prev = out[k];
      out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [String(prev), v];
    }
    this.sentHeaders = true;
    if (this.stream.destroyed) return;
    this.stream.respond(out, { endStream });
  }

  write(chunk: Buffer): Promise<void> {
    return writeRespectingBackpressure(this.stream, chunk);
  }

  end(): void {
    if (!this.stream.destroyed && !this.stream.writableEnded) this.stream.end();
  }

  reset(): void {
    if (!this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  }

  onClose(cb: () => void): void {
    this.stream.once("close", cb);
  }
}

/** An HTTP/1.1 Upgrade request on a raw socket (http.Server 'upgrade'): replies are written by hand. */
class UpgradeDownstream implements Downstream {
  readonly protocol = "HTTP/1.1" as const;
  readonly headers: HeaderList;
  readonly endStream: boolean;
  readonly body: BodyReader;
  readonly source: Peer;
  readonly destination: Peer;
  readonly upgrade: UpgradeSocket;
  private sentHeaders = false;
  private chunked = false;

  constructor(req: http.IncomingMessage, socket: Duplex, head: Buffer, secure: boolean) {
    this.headers = requestHeaderList(req, secure);
    this.endStream = true;
    this.body = new BodyReader(null);
    const s = socket as Partial<Pick<net.Socket, "remoteAddress" | "remotePort" | "localAddress" | "localPort">>;
    this.source = peerOf(s.remoteAddress, s.remotePort);
    this.destination = peerOf(s.localAddress, s.localPort);
    this.upgrade = { socket, head };
  }

  started(): boolean {
    return this.sentHeaders;
  }

  respond(headers: HeaderList, endStream: boolean): void {
    const status = Number(headers.get(":status") ?? "500");
    const regular = headers.regular().filter(([k]) => status === 101 || !RESPONSE_HOP_BY_HOP.includes(k));
    this.chunked = status !== 101 && !endStream && !headers.has("content-length");
    if (this.chunked) regular.push(["transfer-encoding", "chunked"]);
    if (status !== 101) regular.push(["connection", "close"]);
    const head = [`HTTP/1.1 ${status} ${statusText(status)}`, ...regular.map(([k, v]) => `${k}: ${sanitizeForNode(v)}`), "", ""].join("\r\n");
    this.sentHeaders = true;
    this.upgrade.socket.write(head);
    if (endStream) this.end();
  }

  write(chunk: Buffer): Promise<void> {
    if (chunk.length === 0 || this.upgrade.socket.destroyed) return Promise.resolve();
    if (this.chunked) this.upgrade.socket.write(`${chunk.length.toString(16)}\r\n`);
    this.upgrade.socket.write(chunk);
    if (this.chunked) this.upgrade.socket.write("\r\n");
    return Promise.resolve();
  }

  end(): void {
    if (this.upgrade.socket.destroyed || this.upgrade.socket.writableEnded) return;
    if (this.chunked) this.upgrade.socket.write("0\r\n\r\n");
    this.upgrade.socket.end();
  }

  reset(): void {
    this.upgrade.socket.destroy();
  }

  onClose(cb: () => void): void {
    this.upgrade.socket.once("close", cb);
  }
}

/** A Duplex that replays `first` and then relays the socket both ways. */
function bridgeSocket(socket: net.Socket, first: Buffer): Duplex {
  const bridge = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      socket.write(chunk, (err) => {
        callback(err ?? null);
      });
    },
    final(callback) {
      socket.end();
      callback();
    },
    destroy(err, callback) {
      socket.destroy();
      callback(err);
    },
  });
  bridge.push(first);
  socket.on("data", (d: Buffer) => {
    if (!bridge.push(d)) socket.pause();
  });
  socket.once("end", () => bridge.push(null));
  socket.once("close", () => bridge.destroy());
  socket.resume();
  return bridge;
}

const NODE_TLS_VERSIONS = { TLSv1_0: "TLSv1", TLSv1_1: "TLSv1.1", TLSv1_2: "TLSv1.2", TLSv1_3: "TLSv1.3" } as const;

/**
 * Envoy's principal for its own certificate (check_request_utils.cc setAttrContextPeer, local side): the first
 * URI SAN, else the first DNS SAN, else the subject in RFC 2253 form.
 */
function certificatePrincipal(cert: X509Certificate): string {
  const sans = (cert.subjectAltName ?? "").split(", ").filter((s) => s.length > 0);
  const uri = sans.find((s) => s.startsWith("URI:"));
  if (uri !== undefined) return uri.slice(4);
  const dns = sans.find((s) => s.startsWith("DNS:"));
  if (dns !== undefined) return dns.slice(4);
  return cert.subject.split("\n").reverse().join(",");
}

/**
 * The tls.Server options for the listener's DownstreamTlsContext, or null for a plaintext listener. The
 * settings and the options must agree: a TLS listener without key material, or key material for a plaintext
 * listener, would not be the configuration that ships.
 */
function listenerTlsOptions(
  tlsSettings: DownstreamTlsSettings | null,
  material: { readonly cert: Buffer; readonly key: Buffer } | undefined,
): { readonly options: tls.TlsOptions; readonly principal: string } | null {
  if (tlsSettings === null) {
    if (material !== undefined) throw new EnvoyFaithfulGatewayError("tls_material_unexpected", "listen.tls given but the listener has no DownstreamTlsContext");
    return null;
  }
  if (material === undefined) {
    throw new EnvoyFaithfulGatewayError("tls_material_missing",
      `the listener has a DownstreamTlsContext: pass listen.tls with the contents of ${tlsSettings.certificateChainFile ?? "the certificate"} and ${tlsSettings.privateKeyFile ?? "the key"}`);
  }
  let principal: string;
  try {
    // Fails on a key that does not match the certificate, like Envoy refusing the config at load time.
    tls.createSecureContext({ cert: material.cert, key: material.key });
    principal = certificatePrincipal(new X509Certificate(material.cert));
  } catch {
    throw new EnvoyFaithfulGatewayError("tls_material_invalid", "listen.tls does not hold a PEM certificate chain and its matching private key");
  }
  return {
    principal,
    options: {
      cert: material.cert,
      key: material.key,
      minVersion: NODE_TLS_VERSIONS[tlsSettings.minimumProtocolVersion],
      maxVersion: NODE_TLS_VERSIONS[tlsSettings.maximumProtocolVersion],
      // "There is no default for this parameter. If empty, Envoy will not expose ALPN." Server preference order,
      // as SSL_select_next_proto in Envoy's ALPN callback. (One difference: with no protocol in common node
      // fails the handshake, where Envoy would carry on without ALPN and sniff the preface.)
      ...(tlsSettings.alpnProtocols.length > 0 ? { ALPNProtocols: [...tlsSettings.alpnProtocols] } : {}),
      // No client certificates (the settings reader refuses validation contexts and require_client_certificate).
      requestCert: false,
    },
  };
}

/** google.protobuf.Struct helpers for the ext_authz dynamic metadata namespace. */
function withDuration(struct: Struct__Output, ms: number): Struct__Output {
  return { fields: { ...struct.fields, ext_authz_duration: { numberValue: ms, kind: "numberValue" } } };
}

/** Everything one HTTP exchange carries through the filter chain. */
class Exchange {
  readonly id = streamId();
  readonly startMs = Date.now();
  route: RouteSettings | null = null;
  /** StreamInfo dynamic metadata, by namespace. */
  readonly dynamicMetadata = new Map<string, Struct__Output>();
  responseMutations: readonly HeaderMutation[] = [];
  // ext_proc state (ext_proc.cc Filter + ProcessorState).
  proc: ExtProcSettings | null = null;
  procStream: ExtProcStream | null = null;
  procComplete = false;
  decodeMode: ProcessingModeSettings | null = null;
  encodeMode: ProcessingModeSettings | null = null;
  forwardUntyped: readonly string[] = [];
  finished = false;
  private idleTimer: NodeJS.Timeout | null = null;
  private idleTimeoutMs = 0;
  onIdle: (() => void) | null = null;
  upstreamRequest: http.ClientRequest | null = null;

  constructor(readonly ds: Downstream) {}

  armIdle(timeoutMs: number): void {
    this.idleTimeoutMs = timeoutMs;
    this.touch();
  }

  touch(): void {
    if (this.idleTimeoutMs <= 0 || this.finished) return;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.onIdle?.(), this.idleTimeoutMs);
  }

  finish(): void {
    this.finished = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.procStream?.close();
    this.procStream = null;
  }
}

/** Thrown inside the pipeline once a local reply or reset has ended the exchange. */
class ExchangeEnded extends Error {
  constructor() {
    super("exchange ended");
  }
}

export async function startEnvoyFaithfulGateway(opts: EnvoyFaithfulGatewayOptions): Promise<EnvoyFaithfulGateway> {
  const { settings } = opts;
  const services = loadEnvoyServices();
  const channelOptions: grpc.ChannelOptions = { "grpc.max_receive_message_length": -1, "grpc.max_send_message_length": -1 };
  const authzClient = new services.authorization(opts.authzAddress, grpc.credentials.createInsecure(), channelOptions);
  const procClient = new services.externalProcessor(opts.extProcAddress, grpc.credentials.createInsecure(), channelOptions);

  const upstreamUrl = new URL(opts.upstream.url);
  const upstreamIsTls = upstreamUrl.protocol === "https:";
  const ca = opts.upstream.ca ?? (opts.upstream.caFile !== undefined ? readFileSync(opts.upstream.caFile) : undefined);
  const agent = upstreamIsTls
    ? new https.Agent({ keepAlive: true, ...(ca !== undefined ? { ca } : {}), rejectUnauthorized: true })
    : new http.Agent({ keepAlive: true });

  const listen = opts.listen ?? { host: "127.0.0.1", port: 0 };
  const downstreamTls = listenerTlsOptions(settings.downstreamTls, listen.tls);
  const secure = downstreamTls !== null;
  const localPrincipal = downstreamTls?.principal ?? null;

  const sockets = new Set<net.Socket>();
  const servername = opts.upstream.servername ?? (net.isIP(upstreamUrl.hostname) === 0 ? upstreamUrl.hostname : null);

  // ---------------------------------------------------------------------------------------------------
  // Local replies (Envoy's sendLocalReply): after the response started, the stream is reset instead.
  // ---------------------------------------------------------------------------------------------------
  function localReply(ex: Exchange, status: number, body: string, extra?: (h: HeaderList) => void): never {
    if (ex.ds.started()) ex.ds.reset();
    else replyWithBody(ex.ds, status, Buffer.from(body, "utf8"), extra);
    throw new ExchangeEnded();
  }

  /** A complete local answer: status, content-length, text/plain when there is a body, the server header, then the body. */
  function replyWithBody(ds: Downstream, status: number, body: Buffer, mutate?: (h: HeaderList) => void): void {
    const headers = new HeaderList([[":status", String(status)]]);
    headers.add("content-length", String(body.length));
    if (body.length > 0) headers.add("content-type", "text/plain");
    mutate?.(headers);
    applyServerHeader(headers);
    ds.respond(headers, body.length === 0);
    if (body.length > 0) {
      void ds.write(body).then(() => {
        ds.end();
      });
    }
  }

  /** server_header_transformation: OVERWRITE (default) sets "server: envoy"; PASS_THROUGH leaves it alone. */
  function applyServerHeader(headers: HeaderList): void {
    if (settings.serverHeaderTransformation === "OVERWRITE") headers.set("server", settings.serverName);
    else if (settings.serverHeaderTransformation === "APPEND_IF_ABSENT" && !headers.has("server")) headers.add("server", settings.serverName);
  }

  // ---------------------------------------------------------------------------------------------------
  // ext_authz (ext_authz.cc decodeHeaders / decodeData / onComplete)
  // ---------------------------------------------------------------------------------------------------
  async function runExtAuthz(ex: Exchange): Promise<void> {
    const cfg = settings.extAuthz;
    const route = ex.route;
    if (cfg === null || route === null || route.extAuthz.disabled) return;
    const ds = ex.ds;
    const withBody = route.extAuthz.withRequestBody ?? cfg.withRequestBody;
    // "buffer_data_ = with_request_body && !disable_request_body_buffering && !(end_stream ||
    //  isWebSocketUpgradeRequest || isH2UpgradeRequest)"
    const bufferData = withBody !== null && !route.extAuthz.disableRequestBodyBuffering && !(ds.endStream || isWebSocketUpgrade(ds.headers));
    let buffered: Buffer | null = null;
    if (bufferData) {
      const chunks: Buffer[] = [];
      let total = 0;
      for (;;) {
        const chunk = await ds.body.read();
        if (chunk === null) break;
        chunks.push(chunk);
        total += chunk.length;
        ex.touch();
        // Without allow_partial_message the decoder buffer limit is max_request_bytes: exceeding it is a
        // 413 without calling the server ("has precedence over failure_mode_allow").
        if (!withBody.allowPartialMessage && total > withBody.maxRequestBytes) localReply(ex, 413, "Payload Too Large");
        // isBufferFull: with allow_partial_message, dispatch once max_request_bytes are buffered.
        if (withBody.allowPartialMessage && total >= withBody.maxRequestBytes) break;
      }
      buffered = Buffer.concat(chunks);
      // The whole buffered body still goes upstream after an OK; only the check sees the prefix.
      ds.body.unshift(buffered);
    }
    const request = buildCheckRequest({
      settings: cfg,
      streamId: ex.id,
      headers: ds.headers,
      protocol: ds.protocol,
      bytesReceived: buffered?.length ?? 0,
      bufferedBody: buffered,
      maxRequestBytes: withBody?.maxRequestBytes ?? 0,
      packAsBytes: withBody?.packAsBytes ?? false,
      source: ds.source,
      destination: localPrincipal === null ? ds.destination : { ...ds.destination, principal: localPrincipal },
      contextExtensions: route.extAuthz.contextExtensions,
      requestStartMs: ex.startMs,
    });
    const started = Date.now();
    const response = await new Promise<CheckResponse__Output | null>((resolve) => {
      const options: grpc.CallOptions = cfg.timeoutMs > 0 ? { deadline: Date.now() + cfg.timeoutMs } : {};
      authzClient.Check(request, new grpc.Metadata(), options, (err, value) => {
        resolve(err || value === undefined ? null : value);
      });
    });
    // GrpcClientImpl::onFailure (UNAVAILABLE, DEADLINE_EXCEEDED, …) → CheckStatus::Error.
    const decision: AuthzDecision = response === null ? { kind: "error" } : decideCheckResponse(response);
    if (decision.kind !== "error" && decision.dynamicMetadata !== null && Object.keys(decision.dynamicMetadata.fields).length > 0) {
      // onComplete: metadata goes under "envoy.filters.http.ext_authz", plus ext_authz_duration on OK.
      const md = decision.kind === "ok" ? withDuration(decision.dynamicMetadata, Date.now() - started) : decision.dynamicMetadata;
      ex.dynamicMetadata.set(EXT_AUTHZ_NAMESPACE, md);
    }
    switch (decision.kind) {
      case "error":
        if (cfg.failureModeAllow) {
          if (cfg.failureModeAllowHeaderAdd) ds.headers.add("x-envoy-auth-failure-mode-allowed", "true");
          return;
        }
        return localReply(ex, cfg.statusOnError, "");
      case "denied":
        return localReply(ex, decision.status, decision.body, (h) => {
          const out = deniedReplyHeaders(h, decision.headers);
          for (const [k] of h.list()) h.remove(k);
          for (const [k, v] of out.list()) h.add(k, v);
        });
      case "ok": {
        if (applyOkDecision(cfg, ds.headers, decision) === "invalid") localReply(ex, 500, "");
        ex.responseMutations = decision.responseMutations;
        const changed = decision.requestMutations.length + decision.headersToRemove.length + decision.queryToSet.length + decision.queryToRemove.length > 0;
        if (cfg.clearRouteCache && changed) ex.route = routeFor(ds.headers);
        if (ex.route === null) localReply(ex, 404, "");
        return;
      }
    }
  }

  /** The route as filters may have re-selected it (clear_route_cache). */
  function currentRoute(ex: Exchange): RouteSettings | null {
    return ex.route;
  }

  function routeFor(headers: HeaderList): RouteSettings | null {
    const vhost = selectVirtualHost(settings, headers.get(":authority") ?? "");
    return vhost === null ? null : selectRoute(vhost, headers.get(":path") ?? "/", headers);
  }

  // ---------------------------------------------------------------------------------------------------
  // ext_proc (ext_proc.cc / processor_state.cc / mutation_utils.cc)
  // ---------------------------------------------------------------------------------------------------
  function procHeaders(ex: Exchange, headers: HeaderList): { key: string; raw_value: Buffer }[] {
    const cfg = ex.proc;
    const out: { key: string; raw_value: Buffer }[] = [];
    for (const [key, value] of headers.list()) {
      // MutationUtils::headerCanBeForwarded (forward_rules).
      if (cfg !== null && cfg.disallowedHeaders.length > 0 && anyStringMatch(cfg.disallowedHeaders, key)) continue;
      if (cfg !== null && cfg.allowedHeaders.length > 0 && !anyStringMatch(cfg.allowedHeaders, key)) continue;
      // send_header_raw_value: values travel in raw_value bytes.
      out.push({ key, raw_value: Buffer.from(value, "latin1") });
    }
    return out;
  }

  /** Filter::addDynamicMetadata: forwarded namespaces into ProcessingRequest.metadata_context. */
  function metadataContext(ex: Exchange): NonNullable<ProcessingRequest["metadata_context"]> {
    const filterMetadata: Record<string, Struct__Output> = {};
    for (const ns of ex.forwardUntyped) {
      const md = ex.dynamicMetadata.get(ns);
      if (md !== undefined) filterMetadata[ns] = md;
    }
    return { filter_metadata: filterMetadata };
  }

  function bodyMessage(ex: Exchange, dir: "request" | "response", body: Buffer, endOfStream: boolean): ProcessingRequest {
    const payload = { body, end_of_stream: endOfStream };
    return dir === "request"
      ? { request_body: payload, metadata_context: metadataContext(ex) }
      : { response_body: payload, metadata_context: metadataContext(ex) };
  }

  function openProcStream(ex: Exchange): ExtProcStream {
    ex.procStream ??= new ExtProcStream(procClient);
    return ex.procStream;
  }

  type Reply = { kind: "reply"; response: ProcessingResponse__Output } | { kind: "continue" };

  /** Handles everything but the expected reply: timeouts, errors, clean close, immediate_response, spurious. */
  async function awaitReply(ex: Exchange, expected: NonNullable<ProcessingResponse__Output["response"]>, inHeaderState: boolean): Promise<Reply> {
    const cfg = ex.proc;
    const stream = ex.procStream;
    if (cfg === null || stream === null) return { kind: "continue" };
    for (;;) {
      const event: ExtProcEvent = await stream.next();
      ex.touch();
      switch (event.kind) {
        case "timeout":
          // onMessageTimeout: 504 "ext_proc_error_per-message_timeout_exceeded" unless failure_mode_allow.
          ex.procComplete = true;
          stream.close();
          if (cfg.failureModeAllow) return { kind: "continue" };
          return localReply(ex, 504, "");
        case "error":
          // onGrpcError: 500 unless failure_mode_allow (then it is treated as a clean close).
          ex.procComplete = true;
          stream.close();
          if (cfg.failureModeAllow) return { kind: "continue" };
          return localReply(ex, 500, "");
        case "closed":
          // onGrpcClose: "Envoy proceeds without consulting the server."
          ex.procComplete = true;
          stream.close();
          return { kind: "continue" };
        case "message": {
          const r = event.response;
          if (r.override_message_timeout !== null) {
            const ms = Number(r.override_message_timeout.seconds) * 1000 + Math.round(r.override_message_timeout.nanos / 1e6);
            stream.overrideTimer(ms, cfg.maxMessageTimeoutMs);
            continue;
          }
          // mode_override: only with allow_mode_override and only in answer to a header message.
          if (cfg.allowModeOverride && inHeaderState && r.mode_override !== null) {
            const mode = overrideMode(r.mode_override);
            ex.decodeMode = mode;
            ex.encodeMode = mode;
          }
          if (r.response === "immediate_response" && r.immediate_response) {
            if (cfg.disableImmediateResponse) return spurious(ex);
            ex.procComplete = true;
            stream.close();
            sendImmediateResponse(ex, r.immediate_response);
          }
          if (r.response !== expected) return spurious(ex);
          stream.stopTimer();
          return { kind: "reply", response: r };
        }
      }
    }
  }

  /** Out-of-order message: ignore it and the processor for the rest of the request (spurious_msgs_received). */
  function spurious(ex: Exchange): Reply {
    ex.procComplete = true;
    ex.procStream?.close();
    return { kind: "continue" };
  }

  function overrideMode(m: NonNullable<ProcessingResponse__Output["mode_override"]>): ProcessingModeSettings {
    const header = (v: string, fallback: "SEND" | "SKIP"): "SEND" | "SKIP" => (v === "SEND" ? "SEND" : v === "SKIP" ? "SKIP" : fallback);
    return {
      requestHeaderMode: header(m.request_header_mode, "SEND"),
      responseHeaderMode: header(m.response_header_mode, "SEND"),
      requestBodyMode: m.request_body_mode,
      responseBodyMode: m.response_body_mode,
      requestTrailerMode: header(m.request_trailer_mode, "SKIP"),
      responseTrailerMode: header(m.response_trailer_mode, "SKIP"),
    };
  }

  /** Filter::sendImmediateResponse: status (default 200; < 200 invalid → 200), permissive header rules, body. */
  function sendImmediateResponse(ex: Exchange, ir: ImmediateResponse__Output): never {
    let status = ir.status ? httpStatusFromEnum(ir.status.code) : 200;
    if (status < 200) status = 200;
    const body = Buffer.from(ir.body);
    if (ex.ds.started()) ex.ds.reset();
    else {
      const mutation = ir.headers;
      replyWithBody(ex.ds, status, body, mutation === null ? undefined : (headers) => {
        applyProcHeaderMutation(mutation, headers, IMMEDIATE_RESPONSE_MUTATION_RULES, false, false);
      });
    }
    throw new ExchangeEnded();
  }

  /** MutationUtils::applyHeaderMutations. Returns false when the mutation must fail the request (500). */
  function applyProcHeaderMutation(
    mutation: HeaderMutation__Output,
    headers: HeaderList,
    rules: typeof DEFAULT_MUTATION_RULES,
    replacingMessage: boolean,
    removeContentLength: boolean,
  ): boolean {
    for (const name of mutation.remove_headers) {
      if (!headerNameIsValid(name)) return false;
      const verdict = checkHeaderMutation(rules, "remove", name, "");
      if (verdict === "fail") return false;
      if (verdict === "ok") headers.remove(name);
    }
    for (const option of mutation.set_headers) {
      if (option.header === null) continue;
      const key = option.header.key.toLowerCase();
      // "Always skip setting content length header when remove_content_length is true."
      if (removeContentLength && key === "content-length") continue;
      // "Only one of value or raw_value in the HeaderValue message should be set."
      if (option.header.value !== "" && option.header.raw_value.length > 0) return false;
      // With send_header_raw_value the value is read from raw_value.
      const value = option.header.raw_value.toString("latin1");
      if (!headerNameIsValid(option.header.key) || !headerValueIsValid(value)) return false;
      const append = option.append?.value ?? false;
      const op = append && headers.has(key) ? "append" : "set";
      let verdict = checkHeaderMutation(rules, op, key, value);
      if (replacingMessage && key === ":method") verdict = "ok";
      if (verdict === "fail") return false;
      if (verdict === "ignore") continue;
      if (append) headers.add(key, value);
      else headers.set(key, value);
    }
    return true;
  }

  function applyCommon(ex: Exchange, common: CommonResponse__Output | null, headers: HeaderList, removeContentLength: boolean): void {
    if (common?.header_mutation == null) return;
    const rules = ex.proc?.mutationRules ?? DEFAULT_MUTATION_RULES;
    if (!applyProcHeaderMutation(common.header_mutation, headers, rules, common.status === "CONTINUE_AND_REPLACE", removeContentLength)) {
      // A rejected mutation is "any other error" → immediate 500.
      ex.procComplete = true;
      ex.procStream?.close();
      localReply(ex, 500, "");
    }
  }

  function applyBodyMutation(common: CommonResponse__Output | null, chunk: Buffer): Buffer {
    const m = common?.body_mutation;
    if (m == null) return chunk;
    if (m.mutation === "clear_body") return m.clear_body === true ? Buffer.alloc(0) : chunk;
    if (m.mutation === "body") return Buffer.from(m.body ?? Buffer.alloc(0));
    return chunk;
  }

  interface HeaderPhaseResult {
    /** CONTINUE_AND_REPLACE with a body mutation: the new complete body (original body is discarded). */
    replacedBody: Buffer | null;
  }

  /** Filter::onHeaders + ProcessorState::handleHeadersResponse for one direction. */
  async function processHeaders(ex: Exchange, dir: "request" | "response", headers: HeaderList, endStream: boolean): Promise<HeaderPhaseResult> {
    const mode = dir === "request" ? ex.decodeMode : ex.encodeMode;
    if (ex.proc === null || mode === null || ex.procComplete) return { replacedBody: null };
    const send = dir === "request" ? mode.requestHeaderMode === "SEND" : mode.responseHeaderMode === "SEND";
    let reply: Reply = { kind: "continue" };
    if (send) {
      const stream = openProcStream(ex);
      const payload = { headers: { headers: procHeaders(ex, headers) }, end_of_stream: endStream };
      stream.send(
        dir === "request"
          ? { request_headers: payload, metadata_context: metadataContext(ex) }
          : { response_headers: payload, metadata_context: metadataContext(ex) },
      );
      stream.startTimer(ex.proc.messageTimeoutMs);
    }
    // decodeHeaders/encodeHeaders: content-length goes as soon as the body may be mutated (mode at this point).
    const bodyMode = dir === "request" ? mode.requestBodyMode : mode.responseBodyMode;
    if (shouldRemoveContentLength(bodyMode, send)) headers.remove("content-length");
    if (!send) return { replacedBody: null };
    reply = await awaitReply(ex, dir === "request" ? "request_headers" : "response_headers", true);
    if (reply.kind === "continue") return { replacedBody: null };
    const common = (dir === "request" ? reply.response.request_headers : reply.response.response_headers)?.response ?? null;
    const current = dir === "request" ? ex.decodeMode : ex.encodeMode;
    const currentBodyMode = current === null ? "NONE" : dir === "request" ? current.requestBodyMode : current.responseBodyMode;
    applyCommon(ex, common, headers, shouldRemoveContentLength(currentBodyMode, true));
    if (common?.status === "CONTINUE_AND_REPLACE") {
      // "Once this message is received, we won't send anything more on this request or response."
      const setNone = (m: ProcessingModeSettings | null): ProcessingModeSettings | null =>
        m === null ? null : dir === "request" ? { ...m, requestBodyMode: "NONE" } : { ...m, responseBodyMode: "NONE" };
      if (dir === "request") ex.decodeMode = setNone(ex.decodeMode);
      else ex.encodeMode = setNone(ex.encodeMode);
      if (common.body_mutation != null) {
        headers.remove("content-length");
        return { replacedBody: applyBodyMutation(common, Buffer.alloc(0)) };
      }
    }
    return { replacedBody: null };
  }

  interface BodySink {
    /** Releases the (possibly mutated) headers downstream/upstream; called once. */
    sendHeaders(endStream: boolean): void;
    write(chunk: Buffer): Promise<void>;
    end(): void;
  }

  /**
   * Body processing for one direction (Filter::onData). Headers are released by this function: at once for
   * NONE and STREAMED, after the body reply for BUFFERED (whose header mutation may still apply).
   */
  async function processBody(
    ex: Exchange,
    dir: "request" | "response",
    headers: HeaderList,
    endStream: boolean,
    body: BodyReader,
    contentLength: number | null,
    sink: BodySink,
    overLimit: () => never,
  ): Promise<void> {
    const mode = dir === "request" ? ex.decodeMode : ex.encodeMode;
    const bodyMode: BodySendMode = ex.proc === null || mode === null || ex.procComplete ? "NONE" : dir === "request" ? mode.requestBodyMode : mode.responseBodyMode;
    const bodyKey = dir === "request" ? "request_body" : "response_body";
    if (endStream) {
      sink.sendHeaders(true);
      return;
    }
    if (bodyMode === "NONE") {
      sink.sendHeaders(false);
      await pipe(ex, body, sink);
      return;
    }
    const cfg = ex.proc;
    if (cfg === null) throw new Error("unreachable: ext_proc settings");
    if (bodyMode === "BUFFERED" || bodyMode === "BUFFERED_PARTIAL") {
      const chunks: Buffer[] = [];
      let total = 0;
      let ended = false;
      for (;;) {
        const chunk = await body.read();
        if (chunk === null) {
          ended = true;
          break;
        }
        ex.touch();
        chunks.push(chunk);
        total += chunk.length;
        if (total > settings.bufferLimitBytes) {
          if (bodyMode === "BUFFERED") overLimit();
          break;
        }
      }
      const data = Buffer.concat(chunks);
      const stream = openProcStream(ex);
      stream.send(bodyMessage(ex, dir, data, ended));
      stream.startTimer(cfg.messageTimeoutMs);
      const reply = await awaitReply(ex, bodyKey, false);
      let out: Buffer = data;
      if (reply.kind === "reply") {
        const common = (dir === "request" ? reply.response.request_body : reply.response.response_body)?.response ?? null;
        applyCommon(ex, common, headers, shouldRemoveContentLength(bodyMode, true));
        if (common?.body_mutation != null) {
          // BufferedBodyCallback: a content-length that disagrees with the mutated body is an error.
          const cl = headers.get("content-length");
          const mutated = applyBodyMutation(common, data);
          if (bodyMode === "BUFFERED" && cl !== undefined && Number(cl) !== mutated.length) {
            ex.procComplete = true;
            ex.procStream?.close();
            localReply(ex, 500, "");
          }
          out = mutated;
        }
      }
      sink.sendHeaders(false);
      if (out.length > 0) await sink.write(out);
      if (!ended) {
        await pipe(ex, body, sink);
        return;
      }
      sink.end();
      return;
    }
    // STREAMED: every chunk goes out as it arrives; replies come back in order and each replaces its chunk.
    sink.sendHeaders(false);
    const stream = openProcStream(ex);
    const queue: Buffer[] = [];
    let received = 0;
    const progress = { producerDone: false };
    let wake: (() => void) | null = null;
    const notify = (): void => {
      const w = wake;
      wake = null;
      w?.();
    };
    const producer = (async (): Promise<void> => {
      for (;;) {
        const chunk = await body.read();
        if (ex.finished || ex.procComplete) {
          if (chunk !== null) queue.push(chunk);
          if (chunk === null || ex.finished) {
            progress.producerDone = true;
            return;
          }
          continue;
        }
        ex.touch();
        if (chunk === null) {
          // The codec signals the end of a chunked body with an empty data frame carrying end_stream.
          if (contentLength === null || received < contentLength) {
            queue.push(Buffer.alloc(0));
            stream.send(bodyMessage(ex, dir, Buffer.alloc(0), true));
            stream.startTimer(cfg.messageTimeoutMs);
          }
          progress.producerDone = true;
          notify();
          return;
        }
        received += chunk.length;
        const last = contentLength !== null && received >= contentLength;
        queue.push(chunk);
        stream.send(bodyMessage(ex, dir, chunk, last));
        stream.startTimer(cfg.messageTimeoutMs);
        notify();
        if (last) {
          progress.producerDone = true;
          return;
        }
      }
    })().finally(notify);
    let delivered = 0;
    for (;;) {
      if (ex.procComplete) break;
      if (progress.producerDone && delivered >= queue.length) break;
      if (delivered >= queue.length) {
        await new Promise<void>((r) => {
          wake = r;
        });
        continue;
      }
      const reply = await awaitReply(ex, bodyKey, false);
      if (reply.kind === "continue") break;
      const chunk = queue[delivered] ?? Buffer.alloc(0);
      delivered += 1;
      const common = (dir === "request" ? reply.response.request_body : reply.response.response_body)?.response ?? null;
      const out = applyBodyMutation(common, chunk);
      if (out.length > 0) await sink.write(out);
    }
    await producer;
    // After the processor is gone (clean close, spurious, failure_mode_allow), the rest flows untouched.
    for (const chunk of queue.slice(delivered)) if (chunk.length > 0) await sink.write(chunk);
    await pipe(ex, body, sink);
  }

  async function pipe(ex: Exchange, body: BodyReader, sink: BodySink): Promise<void> {
    for (;;) {
      const chunk = await body.read();
      if (chunk === null) break;
      ex.touch();
      await sink.write(chunk);
    }
    if (body.failed) throw new ExchangeEnded();
    sink.end();
  }

  // ---------------------------------------------------------------------------------------------------
  // Router: upstream request and response
  // ---------------------------------------------------------------------------------------------------
  function upstreamRequestHeaders(ex: Exchange, headers: HeaderList): string[] {
    const route = ex.route;
    const authority = route?.hostRewriteLiteral ?? headers.get(":authority") ?? upstreamUrl.host;
    const out: [string, string][] = [["host", authority]];
    for (const [k, v] of headers.regular()) {
      if (k === "host") continue;
      out.push([k, sanitizeForNode(v)]);
    }
    return flatHeaders(out);
  }

  function upstreamPath(ex: Exchange, headers: HeaderList): string {
    const path = headers.get(":path") ?? "/";
    const route = ex.route;
    if (route?.prefixRewrite != null && route.match.kind === "prefix" && path.startsWith(route.match.value)) {
      return route.prefixRewrite + path.slice(route.match.value.length);
    }
    return path;
  }

  function startUpstream(ex: Exchange, headers: HeaderList, onResponse: (res: http.IncomingMessage) => void, onUpgrade: ((res: http.IncomingMessage, socket: Duplex, head: Buffer) => void) | null, onError: (err: Error) => void): http.ClientRequest {
    const requestOptions: https.RequestOptions = {
      agent: onUpgrade !== null ? false : agent,
      protocol: upstreamUrl.protocol,
      hostname: upstreamUrl.hostname,
      port: upstreamUrl.port === "" ? (upstreamIsTls ? 443 : 80) : Number(upstreamUrl.port),
      method: headers.get(":method") ?? "GET",
      path: upstreamPath(ex, headers),
      headers: upstreamRequestHeaders(ex, headers),
      ...(upstreamIsTls && ca !== undefined ? { ca } : {}),
      // SNI carries a DNS name only (RFC 6066); IP upstreams are verified against the IP SAN without SNI.
      ...(upstreamIsTls ? { rejectUnauthorized: true, ...(servername !== null ? { servername } : {}) } : {}),
      setHost: false,
    };
    const req = upstreamIsTls ? https.request(requestOptions) : http.request(requestOptions);
    req.on("response", onResponse);
    if (onUpgrade !== null) req.on("upgrade", onUpgrade);
    req.on("error", onError);
    ex.upstreamRequest = req;
    return req;
  }

  function responseFromUpstream(res: http.IncomingMessage, method: string): ResponseSource {
    const headers = new HeaderList([[":status", String(res.statusCode ?? 502)]]);
    for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
      const key = (res.rawHeaders[i] ?? "").toLowerCase();
      if (RESPONSE_HOP_BY_HOP.includes(key)) continue;
      headers.add(key, res.rawHeaders[i + 1] ?? "");
    }
    const status = res.statusCode ?? 502;
    const clHeader = res.headers["content-length"];
    const contentLength = clHeader !== undefined && /^\d+$/.test(clHeader) ? Number(clHeader) : null;
    const noBody = method === "HEAD" || status === 204 || status === 304 || (contentLength === 0 && res.headers["transfer-encoding"] === undefined);
    return { headers, endStream: noBody, body: new BodyReader(noBody ? null : res), contentLength };
  }

  /** The encode path: ext_proc response phases, then ext_authz response_headers_to_add, then the codec. */
  async function sendResponse(ex: Exchange, res: ResponseSource, method: string): Promise<void> {
    const ds = ex.ds;
    const headers = res.headers;
    const phase = await processHeaders(ex, "response", headers, res.endStream);
    let body = res.body;
    let endStream = res.endStream;
    let contentLength = res.contentLength;
    if (phase.replacedBody !== null) {
      void res.body.drain();
      body = new BodyReader([phase.replacedBody]);
      endStream = phase.replacedBody.length === 0;
      contentLength = phase.replacedBody.length;
    }
    let sent = false;
    const sink: BodySink = {
      sendHeaders: (end) => {
        if (sent) return;
        sent = true;
        applyOkResponseMutations(headers, ex.responseMutations);
        applyServerHeader(headers);
        ds.respond(headers, end || method === "HEAD");
      },
      write: (chunk) => ds.write(chunk),
      end: () => {
        ds.end();
      },
    };
    await processBody(ex, "response", headers, endStream, body, contentLength, sink, () => localReply(ex, 500, ""));
  }

  /** Router local replies (503 upstream reset, 504 upstream timeout) travel the encode path too. */
  function routerReply(status: number, body: string): ResponseSource {
    const bytes = Buffer.from(body);
    const headers = new HeaderList([[":status", String(status)]]);
    headers.add("content-length", String(bytes.length));
    if (bytes.length > 0) headers.add("content-type", "text/plain");
    return { headers, endStream: bytes.length === 0, body: new BodyReader([bytes]), contentLength: bytes.length };
  }

  async function runExchange(ex: Exchange): Promise<void> {
    const ds = ex.ds;
    const headers = ds.headers;
    const upgrade = isUpgradeRequest(headers);
    // Codec: headers_with_underscores_action (REJECT_REQUEST answers 400, DROP_HEADER drops them).
    for (const [k] of headers.regular()) {
      if (!k.includes("_")) continue;
      if (settings.headersWithUnderscoresAction === "REJECT_REQUEST") localReply(ex, 400, "");
      if (settings.headersWithUnderscoresAction === "DROP_HEADER") headers.remove(k);
    }
    // ConnectionManagerUtility::maybeNormalizePath, before routing and before any filter.
    const normalized = normalizeRequestPath(headers.get(":path") ?? "/", {
      normalizePath: settings.normalizePath,
      mergeSlashes: settings.mergeSlashes,
      escapedSlashes: settings.pathWithEscapedSlashesAction,
    });
    if (normalized.kind === "reject") localReply(ex, 400, "");
    if (normalized.kind === "redirect") {
      localReply(ex, 307, "", (h) => {
        h.add("location", normalized.path);
      });
    }
    headers.set(":path", normalized.path);
    // ConnectionManagerUtility::mutateRequestHeaders.
    if (!upgrade) {
      headers.remove("connection");
      headers.remove("upgrade");
    }
    for (const h of HOP_BY_HOP) headers.remove(h);
    // use_remote_address with xff_num_trusted_hops 0 and no internal_address_config: the peer is the client,
    // XFF gets it appended (a loopback peer appends Envoy's local address), x-forwarded-proto is overwritten,
    // and the request is an "edge" request (no address is internal without internal_address_config).
    const edgeRequest = settings.useRemoteAddress;
    if (settings.useRemoteAddress) {
      const peer = /^127\.|^::1$/.test(ds.source.address) ? ds.destination.address : ds.source.address;
      const xff = headers.getAll("x-forwarded-for").join(",");
      headers.set("x-forwarded-for", xff.length > 0 ? `${xff},${peer}` : peer);
      headers.set("x-forwarded-proto", secure ? "https" : "http");
    } else if (!headers.has("x-forwarded-proto")) {
      headers.add("x-forwarded-proto", secure ? "https" : "http");
    }
    // cleanInternalHeaders (edge requests also lose the downstream-service headers).
    for (const h of INTERNAL_ONLY) headers.remove(h);
    if (edgeRequest) {
      for (const h of ["x-envoy-decorator-operation", "x-envoy-downstream-service-cluster", "x-envoy-downstream-service-node"]) headers.remove(h);
      headers.set("x-envoy-external-address", ds.source.address);
    }
    // generate_request_id: "Unconditionally set a request ID if we are allowed to override it from the edge.
    // Otherwise just ensure it is set."
    if (settings.generateRequestId) {
      const forceSet = !settings.preserveExternalRequestId && edgeRequest;
      if (forceSet || !headers.has("x-request-id")) headers.set("x-request-id", randomUUID());
    }

    ex.route = routeFor(headers);
    if (ex.route === null) localReply(ex, 404, "");
    const route = ex.route;
    ex.armIdle(route.idleTimeoutMs ?? settings.streamIdleTimeoutMs);
    if (route.maxStreamDurationMs > 0) {
      // max_stream_duration: the stream ends when it is reached (408 before the response started).
      const timer = setTimeout(() => ex.onIdle?.(), route.maxStreamDurationMs);
      ds.onClose(() => {
        clearTimeout(timer);
      });
    }
    ex.onIdle = () => {
      // Stream idle timeout: 408 before the response started, a reset after.
      try {
        localReply(ex, 408, "stream timeout");
      } catch {
        // ended
      }
      ex.upstreamRequest?.destroy();
      ex.finish();
    };
    if (upgrade) {
      const type = (headers.get("upgrade") ?? "").toLowerCase();
      const allowed = route.upgradeConfigs.get(type) ?? settings.upgradeConfigs.get(type) ?? false;
      // conn_manager_impl.cc: an upgrade the route/HCM does not enable is refused with 403 (upgrade_failed).
      if (!allowed || ds.upgrade === null) localReply(ex, 403, "");
    }

    await runExtAuthz(ex);

    // ext_proc (mergePerRouteConfig: disabled → all phases SKIP).
    const procCfg = settings.extProc;
    const activeRoute = currentRoute(ex) ?? route;
    if (procCfg !== null && !activeRoute.extProc.disabled) {
      ex.proc = procCfg;
      const mode = activeRoute.extProc.processingMode ?? procCfg.processingMode;
      ex.decodeMode = mode;
      ex.encodeMode = mode;
      ex.forwardUntyped = activeRoute.extProc.forwardingNamespacesUntyped ?? procCfg.forwardingNamespacesUntyped;
    }
    const method = headers.get(":method") ?? "GET";
    const reqPhase = await processHeaders(ex, "request", headers, ds.endStream);
    let requestBody = ds.body;
    let requestEnd = ds.endStream;
    if (reqPhase.replacedBody !== null) {
      void ds.body.drain();
      requestBody = new BodyReader([reqPhase.replacedBody]);
      requestEnd = reqPhase.replacedBody.length === 0;
    }

    if (ds.upgrade !== null) {
      await runUpgrade(ex, ds.upgrade, method);
      return;
    }

    const routeTimeoutMs = activeRoute.timeoutMs;
    await new Promise<void>((resolve) => {
      let upstreamReq: http.ClientRequest | null = null;
      let responseSeen = false;
      let routeTimer: NodeJS.Timeout | null = null;
      const finish = (): void => {
        if (routeTimer) clearTimeout(routeTimer);
        resolve();
      };
      const fail = (status: number, body: string): void => {
        if (responseSeen) {
          ds.reset();
          finish();
          return;
        }
        responseSeen = true;
        sendResponse(ex, routerReply(status, body), method).then(finish, finish);
      };
      const headersReleased = (): http.ClientRequest => {
        upstreamReq ??= startUpstream(
          ex,
          headers,
          (res) => {
            if (responseSeen) return;
            responseSeen = true;
            ex.touch();
            const started = Date.now();
            const source = responseFromUpstream(res, method);
            if (!settings.suppressEnvoyHeaders) source.headers.set("x-envoy-upstream-service-time", String(Date.now() - started));
            sendResponse(ex, source, method).then(finish, finish);
          },
          null,
          (err) => {
            fail(503, `upstream connect error or disconnect/reset before headers. reset reason: ${err.message.includes("certificate") ? "remote connection failure, transport failure reason: TLS_error" : "connection failure"}`);
          },
        );
        return upstreamReq;
      };
      const armRouteTimer = (): void => {
        // Route timeout spans from the end of the downstream request to the end of the upstream response.
        if (routeTimeoutMs > 0) {
          routeTimer = setTimeout(() => {
            upstreamReq?.destroy();
            fail(504, "upstream request timeout");
          }, routeTimeoutMs);
        }
      };
      const sink: BodySink = {
        sendHeaders: (end) => {
          const req = headersReleased();
          if (end) {
            req.end();
            armRouteTimer();
          }
        },
        write: (chunk) =>
          new Promise((res) => {
            const req = headersReleased();
            if (req.write(chunk)) res();
            else {
              req.once("drain", () => {
                res();
              });
            }
          }),
        end: () => {
          headersReleased().end();
          armRouteTimer();
        },
      };
      processBody(ex, "request", headers, requestEnd, requestBody, null, sink, () => localReply(ex, 413, "Payload Too Large")).catch(() => {
        upstreamReq?.destroy();
        finish();
      });
      ds.onClose(() => {
        upstreamReq?.destroy();
        finish();
      });
    });
  }

  /** Upgrades (WebSocket; SPDY when configured): pass through after an OK Check, then pipe raw bytes after the 101. */
  async function runUpgrade(ex: Exchange, up: UpgradeSocket, method: string): Promise<void> {
    const ds = ex.ds;
    await new Promise<void>((resolve) => {
      const req = startUpstream(
        ex,
        ds.headers,
        (res) => {
          // Not switched: an ordinary response goes back and the connection closes.
          sendResponse(ex, responseFromUpstream(res, method), method).then(resolve, resolve);
        },
        (res, upSocket, upHead) => {
          void (async () => {
            const headers = new HeaderList([[":status", String(res.statusCode ?? 101)]]);
            for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) headers.add((res.rawHeaders[i] ?? "").toLowerCase(), res.rawHeaders[i + 1] ?? "");
            try {
              await processHeaders(ex, "response", headers, false);
            } catch {
              upSocket.destroy();
              resolve();
              return;
            }
            applyOkResponseMutations(headers, ex.responseMutations);
            ds.respond(headers, false);
            if (upHead.length > 0) up.socket.write(upHead);
            if (up.head.length > 0) upSocket.write(up.head);
            const activity = (): void => {
              ex.touch();
            };
            up.socket.on("data", activity);
            upSocket.on("data", activity);
            up.socket.pipe(upSocket);
            upSocket.pipe(up.socket);
            const close = (): void => {
              up.socket.destroy();
              upSocket.destroy();
              resolve();
            };
            up.socket.once("close", close);
            upSocket.once("close", close);
            up.socket.on("error", close);
            upSocket.on("error", close);
          })();
        },
        (err) => {
          try {
            localReply(ex, 503, `upstream connect error or disconnect/reset before headers. reset reason: ${err.message}`);
          } catch {
            // ended
          }
          resolve();
        },
      );
      req.end();
    });
  }

  function handle(ds: Downstream): void {
    const ex = new Exchange(ds);
    ds.onClose(() => {
      ex.upstreamRequest?.destroy();
      ex.finish();
    });
    runExchange(ex)
      .catch((err: unknown) => {
        if (err instanceof ExchangeEnded) return;
        // Anything unexpected fails closed: 500 before the response started, a reset after.
        try {
          localReply(ex, 500, "");
        } catch {
          // ended
        }
      })
      .finally(() => {
        ex.finish();
      });
  }

  // ---------------------------------------------------------------------------------------------------
  // Listener: HTTP/1.1 and HTTP/2 on one port. With a DownstreamTlsContext the codec follows the ALPN result;
  // without one (plaintext, or TLS where no protocol was negotiated) it is told apart by the connection
  // preface (ConnectionManagerUtility::determineNextProtocol, codec_type AUTO).
  // ---------------------------------------------------------------------------------------------------
  const h1 = http.createServer({ requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 60_000 }, (req, res) => {
    handle(new HttpOneDownstream(req, res, secure));
  });
  h1.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    handle(new UpgradeDownstream(req, socket, head, secure));
  });
  h1.on("clientError", (_err, socket: Duplex) => {
    socket.destroy();
  });
  // No enableConnectProtocol: the HCM sets no http2_protocol_options.allow_connect, so WebSocket over h2
  // (RFC 8441 extended CONNECT) is not offered, as in Envoy.
  const h2 = http2.createServer({});
  h2.on("stream", (stream: http2.ServerHttp2Stream, _headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
    handle(new HttpTwoDownstream(stream, rawHeaders, secure));
  });
  h2.on("sessionError", () => {
    // the session is torn down by node
  });

  /** Hands a (decrypted) connection to the codec: ALPN's choice when there is one, else the sniffed preface. */
  function dispatch(socket: net.Socket, negotiated: string | false): void {
    socket.setNoDelay(true);
    socket.on("error", () => socket.destroy());
    if (negotiated === "h2") {
      h2.emit("connection", socket);
      return;
    }
    if (negotiated !== false) {
      // Any other negotiated protocol gets the HTTP/1 codec (AUTO only switches to HTTP/2 on "h2").
      h1.emit("connection", socket);
      return;
    }
    socket.once("data", (first: Buffer) => {
      socket.pause();
      const isH2 = first.length >= 3 && HTTP2_PREFACE.subarray(0, Math.min(first.length, HTTP2_PREFACE.length)).equals(first.subarray(0, Math.min(first.length, HTTP2_PREFACE.length)));
      if (!isH2) {
        socket.unshift(first);
        h1.emit("connection", socket);
        socket.resume();
        return;
      }
      // Node's HTTP/2 session reads a net.Socket's native handle directly, so bytes already read for the
      // sniff would be lost; hand it a JS Duplex over the socket instead.
      h2.emit("connection", bridgeSocket(socket, first));
    });
  }

  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  let listener: net.Server;
  if (downstreamTls === null) {
    listener = net.createServer((socket) => {
      track(socket);
      dispatch(socket, false);
    });
  } else {
    const server = tls.createServer(downstreamTls.options);
    server.on("connection", track);
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      dispatch(socket, socket.alpnProtocol ?? false);
    });
    server.on("tlsClientError", () => {
      // A failed handshake (no shared version or ALPN protocol, an untrusted certificate on the client's side):
      // node destroys the socket; nothing reaches a codec.
    });
    listener = server;
  }

  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(listen.port, listen.host, () => {
      listener.off("error", reject);
      resolve();
    });
  });
  const address = listener.address() as net.AddressInfo;

  return {
    url: `${secure ? "https" : "http"}://127.0.0.1:${address.port}`,
    port: address.port,
    close: async () => {
      await new Promise<void>((resolve) => {
        listener.close(() => {
          resolve();
        });
        for (const s of sockets) s.destroy();
      });
      h1.close();
      h2.close();
      agent.destroy();
      authzClient.close();
      procClient.close();
    },
  };
}
