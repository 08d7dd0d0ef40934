/**
 * @module test/integration/authz/approvals/approvals-command.test
 * `airlock approvals` against a real approver API listening on 127.0.0.1 port 0.
 */
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApprovalApp } from "../../../../authz/approvals/approval-app.js";
import { createApprovalService } from "../../../../authz/approvals/approval-service.js";
import type { ApprovalService } from "../../../../authz/approvals/approval-service.js";
import type { ApprovalStore } from "../../../../authz/approvals/approval-store.js";
import { runApprovalsCommand } from "../../../../authz/approvals/approvals-command.js";
import { openSqliteApprovalStore } from "../../../../authz/approvals/sqlite-approval-store.js";
import { createTokenIssuer, onceSettings, pendingInput, retryServiceConfig } from "./approval-fixtures.js";

let dir = "";
let store: ApprovalStore;
let service: ApprovalService;
let app: ReturnType<typeof buildApprovalApp>;
let server = "";
let alice = "";
let bob = "";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "airlock-cli-"));
  store = openSqliteApprovalStore({ path: join(dir, "a.db") });
  service = createApprovalService({
    store,
    config: retryServiceConfig,
    recordApproval: () => undefined,
  });
  const issuer = await createTokenIssuer();
  alice = await issuer.mint({ sub: "alice", groups: ["sre"] });
  bob = await issuer.mint({ sub: "bob", groups: ["sre"] });
  app = buildApprovalApp({ service, verifyApproverToken: issuer.verify });
  await app.listen({ port: 0, host: "127.0.0.1" });
  server = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  service.close();
  await app.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function run(argv: string[], env: Record<string, string> = {}) {
  let stdout = "";
  let stderr = "";
  const code = await runApprovalsCommand(
    argv,
    { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) } },
    { AIRLOCK_SERVER: server, AIRLOCK_APPROVER_TOKEN: alice, ...env },
  );
  return { code, stdout, stderr };
}

describe("airlock approvals", () => {
  it("lists, shows, approves (2 of 2) and rejects through the HTTP API", async () => {
    const a = await service.resolvePendingRequest(pendingInput("fp-cli-a", { settings: { ...onceSettings, minApprovals: 2 } }));
    const b = await service.resolvePendingRequest(pendingInput("fp-cli-b"));

    const list = await run(["list"]);
    expect(list.code).toBe(0);
    expect(list.stdout.split("\n")[0]).toMatch(/^ID\s+STATE\s+RULE\s+REQUESTER\s+REQUEST\s+APPROVALS\s+EXPIRES$/);
    expect(list.stdout).toContain(a.approvalId);
    expect(list.stdout).toContain("delete prod-a/deployments.apps/web");

    const json = await run(["list", "--state", "pending", "--output", "json"]);
    expect((JSON.parse(json.stdout) as { id: string }[]).map((v) => v.id).sort()).toEqual([a.approvalId, b.approvalId].sort());

    const show = await run(["show", a.approvalId]);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain("State:       pending");
    expect(show.stdout).toContain("0 of 2 so far");
    expect(show.stdout).toContain("Body:\n  (none)");

    expect(await run(["approve", a.approvalId, "--reason", "INC-7"])).toMatchObject({ code: 0, stdout: `approval ${a.approvalId} is now pending (1 of 2 approvals)\n` });
    const twice = await run(["approve", a.approvalId, "--reason", "again"]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain("HTTP 409 (duplicate_approver)");
    expect(await run(["approve", a.approvalId, "--reason", "ok", "--token", bob])).toMatchObject({ code: 0, stdout: expect.stringContaining("is now approved") as unknown });

    expect((await run(["reject", b.approvalId, "--reason", "not today"])).code).toBe(0);
    expect((await service.get(b.approvalId))?.rejection).toEqual({ by: "alice", reason: "not today" });
  });

  it("reports usage and API errors with exit codes 2 and 1, never printing the token", async () => {
    expect((await run([])).code).toBe(2);
    expect((await run(["approve", "apr_x"])).stderr).toContain("approve needs --reason");
    expect((await run(["list"], { AIRLOCK_SERVER: "" })).code).toBe(2);
    expect((await run(["frobnicate"])).code).toBe(2);
    expect((await run(["list", "--bogus"])).code).toBe(2);
    const missing = await run(["show", "apr_0000000000000000"]);
    expect(missing).toMatchObject({ code: 1 });
    expect(missing.stderr).toContain("HTTP 404");
    const badToken = await run(["list"], { AIRLOCK_APPROVER_TOKEN: "not-a-jwt" });
    expect(badToken.code).toBe(1);
    expect(badToken.stderr).toContain("HTTP 401");
    expect(badToken.stderr).not.toContain("not-a-jwt");
    const unreachable = await run(["list"], { AIRLOCK_SERVER: "http://127.0.0.1:1" });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).not.toContain(alice);
  });
});
