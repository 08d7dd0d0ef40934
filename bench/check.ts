/**
 * @module bench/check
 * Check latency and throughput of `airlock serve` with the baseline policy: the server pinned to one core, a grpc-js
 * load generator on the other, closed-loop at fixed concurrencies and open-loop at fixed rates; prints a table.
 *
 * Two latencies per row: the client's round trip (a grpc-js client, costlier than Envoy's C++ one) and the server's
 * own Check time from its airlock_check_duration_seconds histogram (interpolated within buckets). Two audit
 * topologies: a ClickHouse server in its own process (production) and embedded chDB inside the gateway (development
 * default; its insert threads share the gateway's core).
 *
 * Run: npm run build && npx vite-node bench/check.ts [--seconds 8] [--rates 500,1000,2000] [--concurrency 1,4,16,64]
 *      [--audit floor,server,embedded]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { openDevIssuer } from "../authz/identity/dev-issuer.js";
import { applyMigrations, findSchemaDir } from "../tap/audit/schema-migrations.js";
import { ClickHouseServerAuditStore } from "../tap/audit/clickhouse-server-store.js";
import { clickHouseServerBinary, startClickHouseServer, type ClickHouseServerHandle } from "../test/helpers/clickhouse-server.js";
import { loadEnvoyConfigRoot } from "../protos/load.js";
import { envoyCheckRequest } from "../test/helpers/check-client.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "8" },
    rates: { type: "string", default: "500,1000,2000,3000" },
    concurrency: { type: "string", default: "1,4,16,64" },
    audit: { type: "string", default: "floor,server,embedded" },
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

async function startServer(stateDir: string, auditYaml: string): Promise<{ child: ChildProcess; address: string; httpUrl: string }> {
  const configPath = join(stateDir, "bench.yaml");
  writeFileSync(
    configPath,
    [
      `stateDir: ${stateDir}`,
      "logLevel: warn",
      "server: { grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0' }",
      "approvals: { publicUrl: 'http://127.0.0.1:8181' }",
      auditYaml,
    ].join("\n"),
  );
  // One core for the server, as the target is stated ("2,000 RPS on one core"); the load generator gets the other.
  // AIRLOCK_BENCH_PIN=0 lets the gateway use every core (to tell CPU contention on one core from other stalls).
  const pin = availableParallelism() > 1 && process.env.AIRLOCK_BENCH_PIN !== "0" ? ["taskset", "-c", "0"] : [];
  const nodeArgs = (process.env.AIRLOCK_BENCH_NODE_ARGS ?? "").split(" ").filter((arg) => arg !== "");
  // The same V8 flag the `airlock` launcher uses (bin/airlock.ts shebang, `npm start`).
  const command = [...pin, process.execPath, "--max-semi-space-size=32", ...nodeArgs, join(import.meta.dirname, "../dist/bin/airlock.js"), "serve", "--config", configPath];
  const child = spawn(command[0] ?? process.execPath, command.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
  const { address, httpUrl } = await new Promise<{ address: string; httpUrl: string }>((resolve, reject) => {
    let text = "";
    child.stdout.on("data", (chunk: Buffer) => {
      if (process.env.AIRLOCK_BENCH_ECHO === "1") process.stderr.write(chunk);
      text += chunk.toString();
      const grpcMatch = /gRPC\) listening on (\S+)/.exec(text);
      const httpMatch = /HTTP\) listening on (\S+)/.exec(text);
      if (grpcMatch?.[1] && httpMatch?.[1]) resolve({ address: grpcMatch[1], httpUrl: httpMatch[1] });
    });
    child.once("exit", (code) => { reject(new Error(`airlock exited with ${code}`)); });
  });
  return { child, address, httpUrl };
}

/**
 * The load generator sends pre-encoded CheckRequests and does not decode answers, so its own protobuf cost stays out
 * of the way (Envoy's C++ client is far cheaper than grpc-js; the measurement is about the gateway).
 */
