/**
 * @module bin/development-identity
 * Builds the agent and approver token verifiers from configuration; in development mode both trust the built-in
 * issuer (keys under stateDir), with separate audiences so an agent token can never approve.
 */
import type { JSONWebKeySet } from "jose";
import { devIdentityConfig, openDevIssuer, type DevIssuer } from "../authz/identity/dev-issuer.js";
import { createTokenVerifier, type TokenVerifier } from "../authz/identity/token-verifier.js";
import type { AirlockConfig } from "./airlock-config.js";

/** Audience of development approver tokens (`airlock token --approver`); agents' tokens use DEV_AUDIENCE. */
export const DEV_APPROVER_AUDIENCE = "airlock-approvers";

export interface Verifiers {
  readonly agent: TokenVerifier;
  readonly approver: TokenVerifier;
  /** Present when either side uses the development issuer; its JWKS is served over HTTP. */
  readonly devIssuer: DevIssuer | undefined;
}

export async function buildVerifiers(config: AirlockConfig): Promise<Verifiers> {
  const needsDev = config.identity === "development" || config.approverIdentity === "development";
  const devIssuer = needsDev ? await openDevIssuer(config.stateDir) : undefined;
  const make = (section: AirlockConfig["identity"], audience: string | undefined): TokenVerifier => {
    if (section !== "development") return createTokenVerifier(section);
    if (!devIssuer) throw new Error("development issuer missing");
    const localKeys = new Map<string, JSONWebKeySet>([[devIssuer.issuer, devIssuer.jwks()]]);
    return createTokenVerifier(devIdentityConfig(devIssuer, audience === undefined ? {} : { audience }), { localKeys });
  };
  return {
    agent: make(config.identity, undefined),
    approver: make(config.approverIdentity, DEV_APPROVER_AUDIENCE),
    devIssuer,
  };
}
