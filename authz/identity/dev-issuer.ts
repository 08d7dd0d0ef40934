/**
 * @module authz/identity/dev-issuer
 * Built-in development token issuer: a persisted ES256 key that mints short-lived agent tokens for local use.
 */
import { randomUUID } from "node:crypto";
import { chmod, link, mkdir, readFile, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT } from "jose";
import type { CryptoKey, JSONWebKeySet, JWK } from "jose";
import { parseIdentityConfig } from "./identity-config.js";
import type { IdentityConfig } from "./identity-config.js";

/** Issuer of development tokens. `.invalid` (RFC 2606) can never resolve, so it cannot collide with a real issuer. */
export const DEV_ISSUER = "https://airlock.invalid/dev-issuer";
/** Audience of development tokens. */
export const DEV_AUDIENCE = "airlock";
/** File name of the persisted private key inside the state directory. */
export const DEV_ISSUER_KEY_FILE = "dev-issuer-key.json";
/** Longest lifetime the development issuer mints and its configuration accepts. */
export const DEV_MAX_TOKEN_LIFETIME_MINUTES = 720;

/** Claims the issuer sets itself; `extraClaims` may not override them. */
const RESERVED_CLAIMS = new Set(["iss", "aud", "sub", "groups", "sid", "iat", "nbf", "exp", "jti"]);

/** What {@link DevIssuer.issue} needs. */
export interface DevTokenInput {
  readonly subject: string;
  readonly groups: readonly string[];
  readonly ttlSeconds: number;
  /** Defaults to a fresh UUID: every token is its own session unless the caller groups them. */
  readonly sessionId?: string;
  /** Defaults to {@link DEV_AUDIENCE}; approver tokens, for instance, use an audience agents never get. */
  readonly audience?: string;
  readonly extraClaims?: Readonly<Record<string, unknown>>;
}

/** A development issuer bound to one persisted key. */
export interface DevIssuer {
  readonly issuer: string;
  readonly audience: string;
  /** The public key set that verifies this issuer's tokens. */
  jwks(): JSONWebKeySet;
  /** Mints a signed token; invalid input throws a TypeError. */
  issue(input: DevTokenInput): Promise<string>;
}

function isPrivateP256Jwk(value: unknown): value is JWK & { kty: "EC"; crv: "P-256"; x: string; y: string; d: string } {
  if (typeof value !== "object" || value === null) return false;
  const jwk = value as Record<string, unknown>;
  return (
    jwk.kty === "EC" &&
    jwk.crv === "P-256" &&
    typeof jwk.x === "string" &&
    typeof jwk.y === "string" &&
    typeof jwk.d === "string"
  );
}

/**
 * Returns the persisted private JWK, creating it on first use. Creation writes a private temporary file and
 * hard-links it into place: the link fails if another process won the race, and a reader never sees a partial file.
 */
async function loadOrCreateKey(stateDir: string): Promise<JWK> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const path = join(stateDir, DEV_ISSUER_KEY_FILE);
  try {
    return await readKeyFile(path);
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  const { privateKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = await exportJWK(privateKey);
  const temporary = `${path}.${randomUUID()}.tmp`;
  await writeFile(temporary, `${JSON.stringify(jwk)}\n`, { mode: 0o600, flag: "wx" });
  try {
    // writeFile's mode is filtered by the umask; make 0600 explicit.
    await chmod(temporary, 0o600);
    await link(temporary, path);
  } catch (error) {
    if (!(error instanceof Error && "code" in error && error.code === "EEXIST")) throw error;
  } finally {
    await unlink(temporary);
  }
  return readKeyFile(path);
}

function isNotFound(error: unknown): boolean {
  return error instanceof Error && "code" in error && error.code === "ENOENT";
}

async function readKeyFile(path: string): Promise<JWK> {
  const info = await stat(path);
  // Like ssh with private keys: a signing key others can read is refused, not silently used.
  if ((info.mode & 0o077) !== 0) {
    throw new Error(`${path} is accessible by group or others (mode ${(info.mode & 0o777).toString(8)}); run chmod 600 on it`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, "utf8"));
  } catch (cause) {
    throw new Error(`${path} is not valid JSON`, { cause });
  }
  if (!isPrivateP256Jwk(parsed)) throw new Error(`${path} does not hold an ES256 (P-256) private JWK`);
  return parsed;
}

