/**
 * @module bin/development-identity
 * Builds the agent and approver token verifiers from configuration: the development issuer (keys under stateDir,
 * separate audiences so an agent token can never approve), OIDC issuers, and Airlock's own exchange issuer.
 */
import type { JSONWebKeySet } from "jose";
import { devIdentityConfig, openDevIssuer, type DevIssuer } from "../authz/identity/dev-issuer.js";
import { parseIdentityConfig, type IdentityConfig } from "../authz/identity/identity-config.js";
import type { KeySource } from "../authz/identity/key-source.js";
import { createTokenVerifier, type TokenVerifier } from "../authz/identity/token-verifier.js";
import { exchangeIssuerEntry } from "../authz/exchange/exchange-issuer-identity.js";
import type { ExchangeKeyRing } from "../authz/exchange/exchange-key-ring.js";
import { createKeyRingKeySource } from "../authz/exchange/key-ring-key-source.js";
import type { AirlockConfig } from "./airlock-config.js";

/** Audience of development approver tokens (`airlock token --approver`); agents' tokens use DEV_AUDIENCE. */
export const DEV_APPROVER_AUDIENCE = "airlock-approvers";

export interface Verifiers {
  readonly agent: TokenVerifier;
  readonly approver: TokenVerifier;
  /** Present when either side uses the development issuer; its JWKS is served over HTTP. */
  readonly devIssuer: DevIssuer | undefined;
}

/**
 * @param exchangeKeys Airlock's exchange key ring when token exchange is enabled: its tokens are agent tokens, checked
 * against the live ring (rotation needs no rebuild).
 */
export async function buildVerifiers(config: AirlockConfig, exchangeKeys?: ExchangeKeyRing): Promise<Verifiers> {
  const needsDev = config.identity === "development" || config.approverIdentity === "development";
  const devIssuer = needsDev ? await openDevIssuer(config.stateDir) : undefined;
  const make = (section: AirlockConfig["identity"], audience: string | undefined, acceptExchange: boolean): TokenVerifier => {
    const localKeys = new Map<string, JSONWebKeySet>();
    const keySources = new Map<string, KeySource>();
    let identity: IdentityConfig;
    if (section === "development") {
      if (!devIssuer) throw new Error("development issuer missing");
      identity = devIdentityConfig(devIssuer, audience === undefined ? {} : { audience });
      localKeys.set(devIssuer.issuer, devIssuer.jwks());
    } else {
      identity = section;
    }
    if (acceptExchange && exchangeKeys) {
      identity = parseIdentityConfig({
        ...identity,
        issuers: [...identity.issuers, exchangeIssuerEntry(config.tokenExchange, exchangeKeys.jwks())],
      });
      keySources.set(config.tokenExchange.issuer, createKeyRingKeySource(exchangeKeys));
    }
    return createTokenVerifier(identity, { localKeys, keySources });
  };
  return {
    agent: make(config.identity, undefined, true),
    // Exchanged tokens are agent credentials: never accepted as approver tokens.
    approver: make(config.approverIdentity, DEV_APPROVER_AUDIENCE, false),
    devIssuer,
  };
}
