/**
 * @module test/unit/authz/exchange/exchange-parts.test
 * Pure parts of the exchange: rate-limit buckets, key publication windows, config validation, secret hash format,
 * the kubeconfig document, the plugin's refresh margin and cache location.
 */
import { describe, expect, it } from "vitest";
import type { CryptoKey } from "jose";
import { createClientRateLimiter } from "../../../../authz/exchange/client-rate-limiter.js";
import { parseSecretHash } from "../../../../authz/exchange/client-secret.js";
import { refreshMarginMs } from "../../../../authz/exchange/credential-command.js";
import { credentialCacheDirectory, credentialCacheKey } from "../../../../authz/exchange/credential-cache.js";
import { parseTokenExchangeConfig, TokenExchangeConfigError } from "../../../../authz/exchange/exchange-config.js";
import { publishedKeys } from "../../../../authz/exchange/exchange-key-ring.js";
import type { ExchangeKey } from "../../../../authz/exchange/exchange-key-ring.js";
import { buildAgentKubeconfig } from "../../../../authz/exchange/kubeconfig-command.js";

const HASH = `scrypt$N=1024,r=8,p=1$${Buffer.alloc(16, 1).toString("base64url")}$${Buffer.alloc(32, 2).toString("base64url")}`;

describe("client rate limiter", () => {
  it("allows a burst, then refills at the configured rate, per key", () => {
    let now = 0;
    const limiter = createClientRateLimiter({ burst: 2, refillPerMinute: 60, maxTrackedClients: 100, now: () => now });
    expect(limiter.take("a")).toEqual({ ok: true });
    expect(limiter.take("a")).toEqual({ ok: true });
    expect(limiter.take("a")).toEqual({ ok: false, retryAfterSeconds: 1 });
    expect(limiter.take("b")).toEqual({ ok: true });
    now += 1000;
    expect(limiter.take("a")).toEqual({ ok: true });
    expect(limiter.take("a").ok).toBe(false);
  });

  it("does not refill when the clock steps back, and forgets the least recently used bucket", () => {
    let now = 10_000;
    const limiter = createClientRateLimiter({ burst: 1, refillPerMinute: 1, maxTrackedClients: 2, now: () => now });
    expect(limiter.take("a").ok).toBe(true);
    now = 0;
    expect(limiter.take("a")).toEqual({ ok: false, retryAfterSeconds: 60 });
    limiter.take("b");
    limiter.take("c");
    expect(limiter.take("a").ok).toBe(true);
  });
});

describe("publishedKeys", () => {
  const key = (kid: string, order: string, retiredAtMs?: number): ExchangeKey => ({
    kid,
    order,
    retiredAtMs,
    publicJwk: { kid },
    publicKey: {} as CryptoKey,
    privateKey: {} as CryptoKey,
  });
  const window = { maxTokenLifetimeSeconds: 900, clockSkewSeconds: 30 };

  it("always publishes the newest key first and retired keys for lifetime + skew", () => {
    const keys = [key("old", "1", 1_000_000), key("new", "2")];
    expect(publishedKeys(keys, 1_000_000, window).map((k) => k.kid)).toEqual(["new", "old"]);
    expect(publishedKeys(keys, 1_000_000 + 929_999, window).map((k) => k.kid)).toEqual(["new", "old"]);
    expect(publishedKeys(keys, 1_000_000 + 930_000, window).map((k) => k.kid)).toEqual(["new"]);
  });

  it("keeps the newest key even if it has a retirement time", () => {
    expect(publishedKeys([key("only", "1", 0)], 10 ** 12, window).map((k) => k.kid)).toEqual(["only"]);
  });
});