interface RawCheckClient {
  check(request: Buffer, deadlineMs: number): Promise<void>;
  close(): void;
}

function createRawCheckClient(address: string): RawCheckClient {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const same = (value: Buffer): Buffer => value;
  return {
    check(request, deadlineMs) {
      return new Promise((resolve, reject) => {
        client.makeUnaryRequest("/envoy.service.auth.v3.Authorization/Check", same, same, request, { deadline: Date.now() + deadlineMs }, (error) => {
          if (error) reject(error);
          else resolve();
        });
      });
    },
    close() {
      client.close();
    },
  };
}

function workload(tokens: readonly string[]): Buffer[] {
  const CheckRequest = loadEnvoyConfigRoot().lookupType("envoy.service.auth.v3.CheckRequest");
  const pod = Buffer.from(JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name: "p" }, spec: { containers: [{ name: "c", image: "busybox" }] } }));
  const binding = Buffer.from(JSON.stringify({
    apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", metadata: { name: "b" },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
    subjects: [{ kind: "ServiceAccount", name: "default", namespace: "default" }],
  }));
  const requests: Buffer[] = [];
  const encode = (request: ReturnType<typeof envoyCheckRequest>): Buffer =>
    Buffer.from(CheckRequest.encode(CheckRequest.fromObject(request)).finish());
  tokens.forEach((token, i) => {
    // A kubectl-like mix: mostly reads, some writes with bodies that CEL inspects, some denials.
    for (let n = 0; n < 6; n++) requests.push(encode(envoyCheckRequest({ method: "GET", path: `/api/v1/namespaces/team-${i}/pods?limit=500`, token })));
    requests.push(encode(envoyCheckRequest({ method: "GET", path: `/api/v1/namespaces/team-${i}/secrets/db`, token })));
    requests.push(encode(envoyCheckRequest({ method: "GET", path: `/apis/apps/v1/namespaces/team-${i}/deployments?watch=true&resourceVersion=1`, token })));
    requests.push(encode(envoyCheckRequest({ method: "POST", path: `/api/v1/namespaces/dev-${i}/pods`, token, body: pod })));
    requests.push(encode(envoyCheckRequest({ method: "POST", path: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", token, body: binding })));
  });
  return requests;
}

async function closedLoop(client: RawCheckClient, requests: readonly Buffer[], concurrency: number): Promise<Sample> {
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

async function openLoop(client: RawCheckClient, requests: readonly Buffer[], rate: number): Promise<Sample> {
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

/** Cumulative bucket counts of airlock_check_duration_seconds, by upper bound in ms. */
let lastLoopLagMaxMs = Number.NaN;

async function serverHistogram(httpUrl: string): Promise<Map<number, number>> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  // prom-client resets its event-loop delay histogram at each scrape, so this is the max since the previous one.
  const lag = /^nodejs_eventloop_lag_max_seconds (\S+)/m.exec(text);
  lastLoopLagMaxMs = lag?.[1] === undefined ? Number.NaN : Number(lag[1]) * 1000;
  const buckets = new Map<number, number>();
  for (const match of text.matchAll(/^airlock_check_duration_seconds_bucket\{le="([^"]+)"\} (\d+)/gm)) {
    buckets.set(match[1] === "+Inf" ? Number.POSITIVE_INFINITY : Number(match[1]) * 1000, Number(match[2]));
  }
  return buckets;
}

/** A quantile from the difference of two cumulative histograms, linearly interpolated within its bucket. */
function histogramQuantile(before: Map<number, number>, after: Map<number, number>, q: number): number {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Number.POSITIVE_INFINITY) ?? 0) - (before.get(Number.POSITIVE_INFINITY) ?? 0);
  const rank = q * total;
  let lower = 0;
  let previous = 0;
  for (const bound of bounds) {
    const count = (after.get(bound) ?? 0) - (before.get(bound) ?? 0);
    if (count >= rank) {
      if (!Number.isFinite(bound)) return lower;
      return lower + ((bound - lower) * (rank - previous)) / Math.max(1, count - previous);
    }
    previous = count;
    lower = bound;
  }
  return Number.NaN;
}

async function measuredRow(httpUrl: string, label: string, load: string, run: () => Promise<Sample>): Promise<string> {
  const before = await serverHistogram(httpUrl);
  const sample = await run();
  const after = await serverHistogram(httpUrl);
  const sorted = [...sample.latenciesMs].sort((a, b) => a - b);
  const rps = (sample.completed / sample.elapsedMs) * 1000;
  const server = (q: number): string => histogramQuantile(before, after, q).toFixed(3);
  return `| ${label} | ${load} | ${rps.toFixed(0)} | ${server(0.5)} | ${server(0.99)} | ${lastLoopLagMaxMs.toFixed(1)} | ${percentile(sorted, 50).toFixed(3)} | ${percentile(sorted, 99).toFixed(3)} | ${percentile(sorted, 99.9).toFixed(3)} | ${sample.errors} |`;
}

/** A ClickHouse server in its own process, on the load generator's core (the gateway keeps core 0 to itself). */
async function auditServer(): Promise<{ yaml: string; server: ClickHouseServerHandle }> {
  const server = await startClickHouseServer();
  const pid = server.pid();
  if (pid !== undefined && availableParallelism() > 1) execFileSync("taskset", ["-a", "-cp", "1", String(pid)], { stdio: "ignore" });
  const store = new ClickHouseServerAuditStore({
    kind: "clickhouse", url: server.url, username: "default", database: "airlock", requestTimeoutMs: 30_000,
    insertDeduplicationToken: false, applyMigrations: false,
  });
  // Debian's server is 18.16: the compat DDL, same columns and insert payload as production.
  await applyMigrations(store, { dir: join(findSchemaDir(), "compat", "clickhouse-18") });
  await store.close();
  return {
    server,
    yaml: `audit: { store: { kind: clickhouse, url: '${server.url}', database: airlock, insertDeduplicationToken: false, applyMigrations: false } }`,
  };
}

async function runTopology(name: string, auditYaml: string, tokensFor: (stateDir: string) => Promise<string[]>): Promise<string[]> {
  const stateDir = mkdtempSync(join(tmpdir(), "airlock-bench-check-"));
  const tokens = await tokensFor(stateDir);
  const { child, address, httpUrl } = await startServer(stateDir, auditYaml);
  const client = createRawCheckClient(address);
  const requests = workload(tokens);
  try {
    await closedLoop(client, requests, 8); // warm-up: JIT, token cache, CEL plans
    const lines = [
      `### audit → ${name}`,
      "",
      "| mode | load | achieved rps | server p50 ms | server p99 ms | event-loop stall max ms | client p50 ms | client p99 ms | client p99.9 ms | errors |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ];
    for (const concurrency of concurrencies) {
      lines.push(await measuredRow(httpUrl, "closed loop", `concurrency ${concurrency}`, () => closedLoop(client, requests, concurrency)));
    }
    for (const rate of rates) lines.push(await measuredRow(httpUrl, "open loop", `${rate} rps`, () => openLoop(client, requests, rate)));
    return lines;
  } finally {
    client.close();
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
  }
}

/**
 * The transport floor: a grpc-js server on the same core that answers every Check with a fixed 300-byte reply, no
 * decoding and no decision. What it cannot beat, Airlock cannot either; the gap is Airlock's own cost.
 */
const FLOOR_SERVER = `
import * as grpc from "@grpc/grpc-js";
const server = new grpc.Server();
const same = (b) => b;
const reply = Buffer.alloc(300, 1);
server.register("/envoy.service.auth.v3.Authorization/Check", (_call, cb) => cb(null, reply), same, same, "unary");
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, port) => { console.log("gRPC) listening on 127.0.0.1:" + port); });
`;

async function runFloor(tokensFor: (stateDir: string) => Promise<string[]>): Promise<string[]> {
  const pin = availableParallelism() > 1 ? ["taskset", "-c", "0"] : [];
  const command = [...pin, process.execPath, "--input-type=module", "-e", FLOOR_SERVER];
  const child = spawn(command[0] ?? process.execPath, command.slice(1), { stdio: ["ignore", "pipe", "inherit"], cwd: join(import.meta.dirname, "..") });
  const address = await new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (chunk: Buffer) => {
      const match = /listening on (\S+)/.exec(chunk.toString());
      if (match?.[1]) resolve(match[1]);
    });
    child.once("exit", (code) => { reject(new Error(`floor server exited with ${code}`)); });
  });
  const client = createRawCheckClient(address);
  const requests = workload(await tokensFor(mkdtempSync(join(tmpdir(), "airlock-bench-floor-"))));
  const row = (label: string, load: string, sample: Sample): string => {
    const sorted = [...sample.latenciesMs].sort((a, b) => a - b);
    const rps = (sample.completed / sample.elapsedMs) * 1000;
    return `| ${label} | ${load} | ${rps.toFixed(0)} | - | - | - | ${percentile(sorted, 50).toFixed(3)} | ${percentile(sorted, 99).toFixed(3)} | ${percentile(sorted, 99.9).toFixed(3)} | ${sample.errors} |`;
  };
  try {
    await closedLoop(client, requests, 8);
    const lines = [
      "### grpc-js transport floor (fixed reply, no decision), same requests and client",
      "",
      "| mode | load | achieved rps | server p50 ms | server p99 ms | event-loop stall max ms | client p50 ms | client p99 ms | client p99.9 ms | errors |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ];
    for (const concurrency of concurrencies) lines.push(row("closed loop", `concurrency ${concurrency}`, await closedLoop(client, requests, concurrency)));
    for (const rate of rates) lines.push(row("open loop", `${rate} rps`, await openLoop(client, requests, rate)));
    return lines;
  } finally {
    client.close();
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
  }
}

async function main(): Promise<void> {
  // The load generator stays off the server's core.
  if (availableParallelism() > 1) execFileSync("taskset", ["-cp", "1", String(process.pid)], { stdio: "ignore" });
  const tokensFor = async (stateDir: string): Promise<string[]> => {
    const issuer = await openDevIssuer(stateDir);
    return Promise.all(Array.from({ length: 20 }, (_, i) => issuer.issue({ subject: `agent-${i}`, groups: ["agents"], ttlSeconds: 3600 })));
  };
  const out = [
    "Check bench: baseline policy, 200-request kubectl-like mix (60% list, 10% secret get, 10% watch, 10% pod create with body, 10% denied binding)",
    `gateway pinned to one core (taskset -c 0); grpc-js load generator on the other; ${seconds}s per row`,
    "server = the gateway's own Check time (histogram); client = round trip seen by a grpc-js client sending pre-encoded requests",
    "",
  ];
  for (const topology of values.audit.split(",")) {
    if (topology === "floor") {
      out.push(...(await runFloor(tokensFor)), "");
    } else if (topology === "server") {
      if (clickHouseServerBinary() === undefined) {
        out.push("(clickhouse-server not installed: the server topology is skipped)");
        continue;
      }
      const { yaml, server } = await auditServer();
      try {
        out.push(...(await runTopology("ClickHouse server (own process; production topology)", yaml, tokensFor)), "");
      } finally {
        await server.stop();
      }
    } else {
      out.push(...(await runTopology("embedded chDB (in the gateway process; development default)", "", tokensFor)), "");
    }
  }
  console.log(out.join("\n"));
}

await main();
grpc.setLogVerbosity(grpc.logVerbosity.NONE);
