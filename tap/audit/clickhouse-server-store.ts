/**
 * @module tap/audit/clickhouse-server-store
 * The audit store on a ClickHouse server through @clickhouse/client (HTTP/HTTPS, credentials, TLS CA).
 */
import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from "@clickhouse/client";
import type { ClickHouseStoreConfig } from "./audit-config.js";
import { AuditError } from "./audit-errors.js";
import type { AuditStore, QueryParams } from "./audit-store.js";

function mapError(err: unknown, what: string): AuditError {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === "string" ? e.code : "";
  // Connection-level failures (refused, reset, timeout) are transient; anything else is the server's answer.
  const text = typeof e.message === "string" ? e.message : "";
  const transient = /^E[A-Z]+$/.test(code) || /socket|timeout|ECONN|hang up/i.test(text);
  const message = text === "" ? "unknown error" : text.split("\n")[0]?.slice(0, 400) ?? "";
  return new AuditError(transient ? "store_unavailable" : "store_query", `ClickHouse ${what} failed: ${message}`, { cause: err });
}

export class ClickHouseServerAuditStore implements AuditStore {
  readonly kind = "clickhouse" as const;
  readonly database: string;
  private readonly client: ClickHouseClient;
  private readonly sendDedupToken: boolean;

  constructor(config: ClickHouseStoreConfig) {
    this.database = config.database;
    this.sendDedupToken = config.insertDeduplicationToken;
    const password = config.passwordFile !== undefined
      ? readFileSync(config.passwordFile, "utf8").trim()
      : config.password ?? "";
    this.client = createClient({
      url: config.url,
      username: config.username,
      password,
      request_timeout: config.requestTimeoutMs,
      // The client's own logger would print failed statements; the sink reports failures itself.
      log: { level: ClickHouseLogLevel.OFF },
      ...(config.tlsCaFile !== undefined ? { tls: { ca_cert: readFileSync(config.tlsCaFile) } } : {}),
    });
  }

  async exec(sql: string): Promise<void> {
    try {
      await this.client.command({ query: sql });
    } catch (err) {
      throw mapError(err, "statement");
    }
  }

  async insertJsonEachRow(table: string, payload: Buffer, dedupToken: string | undefined): Promise<void> {
    try {
      // The spool already holds JSONEachRow lines: send them as a raw body instead of re-serialising objects.
      await this.client.exec({
        query: `INSERT INTO ${this.database}.${table} FORMAT JSONEachRow`,
        values: Readable.from([payload], { objectMode: false }),
        ...(dedupToken !== undefined && this.sendDedupToken ? { clickhouse_settings: { insert_deduplication_token: dedupToken } } : {}),
      }).then(async (r) => {
        // Drain the (empty) response so the socket returns to the pool.
        for await (const _chunk of r.stream) { /* nothing */ }
      });
    } catch (err) {
      throw mapError(err, "insert");
    }
  }

  async queryRows<T>(sql: string, params: QueryParams = {}): Promise<T[]> {
    try {
      const rs = await this.client.query({
        query: sql,
        format: "JSONEachRow",
        ...(Object.keys(params).length > 0 ? { query_params: params } : {}),
      });
      return await rs.json<T>();
    } catch (err) {
      throw mapError(err, "query");
    }
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
