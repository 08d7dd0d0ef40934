/**
 * @module authz/exchange/credential-command
 * `airlock credential`: the kubectl exec credential plugin. Exchanges a subject token (a projected/CI OIDC token
 * file, or a client secret from the environment) for a short-lived Airlock token, caches it privately, and prints
 * a client.authentication.k8s.io ExecCredential.
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { keyUrlProblem } from "../identity/identity-config.js";
import { writeCommandLine, writeUsageProblem } from "./command-streams.js";
import type { CommandStreams } from "./command-streams.js";
import { CREDENTIAL_SOURCE_OPTIONS, credentialSourceFromOptions } from "./credential-source.js";
import { credentialCacheDirectory, credentialCacheKey, readCachedCredential, writeCachedCredential } from "./credential-cache.js";
import type { CachedCredential } from "./credential-cache.js";
import { TOKEN_ENDPOINT_PATH } from "./token-exchange-routes.js";
import { CLIENT_SECRET_TOKEN_TYPE, JWT_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT_TYPE } from "./token-exchange.js";

export const CREDENTIAL_USAGE = `usage: airlock credential --server URL (--subject-token-file FILE | --client-id ID --client-secret-env VAR)
                         [--scope "namespace:NS read-only"] [--refresh-before-seconds 60] [--cache-dir DIR] [--no-cache]
                         [--insecure-http]
  Prints a kubectl ExecCredential holding a short-lived Airlock token (exchanged at URL${TOKEN_ENDPOINT_PATH}).`;

/** The ExecCredential API versions kubectl may ask for; v1 when KUBERNETES_EXEC_INFO is absent. */
const EXEC_API_VERSIONS = ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"] as const;
const EXCHANGE_TIMEOUT_MS = 15_000;
const MAX_RESPONSE_BYTES = 64 * 1024;

/** Test hooks of {@link runCredentialCommand}. */
export interface CredentialCommandOptions {
  readonly now?: () => number;
}

/** Seconds-precision RFC 3339, as metav1.Time writes it. */
function rfc3339(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function execApiVersion(env: Readonly<Record<string, string | undefined>>): string | Error {
  const info = env.KUBERNETES_EXEC_INFO;
  if (info === undefined || info === "") return EXEC_API_VERSIONS[0];
  let parsed: unknown;
  try {
    parsed = JSON.parse(info);
  } catch {
    return new Error("KUBERNETES_EXEC_INFO is not valid JSON");
  }
  const version = typeof parsed === "object" && parsed !== null ? (parsed as Record<string, unknown>).apiVersion : undefined;
  if (typeof version === "string" && (EXEC_API_VERSIONS as readonly string[]).includes(version)) return version;
  return new Error(`KUBERNETES_EXEC_INFO asks for an unsupported apiVersion; supported: ${EXEC_API_VERSIONS.join(", ")}`);
}

/**
 * The margin before expiry at which the cached token is replaced (and which kubectl is told as the expiry, so it
 * calls again in time): the configured seconds, but never more than half the token's lifetime.
 */
export function refreshMarginMs(credential: CachedCredential, refreshBeforeSeconds: number): number {
  return Math.min(refreshBeforeSeconds * 1000, Math.floor((credential.expiresAtMs - credential.issuedAtMs) / 2));
}

async function exchange(
  server: string,
  parameters: Record<string, string>,
  nowMs: number,
): Promise<CachedCredential> {
  const endpoint = `${server.replace(/\/+$/, "")}${TOKEN_ENDPOINT_PATH}`;
  let response: Response;
  try {
    response = await fetch(endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: new URLSearchParams(parameters).toString(),
      redirect: "error",
      signal: AbortSignal.timeout(EXCHANGE_TIMEOUT_MS),
    });
  } catch (error) {
    const reason = error instanceof Error && error.name === "TimeoutError" ? "timed out" : "could not connect";
    throw new Error(`token exchange at ${endpoint} ${reason}`);
  }
  const text = await response.text();
  if (text.length > MAX_RESPONSE_BYTES) throw new Error(`token exchange at ${endpoint} answered an oversized body`);
  let body: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === "object" && parsed !== null) body = parsed as Record<string, unknown>;
  } catch {
    // handled below by the missing fields
  }
  if (response.status !== 200) {
    const error = typeof body.error === "string" ? body.error.slice(0, 64) : `HTTP ${response.status}`;
    const description = typeof body.error_description === "string" ? `: ${body.error_description.slice(0, 500)}` : "";
    const retry = response.headers.get("retry-after");
    throw new Error(`token exchange refused (${error})${description}${retry === null ? "" : ` [retry after ${retry.slice(0, 10)} s]`}`);
  }
  const token = body.access_token;
  const expiresIn = body.expires_in;
  if (typeof token !== "string" || token === "" || typeof expiresIn !== "number" || !(expiresIn > 0)) {
    throw new Error(`token exchange at ${endpoint} answered without access_token/expires_in`);
  }
  return { accessToken: token, issuedAtMs: nowMs, expiresAtMs: nowMs + expiresIn * 1000 };
}

