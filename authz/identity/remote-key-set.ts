/**
 * @module authz/identity/remote-key-set
 * An issuer's published JWKS (direct URL or via OIDC discovery), cached with rotation and no network per request.
 */
import { createLocalJWKSet, errors } from "jose";
import type { JSONWebKeySet, JWK } from "jose";
import { keyUrlProblem, PRIVATE_JWK_MEMBERS } from "./identity-config.js";
import { KeysUnavailableError } from "./key-source.js";
import type { KeyResolver, KeySource } from "./key-source.js";

/** Discovery documents and key sets are small; anything bigger is refused rather than buffered. */
const MAX_DOCUMENT_BYTES = 1024 * 1024;

/** Options of {@link createRemoteKeySource}. */
export interface RemoteKeySourceOptions {
  /** The configured issuer; a discovery document must name exactly this issuer (OIDC Discovery §4.3). */
  readonly issuer: string;
  readonly location: { readonly jwksUrl: string } | { readonly discoveryUrl: string };
  readonly cacheMaxAgeMs: number;
  readonly cooldownMs: number;
  readonly timeoutMs: number;
  /** Clock in epoch milliseconds (injectable so tests can age the cache without sleeping). */
  readonly now: () => number;
}

/** URL for messages: origin and path only, so a query string never lands in a log. */
function describe(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

async function readLimited(response: Response, url: URL): Promise<string> {
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > MAX_DOCUMENT_BYTES) {
    await response.body?.cancel();
    throw new KeysUnavailableError(`${describe(url)} answered more than ${MAX_DOCUMENT_BYTES} bytes`);
  }
  if (response.body === null) return "";
  const reader: ReadableStreamDefaultReader<Uint8Array> = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > MAX_DOCUMENT_BYTES) {
      await reader.cancel();
      throw new KeysUnavailableError(`${describe(url)} answered more than ${MAX_DOCUMENT_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

async function fetchJson(url: URL, timeoutMs: number, accept: string): Promise<unknown> {
  let text: string;
  try {
    // redirect "error": a key endpoint that redirects is treated as broken, never followed to another host.
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: "error", headers: { accept } });
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new KeysUnavailableError(`${describe(url)} answered HTTP ${response.status}`);
    }
    text = await readLimited(response, url);
  } catch (cause) {
    if (cause instanceof KeysUnavailableError) throw cause;
    const reason = cause instanceof Error && cause.name === "TimeoutError" ? "timed out" : "is unreachable";
    throw new KeysUnavailableError(`${describe(url)} ${reason}`, { cause });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new KeysUnavailableError(`${describe(url)} did not answer JSON`, { cause });
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Keeps only public signature keys. Symmetric or private members in a published set are an issuer mistake; those
 * entries are dropped rather than imported, so they can never verify anything.
 */
function publicKeySet(document: unknown, url: URL): JSONWebKeySet {
  if (!isRecord(document) || !Array.isArray(document.keys)) {
    throw new KeysUnavailableError(`${describe(url)} did not answer a JSON Web Key Set`);
  }
  const keys = document.keys.filter(
    (key): key is JWK =>
      isRecord(key) &&
      typeof key.kty === "string" &&
      key.kty !== "oct" &&
      PRIVATE_JWK_MEMBERS.every((member) => !(member in key)),
  );
  if (keys.length === 0) throw new KeysUnavailableError(`${describe(url)} holds no usable public keys`);
  return { keys };
}

async function discoverJwksUrl(discoveryUrl: URL, issuer: string, timeoutMs: number): Promise<URL> {
  const document = await fetchJson(discoveryUrl, timeoutMs, "application/json");
  if (!isRecord(document)) throw new KeysUnavailableError(`${describe(discoveryUrl)} is not a discovery document`);
  if (document.issuer !== issuer) {
    throw new KeysUnavailableError(`${describe(discoveryUrl)} names a different issuer than the one configured`);
  }
  const jwksUri = document.jwks_uri;
  if (typeof jwksUri !== "string") throw new KeysUnavailableError(`${describe(discoveryUrl)} has no jwks_uri`);
  const problem = keyUrlProblem(jwksUri);
  if (problem !== undefined) throw new KeysUnavailableError(`jwks_uri from ${describe(discoveryUrl)} ${problem}`);
  return new URL(jwksUri);
}

interface CachedKeys {
  readonly resolve: ReturnType<typeof createLocalJWKSet>;
  readonly fetchedAtMs: number;
}

/**
 * Creates the key source of one remote issuer.
 *
 * Cache rules, all per issuer:
 * - younger than half of `cacheMaxAgeMs`: keys are served from memory, no network at all;
 * - between half and full age: served from memory while one background refresh replaces them;
 * - older than `cacheMaxAgeMs` (or never fetched): the request waits for a fetch, and denies if it fails;
 * - a token whose `kid` is unknown triggers one refetch, unless a fetch was attempted within `cooldownMs`
 *   (so a stream of forged `kid`s cannot turn into a stream of fetches);
 * - failed attempts also start the cooldown, so an outage is probed at most once per cooldown.
 * Concurrent callers share one in-flight fetch.
 */
export function createRemoteKeySource(options: RemoteKeySourceOptions): KeySource {
  const { issuer, cacheMaxAgeMs, cooldownMs, timeoutMs, now } = options;
  const discoveryUrl = "discoveryUrl" in options.location ? new URL(options.location.discoveryUrl) : undefined;
  let jwksUrl = "jwksUrl" in options.location ? new URL(options.location.jwksUrl) : undefined;
  let cached: CachedKeys | undefined;
  let pending: Promise<CachedKeys> | undefined;
  let lastAttemptAtMs = Number.NEGATIVE_INFINITY;
  let lastFailure: KeysUnavailableError | undefined;

  async function fetchKeys(): Promise<CachedKeys> {
    // Discovery runs until it succeeds once; jwks_uri is then fixed for the life of the process.
    if (jwksUrl === undefined) {
      if (discoveryUrl === undefined) throw new KeysUnavailableError(`issuer ${issuer} has no key location`);
      jwksUrl = await discoverJwksUrl(discoveryUrl, issuer, timeoutMs);
    }
    const keySet = publicKeySet(await fetchJson(jwksUrl, timeoutMs, "application/jwk-set+json, application/json"), jwksUrl);
    let resolve: ReturnType<typeof createLocalJWKSet>;
    try {
      resolve = createLocalJWKSet(keySet);
    } catch (cause) {
      throw new KeysUnavailableError(`${describe(jwksUrl)} holds a malformed JSON Web Key Set`, { cause });
    }
    return { resolve, fetchedAtMs: now() };
  }

  function refresh(): Promise<CachedKeys> {
    if (pending !== undefined) return pending;
    lastAttemptAtMs = now();
    const attempt: Promise<CachedKeys> = fetchKeys()
      .then(
        (fresh) => {
          cached = fresh;
          lastFailure = undefined;
          return fresh;
        },
        (error: unknown) => {
          lastFailure =
            error instanceof KeysUnavailableError
              ? error
              : new KeysUnavailableError(`keys of issuer ${issuer} could not be loaded`, { cause: error });
          throw lastFailure;
        },
      )
      .finally(() => {
        // Runs after the assignment below: promise callbacks are always asynchronous.
        if (pending === attempt) pending = undefined;
      });
    pending = attempt;
    return attempt;
  }

  function coolingDown(): boolean {
    return now() - lastAttemptAtMs < cooldownMs;
  }

  async function usableKeys(): Promise<CachedKeys> {
    const current = cached;
    if (current !== undefined) {
      const age = now() - current.fetchedAtMs;
      if (age < cacheMaxAgeMs) {
        if (age >= cacheMaxAgeMs / 2 && pending === undefined && !coolingDown()) {
          // Refresh ahead of expiry off the request path; a failure is remembered and retried after cooldown.
          refresh().catch(() => undefined);
        }
        return current;
      }
    }
    if (pending === undefined && coolingDown()) {
      throw lastFailure ?? new KeysUnavailableError(`keys of issuer ${issuer} are not available yet`);
    }
    return refresh();
  }

  const getKey: KeyResolver = async (header, token) => {
    const current = await usableKeys();
    try {
      return await current.resolve(header, token);
    } catch (error) {
      // Key rotation: a kid we have not seen may have been published since the last fetch.
      if (error instanceof errors.JWKSNoMatchingKey && (pending !== undefined || !coolingDown())) {
        const fresh = await refresh();
        return fresh.resolve(header, token);
      }
      throw error;
    }
  };

  return {
    getKey,
    async warm() {
      await refresh();
    },
  };
}
