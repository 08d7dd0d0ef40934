/**
 * @module test/unit/authz/credentials/upstream-credentials
 * Credential modes: TokenRequest caching and single-flight minting, impersonation headers, token-file rotation.
 */
import { mkdtempSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { credentialsConfigSchema } from "../../../../authz/credentials/credentials-config.js";
import { GatewayTokenFile } from "../../../../authz/credentials/gateway-token-file.js";
import type { TokenRequestTarget } from "../../../../authz/credentials/token-request-client.js";
import { CredentialError, createUpstreamCredentials } from "../../../../authz/credentials/upstream-credentials.js";

function scratch(): string {
  return mkdtempSync(join(tmpdir(), "airlock-cred-"));
}

const agent = { subject: "ci-bot", groups: ["agents", "team-a"], sessionId: "s-1" };

function tokenRequestConfig(dir: string) {
  writeFileSync(join(dir, "ca.crt"), "not-used-by-the-fake-mint");
  writeFileSync(join(dir, "gateway-token"), "gateway-token-1\n");
  return credentialsConfigSchema.parse({
    mode: "tokenRequest",
    apiServer: { url: "https://127.0.0.1:6443", caFile: join(dir, "ca.crt") },
    gatewayTokenFile: join(dir, "gateway-token"),
    tokenRequest: { expirationSeconds: 600, refreshBeforeExpirySeconds: 60 },
  });
}

describe("credentials config", () => {
  it("requires apiServer and gatewayTokenFile for tokenRequest, path-qualified", () => {
    const result = credentialsConfigSchema.safeParse({ mode: "tokenRequest" });
    expect(result.success).toBe(false);
    const paths = result.error?.issues.map((issue) => issue.path.join("."));
    expect(paths).toEqual(expect.arrayContaining(["apiServer", "gatewayTokenFile"]));
  });

  it("rejects a plain-http API server and unknown keys", () => {
    expect(credentialsConfigSchema.safeParse({ mode: "none", apiServer: { url: "http://x", caFile: "c" } }).success).toBe(false);
    expect(credentialsConfigSchema.safeParse({ mode: "none", bogus: 1 }).success).toBe(false);
  });

  it("rejects TokenRequest lifetimes below the API server's 10 minute minimum", () => {
    expect(credentialsConfigSchema.safeParse({ mode: "none", tokenRequest: { expirationSeconds: 60 } }).success).toBe(false);
  });
});

describe("tokenRequest mode", () => {
  it("mints once for concurrent requests and caches until shortly before expiry", async () => {
    const dir = scratch();
    let clock = 1_000_000;
    const calls: TokenRequestTarget[] = [];
    const credentials = await createUpstreamCredentials(tokenRequestConfig(dir), {
      now: () => clock,
      mint: async (target) => {
        calls.push(target);
        await new Promise((resolve) => setTimeout(resolve, 5));
        return { token: `sa-token-${calls.length}`, expiresAtMs: clock + 600_000 };
      },
    });
    const sa = { namespace: "airlock-agents", name: "reader" };
    const results = await Promise.all(Array.from({ length: 20 }, () => credentials.credentialFor(agent, sa)));
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ namespace: "airlock-agents", serviceAccount: "reader", gatewayToken: "gateway-token-1", expirationSeconds: 600 });
    expect(new Set(results.map((r) => r.headers[0]?.[1]))).toEqual(new Set(["Bearer sa-token-1"]));
    expect(results[0]?.upstreamIdentity).toBe("system:serviceaccount:airlock-agents:reader");

    clock += 500_000; // still more than refreshBefore (60 s) from expiry
    await credentials.credentialFor(agent, sa);
    expect(calls).toHaveLength(1);
    clock += 50_000; // within 60 s of expiry: refresh
    const refreshed = await credentials.credentialFor(agent, sa);
    expect(calls).toHaveLength(2);
    expect(refreshed.headers[0]?.[1]).toBe("Bearer sa-token-2");
  });

  it("keeps one cache entry per ServiceAccount", async () => {
    const dir = scratch();
    const minted: string[] = [];
    const credentials = await createUpstreamCredentials(tokenRequestConfig(dir), {
      mint: (target) => {
        minted.push(`${target.namespace}/${target.serviceAccount}`);
        return Promise.resolve({ token: `t-${target.serviceAccount}`, expiresAtMs: Date.now() + 600_000 });
      },
    });
    await credentials.credentialFor(agent, { namespace: "a", name: "x" });
    await credentials.credentialFor(agent, { namespace: "a", name: "y" });
    await credentials.credentialFor(agent, { namespace: "a", name: "x" });
    expect(minted).toEqual(["a/x", "a/y"]);
  });

  it("fails closed without a mapped ServiceAccount and when minting fails, and retries after a failure", async () => {
    const dir = scratch();
    let fail = true;
    const credentials = await createUpstreamCredentials(tokenRequestConfig(dir), {
      mint: () => (fail ? Promise.reject(new Error("HTTP 403: forbidden")) : Promise.resolve({ token: "ok", expiresAtMs: Date.now() + 600_000 })),
    });
    await expect(credentials.credentialFor(agent, undefined)).rejects.toMatchObject({ code: "NO_SERVICE_ACCOUNT" });
    await expect(credentials.credentialFor(agent, { namespace: "a", name: "x" })).rejects.toBeInstanceOf(CredentialError);
    fail = false;
    await expect(credentials.credentialFor(agent, { namespace: "a", name: "x" })).resolves.toMatchObject({ headers: [["authorization", "Bearer ok"]] });
  });
});

