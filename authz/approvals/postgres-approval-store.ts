/**
 * @module authz/approvals/postgres-approval-store
 * The shared approval store for several replicas (pg): row locks for N-of-M and single use, LISTEN/NOTIFY for held Checks, versioned migrations.
 */
import pg from "pg";
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
const POSTGRES_MIGRATIONS: readonly { readonly version: number; readonly sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE airlock_approvals (
        id                TEXT PRIMARY KEY,
        fingerprint       TEXT NOT NULL,
        requester_subject TEXT NOT NULL,
        requester_groups  TEXT NOT NULL,
        requester_session TEXT NOT NULL,
        rule_id           TEXT NOT NULL,
        settings          TEXT NOT NULL,
        preview           TEXT NOT NULL,
        namespace         TEXT NOT NULL,
        created_at_ms     BIGINT NOT NULL,
        expires_at_ms     BIGINT NOT NULL,
        state             TEXT NOT NULL CHECK (state IN ('pending','approved','rejected','expired','consumed')),
        decided_at_ms     BIGINT,
        rejected_by       TEXT,
        rejection_reason  TEXT
      );
      -- The invariant the service relies on: at most one open record per request fingerprint and requester.
      CREATE UNIQUE INDEX airlock_approvals_one_open ON airlock_approvals (fingerprint, requester_subject)
        WHERE state IN ('pending', 'approved');
      CREATE INDEX airlock_approvals_by_key ON airlock_approvals (fingerprint, requester_subject, created_at_ms);
      CREATE INDEX airlock_approvals_by_state ON airlock_approvals (state, expires_at_ms);
      CREATE INDEX airlock_approvals_by_created ON airlock_approvals (created_at_ms);
      CREATE TABLE airlock_approval_votes (
        approval_id TEXT NOT NULL REFERENCES airlock_approvals (id),
        approver    TEXT NOT NULL,
        at_ms       BIGINT NOT NULL,
        PRIMARY KEY (approval_id, approver)
      );
      CREATE TABLE airlock_approval_history (
        seq         BIGSERIAL PRIMARY KEY,
        approval_id TEXT NOT NULL REFERENCES airlock_approvals (id),
        at_ms       BIGINT NOT NULL,
        action      TEXT NOT NULL,
        actor       TEXT NOT NULL,
        reason      TEXT NOT NULL
      );
      CREATE INDEX airlock_approval_history_by_id ON airlock_approval_history (approval_id, seq);
    `,
  },
];

const INSERT_NEW_APPROVAL = `INSERT INTO airlock_approvals (${NEW_APPROVAL_COLUMNS.join(", ")}, state)
  VALUES (${NEW_APPROVAL_COLUMNS.map((_, index) => `$${String(index + 1)}`).join(", ")}, 'pending')
  ON CONFLICT (fingerprint, requester_subject) WHERE state IN ('pending','approved') DO NOTHING
  RETURNING id`;

/** Serialises migrations across replicas starting at once ("airlock-approvals" as a 64-bit key). */
const MIGRATION_LOCK_KEY = "4723339261002151337";
const NOTIFY_CHANNEL = "airlock_approvals";

export interface PostgresApprovalStoreOptions {
  readonly connectionString: string;
  readonly poolMax?: number;
  /** Called when the LISTEN connection fails (it reconnects); never receives the connection string. */
  readonly onListenError?: (error: Error) => void;
}

type Queryable = Pick<pg.PoolClient, "query">;

/** Connects, applies pending migrations under an advisory lock, and starts listening for changes. */
export async function openPostgresApprovalStore(options: PostgresApprovalStoreOptions): Promise<ApprovalStore> {
  const pool = new pg.Pool({ connectionString: options.connectionString, max: options.poolMax ?? 10 });
  // An idle client erroring (server restart) must not crash the process; the next query reconnects.
  pool.on("error", () => undefined);
  try {
    await migrate(pool);
    const store = new PostgresApprovalStore(pool, options);
    await store.startListening();
    return store;
  } catch (error) {
    await pool.end();
    throw error;
  }
}

async function migrate(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock($1::bigint)", [MIGRATION_LOCK_KEY]);
    await client.query(
      "CREATE TABLE IF NOT EXISTS airlock_approval_migrations (version INTEGER PRIMARY KEY, applied_at_ms BIGINT NOT NULL)",
    );
    const applied = new Set(
      (await client.query<{ version: number }>("SELECT version FROM airlock_approval_migrations")).rows.map(
        (r) => r.version,
      ),
    );
    const newest = Math.max(0, ...applied);
    const known = Math.max(...POSTGRES_MIGRATIONS.map((m) => m.version));
    if (newest > known) {
      throw new Error(`approval store schema version ${newest} is newer than this build supports (${known})`);
    }
    for (const m of POSTGRES_MIGRATIONS) {
      if (applied.has(m.version)) continue;
      await client.query(m.sql);
      await client.query("INSERT INTO airlock_approval_migrations (version, applied_at_ms) VALUES ($1, $2)", [
        m.version,
        Date.now(),
      ]);
    }
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

class PostgresApprovalStore implements ApprovalStore {
  readonly kind = "postgres" as const;
  readonly #pool: pg.Pool;
  readonly #options: PostgresApprovalStoreOptions;
  readonly #listeners = new Set<(id: string) => void>();
  #listenClient: pg.Client | null = null;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(pool: pg.Pool, options: PostgresApprovalStoreOptions) {
    this.#pool = pool;
    this.#options = options;
  }

  async startListening(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#options.connectionString });
    client.on("notification", (msg) => {
      if (msg.channel === NOTIFY_CHANNEL && msg.payload !== undefined) this.#emit(msg.payload);
    });
    client.on("error", (error) => {
      this.#options.onListenError?.(error);
      this.#dropListener(client);
    });
    client.on("end", () => {
      this.#dropListener(client);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    this.#listenClient = client;
  }

  #dropListener(failed: pg.Client): void {
    if (this.#closed || this.#listenClient !== failed) return;
    this.#listenClient = null;
    failed.end().catch(() => undefined);
    this.#retryListen();
  }

  #retryListen(): void {
    if (this.#closed || this.#reconnectTimer !== null) return;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (this.#closed) return;
      this.startListening().then(
        // Changes made while disconnected were missed: wake every waiter so it re-reads the store.
        () => {
          this.#emit("*");
        },
        (error: unknown) => {
          this.#options.onListenError?.(error instanceof Error ? error : new Error("listen failed"));
          this.#retryListen();
        },
      );
    }, 1000);
    this.#reconnectTimer.unref();
  }

  #emit(id: string): void {
    for (const listener of this.#listeners) listener(id);
  }

  async #tx<T>(body: (client: Queryable) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    try {
      await client.query("BEGIN");
      const result = await body(client);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  async #load(q: Queryable, rows: readonly ApprovalRow[]): Promise<ApprovalRecord[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.id);
    const votes = await q.query<ApprovalVoteRow>(
      "SELECT approval_id, approver FROM airlock_approval_votes WHERE approval_id = ANY($1) ORDER BY at_ms, approver",
      [ids],
    );
    const history = await q.query<ApprovalHistoryRow>(
      `SELECT approval_id, at_ms, action, actor, reason FROM airlock_approval_history
         WHERE approval_id = ANY($1) ORDER BY seq`,
      [ids],
    );
    return rows.map((r) => approvalRecordFromRows(r, votes.rows, history.rows));
  }

  async #getWith(q: Queryable, id: string, lock = false): Promise<ApprovalRecord | null> {
    const res = await q.query<ApprovalRow>(
      `SELECT * FROM airlock_approvals WHERE id = $1${lock ? " FOR UPDATE" : ""}`,
      [id],
    );
    return (await this.#load(q, res.rows))[0] ?? null;
  }

  async #mustGet(q: Queryable, id: string): Promise<ApprovalRecord> {
    const record = await this.#getWith(q, id);
    if (record === null) throw new Error("approval store: record vanished");
    return record;
  }

  async #history(q: Queryable, id: string, atMs: number, action: string, actor: string, reason: string) {
    await q.query(
      "INSERT INTO airlock_approval_history (approval_id, at_ms, action, actor, reason) VALUES ($1, $2, $3, $4, $5)",
      [id, atMs, action, actor, reason],
    );
  }

  /** Delivered to every replica's listener when the surrounding transaction commits. */
  async #notify(q: Queryable, id: string): Promise<void> {
    await q.query("SELECT pg_notify($1, $2)", [NOTIFY_CHANNEL, id]);
  }

  get(id: string): Promise<ApprovalRecord | null> {
    return this.#getWith(this.#pool, id);
  }

  async findOpen(fingerprint: string, requesterSubject: string): Promise<ApprovalRecord | null> {
    const res = await this.#pool.query<ApprovalRow>(
      `SELECT * FROM airlock_approvals WHERE fingerprint = $1 AND requester_subject = $2
         AND state IN ('pending','approved')`,
      [fingerprint, requesterSubject],
    );
    return (await this.#load(this.#pool, res.rows))[0] ?? null;
  }

  async findActiveRejection(
    fingerprint: string,
    requesterSubject: string,
    nowMs: number,
  ): Promise<ApprovalRecord | null> {
    const res = await this.#pool.query<ApprovalRow>(
      `SELECT * FROM airlock_approvals WHERE fingerprint = $1 AND requester_subject = $2 AND state = 'rejected'
         AND expires_at_ms > $3 ORDER BY decided_at_ms DESC LIMIT 1`,
      [fingerprint, requesterSubject, nowMs],
    );
    return (await this.#load(this.#pool, res.rows))[0] ?? null;
  }

  async createPending(input: NewApproval): Promise<{ readonly record: ApprovalRecord; readonly created: boolean }> {
    // The open record we conflicted with can leave the open set (consumed, expired) before we read it; retry then.
    for (let attempt = 0; attempt < 5; attempt++) {
      const result = await this.#tx(async (q) => {
        const inserted = await q.query(INSERT_NEW_APPROVAL, newApprovalRowValues(input));
        if (inserted.rowCount === 1) {
          await this.#history(q, input.id, input.createdAtMs, "created", input.requester.subject, "");
          await this.#notify(q, input.id);
          return { record: await this.#mustGet(q, input.id), created: true };
        }
        const open = await q.query<ApprovalRow>(
          `SELECT * FROM airlock_approvals WHERE fingerprint = $1 AND requester_subject = $2
             AND state IN ('pending','approved')`,
          [input.fingerprint, input.requester.subject],
        );
        const record = (await this.#load(q, open.rows))[0];
        return record === undefined ? null : { record, created: false };
      });
      if (result !== null) return result;
    }
    throw new Error("approval store: could not create or find an open record");
  }

  decide(input: ApprovalDecisionInput): Promise<ApprovalDecisionResult> {
    return this.#tx(async (q): Promise<ApprovalDecisionResult> => {
      // FOR UPDATE serialises concurrent votes on one record, so the N-th distinct vote is seen exactly once.
      const checked = checkDecision(await this.#getWith(q, input.id, true), input);
      if (!checked.ok) return checked;
      const { record } = checked;
      const expiresAtMs = decisionExpiresAtMs(record, input.nowMs);
      if (input.action === "reject") {
        await q.query(
          `UPDATE airlock_approvals SET state = 'rejected', decided_at_ms = $1, expires_at_ms = $2, rejected_by = $3,
             rejection_reason = $4 WHERE id = $5`,
          [input.nowMs, expiresAtMs, input.approver, input.reason, record.id],
        );
        await this.#history(q, record.id, input.nowMs, "rejected", input.approver, input.reason);
        await this.#notify(q, record.id);
        return { ok: true, record: await this.#mustGet(q, record.id), decided: true };
      }
      await q.query("INSERT INTO airlock_approval_votes (approval_id, approver, at_ms) VALUES ($1, $2, $3)", [
        record.id,
        input.approver,
        input.nowMs,
      ]);
      await this.#history(q, record.id, input.nowMs, "approved", input.approver, input.reason);
      const decided = record.approvers.length + 1 >= record.settings.minApprovals;
      if (decided) {
        await q.query(
          "UPDATE airlock_approvals SET state = 'approved', decided_at_ms = $1, expires_at_ms = $2 WHERE id = $3",
          [input.nowMs, expiresAtMs, record.id],
        );
      }
      await this.#notify(q, record.id);
      return { ok: true, record: await this.#mustGet(q, record.id), decided };
    });
  }

  async #expireRow(q: Queryable, id: string, nowMs: number): Promise<boolean> {
    const res = await q.query(
      `UPDATE airlock_approvals SET state = 'expired' WHERE id = $1 AND state IN ('pending','approved')
         AND expires_at_ms <= $2`,
      [id, nowMs],
    );
    if (res.rowCount !== 1) return false;
    await this.#history(q, id, nowMs, "expired", "system", "");
    await this.#notify(q, id);
    return true;
  }

  consumeOnce(id: string, consumer: string, nowMs: number): Promise<boolean> {
    return this.#tx(async (q) => {
      // One UPDATE: concurrent callers queue on the row lock and re-check the WHERE after the winner commits.
      const res = await q.query(
        `UPDATE airlock_approvals SET state = 'consumed' WHERE id = $1 AND state = 'approved'
           AND (settings::jsonb ->> 'grant') = 'once' AND expires_at_ms > $2`,
        [id, nowMs],
      );
      if (res.rowCount !== 1) return false;
      await this.#history(q, id, nowMs, "consumed", consumer, "");
      await this.#notify(q, id);
      return true;
    });
  }

  expire(id: string, nowMs: number): Promise<boolean> {
    return this.#tx((q) => this.#expireRow(q, id, nowMs));
  }

  expireDue(nowMs: number): Promise<readonly ApprovalRecord[]> {
    return this.#tx(async (q) => {
      // SKIP LOCKED lets replicas sweep concurrently without waiting on each other or double-reporting.
      const due = await q.query<{ id: string }>(
        `SELECT id FROM airlock_approvals WHERE state IN ('pending','approved') AND expires_at_ms <= $1
           ORDER BY expires_at_ms LIMIT 500 FOR UPDATE SKIP LOCKED`,
        [nowMs],
      );
      const expired: ApprovalRecord[] = [];
      for (const { id } of due.rows) {
        if (await this.#expireRow(q, id, nowMs)) expired.push(await this.#mustGet(q, id));
      }
      return expired;
    });
  }

  async list(filter: ApprovalListFilter): Promise<readonly ApprovalRecord[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    const add = (clause: string, value: string) => {
      params.push(value);
      where.push(`${clause} = $${params.length}`);
    };
    if (filter.state !== undefined) add("state", filter.state);
    if (filter.namespace !== undefined) add("namespace", filter.namespace);
    if (filter.requesterSubject !== undefined) add("requester_subject", filter.requesterSubject);
    params.push(filter.limit);
    const res = await this.#pool.query<ApprovalRow>(
      `SELECT * FROM airlock_approvals ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
         ORDER BY created_at_ms DESC, id LIMIT $${params.length}`,
      params,
    );
    return this.#load(this.#pool, res.rows);
  }

  subscribe(listener: (id: string) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer);
    this.#listeners.clear();
    const listen = this.#listenClient;
    this.#listenClient = null;
    await Promise.all([listen?.end().catch(() => undefined), this.#pool.end()]);
  }
}
