/**
 * @module test/unit/authz/identity/token-verifier.test
 * Agent token verification: every denial code, clock skew, lifetime cap, algorithms, claim mapping (no network).
 */
import { generateKeyPairSync, createSign } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JWK, JWTPayload } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { parseIdentityConfig } from "../../../../authz/identity/identity-config.js";
import {
  bearerTokenFromHeader,
  createTokenVerifier,
  MAX_TOKEN_LENGTH,
} from "../../../../authz/identity/token-verifier.js";
import type {
  IdentityErrorCode,
  TokenVerifier,
  VerifyTokenResult,
} from "../../../../authz/identity/token-verifier.js";
import { createTestKey, signHmacToken, signToken, unsecuredToken } from "./test-keys.js";
import type { TestKey } from "./test-keys.js";

const ISSUER = "https://issuer.test";
const OTHER_ISSUER = "https://other-issuer.test";
const NOW_SECONDS = 1_800_000_000;
const SKEW = 30;

/** Type-level exhaustiveness: adding a code without covering it here fails to compile. */
const ALL_CODES: Record<IdentityErrorCode, true> = {
  TOKEN_MISSING: true,
  TOKEN_MALFORMED: true,
  TOKEN_EXPIRED: true,
  TOKEN_NOT_YET_VALID: true,
  TOKEN_LIFETIME_TOO_LONG: true,
  TOKEN_SIGNATURE_INVALID: true,
  TOKEN_KEY_UNKNOWN: true,
  TOKEN_ISSUER_UNKNOWN: true,
  TOKEN_AUDIENCE_INVALID: true,
  TOKEN_ALGORITHM_NOT_ALLOWED: true,
  TOKEN_CLAIM_INVALID: true,
  KEYS_UNAVAILABLE: true,
};
const observedCodes = new Set<IdentityErrorCode>();
const presentedTokens: string[] = [];

let es256: TestKey;
let rs256: TestKey;
let ps256: TestKey;
let eddsa: TestKey;
let impostor: TestKey;
let tempDir: string;

beforeAll(async () => {
  [es256, rs256, ps256, eddsa] = await Promise.all([
    createTestKey("ES256"),
    createTestKey("RS256"),
    createTestKey("PS256"),
    createTestKey("EdDSA"),
  ]);
  // Same kid as es256, different key: a forgery attempt.
  impostor = await createTestKey("ES256", es256.kid);
  tempDir = await mkdtemp(join(tmpdir(), "airlock-identity-"));
});

afterAll(async () => {
  await rm(tempDir, { recursive: true, force: true });
  // Every code of the closed set was produced by some test below, and no denial echoed a token.
  expect([...observedCodes].sort()).toEqual(Object.keys(ALL_CODES).sort());
});

afterEach(() => {
  vi.useRealTimers();
});

function claims(overrides: JWTPayload = {}): JWTPayload {
  return {
    iss: ISSUER,
    aud: "airlock",
    sub: "agent-7",
    groups: ["agents", "ci"],
    sid: "session-1",
    jti: "token-1",
    iat: NOW_SECONDS - 60,
    nbf: NOW_SECONDS - 60,
    exp: NOW_SECONDS + 600,
    ...overrides,
  };
}

/** claims() minus the named members. */
function claimsWithout(...names: string[]): JWTPayload {
  const result = claims();
  for (const name of names) Reflect.deleteProperty(result, name);
  return result;
}

function keySet(...keys: TestKey[]): { keys: JWK[] } {
  return { keys: keys.map((key) => key.publicJwk) };
}

interface VerifierSetup {
  readonly issuer?: Record<string, unknown>;
  readonly top?: Record<string, unknown>;
  readonly nowSeconds?: number;
}

function verifierWith(setup: VerifierSetup = {}): TokenVerifier {
  const config = parseIdentityConfig({
    issuers: [
      {
        issuer: ISSUER,
        localJwks: keySet(es256, rs256, ps256, eddsa),
        audiences: ["airlock"],
        algorithms: ["ES256", "RS256", "PS256", "EdDSA"],
        ...setup.issuer,
      },
    ],
    clockSkewSeconds: SKEW,
    ...setup.top,
  });
  const nowSeconds = setup.nowSeconds ?? NOW_SECONDS;
  return createTokenVerifier(config, { now: () => nowSeconds * 1000 });
}

