/**
 * @module test/helpers/e2e-exchange
 * The end-to-end stack with token exchange switched on: real kube-apiserver (test bed), Airlock with a
 * `tokenExchange` section, the Envoy-faithful gateway on TLS, real kubectl, and the built `airlock` CLI.
 */
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { parseAirlockConfig, type AirlockConfig } from "../../bin/airlock-config.js";
import { startAirlock, type RunningAirlock } from "../../bin/start-airlock.js";
import { startEnvoyFaithfulGateway, type EnvoyFaithfulGateway } from "../gateway/envoy-faithful-gateway.js";
import { loadGatewaySettings } from "../gateway/gateway-settings.js";
import { ensureTestbed, stopTestbed, type Testbed } from "../testbed/testbed.js";
import { KUBERNETES_MANIFESTS, type AuditRequestRow, type KubectlResult } from "./e2e-stack.js";

const KUBECTL = "/usr/bin/kubectl";
const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SIDECAR_BOOTSTRAP = join(REPO_ROOT, "envoy", "sidecar.yaml");
/** The API server's name in the sidecar's UpstreamTlsContext (sni + SAN matcher); the test bed's cert carries it. */
const UPSTREAM_SERVER_NAME = "kubernetes.default.svc";

/** The built CLI (`npm run build`): what kubectl runs as its exec plugin. */
export const AIRLOCK_CLI = join(REPO_ROOT, "dist", "bin", "airlock.js");

/** Sources whose compiled form the plugin tests run; a dist older than any of them would test stale code. */
const CLI_SOURCES: readonly (readonly [source: string, built: string])[] = [
  ["bin/airlock.ts", "dist/bin/airlock.js"],
  ["authz/exchange/credential-command.ts", "dist/authz/exchange/credential-command.js"],
  ["authz/exchange/credential-cache.ts", "dist/authz/exchange/credential-cache.js"],
  ["authz/exchange/kubeconfig-command.ts", "dist/authz/exchange/kubeconfig-command.js"],
];

/**
 * Throws unless `dist/` holds a build of the credential plugin at least as new as its sources: kubectl runs the
 * compiled CLI, and a missing or stale build must fail the test loudly rather than test old code.
 */
export function assertCliBuilt(): void {
  for (const [source, built] of CLI_SOURCES) {
    let builtMs: number;
    try {
      builtMs = statSync(join(REPO_ROOT, built)).mtimeMs;
    } catch {
      throw new Error(`${built} is missing: run \`npm run build\` before the credential-plugin e2e test`);
    }
    if (statSync(join(REPO_ROOT, source)).mtimeMs > builtMs) {
      throw new Error(`${built} is older than ${source}: run \`npm run build\` before the credential-plugin e2e test`);
    }
  }
}

export interface ProcessResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  /** The child's whole environment (nothing is inherited). */
  readonly env: NodeJS.ProcessEnv;
  /** Killed (SIGKILL) past it. Default 60 s. */
  readonly timeoutMs?: number;
}

