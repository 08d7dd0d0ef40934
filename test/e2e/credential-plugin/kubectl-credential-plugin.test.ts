/**
 * @module test/e2e/credential-plugin/kubectl-credential-plugin.test
 * Real kubectl with a kubeconfig from `airlock kubeconfig`: the `airlock credential` exec plugin exchanges a CI token
 * (or a client secret) for a short-lived Airlock token, kubectl lists pods through the gateway, and after the token
 * expires the plugin exchanges again; tokens live only in the user-only cache.
 */
import { lstatSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { generateClientSecret, hashClientSecret } from "../../../authz/exchange/client-secret.js";
import type { AuditRequestRow, KubectlResult } from "../../helpers/e2e-stack.js";
import {
  AIRLOCK_CLI,
  assertCliBuilt,
  runAirlockCli,
  startExchangeE2eStack,
  type ExchangeE2eStack,
  type ExchangeLogEvent,
} from "../../helpers/e2e-exchange.js";
import { startIssuerServer, type IssuerServer } from "../../integration/authz/identity/issuer-server.js";

/** Short on purpose: the test sleeps past it to see the plugin exchange again. */
const TOKEN_LIFETIME_SECONDS = 12;
/**
 * The plugin's refresh margin (`--refresh-before-seconds`): it re-exchanges once less than this remains. Small, so
 * the second kubectl run, seconds after the first, still reuses the cached token.
 */
const REFRESH_BEFORE_SECONDS = 1;
const CI_AUDIENCE = "airlock-exchange";
const CI_SUBJECT = "repo:acme/app:ref:refs/heads/main";
const CLIENT_ID = "e2e-coding-agent";
const CLIENT_SUBJECT = CLIENT_ID;
const SECRET_ENV = "AIRLOCK_E2E_CLIENT_SECRET";
const NS_PREFIX = "e2e-cred";
const POD = "worker";

let issuer: IssuerServer | undefined;
let stack: ExchangeE2eStack | undefined;
let ciKey: CryptoKey;
let clientSecret: string;
let ns: string;
/** XDG_RUNTIME_DIR of the agent (0700, like a real one); the plugin caches in `<it>/airlock`. */
let runtimeDir: string;
let cacheDir: string;
let subjectTokenFile: string;
let subjectToken: string;

function s(): ExchangeE2eStack {
  if (!stack) throw new Error("the stack did not start");
  return stack;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function signCiToken(): Promise<string> {
  if (!issuer) throw new Error("the issuer did not start");
  return new SignJWT({ repository_owner: "acme", jti: crypto.randomUUID() })
    .setProtectedHeader({ alg: "ES256", kid: "ci-1" })
    .setIssuer(issuer.origin)
    .setAudience(CI_AUDIENCE)
    .setSubject(CI_SUBJECT)
    .setIssuedAt()
    .setExpirationTime("10m")
    .sign(ciKey);
}

/** What a failed kubectl run shows; it never carries a token (kubectl does not print credentials). */
function describeRun(result: KubectlResult): string {
  return `exit ${String(result.code)}\nstdout: ${result.stdout.slice(0, 1500)}\nstderr: ${result.stderr.slice(0, 1500)}`;
}

function issued(grant: string): ExchangeLogEvent[] {
  return s().exchangeEvents().filter((event) => event.outcome === "issued" && event.grant === grant);
}

function isPodList(row: AuditRequestRow): boolean {
  return row.verb === "list" && row.resource === "pods" && row.namespace === ns;
}

/** Polls the audit store until `subject` has `count` pod-list rows in `ns`; returns them (the caller asserts). */
async function waitForPodLists(subject: string, count: number, timeoutMs = 20_000): Promise<AuditRequestRow[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = (await s().auditRowsForSubject(subject)).filter(isPodList);
    if (rows.length >= count || Date.now() > deadline) return rows;
    await sleep(250);
  }
}

/** The plugin's cache: a 0700 directory holding only 0600 `<sha256>.json` files (and no leftover temporaries). */
function cacheEntries(): { readonly name: string; readonly mode: number; readonly accessToken: string }[] {
  const info = lstatSync(cacheDir);
  expect(info.isDirectory()).toBe(true);
  expect(info.mode & 0o777, "cache directory mode").toBe(0o700);
  return readdirSync(cacheDir).map((name) => {
    const file = lstatSync(join(cacheDir, name));
    const body = JSON.parse(readFileSync(join(cacheDir, name), "utf8")) as { accessToken?: unknown };
    return { name, mode: file.mode & 0o777, accessToken: typeof body.accessToken === "string" ? body.accessToken : "" };
  });
}

/** Every regular file under `root` (symlinks not followed; files that vanish while walking are skipped). */
function filesUnder(root: string): string[] {
  const out: string[] = [];
  const walk = (directory: string): void => {
    let names: string[];
    try {
      names = readdirSync(directory);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(directory, name);
      let info;
      try {
        info = lstatSync(path);
      } catch {
        continue;
      }
      if (info.isDirectory()) walk(path);
      else if (info.isFile()) out.push(path);
    }
  };
  walk(root);
  return out;
}

/** Files under `root` (except `allowed`) whose bytes contain any of `needles`. */
function filesContaining(root: string, needles: readonly string[], allowed: ReadonlySet<string>): string[] {
  const found: string[] = [];
  for (const path of filesUnder(root)) {
    if (allowed.has(path)) continue;
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch {
      continue;
    }
    if (needles.some((needle) => bytes.includes(needle))) found.push(path);
  }
  return found;
}

/** Writes a kubeconfig with the built CLI; checks it is private and holds the exec plugin, not a credential. */
async function writeKubeconfig(name: string, credentialArgs: readonly string[]): Promise<string> {
  const output = join(s().dir, `${name}.kubeconfig`);
  const result = await runAirlockCli(
    [
      "kubeconfig",
      "--server", s().airlock.httpUrl,
      "--sidecar", s().gateway.url,
      "--certificate-authority", s().listenerCaFile,
      "--namespace", ns,
      "--name", name,
      "--exec-command", process.execPath,
      "--exec-arg", AIRLOCK_CLI,
      "--refresh-before-seconds", String(REFRESH_BEFORE_SECONDS),
      "--output", output,
      ...credentialArgs,
    ],
    { env: s().env, timeoutMs: 30_000 },
  );
  expect(result.code, result.stderr).toBe(0);
  expect(statSync(output).mode & 0o777, "kubeconfig mode").toBe(0o600);
  const document = parse(readFileSync(output, "utf8")) as {
    clusters: { cluster: Record<string, unknown> }[];
    users: { user: Record<string, unknown> }[];
  };
  expect(document.clusters[0]?.cluster.server).toBe(s().gateway.url);
  expect(document.clusters[0]?.cluster["certificate-authority-data"]).toEqual(expect.any(String));
  const user = document.users[0]?.user ?? {};
  // Only the plugin: no token, token file, client certificate or secret in the kubeconfig.
  expect(Object.keys(user)).toEqual(["exec"]);
  expect(user.exec).toMatchObject({ apiVersion: "client.authentication.k8s.io/v1", command: process.execPath, interactiveMode: "Never" });
  return output;
}

beforeAll(async () => {
  assertCliBuilt();
  issuer = await startIssuerServer();
  const pair = await generateKeyPair("ES256");
  ciKey = pair.privateKey;
  issuer.keys = [{ ...(await exportJWK(pair.publicKey)), kid: "ci-1", alg: "ES256", use: "sig" }];
  clientSecret = generateClientSecret();
  stack = await startExchangeE2eStack({
    name: "credplugin",
    tokenExchange: {
      enabled: true,
      maxTokenLifetimeSeconds: TOKEN_LIFETIME_SECONDS,
      trustRules: [
        {
          id: "ci",
          oidc: {
            issuer: issuer.origin,
            discoveryUrl: issuer.discoveryUrl,
            audiences: [CI_AUDIENCE],
            algorithms: ["ES256"],
            requiredClaims: { repository_owner: "acme" },
          },
          groups: ["agents"],
          scope: { namespaces: [`${NS_PREFIX}-*`], readOnly: true },
        },
      ],
      clients: [{ clientId: CLIENT_ID, secretHash: await hashClientSecret(clientSecret), groups: ["agents"], scope: { readOnly: true } }],
    },
  });
  ns = await s().createNamespace(NS_PREFIX);
  // A pod no node will ever run: it only has to be listed.
  const pod = await s().admin(["-n", ns, "run", POD, "--image=registry.invalid/worker:1", "--restart=Never"]);
  if (pod.code !== 0) throw new Error(`admin kubectl run: ${pod.stderr}`);

  runtimeDir = join(s().dir, "run-user");
  mkdirSync(runtimeDir, { mode: 0o700 });
  cacheDir = join(runtimeDir, "airlock");
  const ciDir = join(s().dir, "ci");
  mkdirSync(ciDir, { mode: 0o700 });
  subjectTokenFile = join(ciDir, "token");
  subjectToken = await signCiToken();
  writeFileSync(subjectTokenFile, subjectToken, { mode: 0o600 });
});

afterAll(async () => {
  await stack?.close();
  await issuer?.close();
});

describe("kubectl with the airlock credential plugin", () => {
  it("lists pods with an exchanged CI token, reuses it from the private cache, and exchanges again once it expired", async () => {
    const kubeconfig = await writeKubeconfig("ci", ["--subject-token-file", subjectTokenFile]);
    expect(readFileSync(kubeconfig, "utf8")).not.toContain(subjectToken);
    const env = { XDG_RUNTIME_DIR: runtimeDir };
    const getPods = (): Promise<KubectlResult> =>
      s().kubectl(["get", "pods", "-n", ns, "-o", "name", "--request-timeout=30s"], { kubeconfig, env, timeoutMs: 60_000 });
    const outputs: KubectlResult[] = [];

    // 1. First run: the plugin exchanges the CI token; kubectl lists the pod through the gateway.
    const first = await getPods();
    outputs.push(first);
    expect(first.code, describeRun(first)).toBe(0);
    expect(first.stdout.trim()).toBe(`pod/${POD}`);
    const [firstExchange, ...moreAfterFirst] = issued("rule:ci");
    expect(moreAfterFirst).toHaveLength(0);
    if (!firstExchange) throw new Error("no token exchange was logged for the first run");
    expect(firstExchange).toMatchObject({ subject: CI_SUBJECT, groups: ["agents"] });
    expect(firstExchange.expiresAtSeconds * 1_000_000 - firstExchange.timeMicros).toBeLessThanOrEqual(TOKEN_LIFETIME_SECONDS * 1_000_000);

    const afterFirst = cacheEntries();
    expect(afterFirst).toHaveLength(1);
    expect(afterFirst[0]?.name).toMatch(/^[0-9a-f]{64}\.json$/);
    expect(afterFirst[0]?.mode, "cache file mode").toBe(0o600);
    const firstToken = afterFirst[0]?.accessToken ?? "";
    expect(firstToken.split(".")).toHaveLength(3);

    // 2. Second run while the token is fresh: served from the cache, no new exchange, same audit session.
    // (A precondition, not a performance check: if the first run took most of the lifetime, say so plainly.)
    expect(Date.now(), "the second run must start while the first token is still fresh").toBeLessThan(
      (firstExchange.expiresAtSeconds - REFRESH_BEFORE_SECONDS - 2) * 1000,
    );
    const second = await getPods();
    outputs.push(second);
    expect(second.code, describeRun(second)).toBe(0);
    expect(second.stdout.trim()).toBe(`pod/${POD}`);
    expect(issued("rule:ci")).toHaveLength(1);
    const twoLists = await waitForPodLists(CI_SUBJECT, 2);
    expect(twoLists.map((row) => row.session_id)).toEqual([firstExchange.sessionId, firstExchange.sessionId]);

    // 3. Past the token's expiry: the plugin must exchange again; the new token opens a new audit session.
    await sleep(Math.max(0, firstExchange.expiresAtSeconds * 1000 + 1_500 - Date.now()));
    const third = await getPods();
    outputs.push(third);
    expect(third.code, describeRun(third)).toBe(0);
    expect(third.stdout.trim()).toBe(`pod/${POD}`);
    const exchanges = issued("rule:ci");
    expect(exchanges).toHaveLength(2);
    const secondExchange = exchanges[1];
    if (!secondExchange) throw new Error("no second token exchange was logged");
    expect(secondExchange.sessionId).not.toBe(firstExchange.sessionId);
    expect(secondExchange.tokenId).not.toBe(firstExchange.tokenId);
    expect(secondExchange.timeMicros / 1000).toBeGreaterThan(firstExchange.expiresAtSeconds * 1000);

    const threeLists = await waitForPodLists(CI_SUBJECT, 3);
    expect(threeLists.map((row) => row.session_id)).toEqual([firstExchange.sessionId, firstExchange.sessionId, secondExchange.sessionId]);
    for (const row of threeLists) {
      expect(row).toMatchObject({ effect: "Allow", response_status: 200, subject: CI_SUBJECT });
    }
    // Discovery and the lists: every request of this subject ran in one of the two exchanged sessions.
    const sessions = new Set((await s().auditRowsForSubject(CI_SUBJECT)).map((row) => row.session_id));
    expect([...sessions].sort()).toEqual([firstExchange.sessionId, secondExchange.sessionId].sort());

    // The cache holds the new token in the same single private file.
    const afterThird = cacheEntries();
    expect(afterThird).toHaveLength(1);
    expect(afterThird[0]?.name).toBe(afterFirst[0]?.name);
    expect(afterThird[0]?.mode, "cache file mode").toBe(0o600);
    const secondToken = afterThird[0]?.accessToken ?? "";
    expect(secondToken.split(".")).toHaveLength(3);
    expect(secondToken).not.toBe(firstToken);

    // No token anywhere else: not in any other file of the scratch tree (kubeconfig, kubectl's cache, HOME, Airlock's
    // state and audit spool), not in Airlock's log, not in kubectl's output; the CI token only in its own file.
    const cacheFile = join(cacheDir, afterThird[0]?.name ?? "");
    expect(filesContaining(s().dir, [firstToken, secondToken], new Set([cacheFile]))).toEqual([]);
    expect(filesContaining(s().dir, [subjectToken], new Set([subjectTokenFile]))).toEqual([]);
    for (const token of [firstToken, secondToken, subjectToken]) {
      expect(s().logText().includes(token)).toBe(false);
      expect(outputs.some((output) => output.stdout.includes(token) || output.stderr.includes(token))).toBe(false);
    }
    // With XDG_RUNTIME_DIR set nothing falls back to ~/.cache/airlock.
    expect(filesUnder(join(s().dir, ".cache", "airlock"))).toEqual([]);
  });

  it("exchanges a registered client's secret from the environment, and fails closed without it", async () => {
    const kubeconfig = await writeKubeconfig("client", ["--client-id", CLIENT_ID, "--client-secret-env", SECRET_ENV]);
    const text = readFileSync(kubeconfig, "utf8");
    expect(text).not.toContain(clientSecret);
    expect(text).toContain(SECRET_ENV);
    const getPods = (env: NodeJS.ProcessEnv): Promise<KubectlResult> =>
      s().kubectl(["get", "pods", "-n", ns, "-o", "name", "--request-timeout=30s"], { kubeconfig, env, timeoutMs: 60_000 });

    // Without the variable the plugin exchanges nothing and kubectl gets no credential: it fails.
    const missing = await getPods({ XDG_RUNTIME_DIR: runtimeDir });
    expect(missing.code, describeRun(missing)).not.toBe(0);
    expect(missing.stderr).toContain(`environment variable ${SECRET_ENV} is not set`);
    expect(issued(`client:${CLIENT_ID}`)).toHaveLength(0);

    const ok = await getPods({ XDG_RUNTIME_DIR: runtimeDir, [SECRET_ENV]: clientSecret });
    expect(ok.code, describeRun(ok)).toBe(0);
    expect(ok.stdout.trim()).toBe(`pod/${POD}`);
    const exchanges = issued(`client:${CLIENT_ID}`);
    expect(exchanges).toHaveLength(1);
    const rows = await waitForPodLists(CLIENT_SUBJECT, 1);
    expect(rows.map((row) => [row.session_id, row.effect, row.response_status])).toEqual([[exchanges[0]?.sessionId, "Allow", 200]]);
    for (const entry of cacheEntries()) expect(entry.mode, "cache file mode").toBe(0o600);
    expect(s().logText().includes(clientSecret)).toBe(false);
    expect(filesContaining(s().dir, [clientSecret], new Set())).toEqual([]);
  });
});
