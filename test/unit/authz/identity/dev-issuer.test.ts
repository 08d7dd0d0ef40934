/**
 * @module test/unit/authz/identity/dev-issuer.test
 * Development issuer: key persistence and file modes, minted claims, acceptance by its own config, durations.
 */
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  DEV_AUDIENCE,
  DEV_ISSUER,
  DEV_ISSUER_KEY_FILE,
  devIdentityConfig,
  openDevIssuer,
  parseDurationSeconds,
} from "../../../../authz/identity/dev-issuer.js";
import { createTokenVerifier } from "../../../../authz/identity/token-verifier.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
let root: string;
let counter = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "airlock-dev-issuer-"));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

afterEach(() => {
  vi.useRealTimers();
});

function freshStateDir(): string {
  counter += 1;
  return join(root, `state-${counter}`, "nested");
}

describe("openDevIssuer", () => {
  it("creates the key at first use with private file modes and reuses it afterwards", async () => {
    const stateDir = freshStateDir();
    const first = await openDevIssuer(stateDir);
    const keyPath = join(stateDir, DEV_ISSUER_KEY_FILE);
    expect((await stat(keyPath)).mode & 0o777).toBe(0o600);
    expect((await stat(stateDir)).mode & 0o777).toBe(0o700);
    const stored = JSON.parse(await readFile(keyPath, "utf8")) as Record<string, unknown>;
    expect(stored).toMatchObject({ kty: "EC", crv: "P-256" });
    expect(typeof stored.d).toBe("string");

    const token = await first.issue({ subject: "agent", groups: [], ttlSeconds: 60 });
    const second = await openDevIssuer(stateDir);
    expect(second.jwks()).toEqual(first.jwks());
    // A token minted before the "restart" verifies with the reopened issuer's configuration.
    const result = await createTokenVerifier(devIdentityConfig(second)).verify(token);
    expect(result.ok).toBe(true);
  });

  it("publishes only the public key, with kid = RFC 7638 thumbprint", async () => {
    const issuer = await openDevIssuer(freshStateDir());
    const { keys } = issuer.jwks();
    expect(keys).toHaveLength(1);
    const [key] = keys;
    expect(key).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256", use: "sig" });
    expect(key?.d).toBeUndefined();
    expect(key?.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // The returned set is a copy: callers cannot alter what the issuer publishes.
    keys.pop();
    expect(issuer.jwks().keys).toHaveLength(1);
  });

  it("gives concurrent first opens the same key", async () => {
    const stateDir = freshStateDir();
    const issuers = await Promise.all([openDevIssuer(stateDir), openDevIssuer(stateDir), openDevIssuer(stateDir)]);
    const kids = issuers.map((issuer) => issuer.jwks().keys[0]?.kid);
    expect(new Set(kids).size).toBe(1);
  });

  it("generates different keys in different state directories", async () => {
    const [a, b] = await Promise.all([openDevIssuer(freshStateDir()), openDevIssuer(freshStateDir())]);
    expect(a.jwks().keys[0]?.kid).not.toBe(b.jwks().keys[0]?.kid);
  });

  it("refuses a key file readable by group or others", async () => {
    const stateDir = freshStateDir();
    await openDevIssuer(stateDir);
    await chmod(join(stateDir, DEV_ISSUER_KEY_FILE), 0o644);
    await expect(openDevIssuer(stateDir)).rejects.toThrow(/chmod 600/);
  });

  it("refuses a key file that is not an ES256 private JWK", async () => {
    const stateDir = freshStateDir();
    await openDevIssuer(stateDir);
    const keyPath = join(stateDir, DEV_ISSUER_KEY_FILE);
    await writeFile(keyPath, "{not json", { mode: 0o600 });
    await expect(openDevIssuer(stateDir)).rejects.toThrow(/not valid JSON/);
    await writeFile(keyPath, JSON.stringify({ kty: "EC", crv: "P-256", x: "a", y: "b" }), { mode: 0o600 });
    await expect(openDevIssuer(stateDir)).rejects.toThrow(/private JWK/);
  });
});

describe("DevIssuer.issue", () => {
  it("mints iss, aud, sub, groups, sid, iat, nbf, exp and jti", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2030-01-01T00:00:00Z"));
    const nowSeconds = Math.floor(Date.now() / 1000);
    const issuer = await openDevIssuer(freshStateDir());
    const token = await issuer.issue({ subject: "agent-1", groups: ["agents", "ci"], ttlSeconds: 900, extraClaims: { team: "sre" } });
    const claims = decodeJwt(token);
    expect(claims).toEqual({
      iss: DEV_ISSUER,
      aud: DEV_AUDIENCE,
      sub: "agent-1",
      groups: ["agents", "ci"],
      sid: expect.stringMatching(UUID) as unknown,
      iat: nowSeconds,
      nbf: nowSeconds,
      exp: nowSeconds + 900,
      jti: expect.stringMatching(UUID) as unknown,
      team: "sre",
    });
    expect(claims.sid).not.toBe(claims.jti);
    expect(decodeProtectedHeader(token)).toEqual({ alg: "ES256", typ: "JWT", kid: issuer.jwks().keys[0]?.kid });
  });

  it("uses the given session id and a fresh one otherwise", async () => {
    const issuer = await openDevIssuer(freshStateDir());
    const given = decodeJwt(await issuer.issue({ subject: "a", groups: [], ttlSeconds: 60, sessionId: "run-7" }));
    expect(given.sid).toBe("run-7");
    const one = decodeJwt(await issuer.issue({ subject: "a", groups: [], ttlSeconds: 60 }));
    const two = decodeJwt(await issuer.issue({ subject: "a", groups: [], ttlSeconds: 60 }));
    expect(one.sid).not.toBe(two.sid);
  });

  it("is accepted by devIdentityConfig and expires on schedule (fake clock)", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2030-01-01T00:00:00Z"));
    const issuer = await openDevIssuer(freshStateDir());
    const verifier = createTokenVerifier(devIdentityConfig(issuer));
    const token = await issuer.issue({ subject: "agent-1", groups: ["agents"], ttlSeconds: 120, sessionId: "s-1" });
    const accepted = await verifier.verify(token);
    expect(accepted.ok && accepted.identity).toMatchObject({ subject: "agent-1", groups: ["agents"], sessionId: "s-1", issuer: DEV_ISSUER });
    vi.setSystemTime(Date.now() + (120 + 30) * 1000);
    const expired = await verifier.verify(token);
    expect(expired.ok ? "accepted" : expired.code).toBe("TOKEN_EXPIRED");
  });

  it("is accepted for its maximum ttl and refuses longer ones", async () => {
    const issuer = await openDevIssuer(freshStateDir());
    const verifier = createTokenVerifier(devIdentityConfig(issuer));
    const result = await verifier.verify(await issuer.issue({ subject: "a", groups: [], ttlSeconds: 12 * 3600 }));
    expect(result.ok).toBe(true);
    await expect(issuer.issue({ subject: "a", groups: [], ttlSeconds: 12 * 3600 + 1 })).rejects.toThrow(TypeError);
  });

  it("rejects invalid input with a TypeError", async () => {
    const issuer = await openDevIssuer(freshStateDir());
    const base = { subject: "a", groups: [] as string[], ttlSeconds: 60 };
    await expect(issuer.issue({ ...base, subject: "" })).rejects.toThrow(TypeError);
    await expect(issuer.issue({ ...base, ttlSeconds: 0 })).rejects.toThrow(TypeError);
    await expect(issuer.issue({ ...base, ttlSeconds: 1.5 })).rejects.toThrow(TypeError);
    await expect(issuer.issue({ ...base, groups: ["a,b"] })).rejects.toThrow(TypeError);
    await expect(issuer.issue({ ...base, groups: [""] })).rejects.toThrow(TypeError);
    await expect(issuer.issue({ ...base, extraClaims: { sub: "admin" } })).rejects.toThrow(/reserved claim "sub"/);
    await expect(issuer.issue({ ...base, extraClaims: { exp: 1 } })).rejects.toThrow(TypeError);
  });

  it("does not accept tokens of another development issuer", async () => {
    const [mine, theirs] = await Promise.all([openDevIssuer(freshStateDir()), openDevIssuer(freshStateDir())]);
    const result = await createTokenVerifier(devIdentityConfig(mine)).verify(await theirs.issue({ subject: "a", groups: [], ttlSeconds: 60 }));
    expect(result.ok ? "accepted" : result.code).toBe("TOKEN_KEY_UNKNOWN");
  });
});