function run(command: string, args: readonly string[], options: RunOptions): Promise<ProcessResult> {
  const child = spawn(command, [...args], { env: options.env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => { stdout += chunk; });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => { stderr += chunk; });
  const timer = setTimeout(() => { child.kill("SIGKILL"); }, options.timeoutMs ?? 60_000);
  return new Promise((resolve) => {
    child.once("error", (error) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: `${stderr}\n[spawn error: ${error.message}]` });
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `node dist/bin/airlock.js <args>` with exactly `env`. */
export function runAirlockCli(args: readonly string[], options: RunOptions): Promise<ProcessResult> {
  return run(process.execPath, [AIRLOCK_CLI, ...args], options);
}

/** One `token exchange` audit log line of Airlock (TokenExchangeAuditEvent, the fields the tests read). */
export interface ExchangeLogEvent {
  readonly outcome: "issued" | "refused";
  readonly error: string;
  readonly grant: string;
  readonly subject: string;
  readonly groups: readonly string[];
  readonly sessionId: string;
  readonly tokenId: string;
  readonly expiresAtSeconds: number;
  readonly timeMicros: number;
}

export interface ExchangeE2eStackOptions {
  /** Short name: used in the gateway instance and temp dir. */
  readonly name: string;
  /** The `tokenExchange` section of the Airlock configuration, as the YAML file would carry it. */
  readonly tokenExchange: Readonly<Record<string, unknown>>;
}

export interface ExchangeE2eStack {
  readonly testbed: Testbed;
  readonly config: AirlockConfig;
  readonly airlock: RunningAirlock;
  readonly gateway: EnvoyFaithfulGateway;
  /** PEM of the gateway listener's self-signed certificate (its own CA): `--certificate-authority` of kubeconfigs. */
  readonly listenerCaFile: string;
  /** Scratch directory removed by close(); HOME of every child. */
  readonly dir: string;
  /** kubectl's discovery cache (`--cache-dir`), inside `dir`. */
  readonly kubeCacheDir: string;
  /** The base environment of children: PATH, HOME (= dir), KUBECACHEDIR. */
  readonly env: Readonly<NodeJS.ProcessEnv>;
  /** Every `token exchange` event Airlock has logged so far, in order. */
  exchangeEvents(): readonly ExchangeLogEvent[];
  /** Everything Airlock has logged so far (JSON lines), to check that no token is in it. */
  logText(): string;
  /** kubectl with `kubeconfig` and extra environment (on top of `env`), discovery cache in `kubeCacheDir`. */
  kubectl(args: readonly string[], options: { readonly kubeconfig: string; readonly env?: NodeJS.ProcessEnv; readonly timeoutMs?: number }): Promise<KubectlResult>;
  /** kubectl straight to the API server as the test bed admin. */
  admin(args: readonly string[]): Promise<KubectlResult>;
  /** Creates a namespace (admin) that close() deletes. */
  createNamespace(prefix: string): Promise<string>;
  /** `requests` rows of every session whose subject is `subject` (flushes the sink first), oldest first. */
  auditRowsForSubject(subject: string): Promise<AuditRequestRow[]>;
  close(): Promise<void>;
}

/** A port the kernel just handed out (Airlock's HTTP address is fixed in its configuration). */
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

/** A throw-away self-signed certificate for 127.0.0.1: the listener's DownstreamTlsContext certificate and its CA. */
function makeListenerCert(dir: string): { readonly certFile: string; readonly cert: Buffer; readonly key: Buffer } {
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

function isExchangeLogEvent(value: unknown): value is ExchangeLogEvent {
  if (typeof value !== "object" || value === null) return false;
  const entry = value as Record<string, unknown>;
  return entry.audit === "token-exchange" && (entry.outcome === "issued" || entry.outcome === "refused");
}

/**
 * Starts the stack (the same parts and settings as startE2eStack, plus `tokenExchange`). Airlock logs at info into
 * memory so tests can count exchanges; set AIRLOCK_E2E_LOG to also see the lines on stderr. Fails loudly; starts
 * the test bed only when none runs (and then stops it in close()).
 */
export async function startExchangeE2eStack(options: ExchangeE2eStackOptions): Promise<ExchangeE2eStack> {
  const { testbed, startedHere } = await ensureTestbed();
  const dir = mkdtempSync(join(tmpdir(), `airlock-e2e-${options.name}-`));
  const stateDir = join(dir, "state");
  const kubeCacheDir = join(dir, "kube-cache");
  const namespaces: string[] = [];
  const closers: (() => Promise<void>)[] = [];
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, KUBECACHEDIR: kubeCacheDir };
  const logLines: string[] = [];
  const echo = process.env.AIRLOCK_E2E_LOG !== undefined && process.env.AIRLOCK_E2E_LOG !== "";
  const logDestination = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      const text = chunk.toString();
      logLines.push(text);
      if (echo) process.stderr.write(text);
      callback();
    },
  });

  const admin = (args: readonly string[]): Promise<KubectlResult> =>
    run(KUBECTL, ["--kubeconfig", testbed.kubeconfig, "--request-timeout=30s", ...args], { env });
  const mustAdmin = async (args: readonly string[]): Promise<string> => {
    const result = await admin(args);
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
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  };

  try {
    await mustAdmin(["apply", ...KUBERNETES_MANIFESTS.flatMap((file) => ["-f", file])]);
    const gatewayToken = (await mustAdmin(["-n", "airlock", "create", "token", "airlock", "--duration=1h"])).trim();
    const gatewayTokenFile = join(dir, "gateway-token");
    writeFileSync(gatewayTokenFile, gatewayToken, { mode: 0o600 });

    const httpPort = await freePort();
    const config = parseAirlockConfig(
      {
        stateDir,
        logLevel: "info",
        gatewayInstance: `e2e-${options.name}`,
        server: { grpcAddress: "127.0.0.1:0", httpAddress: `127.0.0.1:${String(httpPort)}`, shutdownGraceMs: 2_000 },
        credentials: { mode: "tokenRequest", apiServer: { url: testbed.server, caFile: testbed.caFile }, gatewayTokenFile },
        approvals: { retryAfterSeconds: 2, agentGroups: ["agents"], expirySweepSeconds: 5 },
        audit: { fsync: "never", batchMaxDelayMs: 100, exchangeTimeoutMs: 3_000 },
        tokenExchange: options.tokenExchange,
      },
      `e2e-${options.name}`,
    );
    const airlock = await startAirlock(config, { logDestination });
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

    return {
      testbed,
      config,
      airlock,
      gateway,
      listenerCaFile: listenerCert.certFile,
      dir,
      kubeCacheDir,
      env,
      exchangeEvents() {
        const events: ExchangeLogEvent[] = [];
        for (const line of logLines.join("").split("\n")) {
          if (!line.includes('"token-exchange"')) continue;
          try {
            const parsed: unknown = JSON.parse(line);
            if (isExchangeLogEvent(parsed)) events.push(parsed);
          } catch {
            // not a whole JSON line: not an event
          }
        }
        return events;
      },
      logText: () => logLines.join(""),
      kubectl: (args, opts) =>
        run(KUBECTL, ["--kubeconfig", opts.kubeconfig, "--cache-dir", kubeCacheDir, ...args], {
          env: { ...env, ...(opts.env ?? {}) },
          ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
        }),
      admin,
      async createNamespace(prefix) {
        const name = `${prefix}-${randomBytes(3).toString("hex")}`;
        await mustAdmin(["create", "namespace", name]);
        namespaces.push(name);
        return name;
      },
      async auditRowsForSubject(subject) {
        await airlock.audit.flush();
        const store = airlock.audit.store;
        return store.queryRows<AuditRequestRow>(
          `SELECT session_id, request_id, decision_id, subject, method, verb, resource, subresource, namespace, name, path,
                  effect, rule_ids, approval_id, reason, workload_identity, request_headers, request_body,
                  response_status, response_body, response_outcome
             FROM ${store.database}.requests FINAL
            WHERE subject = {subject:String}
            ORDER BY time_us`,
          { subject },
        );
      },
      close: closeAll,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
