/**
 * @module test/testbed/testbed
 * Finds (and, for e2e suites, starts/stops) the real kube-apiserver + etcd test bed run by testbed.sh.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

/** test/testbed/testbed.sh, for suites that drive it directly. */
export const TESTBED_SCRIPT = join(here, "testbed.sh");

export interface Testbed {
  /** Admin kubeconfig (bearer token in system:masters, CA pinned). */
  readonly kubeconfig: string;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** PEM of the throw-away CA that signed the API server's certificate. */
  readonly caFile: string;
  /** Static admin bearer token (throw-away, per start). Never log it. */
  readonly adminToken: string;
}

/** The run directory testbed.sh uses: $TESTBED_RUN or <repo>/.testbed. */
export function testbedRunDir(): string {
  return process.env.TESTBED_RUN ?? join(here, "..", "..", ".testbed");
}

/** Parses the KEY=VALUE env file testbed.sh writes once the API server is ready. */
export function parseTestbedEnv(text: string): Testbed | undefined {
  const values = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) values.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  const kubeconfig = values.get("TESTBED_KUBECONFIG");
  const server = values.get("TESTBED_SERVER");
  const caFile = values.get("TESTBED_CA_FILE");
  const adminToken = values.get("TESTBED_ADMIN_TOKEN");
  if (!kubeconfig || !server || !caFile || !adminToken) return undefined;
  return Object.freeze({ kubeconfig, server, caFile, adminToken });
}

/**
 * The running test bed, or undefined when none was started (or it was stopped: `stop` removes the env file).
 * It does not probe the server; `ensureTestbed` does.
 */
export function readTestbed(runDir: string = testbedRunDir()): Testbed | undefined {
  let text: string;
  try {
    text = readFileSync(join(runDir, "env"), "utf8");
  } catch {
    return undefined;
  }
  return parseTestbedEnv(text);
}

async function runScript(command: "start" | "stop" | "status", timeoutMs: number): Promise<void> {
  await execFileAsync("bash", [TESTBED_SCRIPT, command], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
}

export interface EnsuredTestbed {
  readonly testbed: Testbed;
  /** True when this call started it; then the caller stops it (stopTestbed) when done. */
  readonly startedHere: boolean;
}

/**
 * Returns the running, ready test bed, or starts one (building kube-apiserver and etcd first if the cache
 * is cold: minutes; warm: seconds). Throws when it cannot: e2e tests fail rather than pass vacuously.
 */
export async function ensureTestbed(timeoutMs = 1_200_000): Promise<EnsuredTestbed> {
  const existing = readTestbed();
  if (existing) {
    try {
      await runScript("status", 15_000);
      return { testbed: existing, startedHere: false };
    } catch {
      // stale env file: fall through and (re)start
    }
  }
  try {
    await runScript("start", timeoutMs);
  } catch (error) {
    const stderr = (error as { stderr?: unknown }).stderr;
    const tail = typeof stderr === "string" ? stderr.split("\n").slice(-20).join("\n") : "";
    throw new Error(`test bed did not start (${TESTBED_SCRIPT} start):\n${tail}`);
  }
  const started = readTestbed();
  if (!started) throw new Error(`test bed started but ${join(testbedRunDir(), "env")} is missing`);
  return { testbed: started, startedHere: true };
}

/** Stops the test bed's own processes (by the pids testbed.sh recorded). */
export async function stopTestbed(): Promise<void> {
  await runScript("stop", 60_000);
}