async function verify(verifier: TokenVerifier, token: string): Promise<VerifyTokenResult> {
  presentedTokens.push(token);
  const result = await verifier.verify(token);
  if (!result.ok) {
    observedCodes.add(result.code);
    // Messages go to logs: never the token, nor any part of it that carries data.
    for (const part of token.split(".").filter((segment) => segment.length > 8)) {
      expect(result.message).not.toContain(part);
    }
  }
  return result;
}

async function expectDenied(verifier: TokenVerifier, token: string, code: IdentityErrorCode): Promise<string> {
  const result = await verify(verifier, token);
  expect(result.ok ? "accepted" : result.code).toBe(code);
  return result.ok ? "" : result.message;
}

async function expectAccepted(verifier: TokenVerifier, token: string) {
  const result = await verify(verifier, token);
  if (!result.ok) expect.fail(`expected acceptance, got ${result.code}: ${result.message}`);
  return result.identity;
}

describe("createTokenVerifier: accepted tokens", () => {
  it("returns a frozen identity with subject, groups, session, audience and times", async () => {
    const identity = await expectAccepted(verifierWith(), await signToken(es256, claims({ email: "a@b.c" })));
    expect(identity).toEqual({
      subject: "agent-7",
      groups: ["agents", "ci"],
      sessionId: "session-1",
      issuer: ISSUER,
      audience: ["airlock"],
      tokenId: "token-1",
      issuedAtSeconds: NOW_SECONDS - 60,
      expiresAtSeconds: NOW_SECONDS + 600,
      claims: expect.objectContaining({ email: "a@b.c", sub: "agent-7" }) as unknown,
    });
    expect(Object.isFrozen(identity)).toBe(true);
    expect(Object.isFrozen(identity.groups)).toBe(true);
    expect(Object.isFrozen(identity.claims)).toBe(true);
    expect(Object.isFrozen(identity.claims.groups)).toBe(true);
  });

  it.each([
    ["ES256", () => es256],
    ["RS256", () => rs256],
    ["PS256", () => ps256],
    ["EdDSA", () => eddsa],
  ])("accepts %s when allowed", async (_alg, key) => {
    await expectAccepted(verifierWith(), await signToken(key(), claims()));
  });

  it("accepts an audience list that contains a configured audience", async () => {
    const identity = await expectAccepted(verifierWith(), await signToken(es256, claims({ aud: ["other", "airlock"] })));
    expect(identity.audience).toEqual(["other", "airlock"]);
  });

  it("tries every candidate key when the token has no kid", async () => {
    const second = await createTestKey("ES256");
    const verifier = verifierWith({ issuer: { localJwks: keySet(es256, second), algorithms: ["ES256"] } });
    await expectAccepted(verifier, await signToken(second, claims(), { kid: null }));
    await expectDenied(verifier, await signToken(impostor, claims(), { kid: null }), "TOKEN_SIGNATURE_INVALID");
  });

  it("selects keys by the token's issuer among several issuers", async () => {
    const config = parseIdentityConfig({
      issuers: [
        { issuer: ISSUER, localJwks: keySet(es256), audiences: ["airlock"], algorithms: ["ES256"] },
        { issuer: OTHER_ISSUER, localJwks: keySet(rs256), audiences: ["gateway"], algorithms: ["RS256"] },
      ],
    });
    const verifier = createTokenVerifier(config, { now: () => NOW_SECONDS * 1000 });
    const identity = await expectAccepted(verifier, await signToken(rs256, claims({ iss: OTHER_ISSUER, aud: "gateway" })));
    expect(identity.issuer).toBe(OTHER_ISSUER);
    // A key of the other issuer never verifies this issuer's tokens.
    await expectDenied(verifier, await signToken(rs256, claims()), "TOKEN_ALGORITHM_NOT_ALLOWED");
    await expectDenied(verifier, await signToken(es256, claims({ iss: OTHER_ISSUER, aud: "gateway" }), { alg: "ES256" }), "TOKEN_ALGORITHM_NOT_ALLOWED");
  });

  it("uses Date.now by default (fake timers)", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(NOW_SECONDS * 1000);
    const config = parseIdentityConfig({
      issuers: [{ issuer: ISSUER, localJwks: keySet(es256), audiences: ["airlock"], algorithms: ["ES256"] }],
    });
    const verifier = createTokenVerifier(config);
    const token = await signToken(es256, claims());
    await expectAccepted(verifier, token);
    vi.setSystemTime((NOW_SECONDS + 600 + SKEW) * 1000);
    await expectDenied(verifier, token, "TOKEN_EXPIRED");
  });
});

