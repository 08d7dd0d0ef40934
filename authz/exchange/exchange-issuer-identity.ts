/**
 * @module authz/exchange/exchange-issuer-identity
 * Makes the agent verifier (ext_authz) accept exchanged tokens: the exchange issuer as an identity issuer entry,
 * and a verifier that follows key rotation.
 */
import type { JSONWebKeySet } from "jose";
import { parseIdentityConfig } from "../identity/identity-config.js";
import type { IdentityConfig } from "../identity/identity-config.js";
import type { IssuerWarmFailure, TokenVerifier, VerifyTokenResult } from "../identity/token-verifier.js";
import type { ExchangeKeyRing } from "./exchange-key-ring.js";
import type { TokenExchangeConfig } from "./exchange-config.js";

/**
 * The identity issuer entry (raw, as written in YAML) that accepts exactly the exchanged tokens: our issuer, our
 * audience, ES256 only, and a lifetime cap equal to the exchange maximum (rounded up to whole minutes).
 */
export function exchangeIssuerEntry(config: TokenExchangeConfig, jwks: JSONWebKeySet): Record<string, unknown> {
  return {
    issuer: config.issuer,
    localJwks: { keys: jwks.keys.map((key) => ({ ...key })) },
    audiences: [config.audience],
    algorithms: ["ES256"],
    maxTokenLifetimeMinutes: Math.ceil(config.maxTokenLifetimeSeconds / 60),
  };
}

/**
 * The agent identity configuration plus the exchange issuer, and the `localKeys` map to pass to
 * `createTokenVerifier` (the ring's current public keys). Throws IdentityConfigError if `identity` already
 * trusts an issuer with the exchange issuer's name.
 */
export function withExchangeIssuer(
  identity: IdentityConfig,
  config: TokenExchangeConfig,
  keyRing: ExchangeKeyRing,
): { readonly config: IdentityConfig; readonly localKeys: ReadonlyMap<string, JSONWebKeySet> } {
  const jwks = keyRing.jwks();
  return {
    config: parseIdentityConfig({ ...identity, issuers: [...identity.issuers, exchangeIssuerEntry(config, jwks)] }),
    localKeys: new Map([[config.issuer, jwks]]),
  };
}

/** A verifier that is rebuilt whenever the key ring changes; `close` stops following the ring. */
export interface RotatingVerifier extends TokenVerifier {
  close(): void;
}

/**
 * Follows key rotation with `createTokenVerifier` as it is today (a fixed `localKeys` snapshot): `build` is called
 * now and after every ring change, and requests use the newest instance. Retired keys stay in the ring's JWKS for a
 * full token lifetime, so tokens signed before a rotation keep verifying. (With a `keySources` option in
 * createTokenVerifier, `createKeyRingKeySource` would make this wrapper unnecessary.)
 */
export function createRotatingVerifier(keyRing: ExchangeKeyRing, build: () => TokenVerifier): RotatingVerifier {
  let current = build();
  const unsubscribe = keyRing.onChange(() => {
    current = build();
  });
  return {
    verify: (token: string): Promise<VerifyTokenResult> => current.verify(token),
    warm: (): Promise<readonly IssuerWarmFailure[]> => current.warm(),
    close: unsubscribe,
  };
}
