/**
 * @module test/integration/authz/approvals/postgres-replicas.test
 * Several Airlock replicas sharing one real PostgreSQL: a `once` grant allows exactly one of 20 concurrent retries
 * spread over two processes, and a Check held on one replica wakes (LISTEN/NOTIFY) when another records the approval.
 */
import { spawn } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApprovalApp } from "../../../../authz/approvals/approval-app.js";
import { createApprovalService } from "../../../../authz/approvals/approval-service.js";
import type { ApprovalService, ApprovalServiceConfig } from "../../../../authz/approvals/approval-service.js";
import type { ApprovalStore } from "../../../../authz/approvals/approval-store.js";
import { openPostgresApprovalStore } from "../../../../authz/approvals/postgres-approval-store.js";
import { startPostgresServer, type PostgresServer } from "../../../helpers/postgres-server.js";
import { createTokenIssuer, pendingInput, retryServiceConfig } from "./approval-fixtures.js";
import type { TokenIssuer } from "./approval-fixtures.js";

const baseConfig: ApprovalServiceConfig = { ...retryServiceConfig, holdSeconds: 30, publicUrl: "http://127.0.0.1:8081" };

let server: PostgresServer;
let url = "";
let issuer: TokenIssuer;
let storeA: ApprovalStore;
let serviceA: ApprovalService;
let appA: ReturnType<typeof buildApprovalApp>;

beforeAll(async () => {
  server = await startPostgresServer();
  url = await server.createDatabase("replicas");
  issuer = await createTokenIssuer();
  storeA = await openPostgresApprovalStore({ connectionString: url, poolMax: 12 });
  serviceA = createApprovalService({ store: storeA, config: baseConfig, recordApproval: () => undefined });
  appA = buildApprovalApp({ service: serviceA, verifyApproverToken: issuer.verify });
});

afterAll(async () => {
  serviceA.close();
  await appA.close();
  await storeA.close();
  await server.stop();
});

async function approveOverHttp(id: string): Promise<void> {
  const token = await issuer.mint({ sub: "alice", groups: ["sre"] });
  const res = await appA.inject({
    method: "POST",
    url: `/v1/approvals/${id}/approve`,
    headers: { authorization: `Bearer ${token}` },
    payload: { reason: "go ahead" },
  });
  expect(res.statusCode).toBe(200);
}

function startWorker(fingerprint: string, count: number): ChildProcessWithoutNullStreams {
  const bin = join(process.cwd(), "node_modules", ".bin", "vite-node");
  return spawn(bin, [join(import.meta.dirname, "fixtures", "consume-worker.ts")], {
    env: { ...process.env, AIRLOCK_TEST_PG_URL: url, AIRLOCK_TEST_FINGERPRINT: fingerprint, AIRLOCK_TEST_COUNT: String(count) },
    stdio: ["pipe", "pipe", "pipe"],
  });
}

function nextLine(child: ChildProcessWithoutNullStreams, stderr: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = "";
    const onData = (d: Buffer) => {
      buffer += d.toString();
      const nl = buffer.indexOf("\n");
      if (nl >= 0) {
        child.stdout.off("data", onData);
        child.off("exit", onExit);
        resolve(buffer.slice(0, nl));
      }
    };
    const onExit = (code: number | null) => {
      reject(new Error(`worker exited (${code}) before answering: ${stderr().slice(-2000)}`));
    };
    child.stdout.on("data", onData);
    child.once("exit", onExit);
  });
}

describe("approvals over PostgreSQL with several replicas", () => {
  it("a once grant yields exactly one allow among 20 concurrent retries across two processes", async () => {
    const fingerprint = "fp-two-process";
    const first = await serviceA.resolvePendingRequest(pendingInput(fingerprint));
    expect(first.kind).toBe("pending");
    await approveOverHttp(first.approvalId);

    const worker = startWorker(fingerprint, 10);
    let stderr = "";
    worker.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => worker.once("exit", resolve));
    try {
      expect(await nextLine(worker, () => stderr)).toBe("ready");
      const theirs = nextLine(worker, () => stderr);
      worker.stdin.write("go\n");
      const ours = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          serviceA.resolvePendingRequest(
            pendingInput(fingerprint, { requester: { subject: "system:serviceaccount:agents:claude", groups: ["agents"], sessionId: `main-${i}` } }),
          ),
        ),
      );
      const kinds = [...ours.map((o) => o.kind), ...(JSON.parse(await theirs) as string[])];
      expect(kinds).toHaveLength(20);
      expect(kinds.filter((k) => k === "granted")).toHaveLength(1);
      expect(kinds.filter((k) => k === "pending")).toHaveLength(19);
      // the 19 losers all wait on one new approval, not 19
      const pendingIds = new Set(ours.filter((o) => o.kind === "pending").map((o) => o.approvalId));
      expect(pendingIds.size).toBeLessThanOrEqual(1);
      const consumed = await storeA.get(first.approvalId);
      expect(consumed?.state).toBe("consumed");
      expect(consumed?.history.filter((h) => h.action === "consumed")).toHaveLength(1);
      expect((await storeA.list({ state: "pending", limit: 100 })).filter((r) => r.fingerprint === fingerprint)).toHaveLength(1);
    } finally {
      worker.stdin.end();
      if (worker.exitCode === null && worker.pid !== undefined) {
        const timer = setTimeout(() => process.kill(worker.pid!, "SIGKILL"), 15_000);
        await exited;
        clearTimeout(timer);
      }
    }
    expect(await exited).toBe(0);
  });

  it("a Check held on one replica is released by an approval recorded through another", async () => {
    const storeB = await openPostgresApprovalStore({ connectionString: url });
    const serviceB = createApprovalService({ store: storeB, config: { ...baseConfig, pendingMode: "hold" }, recordApproval: () => undefined });
    try {
      const held = serviceB.resolvePendingRequest(pendingInput("fp-held-b"));
      await expect.poll(async () => (await storeA.findOpen("fp-held-b", "system:serviceaccount:agents:claude"))?.id ?? null).not.toBeNull();
      const id = (await storeA.findOpen("fp-held-b", "system:serviceaccount:agents:claude"))!.id;
      const waited = serviceB.waitForDecision(id, 20_000);
      await approveOverHttp(id);
      // the held Check may already have consumed the grant by the time this waiter reads it
      expect(["approved", "consumed"]).toContain((await waited)?.state);
      expect(await held).toMatchObject({ kind: "granted", approvalId: id });
    } finally {
      serviceB.close();
      await storeB.close();
    }
  });

  it("keeps pending approvals when a replica restarts", async () => {
    const { approvalId } = await serviceA.resolvePendingRequest(pendingInput("fp-restart"));
    const storeC = await openPostgresApprovalStore({ connectionString: url });
    await storeC.close();
    const storeD = await openPostgresApprovalStore({ connectionString: url });
    try {
      const serviceD = createApprovalService({ store: storeD, config: baseConfig, recordApproval: () => undefined });
      expect(await serviceD.resolvePendingRequest(pendingInput("fp-restart"))).toMatchObject({ kind: "pending", approvalId });
      serviceD.close();
    } finally {
      await storeD.close();
    }
  });
});