describe("createTokenVerifier: time", () => {
  it("rejects an expired token beyond the skew and tolerates skew", async () => {
    const token = await signToken(es256, claims({ iat: NOW_SECONDS - 1000, nbf: NOW_SECONDS - 1000, exp: NOW_SECONDS - 100 }));
    await expectDenied(verifierWith(), token, "TOKEN_EXPIRED");
    await expectAccepted(verifierWith({ nowSeconds: NOW_SECONDS - 100 - SKEW + 1 }), token);
    await expectDenied(verifierWith({ nowSeconds: NOW_SECONDS - 100 + SKEW }), token, "TOKEN_EXPIRED");
  });

  it("rejects nbf in the future beyond the skew and tolerates it within", async () => {
    await expectDenied(verifierWith(), await signToken(es256, claims({ nbf: NOW_SECONDS + SKEW + 1 })), "TOKEN_NOT_YET_VALID");
    await expectAccepted(verifierWith(), await signToken(es256, claims({ nbf: NOW_SECONDS + SKEW })));
  });

  it("rejects iat in the future beyond the skew (it would stretch the lifetime cap)", async () => {
    await expectDenied(verifierWith(), await signToken(es256, claims({ iat: NOW_SECONDS + SKEW + 1 })), "TOKEN_NOT_YET_VALID");
    await expectAccepted(verifierWith(), await signToken(es256, claims({ iat: NOW_SECONDS + SKEW, nbf: NOW_SECONDS })));
  });

  it("applies the configured skew, zero included", async () => {
    const token = await signToken(es256, claims({ nbf: NOW_SECONDS + 5 }));
    await expectDenied(verifierWith({ top: { clockSkewSeconds: 0 } }), token, "TOKEN_NOT_YET_VALID");
    await expectAccepted(verifierWith({ top: { clockSkewSeconds: 5 } }), token);
  });

  it("caps the lifetime exp - iat at maxTokenLifetimeMinutes", async () => {
    const verifier = verifierWith({ issuer: { maxTokenLifetimeMinutes: 10 } });
    await expectAccepted(verifier, await signToken(es256, claims({ iat: NOW_SECONDS, exp: NOW_SECONDS + 600 })));
    const message = await expectDenied(
      verifier,
      await signToken(es256, claims({ iat: NOW_SECONDS, exp: NOW_SECONDS + 601 })),
      "TOKEN_LIFETIME_TOO_LONG",
    );
    expect(message).toContain("10 minutes");
    // The default cap is 60 minutes.
    await expectDenied(verifierWith(), await signToken(es256, claims({ iat: NOW_SECONDS, exp: NOW_SECONDS + 3601 })), "TOKEN_LIFETIME_TOO_LONG");
  });

  it("rejects tokens without exp or iat, or with non-numeric times", async () => {
    expect(await expectDenied(verifierWith(), await signToken(es256, claimsWithout("exp")), "TOKEN_CLAIM_INVALID")).toContain('"exp"');
    expect(await expectDenied(verifierWith(), await signToken(es256, claimsWithout("iat")), "TOKEN_CLAIM_INVALID")).toContain('"iat"');
    await expectDenied(verifierWith(), await signToken(es256, claims({ exp: "soon" as unknown as number })), "TOKEN_CLAIM_INVALID");
    await expectDenied(verifierWith(), await signToken(es256, claims({ iat: NOW_SECONDS, exp: NOW_SECONDS })), "TOKEN_CLAIM_INVALID");
  });

  it("rejects exp before iat", async () => {
    const verifier = verifierWith({ nowSeconds: NOW_SECONDS - 100 });
    await expectDenied(verifier, await signToken(es256, claims({ iat: NOW_SECONDS - 90, nbf: NOW_SECONDS - 110, exp: NOW_SECONDS - 95 })), "TOKEN_CLAIM_INVALID");
  });
});

