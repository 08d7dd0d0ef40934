/**
 * @module test/integration/authz/exchange/credential-command.test
 * The kubectl credential plugin against a real exchange on port 0: ExecCredential output, private caching,
 * refresh before expiry, errors without secrets; and the kubeconfig it is wired into.
 */
import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { runCredentialCommand } from "../../../../authz/exchange/credential-command.js";
import { runKubeconfigCommand } from "../../../../authz/exchange/kubeconfig-command.js";
import { startExchangeHarness } from "./exchange-harness.js";
import type { ExchangeHarness } from "./exchange-harness.js";

let harness: ExchangeHarness;
let work: string;

function capture(): { io: { stdout: PassThrough; stderr: PassThrough }; out(): string; err(): string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
  stdout.on("data", (chunk: Buffer) => chunks.out.push(chunk));
  stderr.on("data", (chunk: Buffer) => chunks.err.push(chunk));
  return { io: { stdout, stderr }, out: () => Buffer.concat(chunks.out).toString(), err: () => Buffer.concat(chunks.err).toString() };
}

interface ExecCredential {
  apiVersion: string;
  kind: string;
  status: { token: string; expirationTimestamp: string };
}

beforeAll(async () => {
  harness = await startExchangeHarness({ maxTokenLifetimeSeconds: 300 });
  work = await mkdtemp(join(tmpdir(), "airlock-credential-"));
});

afterAll(async () => {
  await harness.close();
  await rm(work, { recursive: true, force: true });
});

describe("airlock credential", () => {
  it("prints an ExecCredential, caches it 0600 under XDG_RUNTIME_DIR/airlock, and reuses it", async () => {
    const runtime = join(work, "runtime");
    const tokenFile = join(work, "ci-token");
    await writeFile(tokenFile, `${await harness.ciToken()}\n`);
    const env = { XDG_RUNTIME_DIR: runtime };
    const args = ["--server", harness.url, "--subject-token-file", tokenFile];
    const issuedBefore = harness.events.filter((event) => event.outcome === "issued").length;

    const first = capture();
    expect(await runCredentialCommand(args, first.io, env)).toBe(0);
    const credential = JSON.parse(first.out()) as ExecCredential;
    expect(credential.apiVersion).toBe("client.authentication.k8s.io/v1");
    expect(credential.kind).toBe("ExecCredential");
    expect(credential.status.token.split(".")).toHaveLength(3);
    // Expiry reported one refresh margin (60 s) before the token's own expiry, at seconds precision.
    const reported = Date.parse(credential.status.expirationTimestamp);
    expect(credential.status.expirationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(reported).toBeGreaterThan(Date.now() + 200_000);
    expect(reported).toBeLessThanOrEqual(Date.now() + 240_000);

    const directory = join(runtime, "airlock");
    expect((await stat(directory)).mode & 0o777).toBe(0o700);
    const files = await readdir(directory);
    expect(files).toHaveLength(1);
    expect((await stat(join(directory, files[0] ?? ""))).mode & 0o777).toBe(0o600);

    const second = capture();
    expect(await runCredentialCommand(args, second.io, env)).toBe(0);
    expect((JSON.parse(second.out()) as ExecCredential).status.token).toBe(credential.status.token);
    expect(harness.events.filter((event) => event.outcome === "issued").length).toBe(issuedBefore + 1);

    // Close to expiry (inside the refresh margin) the plugin exchanges again.
    const later = capture();
    expect(await runCredentialCommand(args, later.io, env, { now: () => Date.now() + 250_000 })).toBe(0);
    expect((JSON.parse(later.out()) as ExecCredential).status.token).not.toBe(credential.status.token);
    expect(harness.events.filter((event) => event.outcome === "issued").length).toBe(issuedBefore + 2);
  });

  it("uses a client secret from the environment and answers the apiVersion kubectl asks for", async () => {
    const run = capture();
    const env = {
      HOME: join(work, "home"),
      AGENT_SECRET: harness.clientSecret,
      KUBERNETES_EXEC_INFO: JSON.stringify({ apiVersion: "client.authentication.k8s.io/v1beta1", kind: "ExecCredential", spec: { interactive: false } }),
    };
    const code = await runCredentialCommand(["--server", harness.url, "--client-id", "agent-1", "--client-secret-env", "AGENT_SECRET"], run.io, env);
    expect(run.err()).toBe("");
    expect(code).toBe(0);
    expect((JSON.parse(run.out()) as ExecCredential).apiVersion).toBe("client.authentication.k8s.io/v1beta1");
    expect((await readdir(join(work, "home", ".cache", "airlock"))).length).toBe(1);
  });

  it("reports a refused exchange with the RFC error and never the secret", async () => {
    const run = capture();
    const env = { XDG_RUNTIME_DIR: join(work, "rt2"), AGENT_SECRET: "definitely-wrong-secret-0123456789" };
    const code = await runCredentialCommand(["--server", harness.url, "--client-id", "agent-1", "--client-secret-env", "AGENT_SECRET", "--no-cache"], run.io, env);
    expect(code).toBe(1);
    expect(run.out()).toBe("");
    expect(run.err()).toMatch(/invalid_grant/);
    expect(run.err()).not.toContain("definitely-wrong-secret");
  });

  it("refuses bad usage with exit 2", async () => {
    const run = capture();
    expect(await runCredentialCommand(["--server", harness.url], run.io, {})).toBe(2);
    const remote = capture();
    expect(await runCredentialCommand(["--server", "http://airlock.example:8181", "--subject-token-file", "x"], remote.io, {})).toBe(2);
    expect(remote.err()).toMatch(/https/);
  });
});

describe("airlock kubeconfig", () => {
  it("writes a 0600 kubeconfig pointing at the sidecar with the credential plugin", async () => {
    const output = join(work, "kubeconfig");
    const run = capture();
    const code = await runKubeconfigCommand(
      ["--server", harness.url, "--client-id", "agent-1", "--client-secret-env", "AGENT_SECRET", "--namespace", "dev", "--output", output, "--exec-command", "node", "--exec-arg", "/app/dist/bin/airlock.js"],
      run.io,
    );
    expect(code).toBe(0);
    expect((await stat(output)).mode & 0o777).toBe(0o600);
    const { readFile } = await import("node:fs/promises");
    const document = parse(await readFile(output, "utf8")) as Record<string, unknown>;
    expect(document).toMatchObject({
      "current-context": "airlock",
      clusters: [{ name: "airlock", cluster: { server: "https://127.0.0.1:16444" } }],
      contexts: [{ context: { cluster: "airlock", user: "airlock", namespace: "dev" } }],
      users: [
        {
          user: {
            exec: {
              apiVersion: "client.authentication.k8s.io/v1",
              command: "node",
              args: ["/app/dist/bin/airlock.js", "credential", "--server", harness.url, "--client-id", "agent-1", "--client-secret-env", "AGENT_SECRET"],
              interactiveMode: "Never",
              provideClusterInfo: false,
            },
          },
        },
      ],
    });
  });
});