/**
 * Opens the development issuer whose key lives in `stateDir` (created 0700; key file 0600). The key is generated on
 * first use and reused afterwards, so tokens stay valid across restarts. `kid` is the RFC 7638 thumbprint.
 *
 * @example
 * const dev = await openDevIssuer(".airlock");
 * const token = await dev.issue({ subject: "agent-1", groups: ["agents"], ttlSeconds: parseDurationSeconds("15m") });
 */
export async function openDevIssuer(stateDir: string): Promise<DevIssuer> {
  const privateJwk = await loadOrCreateKey(stateDir);
  const publicJwk: JWK = { kty: "EC", crv: "P-256", x: privateJwk.x ?? "", y: privateJwk.y ?? "" };
  const kid = await calculateJwkThumbprint(publicJwk, "sha256");
  const signingKey = (await importJWK({ ...privateJwk, alg: "ES256" }, "ES256")) as CryptoKey;
  const published: JWK = { ...publicJwk, kid, alg: "ES256", use: "sig" };

  return {
    issuer: DEV_ISSUER,
    audience: DEV_AUDIENCE,
    jwks: () => ({ keys: [{ ...published }] }),
    async issue(input) {
      if (input.subject === "") throw new TypeError("subject must not be empty");
      if (input.audience === "") throw new TypeError("audience must not be empty");
      if (!Number.isSafeInteger(input.ttlSeconds) || input.ttlSeconds <= 0) {
        throw new TypeError("ttlSeconds must be a positive integer");
      }
      if (input.ttlSeconds > DEV_MAX_TOKEN_LIFETIME_MINUTES * 60) {
        throw new TypeError(`ttlSeconds must not exceed ${DEV_MAX_TOKEN_LIFETIME_MINUTES * 60}`);
      }
      if (input.groups.some((group) => group === "" || /[\s,]/.test(group))) {
        throw new TypeError("group names must be non-empty and contain no commas or whitespace");
      }
      for (const name of Object.keys(input.extraClaims ?? {})) {
        if (RESERVED_CLAIMS.has(name)) throw new TypeError(`extraClaims must not set the reserved claim "${name}"`);
      }
      const nowSeconds = Math.floor(Date.now() / 1000);
      return new SignJWT({ ...input.extraClaims, groups: [...input.groups], sid: input.sessionId ?? randomUUID() })
        .setProtectedHeader({ alg: "ES256", kid, typ: "JWT" })
        .setIssuer(DEV_ISSUER)
        .setAudience(input.audience ?? DEV_AUDIENCE)
        .setSubject(input.subject)
        .setIssuedAt(nowSeconds)
        .setNotBefore(nowSeconds)
        .setExpirationTime(nowSeconds + input.ttlSeconds)
        .setJti(randomUUID())
        .sign(signingKey);
    },
  };
}

/**
 * The identity configuration that accepts exactly the development issuer's tokens (its key set inline) for one
 * audience: the issuer's default, or e.g. an approver audience so agent tokens are not accepted there.
 */
export function devIdentityConfig(issuer: DevIssuer, options: { readonly audience?: string } = {}): IdentityConfig {
  return parseIdentityConfig({
    issuers: [
      {
        issuer: issuer.issuer,
        localJwks: issuer.jwks(),
        audiences: [options.audience ?? issuer.audience],
        algorithms: ["ES256"],
        maxTokenLifetimeMinutes: DEV_MAX_TOKEN_LIFETIME_MINUTES,
      },
    ],
  });
}

const DURATION_UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * Parses a duration into whole seconds: `"300"`, `"90s"`, `"5m"`, `"1h"`, `"2d"`. Only positive integers with at
 * most one unit; anything else throws a TypeError naming the accepted forms.
 */
export function parseDurationSeconds(text: string): number {
  const match = /^(\d{1,12})([smhd]?)$/.exec(text.trim());
  const amount = match === null ? Number.NaN : Number(match[1]);
  const unit = DURATION_UNITS[match?.[2] || "s"];
  if (match === null || unit === undefined || amount <= 0) {
    throw new TypeError(`invalid duration ${JSON.stringify(text.slice(0, 40))}: expected a positive whole number with an optional unit s, m, h or d (e.g. "90s", "5m", "1h")`);
  }
  return amount * unit;
}