describe("createTokenVerifier: issuer, audience, signature, algorithm", () => {
  it("rejects an unknown or absent issuer", async () => {
    await expectDenied(verifierWith(), await signToken(es256, claims({ iss: "https://evil.test" })), "TOKEN_ISSUER_UNKNOWN");
    await expectDenied(verifierWith(), await signToken(es256, claimsWithout("iss")), "TOKEN_ISSUER_UNKNOWN");
    await expectDenied(verifierWith(), await signToken(es256, claims({ iss: "__proto__" })), "TOKEN_ISSUER_UNKNOWN");
  });

  it("rejects a wrong or missing audience", async () => {
    await expectDenied(verifierWith(), await signToken(es256, claims({ aud: "kubernetes" })), "TOKEN_AUDIENCE_INVALID");
    await expectDenied(verifierWith(), await signToken(es256, claims({ aud: ["a", "b"] })), "TOKEN_AUDIENCE_INVALID");
    await expectDenied(verifierWith(), await signToken(es256, claimsWithout("aud")), "TOKEN_AUDIENCE_INVALID");
  });

  it("rejects a forged signature and a tampered payload", async () => {
    await expectDenied(verifierWith(), await signToken(impostor, claims()), "TOKEN_SIGNATURE_INVALID");
    const [header, , signature] = (await signToken(es256, claims())).split(".");
    const tampered = Buffer.from(JSON.stringify(claims({ sub: "admin" }))).toString("base64url");
    await expectDenied(verifierWith(), `${header}.${tampered}.${signature}`, "TOKEN_SIGNATURE_INVALID");
  });

  it("rejects a kid the issuer does not publish", async () => {
    await expectDenied(verifierWith(), await signToken(es256, claims(), { kid: "retired-key" }), "TOKEN_KEY_UNKNOWN");
  });

  it("rejects alg none whatever the configuration", async () => {
    await expectDenied(verifierWith(), unsecuredToken(claims()), "TOKEN_ALGORITHM_NOT_ALLOWED");
  });

  it("rejects an algorithm outside the allow-list", async () => {
    const verifier = verifierWith({ issuer: { algorithms: ["ES256"] } });
    await expectDenied(verifier, await signToken(rs256, claims()), "TOKEN_ALGORITHM_NOT_ALLOWED");
    await expectDenied(verifier, await signToken(eddsa, claims()), "TOKEN_ALGORITHM_NOT_ALLOWED");
  });

  it("rejects HS256 for a public-key issuer (no key confusion)", async () => {
    // The classic attack: an HMAC token keyed with the issuer's public key material.
    const secret = new TextEncoder().encode(JSON.stringify(es256.publicJwk));
    await expectDenied(verifierWith(), await signHmacToken(secret, claims()), "TOKEN_ALGORITHM_NOT_ALLOWED");
  });

  it("rejects malformed and missing tokens", async () => {
    const verifier = verifierWith();
    await expectDenied(verifier, "", "TOKEN_MISSING");
    await expectDenied(verifier, "not-a-jwt", "TOKEN_MALFORMED");
    await expectDenied(verifier, "a.b.c", "TOKEN_MALFORMED");
    await expectDenied(verifier, "a.b.c.d.e", "TOKEN_MALFORMED");
    await expectDenied(verifier, "x".repeat(MAX_TOKEN_LENGTH + 1), "TOKEN_MALFORMED");
    const [, payload, signature] = (await signToken(es256, claims())).split(".");
    const badHeader = Buffer.from("{not json").toString("base64url");
    await expectDenied(verifier, `${badHeader}.${payload}.${signature}`, "TOKEN_MALFORMED");
    const arrayPayload = Buffer.from("[1,2]").toString("base64url");
    await expectDenied(verifier, `${badHeader}.${arrayPayload}.${signature}`, "TOKEN_MALFORMED");
  });

  it("denies with KEYS_UNAVAILABLE when the issuer's key is unusable (RSA under 2048 bits)", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const publicJwk = { ...publicKey.export({ format: "jwk" }), kid: "weak", alg: "RS256", use: "sig" };
    const header = Buffer.from(JSON.stringify({ alg: "RS256", kid: "weak", typ: "JWT" })).toString("base64url");
    const payload = Buffer.from(JSON.stringify(claims())).toString("base64url");
    const signature = createSign("RSA-SHA256").update(`${header}.${payload}`).sign(privateKey).toString("base64url");
    const verifier = verifierWith({ issuer: { localJwks: { keys: [publicJwk] }, algorithms: ["RS256"] } });
    await expectDenied(verifier, `${header}.${payload}.${signature}`, "KEYS_UNAVAILABLE");
  });
});

