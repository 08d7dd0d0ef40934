/**
 * @module test/e2e/scenarios/secret-masking.test
 * Real kubectl reads Secrets through the gateway in every representation (yaml, json, watch, describe, Table,
 * last-applied annotation): values arrive masked and still valid base64, kubectl is happy, nothing planted leaks.
 */
import { randomBytes } from "node:crypto";
import { parse as parseYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startE2eStack, type E2eStack } from "../../helpers/e2e-stack.js";

const MASK_MARKER = "airlock:masked:";
const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";
/** How long the watch runs before kubectl's own --request-timeout ends it. */
const WATCH_SECONDS = 8;

interface SecretObject {
  kind?: string;
  metadata: { name: string; annotations?: Record<string, string> };
  data?: Record<string, string>;
}

let stack: E2eStack;
/** Set once beforeAll got a stack: afterAll must not hide a failed start behind a TypeError. */
let started = false;
let ns: string;
/** Every value planted in a Secret; none may appear in any output, plain or base64. */
const planted: string[] = [];
/** Everything kubectl and the raw requests printed, checked for planted values at the end. */
const outputs: string[] = [];

function plant(): string {
  // 24 hex chars: base64 of it has no padding, so the encoded form is searchable as is.
  const value = `planted-${randomBytes(12).toString("hex")}`;
  planted.push(value);
  return value;
}

function b64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}

function record(text: string): string {
  outputs.push(text);
  return text;
}

/** Finds planted values (plain or base64) in a text; the assertion message names the form, never the value. */
function leaks(text: string): string[] {
  const found: string[] = [];
  planted.forEach((value, index) => {
    if (text.includes(value)) found.push(`planted[${String(index)}] plain`);
    if (text.includes(b64(value))) found.push(`planted[${String(index)}] base64`);
  });
  return found;
}

/** Each data value is valid base64 that decodes to an Airlock placeholder. */
function expectMaskedData(secret: SecretObject, keys: readonly string[]): void {
  expect(Object.keys(secret.data ?? {}).sort()).toEqual([...keys].sort());
  for (const [key, value] of Object.entries(secret.data ?? {})) {
    expect(value, `data.${key}`).toMatch(/^[A-Za-z0-9+/]*={0,2}$/);
    const decoded = Buffer.from(value, "base64");
    expect(decoded.toString("base64"), `data.${key} round-trips`).toBe(value);
    expect(decoded.toString("utf8"), `data.${key}`).toMatch(new RegExp(`^${MASK_MARKER}`));
  }
}

/** Splits kubectl's stream of pretty-printed JSON documents (watch output) into values. */
function splitJsonDocuments(text: string): unknown[] {
  const documents: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === "\\") escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === "{") {
      if (depth === 0) start = i;
      depth++;
    } else if (c === "}") {
      depth--;
      if (depth === 0 && start >= 0) {
        documents.push(JSON.parse(text.slice(start, i + 1)));
        start = -1;
      }
    }
  }
  return documents;
}

async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function mustAdmin(args: readonly string[], stdin?: string): Promise<void> {
  const result = await stack.admin(args, stdin === undefined ? {} : { stdin });
  if (result.code !== 0) throw new Error(`admin kubectl ${args.slice(0, 3).join(" ")}: ${result.stderr}`);
}

beforeAll(async () => {
  stack = await startE2eStack({ name: "secrets" });
  started = true;
  ns = await stack.createNamespace("e2e-secrets");
  // Created straight at the API server as the admin: the planted values never pass the gateway on the way in.
  await mustAdmin(["-n", ns, "create", "secret", "generic", "db", `--from-literal=password=${plant()}`, `--from-literal=api-key=${plant()}`]);
  // Client-side apply stores the whole manifest, values included, in the last-applied annotation.
  const manifest = JSON.stringify({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "applied", namespace: ns },
    type: "Opaque",
    stringData: { token: plant() },
    data: { cert: b64(plant()) },
  });
  await mustAdmin(["apply", "-f", "-"], manifest);
});

afterAll(async () => {
  if (started) await stack.close();
});