describe("devIdentityConfig", () => {
  it("separates audiences: an approver configuration refuses agent tokens and vice versa", async () => {
    const issuer = await openDevIssuer(freshStateDir());
    const approvers = createTokenVerifier(devIdentityConfig(issuer, { audience: "airlock-approvers" }));
    const agents = createTokenVerifier(devIdentityConfig(issuer));
    const approverToken = await issuer.issue({ subject: "alice", groups: ["sre"], ttlSeconds: 60, audience: "airlock-approvers" });
    const agentToken = await issuer.issue({ subject: "agent", groups: [], ttlSeconds: 60 });
    expect((await approvers.verify(approverToken)).ok).toBe(true);
    expect((await agents.verify(agentToken)).ok).toBe(true);
    const crossed = await approvers.verify(agentToken);
    expect(crossed.ok ? "accepted" : crossed.code).toBe("TOKEN_AUDIENCE_INVALID");
    const reverse = await agents.verify(approverToken);
    expect(reverse.ok ? "accepted" : reverse.code).toBe("TOKEN_AUDIENCE_INVALID");
    await expect(issuer.issue({ subject: "a", groups: [], ttlSeconds: 60, audience: "" })).rejects.toThrow(TypeError);
  });

  it("trusts only the development issuer, ES256, its audience and its key", async () => {
    const issuer = await openDevIssuer(freshStateDir());
    const config = devIdentityConfig(issuer);
    expect(config.issuers).toEqual([
      expect.objectContaining({ issuer: DEV_ISSUER, audiences: [DEV_AUDIENCE], algorithms: ["ES256"], localJwks: issuer.jwks() }),
    ]);
    expect(Object.isFrozen(config)).toBe(true);
  });
});

describe("parseDurationSeconds", () => {
  it.each([
    ["300", 300],
    ["90s", 90],
    ["5m", 300],
    ["1h", 3600],
    ["2d", 172_800],
    [" 15m ", 900],
  ])("parses %j", (text, seconds) => {
    expect(parseDurationSeconds(text)).toBe(seconds);
  });

  it.each(["", "0", "0s", "-5m", "1.5h", "5 m", "5M", "5w", "m", "1h30m", "abc", "9999999999999"])("rejects %j", (text) => {
    expect(() => parseDurationSeconds(text)).toThrow(TypeError);
    expect(() => parseDurationSeconds(text)).toThrow(/expected a positive whole number/);
  });
});