/**
 * Runs the plugin. kubectl calls it whenever it has no unexpired credential; the printed `expirationTimestamp` is
 * the token's expiry minus the refresh margin, so kubectl asks again before the token really lapses. Errors go to
 * stderr (kubectl shows them) and never contain the token or the secret. Exit codes: 0 ok, 1 failure, 2 usage.
 */
export async function runCredentialCommand(
  argv: readonly string[],
  io: CommandStreams,
  env: Readonly<Record<string, string | undefined>>,
  options: CredentialCommandOptions = {},
): Promise<number> {
  const now = options.now ?? Date.now;
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        server: { type: "string" },
        ...CREDENTIAL_SOURCE_OPTIONS,
        scope: { type: "string" },
        "refresh-before-seconds": { type: "string", default: "60" },
        "cache-dir": { type: "string" },
        "no-cache": { type: "boolean", default: false },
        "insecure-http": { type: "boolean", default: false },
      },
      strict: true,
    }));
  } catch (error) {
    return writeUsageProblem(io.stderr, (error as Error).message, CREDENTIAL_USAGE);
  }
  const usage = (problem: string): number => writeUsageProblem(io.stderr, `airlock credential: ${problem}`, CREDENTIAL_USAGE);
  const server = values.server;
  if (server === undefined) return usage("--server is required");
  const urlProblem = keyUrlProblem(server);
  if (urlProblem !== undefined && !(values["insecure-http"] && urlProblem.startsWith("must use https") && server.startsWith("http://"))) {
    return usage(`--server ${urlProblem}${urlProblem.startsWith("must use https") ? " (or pass --insecure-http)" : ""}`);
  }
  const source = credentialSourceFromOptions(values);
  if ("problem" in source) return usage(source.problem);
  if (source.kind === "subjectTokenFile" && values["client-secret-env"] !== undefined) {
    return usage("--client-secret-env goes with --client-id");
  }
  const refreshBeforeSeconds = Number(values["refresh-before-seconds"]);
  if (!Number.isSafeInteger(refreshBeforeSeconds) || refreshBeforeSeconds < 0 || refreshBeforeSeconds > 3600) {
    return usage("--refresh-before-seconds must be a whole number from 0 to 3600");
  }
  const apiVersion = execApiVersion(env);
  if (apiVersion instanceof Error) {
    writeCommandLine(io.stderr, `airlock credential: ${apiVersion.message}`);
    return 1;
  }

  const cacheDirectory = credentialCacheDirectory(env, values["cache-dir"]);
  const cacheKey = credentialCacheKey([
    server,
    source.kind === "clientSecret" ? `client:${source.clientId}` : `file:${source.tokenFile}`,
    values.scope ?? "",
  ]);
  const useCache = !values["no-cache"];
  try {
    let credential = useCache ? await readCachedCredential(cacheDirectory, cacheKey) : undefined;
    if (credential !== undefined && credential.expiresAtMs - now() <= refreshMarginMs(credential, refreshBeforeSeconds)) {
      credential = undefined;
    }
    if (credential === undefined) {
      const parameters: Record<string, string> = {
        grant_type: TOKEN_EXCHANGE_GRANT_TYPE,
        requested_token_type: JWT_TOKEN_TYPE,
      };
      if (source.kind === "subjectTokenFile") {
        // Re-read every time: projected and CI tokens are rotated in place.
        let subjectToken: string;
        try {
          subjectToken = (await readFile(source.tokenFile, "utf8")).trim();
        } catch (error) {
          throw new Error(`cannot read --subject-token-file ${source.tokenFile}: ${(error as NodeJS.ErrnoException).code ?? "error"}`);
        }
        if (subjectToken === "") throw new Error(`--subject-token-file ${source.tokenFile} is empty`);
        parameters.subject_token = subjectToken;
        parameters.subject_token_type = JWT_TOKEN_TYPE;
      } else {
        const secret = env[source.secretEnv];
        if (secret === undefined || secret === "") throw new Error(`environment variable ${source.secretEnv} is not set`);
        parameters.subject_token = secret;
        parameters.subject_token_type = CLIENT_SECRET_TOKEN_TYPE;
        parameters.client_id = source.clientId;
      }
      if (values.scope !== undefined) parameters.scope = values.scope;
      credential = await exchange(server, parameters, now());
      if (useCache) {
        try {
          await writeCachedCredential(cacheDirectory, cacheKey, credential);
        } catch (error) {
          // No cache is slower, not wrong: every kubectl call exchanges again.
          writeCommandLine(io.stderr, `airlock credential: not caching the token: ${(error as Error).message}`);
        }
      }
    }
    const expiresAt = credential.expiresAtMs - refreshMarginMs(credential, refreshBeforeSeconds);
    io.stdout.write(
      `${JSON.stringify({
        apiVersion,
        kind: "ExecCredential",
        status: { token: credential.accessToken, expirationTimestamp: rfc3339(expiresAt) },
      })}\n`,
    );
    return 0;
  } catch (error) {
    writeCommandLine(io.stderr, `airlock credential: ${error instanceof Error ? error.message : "failed"}`);
    return 1;
  }
}
