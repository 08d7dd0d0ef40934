/**
 * @module tap/audit/replay-command
 * `airlock replay SESSION [--format text|json]`: prints a session's transcript from the configured store.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseAuditConfig, type AuditConfig, type AuditConfigInput } from "./audit-config.js";
import { describeError } from "./audit-errors.js";
import type { AuditStore } from "./audit-store.js";
import { openAuditStore } from "./open-audit-store.js";
import {
  buildTranscript, renderTranscriptJson, renderTranscriptText, type ApprovalTimelineRow, type TimelineRow,
} from "./replay-transcript.js";
import { findSchemaDir, renderSql } from "./schema-migrations.js";

/** Where a command writes; the CLI passes process.stdout/stderr writers, tests collect strings. */
export interface AuditCommandIo {
  out(text: string): void;
  err(text: string): void;
}

export interface AuditCommandDeps {
  /** Use this store instead of opening the configured one (it is not closed). */
  readonly store?: AuditStore;
}

/** Exit codes shared by the audit commands. */
export const EXIT_OK = 0;
/** replay: no such session; verify: the chain is broken. */
export const EXIT_FINDING = 1;
export const EXIT_USAGE = 2;
export const EXIT_STORE = 3;

export const REPLAY_USAGE = "usage: airlock replay SESSION [--format text|json]\n";

/** Load one documented query from deploy/clickhouse/queries with the database filled in. */
export function loadQuery(config: AuditConfig, name: string, database: string): string {
  const sql = readFileSync(join(findSchemaDir(config.schemaDir), "queries", `${name}.sql`), "utf8");
  return renderSql(sql, { database }).trim().replace(/;$/, "");
}

/** Open the configured store (or use the given one), run fn, close what was opened. */
export async function withStore<T>(config: AuditConfig, deps: AuditCommandDeps, fn: (store: AuditStore) => Promise<T>): Promise<T> {
  const store = deps.store ?? await openAuditStore(config);
  try {
    return await fn(store);
  } finally {
    if (deps.store === undefined) await store.close();
  }
}

export async function runReplayCommand(
  argv: readonly string[], io: AuditCommandIo, config: AuditConfig | AuditConfigInput, deps: AuditCommandDeps = {},
): Promise<number> {
  let sessionId: string;
  let format: "text" | "json";
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options: { format: { type: "string", default: "text" }, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
    });
    if (values.help === true) {
      io.out(REPLAY_USAGE);
      return EXIT_OK;
    }
    if (positionals.length !== 1 || positionals[0] === undefined || positionals[0] === "") throw new Error("expected exactly one SESSION");
    if (values.format !== "text" && values.format !== "json") throw new Error("--format must be text or json");
    sessionId = positionals[0];
    format = values.format;
  } catch (err) {
    io.err(`airlock replay: ${(err as Error).message}\n${REPLAY_USAGE}`);
    return EXIT_USAGE;
  }
  let cfg: AuditConfig;
  try {
    cfg = parseAuditConfig(config);
  } catch (err) {
    io.err(`airlock replay: ${describeError(err)}\n`);
    return EXIT_USAGE;
  }
  try {
    return await withStore(cfg, deps, async (store) => {
      const [requests, approvals] = [
        await store.queryRows<TimelineRow>(loadQuery(cfg, "session-timeline", store.database), { session_id: sessionId }),
        await store.queryRows<ApprovalTimelineRow>(loadQuery(cfg, "session-approvals", store.database), { session_id: sessionId }),
      ];
      if (requests.length === 0 && approvals.length === 0) {
        io.err(`airlock replay: no audit records for session ${JSON.stringify(sessionId)}\n`);
        return EXIT_FINDING;
      }
      const transcript = buildTranscript(sessionId, requests, approvals);
      io.out(format === "json" ? renderTranscriptJson(transcript) : renderTranscriptText(transcript));
      return EXIT_OK;
    });
  } catch (err) {
    io.err(`airlock replay: ${describeError(err)}\n`);
    return EXIT_STORE;
  }
}
