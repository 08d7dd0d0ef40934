/**
 * @module test/helpers/e2e-stack
 * The whole Airlock path on real parts for end-to-end tests: real kube-apiserver (test bed), Airlock (startAirlock,
 * tokenRequest credentials), the Envoy-faithful gateway for envoy/sidecar.yaml (TLS listener), and real kubectl.
 */
import { spawn, spawnSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { calculateJwkThumbprint, importJWK, SignJWT, type JWK } from "jose";
import { parseAirlockConfig, type AirlockConfig } from "../../bin/airlock-config.js";
import { startAirlock, type RunningAirlock } from "../../bin/start-airlock.js";
import { DEV_AUDIENCE, DEV_ISSUER, DEV_ISSUER_KEY_FILE, openDevIssuer, type DevIssuer } from "../../authz/identity/dev-issuer.js";
import { startEnvoyFaithfulGateway, type EnvoyFaithfulGateway } from "../gateway/envoy-faithful-gateway.js";
import { loadGatewaySettings } from "../gateway/gateway-settings.js";
import { ensureTestbed, stopTestbed, type Testbed } from "../testbed/testbed.js";

const KUBECTL = "/usr/bin/kubectl";
const SIDECAR_BOOTSTRAP = fileURLToPath(new URL("../../envoy/sidecar.yaml", import.meta.url));
/** Applied in this order: the namespace and agent accounts first, then Airlock's own account. */
export const KUBERNETES_MANIFESTS: readonly string[] = [
  fileURLToPath(new URL("../../deploy/kubernetes/agent-service-accounts.yaml", import.meta.url)),
  fileURLToPath(new URL("../../deploy/kubernetes/airlock-service-account.yaml", import.meta.url)),
];
/** The API server's name in the sidecar's UpstreamTlsContext (sni + SAN matcher); the test bed's cert carries it. */
const UPSTREAM_SERVER_NAME = "kubernetes.default.svc";

/** What a finished child process (kubectl, the airlock CLI) left. */
export interface ProcessResult {
  /** Exit code; null when the process was killed (timeout or kill()). */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export type KubectlResult = ProcessResult;

export interface KubectlOptions {
  /** Whole-process bound; the process is killed (SIGKILL) past it. Default 60 s. */
  readonly timeoutMs?: number;
  readonly stdin?: string;
}

/** kubectl through the gateway: another kubeconfig than the agent's, more environment on top of the stack's. */
export interface AgentKubectlOptions extends KubectlOptions {
  readonly kubeconfig?: string;
  readonly env?: NodeJS.ProcessEnv;
}

export interface BackgroundKubectl {
  readonly result: Promise<KubectlResult>;
  /** Output so far (for watches). */
  readonly stdout: () => string;
  /** Ends the process (SIGTERM) and resolves `result`. */
  readonly stop: () => Promise<KubectlResult>;
}

export interface HttpResult {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

export interface RawRequest {
  readonly method?: string;
  readonly path: string;
  /** Bearer token; the stack's agent token unless null (no Authorization header). */
  readonly token?: string | null;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly timeoutMs?: number;
}

/** An approval as the HTTP API shows it (the fields the tests read). */
export interface ApprovalItem {
  readonly id: string;
  readonly state: string;
  readonly ruleId: string;
  readonly requester: { readonly subject: string; readonly sessionId: string };
  readonly preview: unknown;
}

/** A `requests` row, the columns the tests read. */
export interface AuditRequestRow {
  readonly session_id: string;
  readonly request_id: string;
  readonly decision_id: string;
  readonly subject: string;
  readonly method: string;
  readonly verb: string;
  readonly resource: string;
  readonly subresource: string;
  readonly namespace: string;
  readonly name: string;
  readonly path: string;
  readonly effect: string;
  readonly rule_ids: readonly string[];
  readonly approval_id: string;
  readonly reason: string;
  readonly workload_identity: string;
  readonly request_headers: string;
  readonly request_body: string;
  readonly response_status: number;
  readonly response_body: string;
  readonly response_outcome: string;
}

export interface E2eStackOptions {
  /** Short name: used in the gateway instance, temp dir and namespaces. */
  readonly name: string;
  /** `Retry-After` of pending answers; small keeps kubectl's own retries (10 of them) short. Default 2. */
  readonly retryAfterSeconds?: number;
  /**
   * Deep-merged into the Airlock configuration the stack builds, before parsing (mappings merge key by key, any
   * other value replaces): e.g. `{ logLevel: "info", tokenExchange: {...} }`.
   */
  readonly airlockConfig?: Readonly<Record<string, unknown>>;
  /** Where Airlock logs; stderr by default. */
  readonly logDestination?: NodeJS.WritableStream;
}

export interface E2eStack {
  readonly testbed: Testbed;
  /** The configuration Airlock runs with (audit section for `airlock replay`). */
  readonly config: AirlockConfig;
  readonly airlock: RunningAirlock;
  readonly gateway: EnvoyFaithfulGateway;
  readonly issuer: DevIssuer;
  /** Session id carried by `agentToken` (sid claim): the session `airlock replay` shows. */
  readonly sessionId: string;
  readonly agentSubject: string;
  /** A development agent token (group agents, 30 min) for `agentSubject` in `sessionId`. Never log it. */
  readonly agentToken: string;
  /** kubeconfig pointing at the gateway's TLS listener (its CA pinned) with `agentToken`. */
  readonly agentKubeconfig: string;
  /** PEM of the gateway listener's self-signed certificate (its own CA): `--certificate-authority` of kubeconfigs. */
  readonly listenerCaFile: string;
  /** Scratch directory removed by close(); HOME of every child. */
  readonly dir: string;
  /** kubectl's discovery cache (`--cache-dir`), inside `dir`. */
  readonly kubeCacheDir: string;
  /** The base environment of children: PATH, HOME (= dir), KUBECACHEDIR. */
  readonly env: Readonly<NodeJS.ProcessEnv>;
  /** kubectl through the gateway as the agent (or with another kubeconfig). */
  kubectl(args: readonly string[], options?: AgentKubectlOptions): Promise<KubectlResult>;
  /** The same, in the background (watches, deletes that wait for approval). */
  kubectlInBackground(args: readonly string[], options?: AgentKubectlOptions): BackgroundKubectl;
  /** kubectl straight to the API server as the test bed admin (setup, and checking what really happened). */
  admin(args: readonly string[], options?: KubectlOptions): Promise<KubectlResult>;
  /** Writes a kubeconfig for the gateway's TLS listener with this token. */
  writeKubeconfig(name: string, token: string): string;
  /** A raw HTTP/1.1 request through the gateway (TLS, its certificate pinned). */
  request(request: RawRequest): Promise<HttpResult>;
  /** A WebSocket upgrade through the gateway: 101 (the socket is closed at once) or the refusal's status and body. */
  upgrade(request: RawRequest & { readonly protocols?: readonly string[] }): Promise<HttpResult>;
  /** Creates a namespace (admin) that close() deletes. */
  createNamespace(prefix: string): Promise<string>;
  issueAgentToken(input: { readonly subject?: string; readonly ttlSeconds?: number; readonly sessionId?: string }): Promise<string>;
  /** Signs a development-issuer token with any iat/exp (expired, too long-lived), which `issuer.issue` refuses to. */
  signAgentToken(input: { readonly issuedAtOffsetSeconds: number; readonly lifetimeSeconds: number; readonly sessionId?: string }): Promise<string>;
  issueApproverToken(subject: string): Promise<string>;
  listApprovals(approverToken: string, query?: Readonly<Record<string, string>>): Promise<ApprovalItem[]>;
  /** Polls until an approval for the filter is pending; throws after timeoutMs. */
  waitForPendingApproval(approverToken: string, match: (item: ApprovalItem) => boolean, timeoutMs?: number): Promise<ApprovalItem>;
  approve(approverToken: string, id: string, reason: string): Promise<HttpResult>;
  /**
   * Rows of `requests` for a session (default: the agent's), or of every session with null (flushes the sink first).
   * Like session-timeline.sql it includes exchange-only rows (effect Unknown) of the session's decisions: a request
   * that outlives `audit.exchangeTimeoutMs` (a watch) is written as a `missing` decision row plus that row.
   */
  auditRows(sessionId?: string | null): Promise<AuditRequestRow[]>;
  /** `requests` rows of every session whose subject is `subject` (flushes the sink first), oldest first. */
  auditRowsForSubject(subject: string): Promise<AuditRequestRow[]>;
  /** Polls auditRows until `done` holds; returns the last rows either way (the caller asserts). */
  waitForAuditRows(done: (rows: AuditRequestRow[]) => boolean, options?: { readonly sessionId?: string | null; readonly timeoutMs?: number }): Promise<AuditRequestRow[]>;
  close(): Promise<void>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A port the kernel just handed out; Airlock's HTTP listener must be known before start (publicUrl). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => { resolve(port); });
    });
  });
}

