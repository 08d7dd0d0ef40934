/**
 * @module test/e2e/testbed/testbed.test
 * The test bed is a real Kubernetes API: real kubectl lists namespaces, TokenRequest issues a verifiable
 * ServiceAccount token, and RBAC (not AlwaysAllow) decides what that token may do.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Testbed, ensureTestbed, stopTestbed } from "../../testbed/testbed.js";

const execFileAsync = promisify(execFile);

let testbed: Testbed | undefined;
let startedHere = false;
const namespace = `e2e-testbed-${randomBytes(4).toString("hex")}`;

async function kubectl(args: readonly string[], auth: { token: string } | "admin" = "admin"): Promise<string> {
  if (!testbed) throw new Error("test bed not available");
  const authArgs =
    auth === "admin"
      ? ["--kubeconfig", testbed.kubeconfig]
      : // A kubeconfig-less invocation: only the server, its CA and the bearer token under test.
        ["--kubeconfig", "/dev/null", "--server", testbed.server, "--certificate-authority", testbed.caFile, "--token", auth.token];
  const { stdout } = await execFileAsync("kubectl", [...authArgs, ...args], { timeout: 30_000 });
  return stdout;
}

beforeAll(async () => {
  const ensured = await ensureTestbed();
  testbed = ensured.testbed;
  startedHere = ensured.startedHere;
  await kubectl(["create", "namespace", namespace]);
  await kubectl(["-n", namespace, "create", "serviceaccount", "agent"]);
}, 1_260_000);

afterAll(async () => {
  // Without kube-controller-manager the namespace stays Terminating; the next `start` wipes etcd anyway.
  if (testbed) await kubectl(["delete", "namespace", namespace, "--wait=false"]).catch(() => undefined);
  if (startedHere) await stopTestbed();
});

describe("real kube-apiserver test bed", () => {
  it("serves kubectl get ns", async () => {
    const list = JSON.parse(await kubectl(["get", "ns", "-o", "json"])) as { kind: string; items: { metadata: { name: string } }[] };
    expect(list.kind).toBe("List");
    const names = list.items.map((i) => i.metadata.name);
    expect(names).toEqual(expect.arrayContaining(["default", "kube-system", namespace]));
  });

  it("reports the version it was built as", async () => {
    const version = JSON.parse(await kubectl(["get", "--raw", "/version"])) as { gitVersion: string; major: string };
    expect(version.gitVersion).toMatch(/^v1\.\d+\.\d+$/);
    expect(version.major).toBe("1");
  });

  it("issues ServiceAccount tokens via TokenRequest (kubectl create token)", async () => {
    const token = (await kubectl(["-n", namespace, "create", "token", "agent", "--duration=10m", "--audience=https://kubernetes.default.svc"])).trim();
    expect(token.split(".").length).toBe(3);
    const claims = decodeJwt(token);
    expect(claims.sub).toBe(`system:serviceaccount:${namespace}:agent`);
    expect(claims.aud).toEqual(["https://kubernetes.default.svc"]);
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(600);

    // The API server accepts the token it issued and sees the ServiceAccount, not the admin.
    const review = JSON.parse(await kubectl(["auth", "whoami", "-o", "json"], { token })) as { status: { userInfo: { username: string } } };
    expect(review.status.userInfo.username).toBe(`system:serviceaccount:${namespace}:agent`);
  });

  it("authorizes with RBAC: a fresh ServiceAccount may not read secrets until bound", async () => {
    const token = (await kubectl(["-n", namespace, "create", "token", "agent", "--duration=10m"])).trim();
    const denied = await kubectl(["-n", namespace, "get", "secrets"], { token }).then(
      () => "allowed",
      (error: unknown) => String((error as { stderr?: unknown }).stderr),
    );
    expect(denied).toMatch(/Forbidden|forbidden/);

    await kubectl(["-n", namespace, "create", "role", "read-secrets", "--verb=get,list", "--resource=secrets"]);
    await kubectl(["-n", namespace, "create", "rolebinding", "agent-reads-secrets", "--role=read-secrets", `--serviceaccount=${namespace}:agent`]);
    const allowed = await kubectl(["-n", namespace, "auth", "can-i", "list", "secrets"], { token });
    expect(allowed.trim()).toBe("yes");
  });
});
