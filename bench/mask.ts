/**
 * @module bench/mask
 * Masking throughput and memory: a 10,000-item SecretList (plain, and as `kubectl apply` leaves it), a
 * watch stream of the same Secrets in 16 KiB chunks, and a Deployment list (env walk), each next to plain
 * JSON.parse + JSON.stringify of the same bytes. Run with the gateway's own V8 flag (bin/airlock.ts launches with it):
 * `NODE_OPTIONS="--expose-gc --max-semi-space-size=32" npx vite-node bench/mask.ts`
 * (BENCH_RUNS=n for more runs). Mask and baseline runs alternate, and both wall-clock and process-CPU-time
 * medians are printed.
 *
 * vite-node adds its module runner (and a little noise); for numbers from plain node, bundle first:
 *   npx esbuild bench/mask.ts --bundle --platform=node --format=esm --outfile=/tmp/mask-bench.mjs
 *   node --expose-gc /tmp/mask-bench.mjs
 * Heap flags change the picture: parsing a large list keeps every parsed object alive, so each young-
 * generation scavenge copies the whole tree; `--max-semi-space-size=32` (MiB) cuts most of that for both
 * columns. The heading prints the runner and the node flags so a table says what it was measured with.
 */
import { cpus, loadavg } from "node:os";
import { maskResponseBody } from "../tap/mask/mask-response.js";
import { defaultMaskConfig } from "../tap/mask/mask-config.js";
import { WatchStreamMasker } from "../tap/mask/watch-stream-masker.js";

const gc = (globalThis as { gc?: () => void }).gc;

function secretItem(i: number): Record<string, unknown> {
  const b64 = (s: string): string => Buffer.from(s).toString("base64");
  return {
    metadata: {
      name: `app-secret-${i}`,
      namespace: `team-${i % 50}`,
      uid: `0b6f8e2a-1c3d-4e5f-8a9b-${String(i).padStart(12, "0")}`,
      resourceVersion: String(100000 + i),
      creationTimestamp: "2026-01-01T00:00:00Z",
      labels: { app: `app-${i % 200}`, "app.kubernetes.io/managed-by": "kustomize" },
      managedFields: [{ manager: "kubectl-client-side-apply", operation: "Update", apiVersion: "v1", time: "2026-01-01T00:00:00Z", fieldsType: "FieldsV1", fieldsV1: { "f:data": { ".": {}, "f:password": {}, "f:username": {}, "f:url": {} }, "f:type": {} } }],
    },
    data: {
      username: b64(`user-${i}`),
      password: b64(`p@ssw0rd-${i}-${"x".repeat(24)}`),
      url: b64(`postgres://user-${i}:secret-${i}@db-${i % 7}.internal:5432/app`),
    },
    type: "Opaque",
  };
}

function deploymentItem(i: number): Record<string, unknown> {
  return {
    metadata: { name: `web-${i}`, namespace: `team-${i % 50}`, uid: `uid-${i}`, resourceVersion: String(i), labels: { app: `web-${i}` } },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: `web-${i}` } },
      template: {
        metadata: { labels: { app: `web-${i}` } },
        spec: {
          containers: [
            {
              name: "app",
              image: "registry.example.com/web:1.2.3",
              env: [
                { name: "LOG_LEVEL", value: "info" },
                { name: "DB_PASSWORD", value: `pw-${i}` },
                { name: "DATABASE_URL", value: `postgres://u:p${i}@db:5432/x` },
                { name: "FROM_SECRET", valueFrom: { secretKeyRef: { name: "db", key: "password" } } },
              ],
              ports: [{ containerPort: 8080, protocol: "TCP" }],
              resources: { limits: { cpu: "500m", memory: "256Mi" } },
            },
          ],
        },
      },
    },
    status: { replicas: 2, readyReplicas: 2 },
  };
}

interface Row {
  readonly scenario: string;
  readonly mb: number;
  readonly mask: Measured;
  readonly baseline: Measured;
}

