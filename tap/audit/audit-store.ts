/**
 * @module tap/audit/audit-store
 * The store contract shared by the embedded chDB store and the ClickHouse server store: DDL, inserts, queries.
 */

export type QueryParams = Readonly<Record<string, string | number>>;

/** Both stores run the same DDL and SQL; only the transport differs. */
export interface AuditStore {
  readonly kind: "embedded" | "clickhouse";
  /** Database the audit tables live in; SQL files say `{{database}}` where it goes. */
  readonly database: string;
  /** Run one statement that returns nothing (DDL). */
  exec(sql: string): Promise<void>;
  /**
   * Insert JSONEachRow lines. `dedupToken` is sent as insert_deduplication_token when the store supports it,
   * so a retried batch is stored once.
   */
  insertJsonEachRow(table: string, payload: Buffer, dedupToken: string | undefined): Promise<void>;
  /** Run a SELECT with `{name:Type}` parameters bound server-side (never string-interpolated). */
  queryRows<T>(sql: string, params?: QueryParams): Promise<T[]>;
  close(): Promise<void>;
}
