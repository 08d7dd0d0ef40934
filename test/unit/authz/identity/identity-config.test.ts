/**
 * @module test/unit/authz/identity/identity-config.test
 * Identity configuration: defaults, strictness, key-source exclusivity and path-qualified errors.
 */
import { describe, expect, it } from "vitest";
import { IdentityConfigError, keyUrlProblem, parseIdentityConfig } from "../../../../authz/identity/identity-config.js";

const PUBLIC_EC_JWK = { kty: "EC", crv: "P-256", x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" };

function issuer(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    issuer: "https://issuer.example",
    jwksUrl: "https://issuer.example/jwks",
    audiences: ["airlock"],
    algorithms: ["RS256", "ES256"],
    ...overrides,
  };
}

/** Parses and returns the issues (path + message); fails the test if parsing succeeds. */
function issuesOf(input: unknown): { path: string; message: string }[] {
  try {
    parseIdentityConfig(input);
  } catch (error) {
    expect(error).toBeInstanceOf(IdentityConfigError);
    return (error as IdentityConfigError).issues.map((issue) => ({ path: issue.path.join("."), message: issue.message }));
  }
  return expect.fail("configuration was accepted");
}

describe("parseIdentityConfig", () => {
  it("fills defaults with units and freezes the result", () => {
    const config = parseIdentityConfig({ issuers: [issuer()] });
    expect(config).toEqual({
      issuers: [
        {
          issuer: "https://issuer.example",
          jwksUrl: "https://issuer.example/jwks",
          audiences: ["airlock"],
          algorithms: ["RS256", "ES256"],
          claims: { subject: "sub", groups: "groups", session: "sid" },
          maxTokenLifetimeMinutes: 60,
        },
      ],
      clockSkewSeconds: 30,
      jwksCacheMaxAgeMs: 600_000,
      jwksCooldownMs: 30_000,
      jwksTimeoutMs: 5_000,
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.issuers[0]?.claims)).toBe(true);
    expect(Object.isFrozen(config.issuers[0]?.audiences)).toBe(true);
  });

  it("keeps claim defaults for names that are not overridden", () => {
    const config = parseIdentityConfig({ issuers: [issuer({ claims: { groups: "roles" } })] });
    expect(config.issuers[0]?.claims).toEqual({ subject: "sub", groups: "roles", session: "sid" });
  });

  it("accepts each single key source", () => {
    expect(() => parseIdentityConfig({ issuers: [issuer({ jwksUrl: undefined, discoveryUrl: "https://issuer.example/.well-known/openid-configuration" })] })).not.toThrow();
    expect(() => parseIdentityConfig({ issuers: [issuer({ jwksUrl: undefined, localJwks: { keys: [PUBLIC_EC_JWK] } })] })).not.toThrow();
    expect(() => parseIdentityConfig({ issuers: [issuer({ jwksUrl: undefined, hmacSecretFile: "/run/secrets/hmac", algorithms: ["HS256"] })] })).not.toThrow();
  });

  it("requires at least one issuer", () => {
    expect(issuesOf({ issuers: [] })).toEqual([{ path: "issuers", message: "at least one issuer is required" }]);
    expect(issuesOf({})).toEqual([expect.objectContaining({ path: "issuers" })]);
  });

  it("rejects unknown keys, at every level", () => {
    expect(issuesOf({ issuers: [issuer({ audience: "airlock" })] })).toEqual([
      expect.objectContaining({ path: "issuers.0", message: expect.stringContaining("audience") as unknown }),
    ]);
    expect(issuesOf({ issuers: [issuer()], clockSkew: 5 })).toEqual([expect.objectContaining({ path: "" })]);
    expect(issuesOf({ issuers: [issuer({ claims: { subjet: "email" } })] })).toEqual([expect.objectContaining({ path: "issuers.0.claims" })]);
  });

  it("requires a non-empty audience list", () => {
    expect(issuesOf({ issuers: [issuer({ audiences: [] })] })).toEqual([
      { path: "issuers.0.audiences", message: "at least one audience is required" },
    ]);
    expect(issuesOf({ issuers: [issuer({ audiences: undefined })] })).toEqual([expect.objectContaining({ path: "issuers.0.audiences" })]);
  });

  it("never allows alg none and names the offending entry", () => {
    expect(issuesOf({ issuers: [issuer({ algorithms: ["RS256", "none"] })] })).toEqual([
      { path: "issuers.0.algorithms.1", message: '"none" is never allowed: agent tokens must be signed' },
    ]);
    expect(issuesOf({ issuers: [issuer({ algorithms: ["RS1"] })] })[0]?.message).toContain("expected one of");
    expect(issuesOf({ issuers: [issuer({ algorithms: [] })] })[0]?.path).toBe("issuers.0.algorithms");
    expect(issuesOf({ issuers: [issuer({ algorithms: ["ES256", "ES256"] })] })[0]?.path).toBe("issuers.0.algorithms");
  });

  it("requires exactly one key source", () => {
    expect(issuesOf({ issuers: [issuer({ jwksUrl: undefined })] })).toEqual([
      { path: "issuers.0", message: expect.stringContaining("exactly one key source") as unknown },
    ]);
    expect(issuesOf({ issuers: [issuer({ discoveryUrl: "https://issuer.example/.well-known/openid-configuration" })] })).toEqual([
      { path: "issuers.0.jwksUrl", message: "jwksUrl cannot be combined with discoveryUrl: configure exactly one key source" },
    ]);
    const three = issuesOf({
      issuers: [issuer({ localJwks: { keys: [PUBLIC_EC_JWK] }, hmacSecretFile: "/s", algorithms: ["HS256"] })],
    }).map((entry) => entry.path);
    expect(three).toEqual(["issuers.0.hmacSecretFile", "issuers.0.localJwks"]);
  });

  it("ties HS* algorithms to hmacSecretFile, both ways", () => {
    expect(issuesOf({ issuers: [issuer({ algorithms: ["RS256", "HS256"] })] })).toEqual([
      { path: "issuers.0.algorithms", message: "HS256 needs hmacSecretFile; public key sets cannot verify HMAC tokens" },
    ]);
    expect(issuesOf({ issuers: [issuer({ jwksUrl: undefined, hmacSecretFile: "/s", algorithms: ["HS256", "ES256"] })] })).toEqual([
      { path: "issuers.0.algorithms", message: "with hmacSecretFile only HS256/HS384/HS512 may be allowed" },
    ]);
  });

  it("refuses private or symmetric keys in localJwks", () => {
    const withPrivate = { ...PUBLIC_EC_JWK, d: "private" };
    expect(issuesOf({ issuers: [issuer({ jwksUrl: undefined, localJwks: { keys: [PUBLIC_EC_JWK, withPrivate] } })] })).toEqual([
      { path: "issuers.0.localJwks.keys.1.d", message: 'private key member "d" must not be configured' },
    ]);
    const oct = issuesOf({ issuers: [issuer({ jwksUrl: undefined, localJwks: { keys: [{ kty: "oct", k: "c2VjcmV0" }] } })] });
    expect(oct.map((entry) => entry.path)).toEqual(["issuers.0.localJwks.keys.0.kty", "issuers.0.localJwks.keys.0.k"]);
    expect(issuesOf({ issuers: [issuer({ jwksUrl: undefined, localJwks: { keys: [] } })] })[0]?.path).toBe("issuers.0.localJwks.keys");
  });

  it("accepts https key URLs and plain http only on loopback", () => {
    expect(issuesOf({ issuers: [issuer({ jwksUrl: "http://issuer.example/jwks" })] })).toEqual([
      { path: "issuers.0.jwksUrl", message: "must use https (http is accepted only for loopback hosts)" },
    ]);
    expect(issuesOf({ issuers: [issuer({ jwksUrl: "https://user:pw@issuer.example/jwks" })] })[0]?.message).toBe("must not carry credentials");
    expect(issuesOf({ issuers: [issuer({ jwksUrl: "/jwks" })] })[0]?.message).toBe("must be an absolute URL");
    expect(keyUrlProblem("http://127.0.0.1:8080/jwks")).toBeUndefined();
    expect(keyUrlProblem("http://localhost/jwks")).toBeUndefined();
    expect(keyUrlProblem("http://[::1]:9000/jwks")).toBeUndefined();
    expect(keyUrlProblem("https://issuer.example/jwks#frag")).toBe("must not have a fragment");
    expect(keyUrlProblem("ftp://issuer.example/jwks")).toContain("https");
  });

  it("bounds clock skew, lifetimes and JWKS timings", () => {
    expect(issuesOf({ issuers: [issuer()], clockSkewSeconds: 301 })[0]?.path).toBe("clockSkewSeconds");
    expect(issuesOf({ issuers: [issuer()], clockSkewSeconds: -1 })[0]?.path).toBe("clockSkewSeconds");
    expect(issuesOf({ issuers: [issuer()], clockSkewSeconds: 1.5 })[0]?.path).toBe("clockSkewSeconds");
    expect(issuesOf({ issuers: [issuer({ maxTokenLifetimeMinutes: 0 })] })[0]?.path).toBe("issuers.0.maxTokenLifetimeMinutes");
    expect(issuesOf({ issuers: [issuer()], jwksTimeoutMs: 0 })[0]?.path).toBe("jwksTimeoutMs");
    expect(issuesOf({ issuers: [issuer()], jwksCacheMaxAgeMs: 60_000, jwksCooldownMs: 120_000 })).toEqual([
      { path: "jwksCooldownMs", message: "must not exceed jwksCacheMaxAgeMs" },
    ]);
  });

  it("rejects an issuer configured twice", () => {
    expect(issuesOf({ issuers: [issuer(), issuer()] })).toEqual([{ path: "issuers.1.issuer", message: "issuer is configured twice" }]);
  });

  it("validates requiredClaims values", () => {
    expect(parseIdentityConfig({ issuers: [issuer({ requiredClaims: { org: "acme", tier: 2, ci: true } })] }).issuers[0]?.requiredClaims).toEqual({
      org: "acme",
      tier: 2,
      ci: true,
    });
    expect(issuesOf({ issuers: [issuer({ requiredClaims: { org: ["acme"] } })] })[0]?.path).toBe("issuers.0.requiredClaims.org");
  });

  it("reports every problem at once, with readable paths in the message", () => {
    try {
      parseIdentityConfig({ issuers: [issuer({ audiences: [], algorithms: ["none"] })], clockSkewSeconds: 999 });
      expect.fail("configuration was accepted");
    } catch (error) {
      expect(error).toBeInstanceOf(IdentityConfigError);
      const { message, issues } = error as IdentityConfigError;
      expect(issues).toHaveLength(3);
      expect(message).toContain("issuers[0].audiences");
      expect(message).toContain("issuers[0].algorithms[0]");
      expect(message).toContain("clockSkewSeconds");
    }
  });
});
