/**
 * @module authz/identity/token-verifier
 * Verifies an agent's bearer JWT against the configured issuers and turns it into an AgentIdentity (or a coded denial).
 */
import { freezeConfig } from "../config/freeze-config.js";
import { createHash } from "node:crypto";
import { decodeJwt, errors, jwtVerify } from "jose";
import type { CryptoKey, JSONWebKeySet, JWTPayload, JWTVerifyOptions } from "jose";
import { isHmacAlgorithm } from "./identity-config.js";
import type { IdentityConfig, IssuerConfig } from "./identity-config.js";
import { createHmacKeySource, createLocalKeySource, KeysUnavailableError } from "./key-source.js";
import type { KeySource } from "./key-source.js";
import { createRemoteKeySource } from "./remote-key-set.js";

/** Who is calling, as asserted by a verified token. Frozen. */
export interface AgentIdentity {
  readonly subject: string;
  readonly groups: readonly string[];
  /** The agent session (configured session claim, else `jti`); audit rows are grouped by it. */
  readonly sessionId: string;
  readonly issuer: string;
  readonly audience: readonly string[];
  readonly tokenId: string | undefined;
  readonly issuedAtSeconds: number;
  readonly expiresAtSeconds: number;
  /** Every claim of the verified token (for policy conditions); deep-frozen. */
  readonly claims: Readonly<Record<string, unknown>>;
}

/**
 * Why a token was refused. Closed set; every failure, including unexpected ones, maps to one of these and denies.
 * - `TOKEN_MISSING`: no bearer token.
 * - `TOKEN_MALFORMED`: not a compact signed JWT, oversized, or an undecodable header/payload.
 * - `TOKEN_EXPIRED` / `TOKEN_NOT_YET_VALID`: `exp` passed, or `nbf`/`iat` lies in the future (beyond clock skew).
 * - `TOKEN_LIFETIME_TOO_LONG`: `exp - iat` exceeds the issuer's `maxTokenLifetimeMinutes`.
 * - `TOKEN_SIGNATURE_INVALID`: the signature does not verify with the issuer's key.
 * - `TOKEN_KEY_UNKNOWN`: the issuer publishes no key matching the token's `kid`/`alg` (even after a refetch).
 * - `TOKEN_ISSUER_UNKNOWN`: `iss` is absent or not a configured issuer.
 * - `TOKEN_AUDIENCE_INVALID`: `aud` names none of the issuer's configured audiences.
 * - `TOKEN_ALGORITHM_NOT_ALLOWED`: `alg` is not in the issuer's allow-list (this includes `none`).
 * - `TOKEN_CLAIM_INVALID`: a required claim is missing or has the wrong type or value.
 * - `KEYS_UNAVAILABLE`: the issuer's keys cannot be obtained or used (JWKS down, secret file unreadable).
 */
export type IdentityErrorCode =
  | "TOKEN_MISSING"
  | "TOKEN_MALFORMED"
  | "TOKEN_EXPIRED"
  | "TOKEN_NOT_YET_VALID"
  | "TOKEN_LIFETIME_TOO_LONG"
  | "TOKEN_SIGNATURE_INVALID"
  | "TOKEN_KEY_UNKNOWN"
  | "TOKEN_ISSUER_UNKNOWN"
  | "TOKEN_AUDIENCE_INVALID"
  | "TOKEN_ALGORITHM_NOT_ALLOWED"
  | "TOKEN_CLAIM_INVALID"
  | "KEYS_UNAVAILABLE";

/** Outcome of {@link TokenVerifier.verify}. `message` is for operators and never contains the token. */
export type VerifyTokenResult =
  | { readonly ok: true; readonly identity: AgentIdentity }
  | { readonly ok: false; readonly code: IdentityErrorCode; readonly message: string };

/** An issuer whose keys could not be loaded by {@link TokenVerifier.warm}. */
export interface IssuerWarmFailure {
  readonly issuer: string;
  readonly message: string;
}

