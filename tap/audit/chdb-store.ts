/**
 * @module tap/audit/chdb-store
 * The embedded audit store: chDB in-process, one shared Session per process, all work via async calls.
 */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { drainPending, Session } from "chdb";
import { AuditError } from "./audit-errors.js";
import type { AuditStore, QueryParams } from "./audit-store.js";

interface SessionEntry {
  readonly path: string;
  readonly session: Session;
  refs: number;
}

// chDB binds ONE data directory per process: every store in this process shares this one session.
let shared: SessionEntry | undefined;
let closing: Promise<void> = Promise.resolve();

async function acquireSession(dataDir: string): Promise<SessionEntry> {
  await closing;
  const path = resolve(dataDir);
  if (shared !== undefined) {
    if (shared.path !== path) {
      throw new AuditError("chdb_data_dir_conflict",
        `chDB already has ${shared.path} open in this process; it allows one data directory per process (asked for ${path})`);
    }
    shared.refs++;
    return shared;
  }
  mkdirSync(path, { recursive: true });
  const session = new Session(path);
  shared = { path, session, refs: 1 };
  return shared;
}

function releaseSession(entry: SessionEntry): void {
  entry.refs--;
  if (entry.refs > 0 || shared !== entry) return;
  shared = undefined;
  entry.session.close();
  // A later Session at another path must wait until chDB has really let go of this one.
  closing = drainPending();
}

function mapError(err: unknown, what: string): AuditError {
  if (err instanceof AuditError) return err;
  const message = err instanceof Error ? err.message.split("\n")[0]?.slice(0, 400) ?? "" : "unknown error";
  return new AuditError("store_query", `chDB ${what} failed: ${message}`, { cause: err });
}

export class ChdbAuditStore implements AuditStore {
  readonly kind = "embedded" as const;
  readonly database: string;
  private readonly entry: SessionEntry;
  private closed = false;

  private constructor(entry: SessionEntry, database: string) {
    this.entry = entry;
    this.database = database;
  }

  static async open(opts: { dataDir: string; database: string }): Promise<ChdbAuditStore> {
    return new ChdbAuditStore(await acquireSession(opts.dataDir), opts.database);
  }

  get dataDir(): string {
    return this.entry.path;
  }

  private ensureOpen(): void {
    if (this.closed) throw new AuditError("sink_closed", "chDB store is closed");
  }

  async exec(sql: string): Promise<void> {
    this.ensureOpen();
    try {
      await this.entry.session.queryAsync(sql);
    } catch (err) {
      throw mapError(err, "statement");
    }
  }

  async insertJsonEachRow(table: string, payload: Buffer, dedupToken: string | undefined): Promise<void> {
    this.ensureOpen();
    try {
      // The raw insert hands the bytes to the engine's parser off the event loop.
      await this.entry.session.insert({
        table: `${this.database}.${table}`,
        values: payload,
        format: "JSONEachRow",
        settings: {
          // Audit rows never share a sorting key (chain_seq is in it), so the ReplacingMergeTree collapse pass
          // ClickHouse runs over every inserted block finds nothing and only costs time (about a sixth of the
          // insert). Retried batches are still dropped by the token, and merges still collapse anything else.
          optimize_on_insert: 0,
          ...(dedupToken === undefined ? {} : { insert_deduplication_token: dedupToken }),
        },
      });
    } catch (err) {
      throw mapError(err, "insert");
    }
  }

  async queryRows<T>(sql: string, params: QueryParams = {}): Promise<T[]> {
    this.ensureOpen();
    try {
      const result = Object.keys(params).length === 0
        ? await this.entry.session.queryAsync(sql, { format: "JSONEachRow" })
        : await this.entry.session.queryBindAsync(sql, params, { format: "JSONEachRow" });
      const text = result.text();
      if (text.trim() === "") return [];
      return text.trimEnd().split("\n").map((line) => JSON.parse(line) as T);
    } catch (err) {
      throw mapError(err, "query");
    }
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      releaseSession(this.entry);
    }
    return closing;
  }
}
