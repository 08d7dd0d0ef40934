/**
 * @module test/integration/cli/policy-cli
 * The `airlock policy` and `airlock token` commands as a user runs them: the built CLI in a child process, against
 * the shipped baseline policy.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const CLI = join(import.meta.dirname, "../../../dist/bin/airlock.js");
const BASELINE = join(import.meta.dirname, "../../../policies/agent-baseline.yaml");

async function airlock(args: string[], cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { cwd, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? 1, stdout: failed.stdout ?? "", stderr: failed.stderr ?? "" };
  }
}

async function explain(request: string, extra: string[] = []): Promise<{ effect: string; rules: { id: string }[]; attributes: Record<string, unknown> }> {
  const result = await airlock(["policy", "explain", "--policy", BASELINE, "--sub", "ci-bot", "--groups", "agents", "--request", request, "--output", "json", ...extra]);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as { effect: string; rules: { id: string }[]; attributes: Record<string, unknown> };
}

function bodyFile(value: unknown): string {
  const path = join(mkdtempSync(join(tmpdir(), "airlock-body-")), "body.json");
  writeFileSync(path, JSON.stringify(value));
  return path;
}

describe("airlock policy explain on the baseline", () => {
  it("reading a Secret: Allow (values are masked by ext_proc)", async () => {
    const result = await explain("GET /api/v1/namespaces/default/secrets/db");
    expect(result.effect).toBe("Allow");
    expect(result.attributes).toMatchObject({ verb: "get", resource: "secrets", name: "db" });
  });

  it("deleting a Deployment in a prod namespace: RequireApproval", async () => {
    const result = await explain("DELETE /apis/apps/v1/namespaces/prod-payments/deployments/api");
    expect(result.effect).toBe("RequireApproval");
    expect(result.rules.map((rule) => rule.id)).toContain("prod-deletes-need-a-human");
  });

  it("exec over a WebSocket GET: RequireApproval, as create on pods/exec", async () => {
    const result = await explain("GET /api/v1/namespaces/dev/pods/web-0/exec?command=sh&stdin=true&tty=true", [
      "--header", "connection: Upgrade", "--header", "upgrade: websocket", "--header", "sec-websocket-protocol: v5.channel.k8s.io",
    ]);
    expect(result.effect).toBe("RequireApproval");
    expect(result.attributes).toMatchObject({ verb: "create", kubeVerb: "get", resource: "pods", subresource: "exec", upgrade: true });
  });

  it("creating a privileged pod: Deny", async () => {
    const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "x" }, spec: { containers: [{ name: "c", image: "busybox", securityContext: { privileged: true } }] } };
    const result = await explain("POST /api/v1/namespaces/dev/pods", ["--body", bodyFile(pod)]);
    expect(result.effect).toBe("Deny");
    expect(result.rules.map((rule) => rule.id)).toContain("no-privileged-containers");
  });

  it("binding cluster-admin: Deny", async () => {
    const binding = {
      apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", metadata: { name: "b" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
      subjects: [{ kind: "ServiceAccount", name: "default", namespace: "default" }],
    };
    const result = await explain("POST /apis/rbac.authorization.k8s.io/v1/clusterrolebindings", ["--body", bodyFile(binding)]);
    expect(result.effect).toBe("Deny");
  });

  it("listing pods: Allow", async () => {
    const result = await explain("GET /api/v1/namespaces/default/pods");
    expect(result).toMatchObject({ effect: "Allow", attributes: { verb: "list", resource: "pods" } });
  });

  it("prints a readable text answer by default", async () => {
    const result = await airlock(["policy", "explain", "--policy", BASELINE, "--sub", "a", "--groups", "agents", "--request", "GET /api/v1/pods"]);
    expect(result.stdout).toMatch(/^effect: +Allow/m);
  });
});

describe("airlock policy check and test", () => {
  it("accepts the baseline and rejects a broken policy with path-qualified errors", async () => {
    expect((await airlock(["policy", "check", BASELINE])).code).toBe(0);
    const broken = join(mkdtempSync(join(tmpdir(), "airlock-policy-")), "broken.yaml");
    writeFileSync(broken, "apiVersion: airlock.dev/v1alpha1\nkind: AccessPolicy\nrules:\n  - id: x\n    verbs: [get]\n    effect: RequireApproval\n");
    const result = await airlock(["policy", "check", broken]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/broken\.yaml: rules\[0\]/);
  });

  it("runs the shipped policy test file", async () => {
    const result = await airlock(["policy", "test", join(import.meta.dirname, "../../../policies/agent-baseline.tests.yaml")]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
  });
});

describe("airlock token", () => {
  it("prints a short-lived development token with the requested subject, groups and lifetime", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "airlock-token-"));
    const result = await airlock(["token", "--sub", "ci-bot", "--groups", "agents,team-a", "--ttl", "5m"], cwd);
    expect(result.code, result.stderr).toBe(0);
    const claims = decodeJwt(result.stdout.trim());
    expect(claims).toMatchObject({ sub: "ci-bot", groups: ["agents", "team-a"], aud: "airlock" });
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(300);
  });

  it("refuses a bad --ttl", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "airlock-token-"));
    const result = await airlock(["token", "--sub", "x", "--ttl", "soon"], cwd);
    expect(result.code).toBe(2);
  });
});