describe("tokenExchange configuration", () => {
  it("has safe defaults: disabled, 15-minute tokens, embedded keys", () => {
    const config = parseTokenExchangeConfig({});
    expect(config).toMatchObject({
      enabled: false,
      issuer: "https://airlock.invalid/exchange",
      audience: "airlock",
      maxTokenLifetimeSeconds: 900,
      keys: { source: "embedded", rotateAfterDays: 30 },
      rateLimit: { burst: 10, refillPerMinute: 30 },
      trustRules: [],
      clients: [],
    });
    expect(Object.isFrozen(config.keys)).toBe(true);
  });

  it("reports path-qualified problems", () => {
    const problems = (() => {
      try {
        parseTokenExchangeConfig({
          maxTokenLifetimeSeconds: 300,
          trustRules: [
            { id: "ci", oidc: { issuer: "https://ci.example", jwksUrl: "http://ci.example/jwks", audiences: ["a"], algorithms: ["none"] }, tokenLifetimeSeconds: 600 },
            { id: "ci", oidc: { issuer: "https://airlock.invalid/exchange", jwksUrl: "https://x.example/jwks", audiences: ["a"], algorithms: ["ES256"] } },
          ],
          clients: [{ clientId: "a", secretHash: "plaintext" }, { clientId: "a", secretHash: HASH, scope: { namespaces: [] } }],
          unknown: 1,
        });
      } catch (error) {
        if (error instanceof TokenExchangeConfigError) return error.problems.join("\n");
      }
      return "";
    })();
    expect(problems).toMatch(/tokenExchange\.trustRules\.0\.oidc\.jwksUrl: must use https/);
    expect(problems).toMatch(/tokenExchange\.trustRules\.0\.oidc\.algorithms\.0: "none" is never allowed/);
    expect(problems).toMatch(/tokenExchange: Unrecognized key: "unknown"|tokenExchange\.\(root\)/);
    expect(problems).toMatch(/tokenExchange\.clients\.0\.secretHash: must be a hash/);
    expect(problems).toMatch(/tokenExchange\.clients\.1\.scope\.namespaces/);
  });

  it("refuses duplicate ids, a self-trusting rule and rule lifetimes over the maximum", () => {
    const attempt = (): unknown =>
      parseTokenExchangeConfig({
        maxTokenLifetimeSeconds: 300,
        trustRules: [
          { id: "ci", oidc: { issuer: "https://ci.example", jwksUrl: "https://ci.example/jwks", audiences: ["a"], algorithms: ["ES256"] }, tokenLifetimeSeconds: 600 },
          { id: "ci", oidc: { issuer: "https://airlock.invalid/exchange", jwksUrl: "https://x.example/jwks", audiences: ["a"], algorithms: ["ES256"] } },
        ],
        clients: [{ clientId: "a", secretHash: HASH }, { clientId: "a", secretHash: HASH }],
      });
    expect(attempt).toThrow(/trustRules\.1\.id: trust rule id is used twice/);
    expect(attempt).toThrow(/trustRules\.1\.oidc\.issuer: a trust rule must not trust/);
    expect(attempt).toThrow(/trustRules\.0\.tokenLifetimeSeconds: must not exceed/);
    expect(attempt).toThrow(/clients\.1\.clientId: clientId is registered twice/);
  });
});

describe("secret hash format", () => {
  it("parses the documented format and refuses out-of-bounds parameters", () => {
    expect(parseSecretHash(HASH)).toMatchObject({ cost: 1024, blockSize: 8, parallelism: 1 });
    expect(parseSecretHash(HASH.replace("N=1024", "N=1000"))).toBeUndefined();
    expect(parseSecretHash(HASH.replace("N=1024", "N=1048576"))).toBeUndefined();
    expect(parseSecretHash(HASH.replace("p=1", "p=9"))).toBeUndefined();
    expect(parseSecretHash("bcrypt$...")).toBeUndefined();
  });
});

describe("credential plugin helpers", () => {
  it("refreshes 60 s before expiry, or at half-life for short tokens", () => {
    expect(refreshMarginMs({ accessToken: "t", issuedAtMs: 0, expiresAtMs: 900_000 }, 60)).toBe(60_000);
    expect(refreshMarginMs({ accessToken: "t", issuedAtMs: 0, expiresAtMs: 20_000 }, 60)).toBe(10_000);
  });

  it("caches on the runtime tmpfs when there is one, else in ~/.cache", () => {
    expect(credentialCacheDirectory({ XDG_RUNTIME_DIR: "/run/user/1000", HOME: "/home/a" })).toBe("/run/user/1000/airlock");
    expect(credentialCacheDirectory({ HOME: "/home/a" })).toBe("/home/a/.cache/airlock");
    expect(credentialCacheDirectory({ HOME: "/home/a" }, "/x")).toBe("/x");
    expect(credentialCacheKey(["https://a", "client:x"])).not.toBe(credentialCacheKey(["https://a", "client:y"]));
    expect(credentialCacheKey(["a", "b"])).toMatch(/^[0-9a-f]{64}$/);
  });

  it("builds a kubeconfig whose user is the exec plugin", () => {
    const document = buildAgentKubeconfig({
      name: "airlock",
      sidecarUrl: "https://127.0.0.1:16444",
      certificateAuthorityPem: "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
      tlsServerName: "sidecar.local",
      command: "airlock",
      commandArgs: [],
      credentialArgs: ["--server", "https://airlock", "--subject-token-file", "/var/run/token"],
    });
    expect(document).toMatchObject({
      clusters: [{ cluster: { server: "https://127.0.0.1:16444", "certificate-authority-data": expect.stringMatching(/^LS0t/) as string, "tls-server-name": "sidecar.local" } }],
      users: [{ user: { exec: { command: "airlock", args: ["credential", "--server", "https://airlock", "--subject-token-file", "/var/run/token"], interactiveMode: "Never", provideClusterInfo: false } } }],
    });
    expect(JSON.stringify(document)).not.toMatch(/token"\s*:/);
  });
});
