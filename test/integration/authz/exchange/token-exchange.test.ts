/**
 * @module test/integration/authz/exchange/token-exchange.test
 * RFC 8693 exchange end to end over real HTTP: a test OIDC issuer on port 0, the fastify routes on port 0, the
 * exchanged token checked the way ext_authz checks it (createTokenVerifier + scopeAllows), RFC errors, rotation.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { readAgentScope, scopeAllows } from "../../../../authz/exchange/agent-scope.js";
import { createRotatingVerifier, withExchangeIssuer } from "../../../../authz/exchange/exchange-issuer-identity.js";
import { createKeyRingKeySource } from "../../../../authz/exchange/key-ring-key-source.js";
import { CLIENT_SECRET_TOKEN_TYPE, JWT_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT_TYPE } from "../../../../authz/exchange/token-exchange.js";
import { parseIdentityConfig } from "../../../../authz/identity/identity-config.js";
import { createTokenVerifier } from "../../../../authz/identity/token-verifier.js";
import type { TokenVerifier } from "../../../../authz/identity/token-verifier.js";
import { startExchangeHarness } from "./exchange-harness.js";
import type { ExchangeHarness } from "./exchange-harness.js";

const DEV_ISSUER_STUB = {
  issuer: "https://other.invalid",
  localJwks: { keys: [{ kty: "EC", crv: "P-256", x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", kid: "x" }] },
  audiences: ["airlock"],
  algorithms: ["ES256"],
};

let harness: ExchangeHarness;
let agentVerifier: TokenVerifier & { close(): void };

function form(subjectToken: string, extra: Record<string, string> = {}): Record<string, string> {
  return { grant_type: TOKEN_EXCHANGE_GRANT_TYPE, subject_token: subjectToken, subject_token_type: JWT_TOKEN_TYPE, ...extra };
}

/** What ext_authz does with an exchanged token: verify as an agent token, then the scope after the policy. */
async function extAuthz(token: string, request: { verb: string; namespace: string; resourceRequest: boolean }): Promise<string> {
  const verified = await agentVerifier.verify(token);
  if (!verified.ok) return `deny:${verified.code}`;
  const scope = readAgentScope(verified.identity.claims);
  if (!scope.ok) return "deny:scope-malformed";
  const verdict = scopeAllows(scope.scope, request);
  return verdict.ok ? `allow:${verified.identity.subject}` : `deny:${verdict.reason}`;
}

beforeAll(async () => {
  harness = await startExchangeHarness();
  // The agent identity configuration ext_authz would use: some other issuer plus the exchange issuer.
  const base = parseIdentityConfig({ issuers: [DEV_ISSUER_STUB] });
  agentVerifier = createRotatingVerifier(harness.keyRing, () => {
    const { config, localKeys } = withExchangeIssuer(base, harness.config, harness.keyRing);
    return createTokenVerifier(config, { localKeys });
  });
});

afterAll(async () => {
  agentVerifier.close();
  await harness.close();
});