interface Measured {
  /** MB/s from the median wall-clock time. */
  readonly wallMBs: number;
  /** MB/s from the median CPU time of this process (user + system; includes GC threads). */
  readonly cpuMBs: number;
  readonly heapMB: number;
}

const RUNS = Number(process.env.BENCH_RUNS ?? 7);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/**
 * Runs `mask` and `baseline` alternately (after one warm-up each), so load from other processes on a
 * shared machine hits both about equally; reports medians of wall time and of process CPU time.
 */
function measurePair(bytes: number, mask: () => unknown, baseline: () => unknown): { mask: Measured; baseline: Measured } {
  const samples = { mask: { wall: [] as number[], cpu: [] as number[], heap: 0 }, baseline: { wall: [] as number[], cpu: [] as number[], heap: 0 } };
  const once = (fn: () => unknown, into: { wall: number[]; cpu: number[]; heap: number } | undefined): void => {
    gc?.();
    const before = process.memoryUsage().heapUsed;
    const cpuStart = process.cpuUsage();
    const start = process.hrtime.bigint();
    const keep = fn();
    const ns = Number(process.hrtime.bigint() - start);
    const cpu = process.cpuUsage(cpuStart);
    if (keep === undefined) throw new Error("unreachable");
    if (!into) return;
    into.heap = Math.max(into.heap, (process.memoryUsage().heapUsed - before) / 1e6);
    into.wall.push(ns);
    into.cpu.push((cpu.user + cpu.system) * 1000);
  };
  once(mask, undefined);
  once(baseline, undefined);
  for (let i = 0; i < RUNS; i++) {
    once(mask, samples.mask);
    once(baseline, samples.baseline);
  }
  const summarise = (s: { wall: number[]; cpu: number[]; heap: number }): Measured => ({
    wallMBs: bytes / 1e3 / (median(s.wall) / 1e6),
    cpuMBs: bytes / 1e3 / (median(s.cpu) / 1e6),
    heapMB: s.heap,
  });
  return { mask: summarise(samples.mask), baseline: summarise(samples.baseline) };
}

function chunked(body: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) chunks.push(body.subarray(i, i + size));
  return chunks;
}

const rows: Row[] = [];

const secretList = Buffer.from(JSON.stringify({ apiVersion: "v1", kind: "SecretList", metadata: { resourceVersion: "1" }, items: Array.from({ length: 10_000 }, (_, i) => secretItem(i)) }));
{
  const measured = measurePair(
    secretList.length,
    () => {
      const r = maskResponseBody({ contentType: "application/json", path: "/api/v1/secrets", body: secretList }, defaultMaskConfig);
      if (!r.ok) throw new Error(r.code);
      return r.body;
    },
    () => Buffer.from(JSON.stringify(JSON.parse(secretList.toString("utf8")))),
  );
  rows.push({ scenario: "SecretList, 10,000 items", mb: secretList.length / 1e6, ...measured });
}

// kubectl apply (client side) stores the whole applied manifest, data included, in an annotation: each
// item then costs an embedded JSON.parse + mask + JSON.stringify on top of the list's own.
function appliedSecretItem(i: number): Record<string, unknown> {
  const item = secretItem(i);
  const metadata = item.metadata as Record<string, unknown>;
  const applied = { apiVersion: "v1", kind: "Secret", metadata: { name: metadata.name, namespace: metadata.namespace }, data: item.data, type: "Opaque" };
  return { ...item, metadata: { ...metadata, annotations: { "kubectl.kubernetes.io/last-applied-configuration": `${JSON.stringify(applied)}\n` } } };
}
const appliedList = Buffer.from(JSON.stringify({ apiVersion: "v1", kind: "SecretList", metadata: { resourceVersion: "1" }, items: Array.from({ length: 10_000 }, (_, i) => appliedSecretItem(i)) }));
{
  const measured = measurePair(
    appliedList.length,
    () => {
      const r = maskResponseBody({ contentType: "application/json", path: "/api/v1/secrets", body: appliedList }, defaultMaskConfig);
      if (!r.ok) throw new Error(r.code);
      return r.body;
    },
    () => Buffer.from(JSON.stringify(JSON.parse(appliedList.toString("utf8")))),
  );
  rows.push({ scenario: "SecretList, 10,000 items with last-applied annotation", mb: appliedList.length / 1e6, ...measured });
}