describe("createTokenVerifier: HMAC issuers", () => {
  const secret = new TextEncoder().encode("s".repeat(32) + "-unit-test-secret");

  async function hmacVerifier(contents: Uint8Array | undefined, algorithms: string[] = ["HS256"]): Promise<TokenVerifier> {
    const path = join(tempDir, `secret-${String(Math.random()).slice(2)}`);
    if (contents !== undefined) await writeFile(path, contents, { mode: 0o600 });
    return verifierWith({ issuer: { localJwks: undefined, hmacSecretFile: path, algorithms } });
  }

  it("accepts HS256 when configured with hmacSecretFile", async () => {
    const verifier = await hmacVerifier(secret);
    expect(await verifier.warm()).toEqual([]);
    await expectAccepted(verifier, await signHmacToken(secret, claims()));
  });

  it("rejects a token made with another secret or another HMAC algorithm", async () => {
    const verifier = await hmacVerifier(secret);
    await expectDenied(verifier, await signHmacToken(new TextEncoder().encode("t".repeat(48)), claims()), "TOKEN_SIGNATURE_INVALID");
    await expectDenied(verifier, await signHmacToken(secret, claims(), "HS512"), "TOKEN_ALGORITHM_NOT_ALLOWED");
    await expectDenied(verifier, await signToken(es256, claims()), "TOKEN_ALGORITHM_NOT_ALLOWED");
  });

  it("denies with KEYS_UNAVAILABLE when the secret file is missing or too short", async () => {
    const missing = await hmacVerifier(undefined);
    const failures = await missing.warm();
    expect(failures).toEqual([{ issuer: ISSUER, message: expect.stringContaining("cannot read hmacSecretFile") as unknown }]);
    await expectDenied(missing, await signHmacToken(secret, claims()), "KEYS_UNAVAILABLE");

    const short = await hmacVerifier(new TextEncoder().encode("tiny-secret-xyz"));
    const message = await expectDenied(short, await signHmacToken(secret, claims()), "KEYS_UNAVAILABLE");
    expect(message).toContain("32 bytes");
    expect(message).not.toContain("tiny-secret-xyz");
  });

  it("accepts several HMAC algorithms when the secret is long enough for each", async () => {
    const long = new TextEncoder().encode("L".repeat(64));
    const verifier = await hmacVerifier(long, ["HS256", "HS512"]);
    await expectAccepted(verifier, await signHmacToken(long, claims(), "HS512"));
    await expectAccepted(verifier, await signHmacToken(long, claims(), "HS256"));
  });

  it("refuses localKeys for an HMAC issuer", () => {
    const config = parseIdentityConfig({
      issuers: [{ issuer: ISSUER, hmacSecretFile: "/nonexistent", audiences: ["airlock"], algorithms: ["HS256"] }],
    });
    expect(() => createTokenVerifier(config, { localKeys: new Map([[ISSUER, keySet(es256)]]) })).toThrow(TypeError);
  });
});