describe("token exchange with an OIDC subject token", () => {
  it("exchanges a trusted CI token for an Airlock token that passes ext_authz inside its scope", async () => {
    const { status, headers, body } = await harness.post(form(await harness.ciToken()));
    expect(status).toBe(200);
    expect(headers.get("cache-control")).toBe("no-store");
    expect(body).toMatchObject({ issued_token_type: JWT_TOKEN_TYPE, token_type: "Bearer", expires_in: 900, scope: "namespace:dev namespace:staging-*" });
    const token = String(body.access_token);
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({
      iss: "https://airlock.invalid/exchange",
      aud: "airlock",
      sub: "repo:acme/app:ref:refs/heads/main",
      groups: ["ci-agents"],
      airlock_scope: { namespaces: ["dev", "staging-*"] },
      airlock_grant: "rule:ci-deploy",
    });
    expect(claims.sid).toMatch(/^[0-9a-f-]{36}$/);
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(900);
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: "ES256", kid: harness.keyRing.signingKey().kid });

    expect(await extAuthz(token, { verb: "list", namespace: "dev", resourceRequest: true })).toBe("allow:repo:acme/app:ref:refs/heads/main");
    expect(await extAuthz(token, { verb: "delete", namespace: "staging-eu", resourceRequest: true })).toMatch(/^allow:/);
    expect(await extAuthz(token, { verb: "get", namespace: "prod", resourceRequest: true })).toMatch(/outside the token's scope/);
    expect(await extAuthz(token, { verb: "list", namespace: "", resourceRequest: true })).toMatch(/cluster-scoped/);
  });

  it("gives every exchange a fresh session id", async () => {
    const a = await harness.post(form(await harness.ciToken()));
    const b = await harness.post(form(await harness.ciToken()));
    expect(decodeJwt(String(a.body.access_token)).sid).not.toBe(decodeJwt(String(b.body.access_token)).sid);
  });

  it("narrows with a requested scope, and refuses a scope wider than the trust rule with invalid_scope", async () => {
    const narrowed = await harness.post(form(await harness.ciToken(), { scope: "namespace:staging-eu read-only" }));
    expect(narrowed.status).toBe(200);
    expect(narrowed.body.scope).toBe("read-only namespace:staging-eu");
    const token = String(narrowed.body.access_token);
    expect(await extAuthz(token, { verb: "get", namespace: "staging-eu", resourceRequest: true })).toMatch(/^allow:/);
    expect(await extAuthz(token, { verb: "patch", namespace: "staging-eu", resourceRequest: true })).toMatch(/read-only/);
    expect(await extAuthz(token, { verb: "get", namespace: "dev", resourceRequest: true })).toMatch(/outside/);

    const wider = await harness.post(form(await harness.ciToken(), { scope: "namespace:prod" }));
    expect(wider.status).toBe(400);
    expect(wider.body).toEqual({ error: "invalid_scope", error_description: expect.stringContaining("prod") as string });
    const globWider = await harness.post(form(await harness.ciToken(), { scope: "namespace:staging*" }));
    expect(globWider.body.error).toBe("invalid_scope");
    const malformed = await harness.post(form(await harness.ciToken(), { scope: "admin" }));
    expect(malformed.body.error).toBe("invalid_scope");
  });

  it("answers invalid_grant for an untrusted issuer, a wrong audience, an expired token, unmet claim conditions", async () => {
    const cases: [string, string, RegExp][] = [
      ["untrusted issuer", await harness.rogueToken(), /issuer is not trusted/],
      ["wrong audience", await harness.ciToken({ aud: "someone-else" }), /audience/],
      ["expired", await harness.ciToken({ issuedAtSeconds: Math.floor(Date.now() / 1000) - 600, ttlSeconds: 300 }), /expired/],
      ["claim condition", await harness.ciToken({ repository_owner: "evil" }), /repository_owner/],
      ["not a JWT", "not-a-jwt", /well-formed/],
    ];
    for (const [name, token, description] of cases) {
      const { status, body } = await harness.post(form(token));
      expect({ name, status, error: body.error }).toEqual({ name, status: 400, error: "invalid_grant" });
      expect(String(body.error_description)).toMatch(description);
    }
  });

  it("answers the RFC errors for malformed requests", async () => {
    const ci = await harness.ciToken();
    const expectations: [Record<string, string> | string, string, number][] = [
      [{ subject_token: ci, subject_token_type: JWT_TOKEN_TYPE }, "invalid_request", 400],
      [form(ci, { grant_type: "client_credentials" }), "unsupported_grant_type", 400],
      [{ grant_type: TOKEN_EXCHANGE_GRANT_TYPE, subject_token_type: JWT_TOKEN_TYPE }, "invalid_request", 400],
      [form(ci, { subject_token_type: "urn:ietf:params:oauth:token-type:saml2" }), "invalid_request", 400],
      [form(ci, { actor_token: ci, actor_token_type: JWT_TOKEN_TYPE }), "invalid_request", 400],
      [form(ci, { audience: "kubernetes" }), "invalid_target", 400],
      [`${new URLSearchParams(form(ci)).toString()}&scope=read-only&scope=namespace:dev`, "invalid_request", 400],
    ];
    for (const [body, error, status] of expectations) {
      const response = await harness.post(body);
      expect({ status: response.status, error: response.body.error }).toEqual({ status, error });
      expect(typeof response.body.error_description).toBe("string");
    }
    const json = await harness.post(JSON.stringify(form(ci)), "application/json");
    expect({ status: json.status, error: json.body.error }).toEqual({ status: 400, error: "invalid_request" });
  });
});

