/**
 * @module test/helpers/e2e-exchange
 * The end-to-end stack with token exchange switched on: real kube-apiserver (test bed), Airlock with a
 * `tokenExchange` section, the Envoy-faithful gateway on TLS, real kubectl, and the built `airlock` CLI.
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { spawnProcess, startE2eStack, type E2eStack, type ProcessResult } from "./e2e-stack.js";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The built CLI (`npm run build`): what kubectl runs as its exec plugin. */
export const AIRLOCK_CLI = join(REPO_ROOT, "dist", "bin", "airlock.js");

/** Sources whose compiled form the plugin tests run; a dist older than any of them would test stale code. */
const CLI_SOURCES: readonly (readonly [source: string, built: string])[] = [
  ["bin/airlock.ts", "dist/bin/airlock.js"],
  ["authz/exchange/credential-command.ts", "dist/authz/exchange/credential-command.js"],
  ["authz/exchange/credential-cache.ts", "dist/authz/exchange/credential-cache.js"],
  ["authz/exchange/credential-source.ts", "dist/authz/exchange/credential-source.js"],
  ["authz/exchange/kubeconfig-command.ts", "dist/authz/exchange/kubeconfig-command.js"],
];

/**
 * Throws unless `dist/` holds a build of the credential plugin at least as new as its sources: kubectl runs the
 * compiled CLI, and a missing or stale build must fail the test loudly rather than test old code.
 */
export function assertCliBuilt(): void {
  for (const [source, built] of CLI_SOURCES) {
    let builtMs: number;
    try {
      builtMs = statSync(join(REPO_ROOT, built)).mtimeMs;
    } catch {
      throw new Error(`${built} is missing: run \`npm run build\` before the credential-plugin e2e test`);
    }
    if (statSync(join(REPO_ROOT, source)).mtimeMs > builtMs) {
      throw new Error(`${built} is older than ${source}: run \`npm run build\` before the credential-plugin e2e test`);
    }
  }
}

export interface RunOptions {
  /** The child's whole environment (nothing is inherited). */
  readonly env: NodeJS.ProcessEnv;
  /** Killed (SIGKILL) past it. Default 60 s. */
  readonly timeoutMs?: number;
}

/** `node dist/bin/airlock.js <args>` with exactly `env`. */
export function runAirlockCli(args: readonly string[], options: RunOptions): Promise<ProcessResult> {
  return spawnProcess(process.execPath, [AIRLOCK_CLI, ...args], options.env, options).result;
}

/** One `token exchange` audit log line of Airlock (TokenExchangeAuditEvent, the fields the tests read). */
export interface ExchangeLogEvent {
  readonly outcome: "issued" | "refused";
  readonly error: string;
  readonly grant: string;
  readonly subject: string;
  readonly groups: readonly string[];
  readonly sessionId: string;
  readonly tokenId: string;
  readonly expiresAtSeconds: number;
  readonly timeMicros: number;
}

export interface ExchangeE2eStackOptions {
  /** Short name: used in the gateway instance and temp dir. */
  readonly name: string;
  /** The `tokenExchange` section of the Airlock configuration, as the YAML file would carry it. */
  readonly tokenExchange: Readonly<Record<string, unknown>>;
}

/** The e2e stack ({@link startE2eStack}) whose Airlock also exchanges tokens and logs into memory. */
export interface ExchangeE2eStack extends E2eStack {
  /** Every `token exchange` event Airlock has logged so far, in order. */
  exchangeEvents(): readonly ExchangeLogEvent[];
  /** Everything Airlock has logged so far (JSON lines), to check that no token is in it. */
  logText(): string;
}

function isExchangeLogEvent(value: unknown): value is ExchangeLogEvent {
  if (typeof value !== "object" || value === null) return false;
  const entry = value as Record<string, unknown>;
  return entry.audit === "token-exchange" && (entry.outcome === "issued" || entry.outcome === "refused");
}

/**
 * Starts the stack (the same parts and settings as startE2eStack, plus `tokenExchange`). Airlock logs at info into
 * memory so tests can count exchanges; set AIRLOCK_E2E_LOG to also see the lines on stderr. Fails loudly; starts
 * the test bed only when none runs (and then stops it in close()).
 */
export async function startExchangeE2eStack(options: ExchangeE2eStackOptions): Promise<ExchangeE2eStack> {
  const logLines: string[] = [];
  const echo = process.env.AIRLOCK_E2E_LOG !== undefined && process.env.AIRLOCK_E2E_LOG !== "";
  const logDestination = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      const text = chunk.toString();
      logLines.push(text);
      if (echo) process.stderr.write(text);
      callback();
    },
  });
  const stack = await startE2eStack({
    name: options.name,
    airlockConfig: { logLevel: "info", tokenExchange: options.tokenExchange },
    logDestination,
  });
  return {
    ...stack,
    exchangeEvents() {
      const events: ExchangeLogEvent[] = [];
      for (const line of logLines.join("").split("\n")) {
        if (!line.includes('"token-exchange"')) continue;
        try {
          const parsed: unknown = JSON.parse(line);
          if (isExchangeLogEvent(parsed)) events.push(parsed);
        } catch {
          // not a whole JSON line: not an event
        }
      }
      return events;
    },
    logText: () => logLines.join(""),
  };
}