describe("createTokenVerifier: claims", () => {
  it.each([
    ["an array", ["a", "b"], ["a", "b"]],
    ["a comma separated string", "a,b", ["a", "b"]],
    ["a space separated string", "a b  c", ["a", "b", "c"]],
    ["a mixed string with duplicates", " a, b ,a\tc ", ["a", "b", "c"]],
    ["an empty string", "", []],
    ["absent", undefined, []],
    ["null", null, []],
  ])("reads groups given as %s", async (_form, groups, expected) => {
    const token = await signToken(es256, { ...claimsWithout("groups"), ...(groups === undefined ? {} : { groups }) });
    expect((await expectAccepted(verifierWith(), token)).groups).toEqual(expected);
  });

  it.each([
    ["a number", 7],
    ["an object", { a: 1 }],
    ["a list with a non-string", ["a", 1]],
  ])("rejects groups given as %s", async (_form, groups) => {
    await expectDenied(verifierWith(), await signToken(es256, claims({ groups })), "TOKEN_CLAIM_INVALID");
  });

  it("reads custom claim names", async () => {
    const verifier = verifierWith({ issuer: { claims: { subject: "email", groups: "roles", session: "run_id" } } });
    const identity = await expectAccepted(
      verifier,
      await signToken(es256, claims({ email: "bot@example.com", roles: "deployers", run_id: "run-42" })),
    );
    expect(identity).toMatchObject({ subject: "bot@example.com", groups: ["deployers"], sessionId: "run-42" });
    await expectDenied(verifier, await signToken(es256, claims()), "TOKEN_CLAIM_INVALID");
  });

  it("keeps the other claim defaults when only one is renamed", async () => {
    const verifier = verifierWith({ issuer: { claims: { groups: "roles" } } });
    const identity = await expectAccepted(verifier, await signToken(es256, claims({ roles: ["r"] })));
    expect(identity).toMatchObject({ subject: "agent-7", groups: ["r"], sessionId: "session-1" });
  });

  it("falls back to jti for the session and rejects a token with neither", async () => {
    const identity = await expectAccepted(verifierWith(), await signToken(es256, claimsWithout("sid")));
    expect(identity.sessionId).toBe("token-1");
    expect(identity.tokenId).toBe("token-1");
    const withoutJti = await expectAccepted(verifierWith(), await signToken(es256, claimsWithout("jti")));
    expect(withoutJti).toMatchObject({ sessionId: "session-1", tokenId: undefined });
    await expectDenied(verifierWith(), await signToken(es256, claimsWithout("sid", "jti")), "TOKEN_CLAIM_INVALID");
    await expectDenied(verifierWith(), await signToken(es256, claims({ sid: 5, jti: "" })), "TOKEN_CLAIM_INVALID");
  });

  it("rejects a missing, empty or non-string subject", async () => {
    await expectDenied(verifierWith(), await signToken(es256, claimsWithout("sub")), "TOKEN_CLAIM_INVALID");
    await expectDenied(verifierWith(), await signToken(es256, claims({ sub: "" })), "TOKEN_CLAIM_INVALID");
    await expectDenied(verifierWith(), await signToken(es256, claims({ sub: 12 as unknown as string })), "TOKEN_CLAIM_INVALID");
  });

  it("enforces requiredClaims by exact match", async () => {
    const verifier = verifierWith({ issuer: { requiredClaims: { repository_owner: "acme", runner_env: "github-hosted", level: 2, ci: true } } });
    const good = { repository_owner: "acme", runner_env: "github-hosted", level: 2, ci: true };
    await expectAccepted(verifier, await signToken(es256, claims(good)));
    await expectDenied(verifier, await signToken(es256, claims({ ...good, repository_owner: "evil" })), "TOKEN_CLAIM_INVALID");
    await expectDenied(verifier, await signToken(es256, claims({ ...good, level: "2" })), "TOKEN_CLAIM_INVALID");
    await expectDenied(verifier, await signToken(es256, claims({ ...good, ci: "true" })), "TOKEN_CLAIM_INVALID");
    const { repository_owner: _dropped, ...missing } = good;
    const message = await expectDenied(verifier, await signToken(es256, claims(missing)), "TOKEN_CLAIM_INVALID");
    expect(message).toContain("repository_owner");
  });

  it("does not read claims from the prototype chain", async () => {
    const verifier = verifierWith({ issuer: { claims: { subject: "constructor" } } });
    await expectDenied(verifier, await signToken(es256, claims()), "TOKEN_CLAIM_INVALID");
  });
});