describe("Secret values through kubectl", () => {
  it("kubectl get secret -o yaml: masked, valid base64, exit 0", async () => {
    const result = await stack.kubectl(["-n", ns, "get", "secret", "db", "-o", "yaml", "--request-timeout=20s"]);
    record(result.stdout + result.stderr);
    expect(result.code, result.stderr).toBe(0);
    const secret = parseYaml(result.stdout) as SecretObject;
    expect(secret.metadata.name).toBe("db");
    expectMaskedData(secret, ["password", "api-key"]);
  });

  it("kubectl get secret -o json: masked, valid base64, exit 0", async () => {
    const result = await stack.kubectl(["-n", ns, "get", "secret", "db", "-o", "json", "--request-timeout=20s"]);
    record(result.stdout + result.stderr);
    expect(result.code, result.stderr).toBe(0);
    expectMaskedData(JSON.parse(result.stdout) as SecretObject, ["password", "api-key"]);
  });

  it("kubectl get secrets -w: the list and every watch event are masked while Secrets are created and updated", async () => {
    // --request-timeout bounds the watch: kubectl then ends it on its own and exits 0.
    const watch = stack.kubectlInBackground(
      ["-n", ns, "get", "secrets", "-w", "--output-watch-events", "-o", "json", `--request-timeout=${String(WATCH_SECONDS)}s`],
      { timeoutMs: (WATCH_SECONDS + 30) * 1000 },
    );
    try {
      // The initial list arrives as ADDED events; after it the watch is open.
      await waitFor(() => watch.stdout().includes('"applied"'), 20_000, "the initial list");
      await mustAdmin(["-n", ns, "create", "secret", "generic", "watched", `--from-literal=first=${plant()}`]);
      await mustAdmin(["-n", ns, "patch", "secret", "watched", "--type=merge", "-p", JSON.stringify({ stringData: { second: plant() } })]);
      await waitFor(() => /"MODIFIED"[\s\S]*"watched"/.test(watch.stdout()), 20_000, "the MODIFIED event");
    } catch (error) {
      await watch.stop();
      throw error;
    }
    const result = await watch.result;
    record(result.stdout + result.stderr);
    expect(result.code, result.stderr).toBe(0);
    const events = splitJsonDocuments(result.stdout) as { type: string; object: SecretObject }[];
    const seen = events.map((event) => `${event.type} ${event.object.metadata.name}`);
    expect(seen).toEqual(expect.arrayContaining(["ADDED db", "ADDED applied", "ADDED watched", "MODIFIED watched"]));
    for (const event of events) {
      for (const [key, value] of Object.entries(event.object.data ?? {})) {
        expect(Buffer.from(value, "base64").toString("utf8"), `${event.type} ${event.object.metadata.name} data.${key}`).toMatch(new RegExp(`^${MASK_MARKER}`));
      }
    }
    const modified = events.find((event) => event.type === "MODIFIED" && event.object.metadata.name === "watched");
    expect(Object.keys(modified?.object.data ?? {}).sort()).toEqual(["first", "second"]);
  });

  it("kubectl describe secret: exit 0, keys listed, no values", async () => {
    const result = await stack.kubectl(["-n", ns, "describe", "secret", "db", "--request-timeout=20s"]);
    record(result.stdout + result.stderr);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/password:\s+\d+ bytes/);
    expect(result.stdout).toMatch(/api-key:\s+\d+ bytes/);
  });

  it("kubectl get secrets (server-side Table printing): exit 0", async () => {
    const result = await stack.kubectl(["-n", ns, "get", "secrets", "--request-timeout=20s"]);
    record(result.stdout + result.stderr);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^NAME\s+TYPE\s+DATA\s+AGE/);
    expect(result.stdout).toMatch(/\bdb\s+Opaque\s+2\b/);
  });

  it("a Table with includeObject=Object: row objects masked", async () => {
    const response = await stack.request({
      path: `/api/v1/namespaces/${ns}/secrets?includeObject=Object`,
      headers: { accept: "application/json;as=Table;v=v1;g=meta.k8s.io" },
    });
    record(response.body);
    expect(response.status, response.body.slice(0, 500)).toBe(200);
    const table = JSON.parse(response.body) as { kind: string; rows: { cells: unknown[]; object: SecretObject }[] };
    expect(table.kind).toBe("Table");
    const byName = new Map(table.rows.map((row) => [row.object.metadata.name, row.object]));
    expect([...byName.keys()]).toEqual(expect.arrayContaining(["db", "applied"]));
    const db = byName.get("db");
    if (db === undefined) throw new Error("row db missing");
    expectMaskedData(db, ["password", "api-key"]);
  });

  it("a client-side applied Secret: its last-applied annotation is masked too", async () => {
    const result = await stack.kubectl(["-n", ns, "get", "secret", "applied", "-o", "json", "--request-timeout=20s"]);
    record(result.stdout + result.stderr);
    expect(result.code, result.stderr).toBe(0);
    const secret = JSON.parse(result.stdout) as SecretObject;
    expectMaskedData(secret, ["token", "cert"]);
    const annotation = secret.metadata.annotations?.[LAST_APPLIED];
    expect(annotation, "the annotation is kept (kubectl apply needs it)").toBeDefined();
    expect(leaks(annotation ?? "")).toEqual([]);
    // Still the JSON kubectl apply diffs against, with placeholders where the values were.
    const lastApplied = JSON.parse(annotation ?? "{}") as { stringData?: Record<string, string>; data?: Record<string, string> };
    expect(lastApplied.stringData?.token).toMatch(new RegExp(`^${MASK_MARKER}`));
    expect(Buffer.from(lastApplied.data?.cert ?? "", "base64").toString("utf8")).toMatch(new RegExp(`^${MASK_MARKER}`));
  });

  it("no planted value, plain or base64, appears in any output", () => {
    expect(outputs.length).toBeGreaterThanOrEqual(7);
    expect(leaks(outputs.join("\n"))).toEqual([]);
  });

  it("every read is in the audit store, and no audit row carries a planted value", async () => {
    // The watch outlived the exchange timeout: its decision row is `missing` and its masked response body arrives
    // as a second row with the same decision id once kubectl ended the watch.
    const rows = await stack.waitForAuditRows((all) => {
      const watch = all.find((row) => row.resource === "secrets" && row.verb === "watch");
      return watch !== undefined && all.some((row) => row.decision_id === watch.decision_id && row.response_outcome !== "missing");
    });
    const watchDecision = rows.find((row) => row.resource === "secrets" && row.verb === "watch");
    const watchExchange = rows.find((row) => row.decision_id === watchDecision?.decision_id && row.response_outcome !== "missing");
    expect(watchExchange?.response_status).toBe(200);
    expect(watchExchange?.response_body).toContain('"MODIFIED"');
    const secretReads = rows.filter((row) => row.resource === "secrets" && row.namespace === ns);
    expect(secretReads.filter((row) => row.verb === "get" && row.name === "db").length).toBeGreaterThanOrEqual(3);
    expect(secretReads.some((row) => row.verb === "list")).toBe(true);
    expect(secretReads.some((row) => row.verb === "watch")).toBe(true);
    for (const row of secretReads) {
      expect(row.effect).toBe("Allow");
      expect(row.rule_ids).toContain("agents-read-secrets-masked");
      expect(row.workload_identity).toBe("system:serviceaccount:airlock:agent-view");
    }
    expect(leaks(JSON.stringify(rows))).toEqual([]);
  });
});
