/**
 * @module tap/audit/audit-config
 * The audit configuration schema (store, spool, batching, retries, disk budget, retention), parsed once and frozen.
 */
import { z } from "zod";
import { AuditError } from "./audit-errors.js";

const identifier = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be a plain SQL identifier");

export const embeddedStoreSchema = z.strictObject({
  kind: z.literal("embedded"),
  /** chDB data directory; chDB allows one per process, so every sink in a process must agree on it. */
  dataDir: z.string().min(1).default("./.airlock/audit"),
  database: identifier.default("airlock"),
});

export const clickhouseStoreSchema = z.strictObject({
  kind: z.literal("clickhouse"),
  url: z.url(),
  username: z.string().default("default"),
  password: z.string().optional(),
  /** Read at start; preferred over an inline password so config files carry no secret. */
  passwordFile: z.string().optional(),
  database: identifier.default("airlock"),
  /** PEM CA bundle for an https:// URL. */
  tlsCaFile: z.string().optional(),
  requestTimeoutMs: z.number().int().positive().default(30_000),
  /**
   * Send `insert_deduplication_token` with each batch (ClickHouse ≥ 22.2). Switch off only for old servers
   * that reject the setting; the ReplacingMergeTree key then collapses retried duplicates at merge time.
   */
  insertDeduplicationToken: z.boolean().default(true),
  /** Run the versioned migrations at start (off when a DBA owns the schema or the server is too old for it). */
  applyMigrations: z.boolean().default(true),
});

export const auditConfigSchema = z.strictObject({
  store: z.discriminatedUnion("kind", [embeddedStoreSchema, clickhouseStoreSchema]).default({
    kind: "embedded", dataDir: "./.airlock/audit", database: "airlock",
  }),
  spoolDir: z.string().min(1).default("./.airlock/spool"),
  /** always: fdatasync every record (slowest, survives power loss); interval: every fsyncIntervalMs; never: page cache only (survives a process crash). */
  fsync: z.enum(["always", "interval", "never"]).default("interval"),
  fsyncIntervalMs: z.number().int().positive().default(200),
  segmentMaxBytes: z.number().int().min(4096).default(32 * 1024 * 1024),
  /** Recently written spool bytes kept in memory so delivery need not read them back from disk; 0: always read. */
  spoolReadCacheMaxBytes: z.number().int().nonnegative().default(64 * 1024 * 1024),
  batchMaxRows: z.number().int().positive().default(20_000),
  batchMaxBytes: z.number().int().positive().default(32 * 1024 * 1024),
  batchMaxDelayMs: z.number().int().nonnegative().default(1_000),
  retryInitialDelayMs: z.number().int().positive().default(200),
  retryMaxDelayMs: z.number().int().positive().default(30_000),
  /** Spool size past which canAccept() turns false. */
  diskBudgetBytes: z.number().int().positive().default(2 * 1024 * 1024 * 1024),
  /** deny: unrecorded production access is what this product exists to prevent, so refuse new requests. */
  onBudgetExceeded: z.enum(["deny", "allow"]).default("deny"),
  retentionDays: z.number().int().positive().default(400),
  /** Names the hash chain; defaults to the host name at open time. */
  gatewayInstance: z.string().min(1).optional(),
  /** How long an allowed decision waits for its exchange before it is written with response_outcome 'missing'. */
  exchangeTimeoutMs: z.number().int().positive().default(15 * 60 * 1000),
  maxHeldDecisions: z.number().int().positive().default(100_000),
  requestBodyMaxBytes: z.number().int().nonnegative().default(64 * 1024),
  responseBodyMaxBytes: z.number().int().nonnegative().default(64 * 1024),
  /** Overrides where deploy/clickhouse lives (migrations, queries); found next to the package by default. */
  schemaDir: z.string().optional(),
});

export type AuditConfig = Readonly<z.infer<typeof auditConfigSchema>>;
export type AuditConfigInput = z.input<typeof auditConfigSchema>;
export type EmbeddedStoreConfig = z.infer<typeof embeddedStoreSchema>;
export type ClickHouseStoreConfig = z.infer<typeof clickhouseStoreSchema>;
export type StoreConfig = AuditConfig["store"];

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Parse once, freeze; errors name the offending path (e.g. `store.url: Invalid URL`). */
export function parseAuditConfig(input: unknown): AuditConfig {
  const result = auditConfigSchema.safeParse(input ?? {});
  if (!result.success) {
    const detail = result.error.issues
      .map((i) => `${i.path.length > 0 ? i.path.join(".") : "(root)"}: ${i.message}`)
      .join("; ");
    throw new AuditError("config_invalid", `invalid audit config: ${detail}`);
  }
  return deepFreeze(result.data);
}