describe("impersonate mode", () => {
  it("sets the gateway token and impersonates the agent with prefixed user and groups and its session", async () => {
    const dir = scratch();
    writeFileSync(join(dir, "gw"), "gw-token");
    const credentials = await createUpstreamCredentials(
      credentialsConfigSchema.parse({ mode: "impersonate", gatewayTokenFile: join(dir, "gw"), impersonate: { extraGroups: ["airlock:all-agents"] } }),
    );
    const credential = await credentials.credentialFor(agent, undefined);
    expect(credential.headers).toEqual([
      ["authorization", "Bearer gw-token"],
      ["impersonate-user", "airlock:ci-bot"],
      ["impersonate-group", "airlock:agents"],
      ["impersonate-group", "airlock:team-a"],
      ["impersonate-group", "airlock:all-agents"],
      ["impersonate-extra-airlock.dev%2Fsession", "s-1"],
    ]);
  });
});

describe("developmentStaticToken and none modes", () => {
  it("injects the static token / nothing", async () => {
    const dir = scratch();
    writeFileSync(join(dir, "static"), "dev-token\n");
    const staticCreds = await createUpstreamCredentials(
      credentialsConfigSchema.parse({ mode: "developmentStaticToken", developmentStaticToken: { tokenFile: join(dir, "static") } }),
    );
    expect((await staticCreds.credentialFor(agent, undefined)).headers).toEqual([["authorization", "Bearer dev-token"]]);
    const none = await createUpstreamCredentials(credentialsConfigSchema.parse({}));
    expect((await none.credentialFor(agent, undefined)).headers).toEqual([]);
  });
});

describe("GatewayTokenFile", () => {
  it("re-reads the file after the kubelet rotates it, but not on every call", async () => {
    const dir = scratch();
    const file = join(dir, "token");
    writeFileSync(file, "first");
    let clock = 0;
    const token = new GatewayTokenFile(file, 1_000, () => clock);
    expect(await token.current()).toBe("first");
    writeFileSync(file, "second");
    utimesSync(file, new Date(), new Date(Date.now() + 5_000));
    expect(await token.current()).toBe("first"); // within the recheck interval
    clock += 1_500;
    expect(await token.current()).toBe("second");
  });

  it("refuses an empty token file", async () => {
    const dir = scratch();
    writeFileSync(join(dir, "empty"), "\n");
    await expect(new GatewayTokenFile(join(dir, "empty"), 1_000).current()).rejects.toThrow(/empty/);
  });
});
