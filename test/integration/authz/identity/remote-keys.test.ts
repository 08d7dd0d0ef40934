/**
 * @module test/integration/authz/identity/remote-keys.test
 * Token verification against a real HTTP issuer: discovery, JWKS caching, key rotation, cooldown, outages.
 */
import type { JWTPayload } from "jose";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { parseIdentityConfig } from "../../../../authz/identity/identity-config.js";
import { createTokenVerifier } from "../../../../authz/identity/token-verifier.js";
import type { TokenVerifier, VerifyTokenResult } from "../../../../authz/identity/token-verifier.js";
import { createTestKey, signToken } from "../../../unit/authz/identity/test-keys.js";
import type { TestKey } from "../../../unit/authz/identity/test-keys.js";
import { startIssuerServer } from "./issuer-server.js";
import type { IssuerServer } from "./issuer-server.js";

const CACHE_MAX_AGE_MS = 600_000;
const COOLDOWN_MS = 30_000;

let keyA: TestKey;
let keyB: TestKey;
const servers: IssuerServer[] = [];

/** The verifier's clock; tests move it instead of sleeping. */
let clockMs = 0;

beforeAll(async () => {
  [keyA, keyB] = await Promise.all([createTestKey("ES256", "key-a"), createTestKey("RS256", "key-b")]);
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function issuerServer(): Promise<IssuerServer> {
  const server = await startIssuerServer();
  servers.push(server);
  server.keys = [keyA.publicJwk];
  return server;
}

function verifierFor(
  server: IssuerServer,
  source: "jwksUrl" | "discoveryUrl",
  settings: Record<string, unknown> = {},
): TokenVerifier {
  clockMs = Date.now();
  const config = parseIdentityConfig({
    issuers: [
      {
        issuer: server.origin,
        [source]: source === "jwksUrl" ? server.jwksUrl : server.discoveryUrl,
        audiences: ["airlock"],
        algorithms: ["ES256", "RS256"],
      },
    ],
    jwksCacheMaxAgeMs: CACHE_MAX_AGE_MS,
    jwksCooldownMs: COOLDOWN_MS,
    ...settings,
  });
  return createTokenVerifier(config, { now: () => clockMs });
}

function tokenFor(server: IssuerServer, key: TestKey, overrides: JWTPayload = {}): Promise<string> {
  const nowSeconds = Math.floor(Date.now() / 1000);
  return signToken(key, {
    iss: server.origin,
    aud: "airlock",
    sub: "agent",
    sid: "session",
    iat: nowSeconds,
    exp: nowSeconds + 1800,
    ...overrides,
  });
}

function outcome(result: VerifyTokenResult): string {
  return result.ok ? "ok" : result.code;
}

describe("remote issuer keys", () => {
  it("finds the JWKS through OIDC discovery at warm-up", async () => {
    const server = await issuerServer();
    const verifier = verifierFor(server, "discoveryUrl");
    expect(await verifier.warm()).toEqual([]);
    expect(server.requestCount("/.well-known/openid-configuration")).toBe(1);
    expect(server.requestCount("/jwks")).toBe(1);
    const result = await verifier.verify(await tokenFor(server, keyA));
    expect(result.ok && result.identity.issuer).toBe(server.origin);
  });

  it("makes no HTTP request per verification in the steady state", async () => {
    const server = await issuerServer();
    server.keys = [keyA.publicJwk, keyB.publicJwk];
    const verifier = verifierFor(server, "discoveryUrl");
    await verifier.warm();
    const before = server.requestCount();
    const tokens = await Promise.all([tokenFor(server, keyA), tokenFor(server, keyB)]);
    for (let round = 0; round < 100; round += 1) {
      clockMs += 1_000; // 100 s of traffic, well inside the refresh-ahead window
      expect(outcome(await verifier.verify(tokens[round % 2]!))).toBe("ok");
    }
    expect(server.requestCount()).toBe(before);
  });

  it("shares one fetch among concurrent first requests when not warmed", async () => {
    const server = await issuerServer();
    const verifier = verifierFor(server, "jwksUrl");
    const token = await tokenFor(server, keyA);
    const results = await Promise.all(Array.from({ length: 20 }, () => verifier.verify(token)));
    expect(results.map(outcome)).toEqual(Array.from({ length: 20 }, () => "ok"));
    expect(server.requestCount("/jwks")).toBe(1);
  });

  it("follows key rotation: a new kid verifies after one refetch, the old kid while still served", async () => {
    const server = await issuerServer();
    const verifier = verifierFor(server, "jwksUrl");
    await verifier.warm();
    const tokenA = await tokenFor(server, keyA);
    const tokenB = await tokenFor(server, keyB);
    expect(outcome(await verifier.verify(tokenA))).toBe("ok");

    // The issuer publishes B next to A (rotation in progress).
    server.keys = [keyA.publicJwk, keyB.publicJwk];
    clockMs += COOLDOWN_MS;
    expect(outcome(await verifier.verify(tokenB))).toBe("ok");
    expect(server.requestCount("/jwks")).toBe(2);
    expect(outcome(await verifier.verify(tokenA))).toBe("ok");
    expect(outcome(await verifier.verify(tokenB))).toBe("ok");
    expect(server.requestCount("/jwks")).toBe(2);

    // A is retired; once the cache has aged out, the refetched set no longer verifies A.
    server.keys = [keyB.publicJwk];
    clockMs += CACHE_MAX_AGE_MS;
    expect(outcome(await verifier.verify(tokenB))).toBe("ok");
    expect(server.requestCount("/jwks")).toBe(3);
    expect(outcome(await verifier.verify(tokenA))).toBe("TOKEN_KEY_UNKNOWN");
    expect(server.requestCount("/jwks")).toBe(3);
  });

  it("limits refetches for unknown kids to one per cooldown", async () => {
    const server = await issuerServer();
    const verifier = verifierFor(server, "jwksUrl");
    await verifier.warm();
    for (let attempt = 0; attempt < 25; attempt += 1) {
      const forged = await signToken(keyA, { iss: server.origin, aud: "airlock", sub: "x", sid: "s", iat: 1, exp: 2 }, { kid: `forged-${attempt}` });
      expect(outcome(await verifier.verify(forged))).toBe("TOKEN_KEY_UNKNOWN");
    }
    expect(server.requestCount("/jwks")).toBe(1);
    clockMs += COOLDOWN_MS;
    const forged = await signToken(keyA, { iss: server.origin, aud: "airlock", sub: "x", sid: "s", iat: 1, exp: 2 }, { kid: "forged-late" });
    expect(outcome(await verifier.verify(forged))).toBe("TOKEN_KEY_UNKNOWN");
    expect(server.requestCount("/jwks")).toBe(2);
  });

  it("refreshes ahead of expiry in the background without failing requests", async () => {
    const server = await issuerServer();
    const verifier = verifierFor(server, "jwksUrl");
    await verifier.warm();
    const token = await tokenFor(server, keyA);
    clockMs += CACHE_MAX_AGE_MS * 0.6;
    expect(outcome(await verifier.verify(token))).toBe("ok");
    await vi.waitFor(() => {
      expect(server.requestCount("/jwks")).toBe(2);
    }, { timeout: 10_000 });
    // The server counts the request before the verifier has stored the answer; let the refresh land before the
    // clock moves on, or the refreshed keys would look brand new at the next step.
    await new Promise((resolve) => setTimeout(resolve, 250));
    // A failed background refresh leaves the (still valid) cached keys in use.
    server.jwksMode = "error-503";
    clockMs += CACHE_MAX_AGE_MS * 0.6;
    expect(outcome(await verifier.verify(token))).toBe("ok");
    await vi.waitFor(() => {
      expect(server.requestCount("/jwks")).toBe(3);
    }, { timeout: 10_000 });
    expect(outcome(await verifier.verify(token))).toBe("ok");
  });

  it("denies once cached keys are older than the maximum age and cannot be refreshed", async () => {
    const server = await issuerServer();
    const verifier = verifierFor(server, "jwksUrl");
    await verifier.warm();
    const token = await tokenFor(server, keyA);
    server.jwksMode = "error-503";
    clockMs += CACHE_MAX_AGE_MS;
    const result = await verifier.verify(token);
    expect(outcome(result)).toBe("KEYS_UNAVAILABLE");
    expect(result.ok ? "" : result.message).toContain("HTTP 503");
  });
});

describe("remote issuer outages (fail closed, never crash)", () => {
  it("denies with KEYS_UNAVAILABLE when the JWKS server is down at start", async () => {
    const server = await issuerServer();
    const token = await tokenFor(server, keyA);
    const verifier = verifierFor(server, "jwksUrl");
    await server.close();
    const failures = await verifier.warm();
    expect(failures).toEqual([{ issuer: server.origin, message: expect.stringContaining("unreachable") as unknown }]);
    const result = await verifier.verify(token);
    expect(outcome(result)).toBe("KEYS_UNAVAILABLE");
    expect(result.ok ? "" : result.message).not.toContain(token.split(".")[1]);
    clockMs += COOLDOWN_MS;
    expect(outcome(await verifier.verify(token))).toBe("KEYS_UNAVAILABLE");
  });

  it("recovers after the cooldown once the JWKS server answers again", async () => {
    const server = await issuerServer();
    server.jwksMode = "error-503";
    const verifier = verifierFor(server, "discoveryUrl");
    expect(await verifier.warm()).toHaveLength(1);
    const token = await tokenFor(server, keyA);
    server.jwksMode = "ok";
    // Inside the cooldown the outage is not re-probed: deny without a request.
    expect(outcome(await verifier.verify(token))).toBe("KEYS_UNAVAILABLE");
    expect(server.requestCount("/jwks")).toBe(1);
    clockMs += COOLDOWN_MS;
    expect(outcome(await verifier.verify(token))).toBe("ok");
    expect(server.requestCount("/jwks")).toBe(2);
    // Discovery succeeded the first time and is not repeated.
    expect(server.requestCount("/.well-known/openid-configuration")).toBe(1);
  });

  it("times out a JWKS server that never answers", async () => {
    const server = await issuerServer();
    server.jwksMode = "hang";
    const verifier = verifierFor(server, "jwksUrl", { jwksTimeoutMs: 200 });
    const failures = await verifier.warm();
    expect(failures[0]?.message).toContain("timed out");
    expect(outcome(await verifier.verify(await tokenFor(server, keyA)))).toBe("KEYS_UNAVAILABLE");
  });

  it.each([
    ["a redirect (never followed)", "redirect"],
    ["a non-JSON body", "not-json"],
    ["a set without usable public keys", "no-keys"],
    ["a body over the size limit", "oversized"],
  ] as const)("treats %s as KEYS_UNAVAILABLE", async (_case, mode) => {
    const server = await issuerServer();
    server.jwksMode = mode;
    const verifier = verifierFor(server, "jwksUrl");
    expect(await verifier.warm()).toHaveLength(1);
    expect(outcome(await verifier.verify(await tokenFor(server, keyA)))).toBe("KEYS_UNAVAILABLE");
    expect(server.requests.has("/jwks-elsewhere")).toBe(false);
  });

  it("rejects a discovery document naming another issuer or an insecure jwks_uri", async () => {
    const server = await issuerServer();
    server.discovery = { issuer: "https://someone-else.example" };
    const verifier = verifierFor(server, "discoveryUrl");
    expect((await verifier.warm())[0]?.message).toContain("different issuer");
    expect(outcome(await verifier.verify(await tokenFor(server, keyA)))).toBe("KEYS_UNAVAILABLE");

    const second = await issuerServer();
    second.discovery = { jwks_uri: "http://keys.example/jwks" };
    const insecure = verifierFor(second, "discoveryUrl");
    expect((await insecure.warm())[0]?.message).toContain("must use https");
    expect(second.requestCount("/jwks")).toBe(0);
  });

  it("keeps serving other issuers when one issuer's keys are unavailable", async () => {
    const healthy = await issuerServer();
    const broken = await issuerServer();
    broken.jwksMode = "error-503";
    clockMs = Date.now();
    const config = parseIdentityConfig({
      issuers: [healthy, broken].map((server) => ({
        issuer: server.origin,
        jwksUrl: server.jwksUrl,
        audiences: ["airlock"],
        algorithms: ["ES256"],
      })),
    });
    const verifier = createTokenVerifier(config, { now: () => clockMs });
    expect((await verifier.warm()).map((failure) => failure.issuer)).toEqual([broken.origin]);
    expect(outcome(await verifier.verify(await tokenFor(healthy, keyA)))).toBe("ok");
    expect(outcome(await verifier.verify(await tokenFor(broken, keyA)))).toBe("KEYS_UNAVAILABLE");
  });
});