describe("createTokenVerifier: verified-token cache", () => {
  function clockedVerifier(): { verifier: TokenVerifier; setSeconds: (seconds: number) => void } {
    let nowMs = NOW_SECONDS * 1000;
    const config = parseIdentityConfig({
      issuers: [{ issuer: ISSUER, localJwks: keySet(es256), audiences: ["airlock"], algorithms: ["ES256"] }],
      clockSkewSeconds: SKEW,
    });
    return {
      verifier: createTokenVerifier(config, { now: () => nowMs }),
      setSeconds: (seconds) => {
        nowMs = seconds * 1000;
      },
    };
  }

  it("hands out the same frozen result for a repeated token", async () => {
    const { verifier } = clockedVerifier();
    const token = await signToken(es256, claims());
    const first = await verify(verifier, token);
    const second = await verify(verifier, token);
    expect(second).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
  });

  it("re-checks expiry on every use of a remembered token", async () => {
    const { verifier, setSeconds } = clockedVerifier();
    const token = await signToken(es256, claims({ exp: NOW_SECONDS + 40 }));
    await expectAccepted(verifier, token);
    setSeconds(NOW_SECONDS + 40 + SKEW - 1);
    await expectAccepted(verifier, token);
    setSeconds(NOW_SECONDS + 40 + SKEW);
    await expectDenied(verifier, token, "TOKEN_EXPIRED");
  });

  it("re-checks nbf and iat when the clock moves backwards", async () => {
    const { verifier, setSeconds } = clockedVerifier();
    const token = await signToken(es256, claims({ iat: NOW_SECONDS, nbf: NOW_SECONDS }));
    await expectAccepted(verifier, token);
    setSeconds(NOW_SECONDS - SKEW - 5);
    await expectDenied(verifier, token, "TOKEN_NOT_YET_VALID");
    setSeconds(NOW_SECONDS);
    await expectAccepted(verifier, token);
  });

  it("does not let a cached acceptance leak to a token that differs in any byte", async () => {
    const { verifier } = clockedVerifier();
    const token = await signToken(es256, claims());
    await expectAccepted(verifier, token);
    // A character well inside the signature (the last one may only carry padding bits).
    const at = token.length - 10;
    const changed = token[at] === "A" ? "B" : "A";
    await expectDenied(verifier, `${token.slice(0, at)}${changed}${token.slice(at + 1)}`, "TOKEN_SIGNATURE_INVALID");
  });
});

describe("createTokenVerifier: options", () => {
  it("lets localKeys replace an issuer's configured key source", async () => {
    const config = parseIdentityConfig({
      issuers: [{ issuer: ISSUER, jwksUrl: "https://keys.invalid/jwks", audiences: ["airlock"], algorithms: ["ES256"] }],
    });
    const verifier = createTokenVerifier(config, { localKeys: new Map([[ISSUER, keySet(es256)]]), now: () => NOW_SECONDS * 1000 });
    expect(await verifier.warm()).toEqual([]);
    await expectAccepted(verifier, await signToken(es256, claims()));
  });

  it("refuses localKeys for an issuer that is not configured", () => {
    const config = parseIdentityConfig({
      issuers: [{ issuer: ISSUER, localJwks: keySet(es256), audiences: ["airlock"], algorithms: ["ES256"] }],
    });
    expect(() => createTokenVerifier(config, { localKeys: new Map([[OTHER_ISSUER, keySet(es256)]]) })).toThrow(/not configured/);
  });
});

describe("bearerTokenFromHeader", () => {
  it.each([
    ["Bearer abc.def.ghi", "abc.def.ghi"],
    ["bearer abc.def.ghi", "abc.def.ghi"],
    ["BEARER   abc-_.~+/==  ", "abc-_.~+/=="],
  ])("extracts the token from %j", (header, token) => {
    expect(bearerTokenFromHeader(header)).toBe(token);
  });

  it.each([
    ["no header", undefined],
    ["an empty header", ""],
    ["a scheme without token", "Bearer"],
    ["a scheme with a blank token", "Bearer "],
    ["another scheme", "Basic dXNlcjpwYXNz"],
    ["two words", "Bearer a b"],
    ["two credentials", "Bearer a,Bearer b"],
    ["padding inside the token", "Bearer a=b"],
    ["a tab separator", "Bearer\tabc"],
    ["leading whitespace", " Bearer abc"],
    ["an oversized value", `Bearer ${"a".repeat(MAX_TOKEN_LENGTH + 100)}`],
  ])("returns undefined for %s", (_case, header) => {
    expect(bearerTokenFromHeader(header)).toBeUndefined();
  });
});
