/**
 * @module test/integration/authz/exchange/serve-exchange
 * Token exchange through the composed server (`startAirlock`, as `airlock serve` runs it): a CI token from a test
 * OIDC issuer on port 0 is exchanged over HTTP, and the Airlock token then passes ext_authz inside its scope only.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAirlockConfig } from "../../../../bin/airlock-config.js";
import { startAirlock, type RunningAirlock } from "../../../../bin/start-airlock.js";
import { createCheckClient, dynamicMetadata, envoyCheckRequest, type CheckClient } from "../../../helpers/check-client.js";
import { startIssuerServer, type IssuerServer } from "../identity/issuer-server.js";

let issuer: IssuerServer;
let airlock: RunningAirlock;
let client: CheckClient;
let ciToken: () => Promise<string>;

beforeAll(async () => {
  issuer = await startIssuerServer();
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  issuer.keys = [{ ...(await exportJWK(publicKey)), kid: "ci-1", alg: "ES256", use: "sig" }];
  ciToken = () =>
    new SignJWT({ repository_owner: "acme", jti: crypto.randomUUID() })
      .setProtectedHeader({ alg: "ES256", kid: "ci-1" })
      .setIssuer(issuer.origin)
      .setAudience("airlock-exchange")
      .setSubject("repo:acme/app:ref:refs/heads/main")
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(privateKey);
  airlock = await startAirlock(
    parseAirlockConfig(
      {
        stateDir: mkdtempSync(join(tmpdir(), "airlock-serve-exchange-")),
        logLevel: "silent",
        server: { grpcAddress: "127.0.0.1:0", httpAddress: "127.0.0.1:0" },
        approvals: { publicUrl: "http://127.0.0.1:1" },
        tokenExchange: {
          enabled: true,
          trustRules: [
            {
              id: "ci",
              oidc: {
                issuer: issuer.origin,
                discoveryUrl: issuer.discoveryUrl,
                audiences: ["airlock-exchange"],
                algorithms: ["ES256"],
                requiredClaims: { repository_owner: "acme" },
              },
              groups: ["agents"],
              scope: { namespaces: ["dev-*"], readOnly: true },
            },
          ],
        },
      },
      "test",
    ),
  );
  client = createCheckClient(airlock.grpcAddress);
});

afterAll(async () => {
  client.close();
  await airlock.close();
  await issuer.close();
});

async function exchange(subjectToken: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${airlock.httpUrl}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      subject_token: subjectToken,
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
    }).toString(),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe("token exchange in airlock serve", () => {
  it("exchanges a trusted CI token; the Airlock token is allowed in scope and denied outside it", async () => {
    const exchanged = await exchange(await ciToken());
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    const token = String(exchanged.body.access_token);
    expect(Number(exchanged.body.expires_in)).toBeLessThanOrEqual(900);

    const inScope = await client.check(envoyCheckRequest({ method: "GET", path: "/api/v1/namespaces/dev-a/pods", token }));
    expect(inScope.status?.code).toBe(grpc.status.OK);
    expect(dynamicMetadata(inScope)).toMatchObject({ subject: "repo:acme/app:ref:refs/heads/main", groups: ["agents"] });

    const otherNamespace = await client.check(envoyCheckRequest({ method: "GET", path: "/api/v1/namespaces/prod-a/pods", token }));
    expect(otherNamespace.status?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(otherNamespace.denied_response?.body).toContain("outside the token's scope");

    // Read-only scope: a write the policy would allow for agents in dev-* is still refused.
    const write = await client.check(envoyCheckRequest({ method: "DELETE", path: "/api/v1/namespaces/dev-a/configmaps/c", token }));
    expect(write.status?.code).toBe(grpc.status.PERMISSION_DENIED);

    // The exchange is the first row of the session it opened, with no token material in it.
    await airlock.audit.flush();
    const store = airlock.audit.store;
    const sessionId = dynamicMetadata(inScope).session_id;
    if (typeof sessionId !== "string" || sessionId === "") throw new Error("the Check carried no session id");
    const rows = await store.queryRows<{ path: string; effect: string; response_outcome: string; reason: string; request_body: string }>(
      `SELECT path, effect, response_outcome, reason, request_body FROM ${store.database}.requests FINAL WHERE session_id = {session:String} ORDER BY time_us`,
      { session: sessionId },
    );
    expect(rows[0]).toMatchObject({ path: "/oauth2/token", effect: "Allow", response_outcome: "answered_by_gateway" });
    // Denied requests are written at once (allowed ones wait for their ext_proc exchange, which this test has not).
    expect(rows.map((row) => row.path)).toContain("/api/v1/namespaces/prod-a/pods");
    expect(JSON.stringify(rows)).not.toContain(token);
    expect(JSON.stringify(rows)).not.toContain(token.split(".")[1]);
  });

  it("publishes the exchange JWKS and refuses an untrusted subject token with invalid_grant", async () => {
    const jwks = (await (await fetch(`${airlock.httpUrl}/.well-known/airlock/exchange-jwks.json`)).json()) as { keys: unknown[] };
    expect(jwks.keys.length).toBeGreaterThan(0);
    const { privateKey } = await generateKeyPair("ES256");
    const rogue = await new SignJWT({}).setProtectedHeader({ alg: "ES256" }).setIssuer("https://rogue.invalid").setAudience("airlock-exchange")
      .setSubject("x").setIssuedAt().setExpirationTime("5m").sign(privateKey);
    const refused = await exchange(rogue);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe("invalid_grant");
  });
});