/** Mappings merge key by key; any other value of `overlay` (arrays included) replaces the base's. */
function mergeConfig(base: Readonly<Record<string, unknown>>, overlay: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const isMapping = (value: unknown): value is Record<string, unknown> =>
    typeof value === "object" && value !== null && !Array.isArray(value);
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overlay)) {
    const current = merged[key];
    merged[key] = isMapping(current) && isMapping(value) ? mergeConfig(current, value) : value;
  }
  return merged;
}

export interface SpawnedProcess {
  readonly result: Promise<ProcessResult>;
  readonly stdout: () => string;
  readonly kill: (signal: NodeJS.Signals) => void;
}

/** Runs `command` with exactly `env` (nothing inherited), `options.stdin` (or nothing) on its stdin. */
export function spawnProcess(command: string, args: readonly string[], env: NodeJS.ProcessEnv, options: KubectlOptions = {}): SpawnedProcess {
  const child = spawn(command, [...args], { env, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => { stdout += chunk; });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => { stderr += chunk; });
  child.stdin.end(options.stdin ?? "");
  const timer = setTimeout(() => { child.kill("SIGKILL"); }, options.timeoutMs ?? 60_000);
  const result = new Promise<ProcessResult>((resolve) => {
    child.once("error", (error) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: `${stderr}\n[spawn error: ${error.message}]` });
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  return {
    result,
    stdout: () => stdout,
    kill: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

function spawnKubectl(args: readonly string[], env: NodeJS.ProcessEnv, options: KubectlOptions): SpawnedProcess {
  return spawnProcess(KUBECTL, args, env, options);
}

function kubeconfigText(server: string, caFile: string, token: string): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: airlock",
    "  cluster:",
    `    server: ${JSON.stringify(server)}`,
    `    certificate-authority: ${JSON.stringify(caFile)}`,
    "users:",
    "- name: agent",
    "  user:",
    `    token: ${JSON.stringify(token)}`,
    "contexts:",
    "- name: agent",
    "  context: {cluster: airlock, user: agent, namespace: default}",
    "current-context: agent",
    "",
  ].join("\n");
}

interface ListenerCert {
  readonly certFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

/**
 * A throw-away self-signed certificate for 127.0.0.1, standing in for the per-pod certificate the sidecar's
 * DownstreamTlsContext names; it is its own CA in the agent's kubeconfig. (client-go sends no credential at all to
 * an http:// server: clientcmd applies user auth only to TLS transports.)
 */
function makeListenerCert(dir: string): ListenerCert {
  const certFile = join(dir, "listener.crt");
  const keyFile = join(dir, "listener.key");
  const result = spawnSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
      "-subj", "/CN=airlock-e2e-listener", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-addext", "basicConstraints=critical,CA:TRUE", "-keyout", keyFile, "-out", certFile],
    { encoding: "utf8" },
  );
  if (result.status !== 0) throw new Error(`openssl could not make the listener certificate: ${result.stderr}`);
  return { certFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
}

function collect(res: http.IncomingMessage): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on("data", (chunk: Buffer) => chunks.push(chunk));
    res.once("error", reject);
    res.once("end", () => {
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") });
    });
  });
}