/** Verifies agent tokens. */
export interface TokenVerifier {
  /** Never throws; every failure is a `{ ok: false }` result. */
  verify(token: string): Promise<VerifyTokenResult>;
  /**
   * Loads every issuer's keys (discovery included) so the first requests need no network. Never rejects: issuers
   * that failed are returned (and keep denying with `KEYS_UNAVAILABLE` until a later fetch succeeds).
   */
  warm(): Promise<readonly IssuerWarmFailure[]>;
}

/** Options of {@link createTokenVerifier}. */
export interface TokenVerifierOptions {
  /**
   * Public key sets by issuer, replacing that issuer's configured key source (embedding, tests). Every key is an
   * issuer of the configuration; HMAC issuers cannot take one.
   */
  readonly localKeys?: ReadonlyMap<string, JSONWebKeySet>;
  /**
   * Live key sources by issuer, replacing that issuer's configured source (e.g. Airlock's own rotating exchange
   * key ring). Takes precedence over `localKeys`.
   */
  readonly keySources?: ReadonlyMap<string, KeySource>;
  /** Clock in epoch milliseconds; defaults to `Date.now`. */
  readonly now?: () => number;
}

/** Tokens are headers; Envoy's default header limit is 60 KiB. Anything near that is refused before parsing. */
export const MAX_TOKEN_LENGTH = 32 * 1024;

/** A `kid`-less token may match several keys; each is tried, but never more than this many. */
const MAX_CANDIDATE_KEYS = 8;

/**
 * Agents send the same token with every request, and the signature check (~100-250 µs of ECDSA/RSA) dominates
 * verification. Successful verifications are therefore remembered by the token's SHA-256 for a short while; a hit
 * re-checks exp/nbf/iat against the current time and skips only the signature and claim mapping, which depend on
 * nothing but the token bytes, the (immutable) configuration and the keys. The TTL bounds how long a key the issuer
 * has withdrawn keeps verifying tokens it signed earlier. Failures are never cached, so forged tokens cannot fill it.
 */
const VERIFIED_CACHE_TTL_MS = 60_000;
const VERIFIED_CACHE_MAX_ENTRIES = 10_000;

interface VerifiedEntry {
  readonly result: VerifyTokenResult & { readonly ok: true };
  readonly notBeforeSeconds: number | undefined;
  readonly verifiedAtMs: number;
}

interface PreparedIssuer {
  readonly config: IssuerConfig;
  readonly keys: KeySource;
  readonly options: Omit<JWTVerifyOptions, "currentDate">;
}

function deny(code: IdentityErrorCode, message: string): VerifyTokenResult {
  return { ok: false, code, message };
}

/** Own properties only: claim names come from configuration, payloads from attackers (think `__proto__`). */
function claim(payload: JWTPayload, name: string): unknown {
  return Object.hasOwn(payload, name) ? payload[name] : undefined;
}

/** Zod has checked shape and refused private members; jose re-checks each key when importing it. */
function toKeySet(jwks: { readonly keys: readonly Record<string, unknown>[] }): JSONWebKeySet {
  return { keys: jwks.keys.map((key) => ({ ...key })) };
}

function keySourceFor(
  config: IssuerConfig,
  identity: IdentityConfig,
  localKeys: JSONWebKeySet | undefined,
  now: () => number,
): KeySource {
  if (localKeys !== undefined) {
    if (config.algorithms.some(isHmacAlgorithm)) {
      throw new TypeError(`localKeys cannot serve HMAC issuer ${config.issuer}`);
    }
    return createLocalKeySource(localKeys);
  }
  if (config.hmacSecretFile !== undefined) return createHmacKeySource(config.hmacSecretFile, config.algorithms);
  if (config.localJwks !== undefined) return createLocalKeySource(toKeySet(config.localJwks));
  const location =
    config.jwksUrl !== undefined
      ? { jwksUrl: config.jwksUrl }
      : config.discoveryUrl !== undefined
        ? { discoveryUrl: config.discoveryUrl }
        : undefined;
  // The schema guarantees exactly one source; a hand-built config without one is a programming error.
  if (location === undefined) throw new TypeError(`issuer ${config.issuer} has no key source`);
  return createRemoteKeySource({
    issuer: config.issuer,
    location,
    cacheMaxAgeMs: identity.jwksCacheMaxAgeMs,
    cooldownMs: identity.jwksCooldownMs,
    timeoutMs: identity.jwksTimeoutMs,
    now,
  });
}