describe("token exchange with a registered client's secret", () => {
  const clientForm = (secret: string, clientId = "agent-1"): Record<string, string> => ({
    grant_type: TOKEN_EXCHANGE_GRANT_TYPE,
    subject_token: secret,
    subject_token_type: CLIENT_SECRET_TOKEN_TYPE,
    client_id: clientId,
  });

  it("issues a token carrying the client's groups and read-only scope", async () => {
    const { status, body } = await harness.post(clientForm(harness.clientSecret));
    expect(status).toBe(200);
    expect(body.scope).toBe("read-only");
    const token = String(body.access_token);
    expect(decodeJwt(token)).toMatchObject({ sub: "agent-1", groups: ["agents"], airlock_grant: "client:agent-1" });
    expect(await extAuthz(token, { verb: "watch", namespace: "", resourceRequest: true })).toBe("allow:agent-1");
    expect(await extAuthz(token, { verb: "create", namespace: "dev", resourceRequest: true })).toMatch(/read-only/);
  });

  it("refuses a wrong secret and an unknown client alike, and a disabled client with unauthorized_client", async () => {
    const wrong = await harness.post(clientForm("wrong-secret-0123456789abcdefgh"));
    const unknown = await harness.post(clientForm(harness.clientSecret, "nobody"));
    expect(wrong.body).toEqual(unknown.body);
    expect(wrong.body.error).toBe("invalid_grant");
    const disabled = await harness.post(clientForm(harness.clientSecret, "agent-off"));
    expect({ status: disabled.status, error: disabled.body.error }).toEqual({ status: 400, error: "unauthorized_client" });
    const noClientId = await harness.post({ ...clientForm(harness.clientSecret), client_id: "" });
    expect(noClientId.body.error).toBe("invalid_request");
  });

  it("records every attempt as an audit event without token or secret material", () => {
    expect(harness.events.length).toBeGreaterThan(10);
    const issued = harness.events.filter((event) => event.outcome === "issued");
    const refused = harness.events.filter((event) => event.outcome === "refused");
    expect(issued.length).toBeGreaterThan(0);
    expect(refused.map((event) => event.error)).toEqual(expect.arrayContaining(["invalid_grant", "invalid_scope", "unauthorized_client", "invalid_request"]));
    const text = JSON.stringify(harness.events);
    expect(text).not.toContain(harness.clientSecret);
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/);
    expect(issued[0]).toMatchObject({ grant: expect.stringMatching(/^(rule|client):/) as string, sessionId: expect.stringMatching(/[0-9a-f-]{36}/) as string });
  });
});

describe("rate limiting", () => {
  it("answers 429 invalid_request with Retry-After once a client's bucket is empty", async () => {
    const limited = await startExchangeHarness({ rateLimit: { burst: 2, refillPerMinute: 1 } });
    try {
      const statuses: number[] = [];
      let last: Awaited<ReturnType<ExchangeHarness["post"]>> | undefined;
      for (let i = 0; i < 3; i++) {
        last = await limited.post(form(await limited.ciToken()));
        statuses.push(last.status);
      }
      expect(statuses).toEqual([200, 200, 429]);
      expect(last?.body.error).toBe("invalid_request");
      expect(Number(last?.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      // Another subject has its own bucket.
      const other = await limited.post(form(await limited.ciToken({ sub: "repo:acme/other:ref:refs/heads/main" })));
      expect(other.status).toBe(200);
    } finally {
      await limited.close();
    }
  });
});

describe("keys", () => {
  it("publishes the JWKS and RFC 8414 metadata", async () => {
    const jwks = (await (await fetch(`${harness.url}/.well-known/airlock/exchange-jwks.json`)).json()) as { keys: Record<string, unknown>[] };
    expect(jwks.keys.map((key) => key.kid)).toContain(harness.keyRing.signingKey().kid);
    for (const key of jwks.keys) expect(key).not.toHaveProperty("d");
    const metadata = (await (await fetch(`${harness.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(metadata).toMatchObject({ token_endpoint: `${harness.url}/oauth2/token`, grant_types_supported: [TOKEN_EXCHANGE_GRANT_TYPE] });
  });

  it("keeps tokens signed before a rotation valid until they expire, then stops publishing the old key", async () => {
    const rotating = await startExchangeHarness({ maxTokenLifetimeSeconds: 120 });
    const base = parseIdentityConfig({ issuers: [DEV_ISSUER_STUB] });
    const rebuilt = createRotatingVerifier(rotating.keyRing, () => {
      const { config, localKeys } = withExchangeIssuer(base, rotating.config, rotating.keyRing);
      return createTokenVerifier(config, { localKeys });
    });
    // The same check through a live key source (what a `keySources` option in createTokenVerifier would use).
    const keySource = createKeyRingKeySource(rotating.keyRing);
    try {
      const before = String((await rotating.post(form(await rotating.ciToken()))).body.access_token);
      const oldKid = decodeProtectedHeader(before).kid;
      await rotating.keyRing.rotate();
      const after = String((await rotating.post(form(await rotating.ciToken()))).body.access_token);
      const newKid = decodeProtectedHeader(after).kid;
      expect(newKid).not.toBe(oldKid);
      expect((await rebuilt.verify(before)).ok).toBe(true);
      expect((await rebuilt.verify(after)).ok).toBe(true);
      const published = rotating.keyRing.jwks().keys.map((key) => key.kid);
      expect(published).toEqual([newKid, oldKid]);
      await expect(keySource.getKey({ alg: "ES256", kid: oldKid ?? "" }, { payload: "", signature: "" })).resolves.toBeDefined();

      // Past retirement + max lifetime + skew, the old key is gone: its tokens have all expired anyway.
      rotating.setNow(Date.now() + (120 + 30 + 1) * 1000);
      expect(rotating.keyRing.jwks().keys.map((key) => key.kid)).toEqual([newKid]);
      await expect(keySource.getKey({ alg: "ES256", kid: oldKid ?? "" }, { payload: "", signature: "" })).rejects.toThrow();
    } finally {
      rebuilt.close();
      await rotating.close();
    }
  });
});
