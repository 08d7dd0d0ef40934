/**
 * @module test/unit/tap/audit/audit-config.test
 * The audit config schema: defaults, frozen result, path-qualified errors.
 */
import { describe, expect, it } from "vitest";
import { parseAuditConfig } from "../../../../tap/audit/audit-config.js";
import { AuditError } from "../../../../tap/audit/audit-errors.js";

describe("parseAuditConfig", () => {
  it("defaults to the embedded store under ./.airlock and denies past the budget", () => {
    const cfg = parseAuditConfig({});
    expect(cfg.store).toEqual({ kind: "embedded", dataDir: "./.airlock/audit", database: "airlock" });
    expect(cfg).toMatchObject({ spoolDir: "./.airlock/spool", fsync: "interval", onBudgetExceeded: "deny", retentionDays: 400 });
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(Object.isFrozen(cfg.store)).toBe(true);
  });

  it("accepts a ClickHouse server store and fills its defaults", () => {
    const cfg = parseAuditConfig({ store: { kind: "clickhouse", url: "https://ch.example:8443", passwordFile: "/run/secrets/ch", tlsCaFile: "/etc/ca.pem" } });
    expect(cfg.store).toMatchObject({ kind: "clickhouse", username: "default", database: "airlock", insertDeduplicationToken: true, applyMigrations: true });
  });

  it.each([
    [{ store: { kind: "clickhouse", url: "not a url" } }, /store\.url/],
    [{ store: { kind: "embedded", database: "bad-name; DROP" } }, /store\.database: must be a plain SQL identifier/],
    [{ fsync: "sometimes" }, /fsync/],
    [{ batchMaxRows: 0 }, /batchMaxRows/],
    [{ unknownKey: 1 }, /unknownKey|Unrecognized/],
  ])("rejects %j with a path-qualified message", (input, message) => {
    let error: unknown;
    try { parseAuditConfig(input); } catch (err) { error = err; }
    expect(error).toBeInstanceOf(AuditError);
    expect((error as AuditError).code).toBe("config_invalid");
    expect((error as AuditError).message).toMatch(message);
  });

  it("is idempotent on an already parsed config", () => {
    const cfg = parseAuditConfig({ gatewayInstance: "gw-1" });
    expect(parseAuditConfig(cfg)).toEqual(cfg);
  });
});