/**
 * Starts the stack. Each step that fails throws with what it was doing: an end-to-end test must fail loudly,
 * never pass vacuously. Starts the test bed only when none runs (and then stops it in close()).
 */
export async function startE2eStack(options: E2eStackOptions): Promise<E2eStack> {
  const { testbed, startedHere } = await ensureTestbed();
  const dir = mkdtempSync(join(tmpdir(), `airlock-e2e-${options.name}-`));
  const stateDir = join(dir, "state");
  const cacheDir = join(dir, "kube-cache");
  const namespaces: string[] = [];
  const closers: (() => Promise<void>)[] = [];
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, KUBECACHEDIR: cacheDir };

  const admin = (args: readonly string[], opts: KubectlOptions = {}): Promise<KubectlResult> =>
    spawnKubectl(["--kubeconfig", testbed.kubeconfig, "--request-timeout=30s", ...args], env, opts).result;
  const mustAdmin = async (args: readonly string[], opts: KubectlOptions = {}): Promise<string> => {
    const result = await admin(args, opts);
    if (result.code !== 0) throw new Error(`kubectl ${args.slice(0, 4).join(" ")} failed (${String(result.code)}): ${result.stderr.slice(0, 2000)}`);
    return result.stdout;
  };

  const closeAll = async (): Promise<void> => {
    for (const close of closers.reverse()) {
      try {
        await close();
      } catch {
        // keep stopping the rest; the test has already reported what went wrong
      }
    }
    await Promise.all(namespaces.map((ns) => admin(["delete", "namespace", ns, "--wait=false", "--ignore-not-found"])));
    if (startedHere) await stopTestbed();
    // Retries: a child that just exited (kubectl cache, chDB background merges) may still be finishing a write.
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  };

  try {
    await mustAdmin(["apply", ...KUBERNETES_MANIFESTS.flatMap((file) => ["-f", file])]);
    // Airlock's own credential: a token of the airlock ServiceAccount, which may only mint agent tokens. In a
    // cluster this is the projected token file; an hour outlives any run of these tests.
    const gatewayToken = (await mustAdmin(["-n", "airlock", "create", "token", "airlock", "--duration=1h"])).trim();
    const gatewayTokenFile = join(dir, "gateway-token");
    writeFileSync(gatewayTokenFile, gatewayToken, { mode: 0o600 });

    const httpPort = await freePort();
    const baseConfig: Record<string, unknown> = {
      stateDir,
      logLevel: process.env.AIRLOCK_E2E_LOG ?? "silent",
      gatewayInstance: `e2e-${options.name}`,
      server: { grpcAddress: "127.0.0.1:0", httpAddress: `127.0.0.1:${String(httpPort)}`, shutdownGraceMs: 2_000 },
      credentials: {
        mode: "tokenRequest",
        apiServer: { url: testbed.server, caFile: testbed.caFile },
        gatewayTokenFile,
      },
      approvals: {
        retryAfterSeconds: options.retryAfterSeconds ?? 2,
        agentGroups: ["agents"],
        expirySweepSeconds: 5,
      },
      audit: {
        fsync: "never",
        batchMaxDelayMs: 100,
        // Upgraded streams (exec) never reach ext_proc: their decision row is written only once this hold ends.
        exchangeTimeoutMs: 3_000,
      },
    };
    const config = parseAirlockConfig(mergeConfig(baseConfig, options.airlockConfig ?? {}), `e2e-${options.name}`);
    const airlock = await startAirlock(config, options.logDestination === undefined ? {} : { logDestination: options.logDestination });
    closers.push(() => airlock.close());

    const listenerCert = makeListenerCert(dir);
    const gateway = await startEnvoyFaithfulGateway({
      settings: loadGatewaySettings(SIDECAR_BOOTSTRAP),
      authzAddress: airlock.grpcAddress,
      extProcAddress: airlock.grpcAddress,
      upstream: { url: testbed.server, caFile: testbed.caFile, servername: UPSTREAM_SERVER_NAME },
      listen: { host: "127.0.0.1", port: 0, tls: { cert: listenerCert.cert, key: listenerCert.key } },
    });
    closers.push(() => gateway.close());

    const issuer = await openDevIssuer(stateDir);
    const sessionId = `e2e-${options.name}-${randomUUID()}`;
    const agentSubject = `agent-${options.name}`;
    const agentToken = await issuer.issue({ subject: agentSubject, groups: ["agents"], ttlSeconds: 1800, sessionId });

    const writeKubeconfig = (name: string, token: string): string => {
      const path = join(dir, `${name}.kubeconfig`);
      writeFileSync(path, kubeconfigText(gateway.url, listenerCert.certFile, token), { mode: 0o600 });
      return path;
    };
    const agentKubeconfig = writeKubeconfig("agent", agentToken);

    const agentKubectl = (args: readonly string[], opts: AgentKubectlOptions): SpawnedProcess =>
      spawnKubectl(["--kubeconfig", opts.kubeconfig ?? agentKubeconfig, "--cache-dir", cacheDir, ...args], { ...env, ...(opts.env ?? {}) }, opts);

    const request = (req: RawRequest): Promise<HttpResult> =>
      new Promise((resolve, reject) => {
        const token = req.token === undefined ? agentToken : req.token;
        const headers: Record<string, string> = { ...(req.headers ?? {}) };
        if (token !== null) headers.authorization = `Bearer ${token}`;
        if (req.body !== undefined) headers["content-length"] = String(Buffer.byteLength(req.body));
        const r = https.request(`${gateway.url}${req.path}`, { method: req.method ?? "GET", headers, agent: false, ca: listenerCert.cert });
        r.setTimeout(req.timeoutMs ?? 30_000, () => r.destroy(new Error(`request ${req.path} timed out`)));
        r.once("error", reject);
        r.once("response", (res) => { collect(res).then(resolve, reject); });
        r.end(req.body);
      });

    const upgrade = (req: RawRequest & { readonly protocols?: readonly string[] }): Promise<HttpResult> =>
      new Promise((resolve, reject) => {
        const token = req.token === undefined ? agentToken : req.token;
        const headers: Record<string, string> = {
          connection: "Upgrade",
          upgrade: "websocket",
          "sec-websocket-version": "13",
          "sec-websocket-key": randomBytes(16).toString("base64"),
          "sec-websocket-protocol": (req.protocols ?? ["v5.channel.k8s.io"]).join(", "),
          ...(req.headers ?? {}),
        };
        if (token !== null) headers.authorization = `Bearer ${token}`;
        const r = https.request(`${gateway.url}${req.path}`, { method: "GET", headers, agent: false, ca: listenerCert.cert });
        r.setTimeout(req.timeoutMs ?? 30_000, () => r.destroy(new Error(`upgrade ${req.path} timed out`)));
        r.once("error", reject);
        r.once("upgrade", (res, socket) => {
          socket.destroy();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: "" });
        });
        r.once("response", (res) => { collect(res).then(resolve, reject); });
        r.end();
      });

    const approvalsFetch = async (token: string, path: string, init: { method?: string; body?: unknown } = {}): Promise<HttpResult> => {
      const response = await fetch(`${airlock.httpUrl}${path}`, {
        method: init.method ?? "GET",
        headers: { authorization: `Bearer ${token}`, ...(init.body === undefined ? {} : { "content-type": "application/json" }) },
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
        signal: AbortSignal.timeout(10_000),
      });
      return { status: response.status, headers: {}, body: await response.text() };
    };

    const listApprovals = async (token: string, query: Readonly<Record<string, string>> = {}): Promise<ApprovalItem[]> => {
      const qs = new URLSearchParams(query).toString();
      const res = await approvalsFetch(token, `/v1/approvals${qs === "" ? "" : `?${qs}`}`);
      if (res.status !== 200) throw new Error(`GET /v1/approvals answered ${String(res.status)}: ${res.body}`);
      return (JSON.parse(res.body) as { items: ApprovalItem[] }).items;
    };

    /** `where` is given the database name; rows oldest first. */
    const selectAuditRows = async (where: (database: string) => string, params: Record<string, string | number>): Promise<AuditRequestRow[]> => {
      await airlock.audit.flush();
      const store = airlock.audit.store;
      return store.queryRows<AuditRequestRow>(
        `SELECT session_id, request_id, decision_id, subject, method, verb, resource, subresource, namespace, name, path,
                effect, rule_ids, approval_id, reason, workload_identity, request_headers, request_body,
                response_status, response_body, response_outcome
           FROM ${store.database}.requests FINAL
          WHERE ${where(store.database)}
          ORDER BY time_us`,
        params,
      );
    };
    const auditRows = (sid: string | null = sessionId): Promise<AuditRequestRow[]> =>
      selectAuditRows(
        (database) => `{all:UInt8} = 1 OR session_id = {sid:String}
             OR (session_id = '' AND decision_id IN (
                  SELECT decision_id FROM ${database}.requests WHERE session_id = {sid:String}))`,
        { sid: sid ?? "", all: sid === null ? 1 : 0 },
      );

    const stack: E2eStack = {
      testbed,
      config,
      airlock,
      gateway,
      issuer,
      sessionId,
      agentSubject,
      agentToken,
      agentKubeconfig,
      listenerCaFile: listenerCert.certFile,
      dir,
      kubeCacheDir: cacheDir,
      env,
      kubectl: (args, opts = {}) => agentKubectl(args, opts).result,
      kubectlInBackground(args, opts = {}) {
        const spawned = agentKubectl(args, opts);
        return {
          result: spawned.result,
          stdout: spawned.stdout,
          stop: () => {
            spawned.kill("SIGTERM");
            return spawned.result;
          },
        };
      },
      admin,
      writeKubeconfig,
      request,
      upgrade,
      async createNamespace(prefix) {
        const name = `${prefix}-${randomBytes(3).toString("hex")}`;
        await mustAdmin(["create", "namespace", name]);
        namespaces.push(name);
        return name;
      },
      issueAgentToken: (input) =>
        issuer.issue({
          subject: input.subject ?? agentSubject,
          groups: ["agents"],
          ttlSeconds: input.ttlSeconds ?? 1800,
          sessionId: input.sessionId ?? sessionId,
        }),
      async signAgentToken(input) {
        const jwk = JSON.parse(readFileSync(join(stateDir, DEV_ISSUER_KEY_FILE), "utf8")) as JWK;
        const kid = await calculateJwkThumbprint({ kty: "EC", crv: "P-256", x: jwk.x ?? "", y: jwk.y ?? "" }, "sha256");
        const key = await importJWK({ ...jwk, alg: "ES256" }, "ES256");
        const iat = Math.floor(Date.now() / 1000) + input.issuedAtOffsetSeconds;
        return new SignJWT({ groups: ["agents"], sid: input.sessionId ?? sessionId })
          .setProtectedHeader({ alg: "ES256", kid, typ: "JWT" })
          .setIssuer(DEV_ISSUER)
          .setAudience(DEV_AUDIENCE)
          .setSubject(agentSubject)
          .setIssuedAt(iat)
          .setNotBefore(iat)
          .setExpirationTime(iat + input.lifetimeSeconds)
          .setJti(randomUUID())
          .sign(key);
      },
      issueApproverToken: (subject) =>
        issuer.issue({ subject, groups: ["sre"], ttlSeconds: 1800, audience: config.approvals.approverAudience }),
      listApprovals,
      async waitForPendingApproval(token, match, timeoutMs = 20_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const found = (await listApprovals(token, { state: "pending" })).find(match);
          if (found) return found;
          if (Date.now() > deadline) throw new Error(`no matching pending approval within ${String(timeoutMs)} ms`);
          await sleep(200);
        }
      },
      approve: (token, id, reason) => approvalsFetch(token, `/v1/approvals/${encodeURIComponent(id)}/approve`, { method: "POST", body: { reason } }),
      auditRows,
      auditRowsForSubject: (subject) => selectAuditRows(() => "subject = {subject:String}", { subject }),
      async waitForAuditRows(done, opts = {}) {
        const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
        for (;;) {
          const rows = await auditRows(opts.sessionId === undefined ? sessionId : opts.sessionId);
          if (done(rows) || Date.now() > deadline) return rows;
          await sleep(250);
        }
      },
      close: closeAll,
    };
    return stack;
  } catch (error) {
    await closeAll();
    throw error;
  }
}
