/**
 * @module test/integration/authz/check/ext-authz-server
 * A real grpc-js client sends Envoy-shaped CheckRequests to Airlock's composed server on port 0 (the same code
 * `airlock serve` runs) and checks outcomes, header mutations, Status bodies, deadlines and malformed requests.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { importJWK, SignJWT, type JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDevIssuer, DEV_ISSUER, DEV_AUDIENCE, DEV_ISSUER_KEY_FILE, type DevIssuer } from "../../../../authz/identity/dev-issuer.js";
import { parseAirlockConfig } from "../../../../bin/airlock-config.js";
import { startAirlock, type RunningAirlock } from "../../../../bin/start-airlock.js";
import { loadEnvoyServices } from "../../../../protos/load.js";
import { createCheckClient, dynamicMetadata, envoyCheckRequest, setHeaders, type CheckClient } from "../../../helpers/check-client.js";

let stateDir: string;
let airlock: RunningAirlock;
let client: CheckClient;
let issuer: DevIssuer;
let agentToken: string;

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), "airlock-authz-"));
  const config = parseAirlockConfig(
    {
      stateDir,
      logLevel: "silent",
      server: { grpcAddress: "127.0.0.1:0", httpAddress: "127.0.0.1:0" },
      approvals: { publicUrl: "http://127.0.0.1:1" },
    },
    "test",
  );
  airlock = await startAirlock(config);
  client = createCheckClient(airlock.grpcAddress);
  issuer = await openDevIssuer(stateDir);
  agentToken = await issuer.issue({ subject: "ci-bot", groups: ["agents"], ttlSeconds: 300, sessionId: "sess-42" });
});

afterAll(async () => {
  client.close();
  await airlock.close();
});

function statusBody(body: string): { kind: string; apiVersion: string; code: number; reason: string; message: string; details?: Record<string, unknown> } {
  return JSON.parse(body) as { kind: string; apiVersion: string; code: number; reason: string; message: string };
}

describe("allowed requests", () => {
  it("allows kubectl get pods and rewrites headers for the upstream", async () => {
    const response = await client.check(
      envoyCheckRequest({
        method: "GET",
        path: "/api/v1/namespaces/default/pods?limit=500",
        token: agentToken,
        headers: {
          "impersonate-user": "system:admin",
          "impersonate-group": "system:masters",
          "impersonate-extra-scopes": "all",
          "x-remote-user": "admin",
          "x-forwarded-for": "10.1.2.3",
        },
      }),
    );
    expect(response.status?.code).toBe(grpc.status.OK);
    expect(response.http_response).toBe("ok_response");
    const removed = new Set(response.ok_response?.headers_to_remove);
    for (const name of ["authorization", "impersonate-user", "impersonate-group", "impersonate-extra-scopes", "x-remote-user", "x-forwarded-for", "accept-encoding"]) {
      expect(removed.has(name), name).toBe(true);
    }
    const set = setHeaders(response);
    expect([...set.keys()].some((name) => name.startsWith("impersonate-"))).toBe(false);
    expect(set.get("accept")?.[0]).toContain("as=Table");
    const metadata = dynamicMetadata(response);
    expect(metadata).toMatchObject({
      subject: "ci-bot",
      session_id: "sess-42",
      effect: "Allow",
      request_id: "11111111-2222-3333-4444-555555555555",
      kube: { verb: "list", resource: "pods", namespace: "default", api_version: "v1" },
    });
    expect(typeof metadata.decision_id).toBe("string");
    expect(metadata.rule_ids).toEqual(["agents-read"]);
  });
});

describe("denied requests", () => {
  it("denies binding cluster-admin with a Kubernetes Status body", async () => {
    const body = Buffer.from(
      JSON.stringify({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRoleBinding",
        metadata: { name: "agent-admin" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
        subjects: [{ kind: "ServiceAccount", name: "agent", namespace: "default" }],
      }),
    );
    const response = await client.check(envoyCheckRequest({ method: "POST", path: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", token: agentToken, body }));
    expect(response.status?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(response.denied_response?.status?.code).toBe("Forbidden");
    const headers = new Map((response.denied_response?.headers ?? []).map((h) => [h.header?.key, h.header?.value]));
    expect(headers.get("content-type")).toBe("application/json");
    const status = statusBody(response.denied_response?.body ?? "");
    expect(status).toMatchObject({ kind: "Status", apiVersion: "v1", code: 403, reason: "Forbidden" });
    expect(status.message).toContain("no-clusterrolebinding-writes");
    expect(status.message).not.toMatch(/Error:|at .*\.ts/);
  });

  it("answers 401 without a token, with an expired token and with a token that lives too long", async () => {
    const missing = await client.check(envoyCheckRequest({ method: "GET", path: "/api/v1/pods" }));
    expect(missing.status?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(missing.denied_response?.status?.code).toBe("Unauthorized");
    expect(statusBody(missing.denied_response?.body ?? "")).toMatchObject({ kind: "Status", code: 401, reason: "Unauthorized" });

    const key = await importJWK(JSON.parse(readFileSync(join(stateDir, DEV_ISSUER_KEY_FILE), "utf8")) as JWK, "ES256");
    const nowSeconds = Math.floor(Date.now() / 1000);
    const sign = (iat: number, exp: number): Promise<string> =>
      new SignJWT({ groups: ["agents"], sid: "s" })
        .setProtectedHeader({ alg: "ES256", kid: issuer.jwks().keys[0]?.kid ?? "" })
        .setIssuer(DEV_ISSUER)
        .setAudience(DEV_AUDIENCE)
        .setSubject("ci-bot")
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .sign(key);
    const expired = await client.check(envoyCheckRequest({ method: "GET", path: "/api/v1/pods", token: await sign(nowSeconds - 600, nowSeconds - 300) }));
    expect(statusBody(expired.denied_response?.body ?? "").message).toContain("TOKEN_EXPIRED");
    const longLived = await client.check(envoyCheckRequest({ method: "GET", path: "/api/v1/pods", token: await sign(nowSeconds, nowSeconds + 30 * 24 * 3600) }));
    expect(longLived.status?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(statusBody(longLived.denied_response?.body ?? "").message).toContain("TOKEN_LIFETIME_TOO_LONG");
  });

  it("answers pending approval for a prod delete with 429, Retry-After and the approval id", async () => {
    const response = await client.check(envoyCheckRequest({ method: "DELETE", path: "/apis/apps/v1/namespaces/prod-a/deployments/web", token: agentToken }));
    expect(response.denied_response?.status?.code).toBe("TooManyRequests");
    const headers = new Map((response.denied_response?.headers ?? []).map((h) => [h.header?.key, h.header?.value]));
    expect(Number(headers.get("retry-after"))).toBeGreaterThan(0);
    const status = statusBody(response.denied_response?.body ?? "");
    expect(status).toMatchObject({ kind: "Status", code: 429, reason: "PendingApproval" });
    expect(String(status.details?.name)).toMatch(/^apr_/);
  });

  it("never allows a pod create whose body Envoy truncated", async () => {
    const body = Buffer.from(JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name: "p" }, spec: { containers: [{ name: "c", image: "busybox" }] } }));
    const response = await client.check(envoyCheckRequest({ method: "POST", path: "/api/v1/namespaces/dev-a/pods", token: agentToken, body, partial: true }));
    expect(response.status?.code).not.toBe(grpc.status.OK);
  });
});

describe("malformed input and deadlines", () => {
  it("rejects a CheckRequest without HTTP attributes with INVALID_ARGUMENT (Envoy denies)", async () => {
    await expect(client.check({ attributes: {} })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
  });

  it("answers 400 for an undecodable path", async () => {
    const response = await client.check(envoyCheckRequest({ method: "GET", path: "/api/v1/namespaces/%zz/pods", token: agentToken }));
    expect(response.denied_response?.status?.code).toBe("BadRequest");
    expect(statusBody(response.denied_response?.body ?? "").code).toBe(400);
  });

  it("rejects bytes that are not a CheckRequest", async () => {
    const generic = new grpc.Client(airlock.grpcAddress, grpc.credentials.createInsecure());
    const result = await new Promise<grpc.ServiceError | null>((resolve) => {
      generic.makeUnaryRequest(
        "/envoy.service.auth.v3.Authorization/Check",
        (value: Buffer) => value,
        (value: Buffer) => value,
        Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        { deadline: Date.now() + 5_000 },
        (error) => { resolve(error); },
      );
    });
    generic.close();
    expect(result?.code).toBe(grpc.status.INTERNAL);
  });

  it("answers DEADLINE_EXCEEDED, never OK, when the deadline is already too close", async () => {
    await expect(client.check(envoyCheckRequest({ method: "GET", path: "/api/v1/pods", token: agentToken }), 1)).rejects.toMatchObject({
      code: grpc.status.DEADLINE_EXCEEDED,
    });
  });
});

describe("health", () => {
  it("reports SERVING for the server and both Envoy services", async () => {
    const Health = loadEnvoyServices().health;
    const health = new Health(airlock.grpcAddress, grpc.credentials.createInsecure());
    for (const service of ["", "envoy.service.auth.v3.Authorization", "envoy.service.ext_proc.v3.ExternalProcessor"]) {
      const status = await new Promise<string>((resolve, reject) => {
        health.Check({ service }, (error, response) => { if (error) reject(error); else resolve(response?.status ?? ""); });
      });
      expect(status).toBe("SERVING");
    }
    health.close();
  });
});
