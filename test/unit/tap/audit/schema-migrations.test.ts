/**
 * @module test/unit/tap/audit/schema-migrations.test
 * SQL file handling (templating, statement splitting, migration discovery) and --since parsing.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findSchemaDir, loadMigrations, renderSql, splitStatements } from "../../../../tap/audit/schema-migrations.js";
import { parseSince } from "../../../../tap/audit/verify-command.js";

describe("SQL templates", () => {
  it("fills database and retention, and refuses a missing retention", () => {
    expect(renderSql("CREATE TABLE {{database}}.t TTL x + toIntervalDay({{retention_days}})", { database: "db", retentionDays: 7 }))
      .toBe("CREATE TABLE db.t TTL x + toIntervalDay(7)");
    expect(() => renderSql("{{retention_days}}", { database: "db" })).toThrow(/retention_days/);
  });

  it("splits statements at line-final semicolons and drops comment lines", () => {
    expect(splitStatements("-- c; x\nCREATE DATABASE a;\n\nCREATE TABLE b\n(x UInt8);\nSELECT 1")).toEqual([
      "CREATE DATABASE a", "CREATE TABLE b\n(x UInt8)", "SELECT 1",
    ]);
  });

  it("finds deploy/clickhouse and its ordered migrations", () => {
    const dir = findSchemaDir();
    const migrations = loadMigrations(join(dir, "migrations"));
    expect(migrations.map((m) => m.version)).toEqual([1, 2]);
    for (const m of migrations) {
      for (const statement of splitStatements(renderSql(m.sql, { database: "airlock", retentionDays: 30 }))) {
        expect(statement).toMatch(/^CREATE (DATABASE|TABLE) IF NOT EXISTS /);
      }
    }
  });
});

describe("parseSince", () => {
  const now = Date.UTC(2026, 10, 30, 12, 0, 0);
  it.each([
    ["24h", (now - 86_400_000) * 1000],
    ["90m", (now - 5_400_000) * 1000],
    ["7d", (now - 7 * 86_400_000) * 1000],
    ["2026-11-30T00:00:00Z", Date.UTC(2026, 10, 30) * 1000],
    ["2026-11-30 06:30:00", Date.UTC(2026, 10, 30, 6, 30) * 1000],
    ["2026-11-30", Date.UTC(2026, 10, 30) * 1000],
  ])("%s", (text, micros) => {
    expect(parseSince(text, now)).toBe(micros);
  });

  it.each(["yesterday", "", "24x", "2026-13-45"])("rejects %j", (text) => {
    expect(parseSince(text, now)).toBeUndefined();
  });
});