/** Maps whatever verification threw onto the closed code set. Messages are ours, never token content. */
function translate(error: unknown): VerifyTokenResult {
  if (error instanceof KeysUnavailableError) return deny("KEYS_UNAVAILABLE", error.message);
  if (error instanceof errors.JWTExpired) return deny("TOKEN_EXPIRED", "token has expired");
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case "nbf":
        return deny("TOKEN_NOT_YET_VALID", "token is not valid yet (nbf is in the future)");
      case "aud":
        return deny("TOKEN_AUDIENCE_INVALID", "token audience is not accepted by this gateway");
      case "iss":
        return deny("TOKEN_ISSUER_UNKNOWN", "token issuer is not trusted");
      case "typ":
        return deny("TOKEN_MALFORMED", "token type header is not acceptable");
      default:
        return deny(
          "TOKEN_CLAIM_INVALID",
          error.reason === "missing" ? `token lacks the required "${error.claim}" claim` : `token "${error.claim}" claim is invalid`,
        );
    }
  }
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return deny("TOKEN_ALGORITHM_NOT_ALLOWED", "token algorithm is not allowed for its issuer");
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return deny("TOKEN_SIGNATURE_INVALID", "token signature does not verify");
  }
  if (error instanceof errors.JWKSNoMatchingKey) {
    return deny("TOKEN_KEY_UNKNOWN", "no key of the issuer matches the token's kid and alg");
  }
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) {
    return deny("TOKEN_MALFORMED", "token is not a well-formed signed JWT");
  }
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) {
    return deny("KEYS_UNAVAILABLE", "issuer keys are unavailable");
  }
  // jose raises TypeError for keys it refuses to use (RSA under 2048 bits, key/alg mismatch): a key problem.
  return deny("KEYS_UNAVAILABLE", "issuer key could not be used to verify the token");
}

function parseGroups(value: unknown): readonly string[] | undefined {
  if (value === undefined || value === null) return [];
  // Some issuers flatten groups into one string; commas and whitespace both separate.
  const list = typeof value === "string" ? value.split(/[\s,]+/) : value;
  if (!Array.isArray(list)) return undefined;
  const groups: string[] = [];
  for (const entry of list as unknown[]) {
    if (typeof entry !== "string") return undefined;
    if (entry !== "" && !groups.includes(entry)) groups.push(entry);
  }
  return groups;
}

function audienceOf(payload: JWTPayload): readonly string[] {
  const { aud } = payload;
  if (typeof aud === "string") return [aud];
  return Array.isArray(aud) ? aud.filter((entry): entry is string => typeof entry === "string") : [];
}

