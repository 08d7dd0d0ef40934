/**
 * @module authz/approvals/sqlite-approval-store
 * The embedded default approval store (better-sqlite3): one file, survives restarts, one replica; versioned migrations.
 */
import { EventEmitter } from "node:events";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import type { Database as SqliteDatabase } from "better-sqlite3";
import { checkDecision, decisionExpiresAtMs } from "./approval-decision.js";
import type { ApprovalRecord } from "./approval-record.js";
import { approvalRecordFromRows, NEW_APPROVAL_COLUMNS, newApprovalRowValues } from "./approval-row.js";
import type { ApprovalHistoryRow, ApprovalRow, ApprovalVoteRow } from "./approval-row.js";
import type {
  ApprovalDecisionInput,
  ApprovalDecisionResult,
  ApprovalListFilter,
  ApprovalStore,
  NewApproval,
} from "./approval-store.js";

/** Append-only: a released version is never edited, a change is a new entry. */
const SQLITE_MIGRATIONS: readonly { readonly version: number; readonly sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE approvals (
        id                TEXT PRIMARY KEY,
        fingerprint       TEXT NOT NULL,
        requester_subject TEXT NOT NULL,
        requester_groups  TEXT NOT NULL,
        requester_session TEXT NOT NULL,
        rule_id           TEXT NOT NULL,
        settings          TEXT NOT NULL,
        preview           TEXT NOT NULL,
        namespace         TEXT NOT NULL,
        created_at_ms     INTEGER NOT NULL,
        expires_at_ms     INTEGER NOT NULL,
        state             TEXT NOT NULL CHECK (state IN ('pending','approved','rejected','expired','consumed')),
        decided_at_ms     INTEGER,
        rejected_by       TEXT,
        rejection_reason  TEXT
      );
      -- The invariant the service relies on: at most one open record per request fingerprint and requester.
      CREATE UNIQUE INDEX approvals_one_open ON approvals (fingerprint, requester_subject)
        WHERE state IN ('pending', 'approved');
      CREATE INDEX approvals_by_key ON approvals (fingerprint, requester_subject, created_at_ms);
      CREATE INDEX approvals_by_state ON approvals (state, expires_at_ms);
      CREATE INDEX approvals_by_created ON approvals (created_at_ms);
      CREATE TABLE approval_votes (
        approval_id TEXT NOT NULL REFERENCES approvals (id),
        approver    TEXT NOT NULL,
        at_ms       INTEGER NOT NULL,
        PRIMARY KEY (approval_id, approver)
      );
      CREATE TABLE approval_history (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        approval_id TEXT NOT NULL REFERENCES approvals (id),
        at_ms       INTEGER NOT NULL,
        action      TEXT NOT NULL,
        actor       TEXT NOT NULL,
        reason      TEXT NOT NULL
      );
      CREATE INDEX approval_history_by_id ON approval_history (approval_id, seq);
    `,
  },
];

const INSERT_NEW_APPROVAL = `INSERT INTO approvals (${NEW_APPROVAL_COLUMNS.join(", ")}, state)
  VALUES (${NEW_APPROVAL_COLUMNS.map(() => "?").join(", ")}, 'pending')
  ON CONFLICT (fingerprint, requester_subject) WHERE state IN ('pending','approved') DO NOTHING`;

export interface SqliteApprovalStoreOptions {
  /** File path, or ":memory:" for tests. */
  readonly path: string;
}

/** Opens (creating if needed) the database file and applies pending migrations. */
export function openSqliteApprovalStore(options: SqliteApprovalStoreOptions): ApprovalStore {
  if (options.path !== ":memory:") mkdirSync(dirname(options.path), { recursive: true });
  const db = new Database(options.path);
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("busy_timeout = 5000");
    db.pragma("foreign_keys = ON");
    migrate(db);
  } catch (error) {
    db.close();
    throw error;
  }
  return new SqliteApprovalStore(db);
}

function migrate(db: SqliteDatabase): void {
  db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)");
  const applied = new Set(
    db.prepare<[], { version: number }>("SELECT version FROM schema_migrations").all().map((r) => r.version),
  );
  const newest = Math.max(0, ...applied);
  const known = Math.max(...SQLITE_MIGRATIONS.map((m) => m.version));
  if (newest > known) {
    // A newer Airlock migrated this file; running older code against it could misread records.
    throw new Error(`approval store schema version ${newest} is newer than this build supports (${known})`);
  }
  for (const m of SQLITE_MIGRATIONS) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare("INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?, ?)").run(m.version, Date.now());
    }).immediate();
  }
}

class SqliteApprovalStore implements ApprovalStore {
  readonly kind = "sqlite" as const;
  readonly #db: SqliteDatabase;
  // Hold-mode waiters live in this process only: SQLite is the single-replica store.
  readonly #events = new EventEmitter().setMaxListeners(0);
  #closed = false;

  constructor(db: SqliteDatabase) {
    this.#db = db;
  }

  #load(rows: readonly ApprovalRow[]): ApprovalRecord[] {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.id);
    const marks = ids.map(() => "?").join(",");
    const votes = this.#db
      .prepare<string[], ApprovalVoteRow>(
        `SELECT approval_id, approver FROM approval_votes WHERE approval_id IN (${marks}) ORDER BY at_ms, rowid`,
      )
      .all(...ids);
    const history = this.#db
      .prepare<string[], ApprovalHistoryRow>(
        `SELECT approval_id, at_ms, action, actor, reason FROM approval_history WHERE approval_id IN (${marks}) ORDER BY seq`,
      )
      .all(...ids);
    return rows.map((r) => approvalRecordFromRows(r, votes, history));
  }

  #getSync(id: string): ApprovalRecord | null {
    const row = this.#db.prepare<[string], ApprovalRow>("SELECT * FROM approvals WHERE id = ?").get(id);
    return row === undefined ? null : (this.#load([row])[0] ?? null);
  }

  #history(id: string, atMs: number, action: string, actor: string, reason: string): void {
    this.#db
      .prepare("INSERT INTO approval_history (approval_id, at_ms, action, actor, reason) VALUES (?, ?, ?, ?, ?)")
      .run(id, atMs, action, actor, reason);
  }

  #changed(id: string): void {
    this.#events.emit("change", id);
  }

  get(id: string): Promise<ApprovalRecord | null> {
    return Promise.resolve(this.#getSync(id));
  }

  findOpen(fingerprint: string, requesterSubject: string): Promise<ApprovalRecord | null> {
    const row = this.#db
      .prepare<[string, string], ApprovalRow>(
        "SELECT * FROM approvals WHERE fingerprint = ? AND requester_subject = ? AND state IN ('pending','approved')",
      )
      .get(fingerprint, requesterSubject);
    return Promise.resolve(row === undefined ? null : (this.#load([row])[0] ?? null));
  }

  findActiveRejection(fingerprint: string, requesterSubject: string, nowMs: number): Promise<ApprovalRecord | null> {
    const row = this.#db
      .prepare<[string, string, number], ApprovalRow>(
        `SELECT * FROM approvals WHERE fingerprint = ? AND requester_subject = ? AND state = 'rejected'
           AND expires_at_ms > ? ORDER BY decided_at_ms DESC LIMIT 1`,
      )
      .get(fingerprint, requesterSubject, nowMs);
    return Promise.resolve(row === undefined ? null : (this.#load([row])[0] ?? null));
  }

  createPending(input: NewApproval): Promise<{ readonly record: ApprovalRecord; readonly created: boolean }> {
    const result = this.#db
      .transaction((): { id: string; created: boolean } => {
        const info = this.#db.prepare(INSERT_NEW_APPROVAL).run(...newApprovalRowValues(input));
        if (info.changes === 1) {
          this.#history(input.id, input.createdAtMs, "created", input.requester.subject, "");
          return { id: input.id, created: true };
        }
        const open = this.#db
          .prepare<[string, string], { id: string }>(
            "SELECT id FROM approvals WHERE fingerprint = ? AND requester_subject = ? AND state IN ('pending','approved')",
          )
          .get(input.fingerprint, input.requester.subject);
        if (open === undefined) throw new Error("approval store: conflicting open record vanished");
        return { id: open.id, created: false };
      })
      .immediate();
    const record = this.#getSync(result.id);
    if (record === null) throw new Error("approval store: record vanished after insert");
    if (result.created) this.#changed(record.id);
    return Promise.resolve({ record, created: result.created });
  }

  decide(input: ApprovalDecisionInput): Promise<ApprovalDecisionResult> {
    const outcome = this.#db
      .transaction((): ApprovalDecisionResult => {
        const checked = checkDecision(this.#getSync(input.id), input);
        if (!checked.ok) return checked;
        const { record } = checked;
        const expiresAtMs = decisionExpiresAtMs(record, input.nowMs);
        if (input.action === "reject") {
          this.#db
            .prepare(
              `UPDATE approvals SET state = 'rejected', decided_at_ms = ?, expires_at_ms = ?, rejected_by = ?,
                 rejection_reason = ? WHERE id = ?`,
            )
            .run(input.nowMs, expiresAtMs, input.approver, input.reason, record.id);
          this.#history(record.id, input.nowMs, "rejected", input.approver, input.reason);
          return { ok: true, record: this.#mustGet(record.id), decided: true };
        }
        this.#db
          .prepare("INSERT INTO approval_votes (approval_id, approver, at_ms) VALUES (?, ?, ?)")
          .run(record.id, input.approver, input.nowMs);
        this.#history(record.id, input.nowMs, "approved", input.approver, input.reason);
        const count = this.#db
          .prepare<[string], { n: number }>("SELECT COUNT(*) AS n FROM approval_votes WHERE approval_id = ?")
          .get(record.id);
        const decided = (count?.n ?? 0) >= record.settings.minApprovals;
        if (decided) {
          this.#db
            .prepare("UPDATE approvals SET state = 'approved', decided_at_ms = ?, expires_at_ms = ? WHERE id = ?")
            .run(input.nowMs, expiresAtMs, record.id);
        }
        return { ok: true, record: this.#mustGet(record.id), decided };
      })
      .immediate();
    if (outcome.ok) this.#changed(input.id);
    return Promise.resolve(outcome);
  }

  #mustGet(id: string): ApprovalRecord {
    const record = this.#getSync(id);
    if (record === null) throw new Error("approval store: record vanished");
    return record;
  }

  #expireRow(id: string, nowMs: number): boolean {
    const info = this.#db
      .prepare(
        "UPDATE approvals SET state = 'expired' WHERE id = ? AND state IN ('pending','approved') AND expires_at_ms <= ?",
      )
      .run(id, nowMs);
    if (info.changes !== 1) return false;
    this.#history(id, nowMs, "expired", "system", "");
    return true;
  }

  consumeOnce(id: string, consumer: string, nowMs: number): Promise<boolean> {
    const won = this.#db
      .transaction((): boolean => {
        const info = this.#db
          .prepare(
            `UPDATE approvals SET state = 'consumed' WHERE id = ? AND state = 'approved'
               AND json_extract(settings, '$.grant') = 'once' AND expires_at_ms > ?`,
          )
          .run(id, nowMs);
        if (info.changes !== 1) return false;
        this.#history(id, nowMs, "consumed", consumer, "");
        return true;
      })
      .immediate();
    if (won) this.#changed(id);
    return Promise.resolve(won);
  }

  expire(id: string, nowMs: number): Promise<boolean> {
    const done = this.#db.transaction(() => this.#expireRow(id, nowMs)).immediate();
    if (done) this.#changed(id);
    return Promise.resolve(done);
  }

  expireDue(nowMs: number): Promise<readonly ApprovalRecord[]> {
    const ids = this.#db
      .transaction((): string[] => {
        const due = this.#db
          .prepare<[number], { id: string }>(
            "SELECT id FROM approvals WHERE state IN ('pending','approved') AND expires_at_ms <= ? ORDER BY expires_at_ms",
          )
          .all(nowMs);
        return due.filter((r) => this.#expireRow(r.id, nowMs)).map((r) => r.id);
      })
      .immediate();
    const records = ids.map((id) => this.#mustGet(id));
    for (const id of ids) this.#changed(id);
    return Promise.resolve(records);
  }

  list(filter: ApprovalListFilter): Promise<readonly ApprovalRecord[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (filter.state !== undefined) {
      where.push("state = ?");
      params.push(filter.state);
    }
    if (filter.namespace !== undefined) {
      where.push("namespace = ?");
      params.push(filter.namespace);
    }
    if (filter.requesterSubject !== undefined) {
      where.push("requester_subject = ?");
      params.push(filter.requesterSubject);
    }
    params.push(filter.limit);
    const sql = `SELECT * FROM approvals ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
      ORDER BY created_at_ms DESC, id LIMIT ?`;
    const rows = this.#db.prepare<(string | number)[], ApprovalRow>(sql).all(...params);
    return Promise.resolve(this.#load(rows));
  }

  subscribe(listener: (id: string) => void): () => void {
    this.#events.on("change", listener);
    return () => {
      this.#events.off("change", listener);
    };
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#events.removeAllListeners();
      this.#db.close();
    }
    return Promise.resolve();
  }
}
