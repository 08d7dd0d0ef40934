/**
 * @module tap/audit/schema-migrations
 * Finds deploy/clickhouse, renders its SQL templates, and applies the versioned migrations idempotently.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { AuditError } from "./audit-errors.js";
import type { AuditStore } from "./audit-store.js";

export interface MigrationFile {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

const MIGRATION_RE = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/**
 * deploy/clickhouse next to this module: two levels up from tap/audit in the source tree, three from
 * dist/tap/audit in a build. An explicit directory (config `schemaDir`) wins.
 */
export function findSchemaDir(override?: string): string {
  if (override !== undefined) return resolve(override);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, "deploy", "clickhouse");
    if (existsSync(join(candidate, "migrations"))) return candidate;
    dir = dirname(dir);
  }
  throw new AuditError("schema_missing", "deploy/clickhouse (migrations and queries) not found; set audit.schemaDir");
}

export function loadMigrations(dir: string): MigrationFile[] {
  if (!existsSync(dir)) throw new AuditError("schema_missing", `migrations directory ${dir} does not exist`);
  return readdirSync(dir)
    .map((file) => ({ file, m: MIGRATION_RE.exec(file) }))
    .filter((x): x is { file: string; m: RegExpExecArray } => x.m !== null)
    .map(({ file, m }) => ({ version: Number(m[1]), name: m[2] ?? file, sql: readFileSync(join(dir, file), "utf8") }))
    .sort((a, b) => a.version - b.version);
}

export interface TemplateVars {
  readonly database: string;
  readonly retentionDays?: number;
}

/** Fill `{{database}}` / `{{retention_days}}`; both are validated by the config schema before they get here. */
export function renderSql(sql: string, vars: TemplateVars): string {
  return sql.replace(/\{\{(database|retention_days)\}\}/g, (_m, key: string) => {
    if (key === "database") return vars.database;
    if (vars.retentionDays === undefined) throw new AuditError("schema_missing", "SQL template needs retention_days");
    return String(vars.retentionDays);
  });
}

/** Split a file into statements: `--` comment lines dropped, statements end with `;` at the end of a line. */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current: string[] = [];
  for (const line of sql.split("\n")) {
    if (line.trim().startsWith("--")) continue;
    current.push(line);
    if (line.trimEnd().endsWith(";")) {
      const text = current.join("\n").trim().replace(/;$/, "").trim();
      if (text !== "") statements.push(text);
      current = [];
    }
  }
  const rest = current.join("\n").trim();
  if (rest !== "") statements.push(rest);
  return statements;
}

/**
 * Apply every migration not yet recorded in `schema_migrations`. Each statement is IF NOT EXISTS, so two
 * replicas starting together, or a crash between a statement and its bookkeeping, are harmless.
 */
export async function applyMigrations(
  store: AuditStore,
  opts: { readonly dir: string; readonly retentionDays?: number },
): Promise<{ applied: number[] }> {
  const vars: TemplateVars = opts.retentionDays === undefined
    ? { database: store.database }
    : { database: store.database, retentionDays: opts.retentionDays };
  const migrations = loadMigrations(opts.dir);
  await store.exec(`CREATE DATABASE IF NOT EXISTS ${store.database}`);
  await store.exec(
    `CREATE TABLE IF NOT EXISTS ${store.database}.schema_migrations (version UInt32, name String, applied_at DateTime) ENGINE = MergeTree ORDER BY version`,
  );
  const done = new Set(
    (await store.queryRows<{ version: number | string }>(`SELECT version FROM ${store.database}.schema_migrations`))
      .map((r) => Number(r.version)),
  );
  const applied: number[] = [];
  for (const migration of migrations) {
    if (done.has(migration.version)) continue;
    for (const statement of splitStatements(renderSql(migration.sql, vars))) await store.exec(statement);
    const row = JSON.stringify({ version: migration.version, name: migration.name, applied_at: Math.floor(Date.now() / 1000) });
    await store.insertJsonEachRow("schema_migrations", Buffer.from(`${row}\n`), `migration-${migration.version}`);
    applied.push(migration.version);
  }
  if (opts.retentionDays !== undefined) await syncRetention(store, opts.retentionDays);
  return { applied };
}

/** Retention is configuration, not a migration: bring each table's TTL in line when it differs. */
async function syncRetention(store: AuditStore, retentionDays: number): Promise<void> {
  for (const table of ["requests", "approvals"]) {
    const rows = await store.queryRows<{ create_table_query: string }>(
      `SELECT create_table_query FROM system.tables WHERE database = '${store.database}' AND name = '${table}'`,
    );
    const ddl = rows[0]?.create_table_query ?? "";
    if (!ddl.includes(" TTL ")) continue;
    if (ddl.includes(`toIntervalDay(${retentionDays})`)) continue;
    await store.exec(`ALTER TABLE ${store.database}.${table} MODIFY TTL toDateTime(time) + toIntervalDay(${retentionDays})`);
  }
}