/** Checks jose does not do, then reads the identity out of the verified claims. */
function identityFrom(payload: JWTPayload, prepared: PreparedIssuer, nowSeconds: number, skewSeconds: number): VerifyTokenResult {
  const { config } = prepared;
  const { iat, exp } = payload;
  if (typeof iat !== "number" || typeof exp !== "number") return deny("TOKEN_CLAIM_INVALID", "token lacks exp or iat");
  // A future iat would stretch the usable window beyond the lifetime cap, so it is refused like a future nbf.
  if (iat > nowSeconds + skewSeconds) return deny("TOKEN_NOT_YET_VALID", "token is not valid yet (iat is in the future)");
  if (exp <= iat) return deny("TOKEN_CLAIM_INVALID", "token expires before it was issued");
  if (exp - iat > config.maxTokenLifetimeMinutes * 60) {
    return deny("TOKEN_LIFETIME_TOO_LONG", `token lifetime exceeds ${config.maxTokenLifetimeMinutes} minutes`);
  }
  for (const [name, expected] of Object.entries(config.requiredClaims ?? {})) {
    if (claim(payload, name) !== expected) {
      return deny("TOKEN_CLAIM_INVALID", `token "${name}" claim does not have the required value`);
    }
  }
  const subject = claim(payload, config.claims.subject);
  if (typeof subject !== "string" || subject === "") {
    return deny("TOKEN_CLAIM_INVALID", `token subject claim "${config.claims.subject}" is missing or not a string`);
  }
  const groups = parseGroups(claim(payload, config.claims.groups));
  if (groups === undefined) {
    return deny("TOKEN_CLAIM_INVALID", `token groups claim "${config.claims.groups}" is not a string or a list of strings`);
  }
  const session = claim(payload, config.claims.session);
  const tokenId = typeof payload.jti === "string" && payload.jti !== "" ? payload.jti : undefined;
  const sessionId = typeof session === "string" && session !== "" ? session : tokenId;
  if (sessionId === undefined) {
    return deny("TOKEN_CLAIM_INVALID", `token has neither a "${config.claims.session}" nor a "jti" claim`);
  }
  const identity: AgentIdentity = {
    subject,
    groups,
    sessionId,
    issuer: config.issuer,
    audience: audienceOf(payload),
    tokenId,
    issuedAtSeconds: iat,
    expiresAtSeconds: exp,
    claims: payload,
  };
  // Frozen all the way: the same result object is handed out again on cache hits.
  return Object.freeze({ ok: true, identity: freezeConfig(identity) });
}

/**
 * Builds a verifier for the configured issuers. Keys of remote issuers are fetched lazily or by `warm()`.
 *
 * @example
 * const verifier = createTokenVerifier(parseIdentityConfig(raw));
 * await verifier.warm();
 * const result = await verifier.verify(bearerTokenFromHeader(headers.authorization) ?? "");
 * if (!result.ok) deny(result.code);
 */
