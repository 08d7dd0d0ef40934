/**
 * @module bench/check
 * Check latency and throughput of `airlock serve` with the baseline policy: the server pinned to one core, a grpc-js
 * load generator on the other, closed-loop at fixed concurrencies and open-loop at fixed rates; prints a table.
 *
 * Run: npm run build && npx vite-node bench/check.ts [--seconds 8] [--rates 500,1000,2000] [--concurrency 1,4,16,64]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { openDevIssuer } from "../authz/identity/dev-issuer.js";
import type { CheckRequest } from "../protos/generated/envoy/service/auth/v3/CheckRequest.js";
import { createCheckClient, envoyCheckRequest, type CheckClient } from "../test/helpers/check-client.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "8" },
    rates: { type: "string", default: "500,1000,2000,3000" },
    concurrency: { type: "string", default: "1,4,16,64" },
  },
});
const seconds = Number(values.seconds);
const rates = values.rates.split(",").map(Number);
const concurrencies = values.concurrency.split(",").map(Number);

interface Sample {
  latenciesMs: number[];
  errors: number;
  completed: number;
  elapsedMs: number;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function startServer(stateDir: string): Promise<{ child: ChildProcess; address: string }> {
  const configPath = join(stateDir, "bench.yaml");
  writeFileSync(
    configPath,
    [
      `stateDir: ${stateDir}`,
      "logLevel: warn",
      "server: { grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0' }",
      "approvals: { publicUrl: 'http://127.0.0.1:8181' }",
    ].join("\n"),
  );
  // One core for the server, as the target is stated ("2,000 RPS on one core"); the load generator gets the other.
  const pin = availableParallelism() > 1 ? ["taskset", "-c", "0"] : [];
  const nodeArgs = (process.env.AIRLOCK_BENCH_NODE_ARGS ?? "").split(" ").filter((arg) => arg !== "");
  const command = [...pin, process.execPath, ...nodeArgs, join(import.meta.dirname, "../dist/bin/airlock.js"), "serve", "--config", configPath];
  const child = spawn(command[0] ?? process.execPath, command.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
  const address = await new Promise<string>((resolve, reject) => {
    let text = "";
    child.stdout.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      const match = /gRPC\) listening on (\S+)/.exec(text);
      if (match?.[1]) resolve(match[1]);
    });
    child.once("exit", (code) => { reject(new Error(`airlock exited with ${code}`)); });
  });
  return { child, address };
}

function workload(tokens: readonly string[]): CheckRequest[] {
  const pod = Buffer.from(JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name: "p" }, spec: { containers: [{ name: "c", image: "busybox" }] } }));
  const binding = Buffer.from(JSON.stringify({
    apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", metadata: { name: "b" },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
    subjects: [{ kind: "ServiceAccount", name: "default", namespace: "default" }],
  }));
  const requests: CheckRequest[] = [];
  tokens.forEach((token, i) => {
    // A kubectl-like mix: mostly reads, some writes with bodies that CEL inspects, some denials.
    for (let n = 0; n < 6; n++) requests.push(envoyCheckRequest({ method: "GET", path: `/api/v1/namespaces/team-${i}/pods?limit=500`, token }));
    requests.push(envoyCheckRequest({ method: "GET", path: `/api/v1/namespaces/team-${i}/secrets/db`, token }));
    requests.push(envoyCheckRequest({ method: "GET", path: `/apis/apps/v1/namespaces/team-${i}/deployments?watch=true&resourceVersion=1`, token }));
    requests.push(envoyCheckRequest({ method: "POST", path: `/api/v1/namespaces/dev-${i}/pods`, token, body: pod }));
    requests.push(envoyCheckRequest({ method: "POST", path: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", token, body: binding }));
  });
  return requests;
}

async function closedLoop(client: CheckClient, requests: readonly CheckRequest[], concurrency: number): Promise<Sample> {
  const latenciesMs: number[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const until = started + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < until) {
      const request = requests[next++ % requests.length]!;
      const t0 = performance.now();
      try {
        await client.check(request, 5_000);
        latenciesMs.push(performance.now() - t0);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { latenciesMs, errors, completed: latenciesMs.length, elapsedMs: performance.now() - started };
}

async function openLoop(client: CheckClient, requests: readonly CheckRequest[], rate: number): Promise<Sample> {
  const latenciesMs: number[] = [];
  let errors = 0;
  let sent = 0;
  const total = Math.round(rate * seconds);
  const started = performance.now();
  const inflight: Promise<void>[] = [];
  // Requests are issued on a fixed schedule whatever the answers do, so queueing shows up as latency
  // (latency is measured from the scheduled send time, which avoids coordinated omission).
  while (sent < total) {
    const due = started + (sent * 1000) / rate;
    const now = performance.now();
    if (due > now) await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - now - 0.5)));
    while (sent < total && started + (sent * 1000) / rate <= performance.now()) {
      const scheduled = started + (sent * 1000) / rate;
      const request = requests[sent % requests.length]!;
      sent++;
      inflight.push(
        client.check(request, 5_000).then(
          () => { latenciesMs.push(performance.now() - scheduled); },
          () => { errors++; },
        ),
      );
    }
  }
  await Promise.all(inflight);
  return { latenciesMs, errors, completed: latenciesMs.length, elapsedMs: performance.now() - started };
}

function row(label: string, load: string, sample: Sample): string {
  const sorted = [...sample.latenciesMs].sort((a, b) => a - b);
  const rps = (sample.completed / sample.elapsedMs) * 1000;
  return `| ${label} | ${load} | ${rps.toFixed(0)} | ${percentile(sorted, 50).toFixed(3)} | ${percentile(sorted, 99).toFixed(3)} | ${percentile(sorted, 99.9).toFixed(3)} | ${sample.errors} |`;
}

async function main(): Promise<void> {
  // The load generator stays off the server's core.
  if (availableParallelism() > 1) execFileSync("taskset", ["-cp", "1", String(process.pid)], { stdio: "ignore" });
  const stateDir = mkdtempSync(join(tmpdir(), "airlock-bench-check-"));
  const issuer = await openDevIssuer(stateDir);
  const tokens = await Promise.all(
    Array.from({ length: 20 }, (_, i) => issuer.issue({ subject: `agent-${i}`, groups: ["agents"], ttlSeconds: 3600 })),
  );
  const { child, address } = await startServer(stateDir);
  const client = createCheckClient(address);
  const requests = workload(tokens);
  try {
    await closedLoop(client, requests, 8); // warm-up: JIT, token cache, CEL plans
    const lines = [
      `Check bench: baseline policy, ${requests.length}-request kubectl-like mix (60% list, 10% secret get, 10% watch, 10% pod create with body, 10% denied binding)`,
      `server pinned to one core (taskset -c 0), grpc-js client in this process; ${seconds}s per row; latency = client round trip`,
      "",
      "| mode | load | achieved rps | p50 ms | p99 ms | p99.9 ms | errors |",
      "|---|---|---:|---:|---:|---:|---:|",
    ];
    for (const concurrency of concurrencies) lines.push(row("closed loop", `concurrency ${concurrency}`, await closedLoop(client, requests, concurrency)));
    for (const rate of rates) lines.push(row("open loop", `${rate} rps`, await openLoop(client, requests, rate)));
    console.log(lines.join("\n"));
  } finally {
    client.close();
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
  }
}

await main();
grpc.setLogVerbosity(grpc.logVerbosity.NONE);
