/**
 * @module test/integration/authz/exchange/exchange-harness
 * Starts a real token exchange for tests: a test OIDC issuer on 127.0.0.1:0, an embedded key ring in a temporary
 * state directory, and a fastify app on 127.0.0.1:0 with the exchange routes; all stopped by close().
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Fastify from "fastify";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import type { CryptoKey, JWTPayload } from "jose";
import { hashClientSecret } from "../../../../authz/exchange/client-secret.js";
import { parseTokenExchangeConfig } from "../../../../authz/exchange/exchange-config.js";
import type { TokenExchangeConfig } from "../../../../authz/exchange/exchange-config.js";
import { openEmbeddedKeyRing } from "../../../../authz/exchange/exchange-key-ring.js";
import type { ExchangeKeyRing } from "../../../../authz/exchange/exchange-key-ring.js";
import { createTokenExchangeService } from "../../../../authz/exchange/token-exchange.js";
import type { TokenExchangeAuditEvent } from "../../../../authz/exchange/token-exchange.js";
import { registerTokenExchangeRoutes } from "../../../../authz/exchange/token-exchange-routes.js";
import { startIssuerServer } from "../identity/issuer-server.js";
import type { IssuerServer } from "../identity/issuer-server.js";

/** A signing key of the test OIDC issuer. */
export interface IssuerKey {
  readonly kid: string;
  readonly privateKey: CryptoKey;
}

export interface ExchangeHarness {
  readonly url: string;
  readonly stateDir: string;
  readonly config: TokenExchangeConfig;
  readonly keyRing: ExchangeKeyRing;
  readonly issuer: IssuerServer;
  /** A second, untrusted issuer (same key type, not in any trust rule). */
  readonly rogue: IssuerServer;
  readonly events: TokenExchangeAuditEvent[];
  /** The registered client's secret (its hash is in the config). */
  readonly clientSecret: string;
  /** Signs a CI-like token with the trusted issuer's key; `claims` override the defaults. */
  ciToken(claims?: JWTPayload & { readonly ttlSeconds?: number; readonly issuedAtSeconds?: number }): Promise<string>;
  /** Signs with the rogue issuer's key. */
  rogueToken(claims?: JWTPayload): Promise<string>;
  /** Sets the harness clock (epoch ms) used by the service and the key ring; undefined = real time. */
  setNow(ms: number | undefined): void;
  /** POSTs a form to the token endpoint. */
  post(form: Record<string, string> | string, contentType?: string): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

async function newIssuerKey(kid: string): Promise<{ key: IssuerKey; publicJwk: Record<string, unknown> }> {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  return { key: { kid, privateKey }, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" } };
}

export interface HarnessOptions {
  readonly maxTokenLifetimeSeconds?: number;
  readonly rateLimit?: { readonly burst: number; readonly refillPerMinute: number };
  readonly extra?: Record<string, unknown>;
}

export async function startExchangeHarness(options: HarnessOptions = {}): Promise<ExchangeHarness> {
  const stateDir = await mkdtemp(join(tmpdir(), "airlock-exchange-"));
  const issuer = await startIssuerServer();
  const rogue = await startIssuerServer();
  const trusted = await newIssuerKey("ci-key-1");
  const rogueKey = await newIssuerKey("rogue-key-1");
  issuer.keys = [trusted.publicJwk];
  rogue.keys = [rogueKey.publicJwk];
  const clientSecret = "test-client-secret-0123456789abcdef";
  const hash = await hashClientSecret(clientSecret, { cost: 1024 });
  const config = parseTokenExchangeConfig({
    enabled: true,
    maxTokenLifetimeSeconds: options.maxTokenLifetimeSeconds ?? 900,
    rateLimit: options.rateLimit ?? { burst: 1000, refillPerMinute: 6000 },
    trustRules: [
      {
        id: "ci-deploy",
        oidc: {
          issuer: issuer.origin,
          discoveryUrl: issuer.discoveryUrl,
          audiences: ["airlock-exchange"],
          algorithms: ["ES256"],
          maxTokenLifetimeMinutes: 60,
          requiredClaims: { repository_owner: "acme" },
        },
        groups: ["ci-agents"],
        scope: { namespaces: ["dev", "staging-*"] },
      },
    ],
    clients: [
      { clientId: "agent-1", secretHash: hash, groups: ["agents"], scope: { readOnly: true } },
      { clientId: "agent-off", secretHash: hash, enabled: false },
    ],
    ...options.extra,
  });
  let fixedNow: number | undefined;
  const now = (): number => fixedNow ?? Date.now();
  const keyRing = await openEmbeddedKeyRing({
    stateDir,
    rotateAfterDays: 30,
    maxTokenLifetimeSeconds: config.maxTokenLifetimeSeconds,
    clockSkewSeconds: config.clockSkewSeconds,
    now,
  });
  const events: TokenExchangeAuditEvent[] = [];
  const service = createTokenExchangeService({ config, keyRing, now, recordExchange: (event) => events.push(event) });
  const app = Fastify({ logger: false });
  await registerTokenExchangeRoutes(app, { service, keyRing, config });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`;

  function sign(key: IssuerKey, iss: string, claims: JWTPayload & { ttlSeconds?: number; issuedAtSeconds?: number }): Promise<string> {
    const { ttlSeconds = 300, issuedAtSeconds = Math.floor(now() / 1000), ...rest } = claims;
    return new SignJWT({ sub: "repo:acme/app:ref:refs/heads/main", aud: "airlock-exchange", repository_owner: "acme", ...rest })
      .setProtectedHeader({ alg: "ES256", kid: key.kid, typ: "JWT" })
      .setIssuer(iss)
      .setIssuedAt(issuedAtSeconds)
      .setExpirationTime(issuedAtSeconds + ttlSeconds)
      .setJti(crypto.randomUUID())
      .sign(key.privateKey);
  }

  return {
    url,
    stateDir,
    config,
    keyRing,
    issuer,
    rogue,
    events,
    clientSecret,
    ciToken: (claims = {}) => sign(trusted.key, issuer.origin, claims),
    rogueToken: (claims = {}) => sign(rogueKey.key, rogue.origin, claims),
    setNow(ms) {
      fixedNow = ms;
    },
    async post(form, contentType = "application/x-www-form-urlencoded") {
      const response = await fetch(`${url}/oauth2/token`, {
        method: "POST",
        headers: { "content-type": contentType },
        body: typeof form === "string" ? form : new URLSearchParams(form).toString(),
      });
      return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
    },
    async close() {
      await app.close();
      keyRing.close();
      await issuer.close();
      await rogue.close();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}