export function createTokenVerifier(config: IdentityConfig, options: TokenVerifierOptions = {}): TokenVerifier {
  const now = options.now ?? Date.now;
  const skewSeconds = config.clockSkewSeconds;
  const issuers = new Map<string, PreparedIssuer>();
  for (const issuer of options.localKeys?.keys() ?? []) {
    if (!config.issuers.some((entry) => entry.issuer === issuer)) {
      throw new TypeError(`localKeys names issuer ${issuer}, which is not configured`);
    }
  }
  for (const entry of config.issuers) {
    issuers.set(entry.issuer, {
      config: entry,
      keys: options.keySources?.get(entry.issuer) ?? keySourceFor(entry, config, options.localKeys?.get(entry.issuer), now),
      options: {
        issuer: entry.issuer,
        audience: [...entry.audiences],
        algorithms: [...entry.algorithms],
        clockTolerance: skewSeconds,
        requiredClaims: ["exp", "iat"],
      },
    });
  }

  const verified = new Map<string, VerifiedEntry>();

  function remembered(digest: string, nowMs: number): VerifyTokenResult | undefined {
    const entry = verified.get(digest);
    if (entry === undefined) return undefined;
    const nowSeconds = Math.floor(nowMs / 1000);
    const { identity } = entry.result;
    const fresh =
      nowMs >= entry.verifiedAtMs &&
      nowMs - entry.verifiedAtMs < VERIFIED_CACHE_TTL_MS &&
      identity.expiresAtSeconds > nowSeconds - skewSeconds &&
      identity.issuedAtSeconds <= nowSeconds + skewSeconds &&
      (entry.notBeforeSeconds === undefined || entry.notBeforeSeconds <= nowSeconds + skewSeconds);
    if (fresh) return entry.result;
    // Stale or outside its time window: forget it and let the full path produce the precise answer.
    verified.delete(digest);
    return undefined;
  }

  function remember(digest: string, result: VerifyTokenResult, payload: JWTPayload, nowMs: number): void {
    if (!result.ok) return;
    if (verified.size >= VERIFIED_CACHE_MAX_ENTRIES) {
      const oldest = verified.keys().next();
      if (oldest.done !== true) verified.delete(oldest.value);
    }
    const notBeforeSeconds = typeof payload.nbf === "number" ? payload.nbf : undefined;
    verified.set(digest, { result, notBeforeSeconds, verifiedAtMs: nowMs });
  }

  async function verifySignature(token: string, prepared: PreparedIssuer, options: JWTVerifyOptions): Promise<JWTPayload> {
    try {
      return (await jwtVerify(token, prepared.keys.getKey, options)).payload;
    } catch (error) {
      if (!(error instanceof errors.JWKSMultipleMatchingKeys)) throw error;
      // No kid (or a shared kid): try each candidate key, bounded, and accept the first that verifies.
      let tried = 0;
      for await (const key of error as AsyncIterable<CryptoKey>) {
        if (++tried > MAX_CANDIDATE_KEYS) break;
        try {
          return (await jwtVerify(token, key, options)).payload;
        } catch (inner) {
          if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
        }
      }
      throw new errors.JWSSignatureVerificationFailed();
    }
  }

  return {
    async verify(token) {
      if (token === "") return deny("TOKEN_MISSING", "no bearer token was presented");
      if (token.length > MAX_TOKEN_LENGTH) return deny("TOKEN_MALFORMED", `token is longer than ${MAX_TOKEN_LENGTH} characters`);
      const nowMs = now();
      const digest = createHash("sha256").update(token).digest("base64url");
      const hit = remembered(digest, nowMs);
      if (hit !== undefined) return hit;
      let unverified: JWTPayload;
      try {
        unverified = decodeJwt(token);
      } catch {
        return deny("TOKEN_MALFORMED", "token is not a well-formed signed JWT");
      }
      // The unverified iss only selects which keys to try; the signature check below re-asserts it.
      const prepared = typeof unverified.iss === "string" ? issuers.get(unverified.iss) : undefined;
      if (prepared === undefined) return deny("TOKEN_ISSUER_UNKNOWN", "token issuer is not trusted");
      let payload: JWTPayload;
      try {
        payload = await verifySignature(token, prepared, { ...prepared.options, currentDate: new Date(nowMs) });
      } catch (error) {
        return translate(error);
      }
      const result = identityFrom(payload, prepared, Math.floor(nowMs / 1000), skewSeconds);
      remember(digest, result, payload, nowMs);
      return result;
    },
    async warm() {
      const failures: IssuerWarmFailure[] = [];
      await Promise.all(
        [...issuers.values()].map(async ({ config: entry, keys }) => {
          try {
            await keys.warm();
          } catch (error) {
            failures.push({ issuer: entry.issuer, message: error instanceof Error ? error.message : "keys unavailable" });
          }
        }),
      );
      return failures;
    },
  };
}

/**
 * RFC 6750 §2.1: `Bearer <token68>`, scheme case-insensitive. Anything else (other schemes, several
 * credentials, stray characters) yields `undefined`, which callers treat as "no token".
 */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** Extracts the bearer token from an `Authorization` header value. */
export function bearerTokenFromHeader(authorization: string | undefined): string | undefined {
  // Bound the work on hostile input before the (linear) match.
  if (authorization === undefined || authorization.length > MAX_TOKEN_LENGTH + 64) return undefined;
  return BEARER.exec(authorization)?.[1];
}