const watchBody = Buffer.from(Array.from({ length: 10_000 }, (_, i) => `${JSON.stringify({ type: i % 3 === 0 ? "MODIFIED" : "ADDED", object: { kind: "Secret", apiVersion: "v1", ...secretItem(i) } })}\n`).join(""));
const watchChunks = chunked(watchBody, 16 * 1024);
let maxHeld = 0;
{
  const measured = measurePair(
    watchBody.length,
    () => {
      const masker = new WatchStreamMasker(defaultMaskConfig, "Secret");
      let out = 0;
      for (const chunk of watchChunks) {
        const r = masker.push(chunk);
        if (!r.ok) throw new Error(r.code);
        out += r.out.length;
        maxHeld = Math.max(maxHeld, masker.heldBytes);
      }
      const e = masker.end();
      if (!e.ok) throw new Error(e.code);
      return out + e.out.length;
    },
    () => {
      let out = 0;
      let tail = "";
      for (const chunk of watchChunks) {
        const lines = (tail + chunk.toString("utf8")).split("\n");
        tail = lines.pop() ?? "";
        for (const line of lines) out += Buffer.byteLength(`${JSON.stringify(JSON.parse(line))}\n`);
      }
      return out;
    },
  );
  rows.push({ scenario: "watch, 10,000 Secret events, 16 KiB chunks", mb: watchBody.length / 1e6, ...measured });
}

const deployments = Buffer.from(JSON.stringify({ apiVersion: "apps/v1", kind: "DeploymentList", metadata: {}, items: Array.from({ length: 5_000 }, (_, i) => deploymentItem(i)) }));
{
  const measured = measurePair(
    deployments.length,
    () => {
      const r = maskResponseBody({ contentType: "application/json", path: "/apis/apps/v1/deployments", body: deployments }, defaultMaskConfig);
      if (!r.ok) throw new Error(r.code);
      return r.body;
    },
    () => Buffer.from(JSON.stringify(JSON.parse(deployments.toString("utf8")))),
  );
  rows.push({ scenario: "DeploymentList, 5,000 items (env walk)", mb: deployments.length / 1e6, ...measured });
}

const f = (n: number, d = 1): string => n.toFixed(d);
const [load1 = 0, load5 = 0] = loadavg();
const runner = /vite-node/.test(process.argv[1] ?? "") ? "vite-node" : "node";
const nodeFlags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)].filter((flag) => flag !== "");
console.log(
  `\nMasking throughput (node ${process.version} via ${runner}, flags: ${nodeFlags.join(" ") || "none"}; ${cpus().length} CPUs, ` +
    `load ${f(load1, 2)}/${f(load5, 2)}; median of ${RUNS} alternating runs${gc ? ", gc between runs" : ""})\n`,
);
console.log("| scenario | body MB | mask MB/s | parse+stringify MB/s | ratio | mask MB/s (CPU time) | parse+stringify MB/s (CPU time) | ratio (CPU) | mask heap Δ MB | parse+stringify heap Δ MB |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(
    `| ${r.scenario} | ${f(r.mb)} | ${f(r.mask.wallMBs)} | ${f(r.baseline.wallMBs)} | ${f(r.mask.wallMBs / r.baseline.wallMBs, 2)} | ` +
      `${f(r.mask.cpuMBs)} | ${f(r.baseline.cpuMBs)} | ${f(r.mask.cpuMBs / r.baseline.cpuMBs, 2)} | ${f(r.mask.heapMB)} | ${f(r.baseline.heapMB)} |`,
  );
}
console.log(`\nwatch: largest carried tail ${maxHeld} bytes (cap ${defaultMaskConfig.maxWatchEventBytes}); process peak RSS ${f(process.resourceUsage().maxRSS / 1024)} MB`);
console.log("CPU-time columns count this process only, so they move less with other load on a shared machine.");
