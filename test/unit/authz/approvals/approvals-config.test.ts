/**
 * @module test/unit/authz/approvals/approvals-config.test
 * The approvals configuration: defaults, frozen result, path-qualified errors.
 */
import { describe, expect, it } from "vitest";
import { parseApprovalsConfig } from "../../../../authz/approvals/approvals-config.js";

describe("parseApprovalsConfig", () => {
  it("fills defaults: embedded SQLite, retry mode, and freezes the result", () => {
    const res = parseApprovalsConfig({});
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    expect(res.config).toMatchObject({
      store: { kind: "sqlite", path: "./.airlock/approvals.db" },
      pendingMode: "retry",
      holdSeconds: 25,
      retryAfterSeconds: 10,
      defaultTtlSeconds: 900,
      approverAudience: "airlock-approvers",
      agentGroups: [],
    });
    expect(Object.isFrozen(res.config)).toBe(true);
    expect(Object.isFrozen(res.config.store)).toBe(true);
  });

  it("accepts PostgreSQL, hold mode and a webhook with defaults", () => {
    const res = parseApprovalsConfig({
      store: { kind: "postgres", connectionString: "postgres://u:pw@db/airlock" },
      pendingMode: "hold",
      webhook: { url: "https://hooks.slack.com/services/T/B/X" },
      agentGroups: ["agents"],
    });
    expect(res).toMatchObject({ ok: true, config: { store: { kind: "postgres", poolMax: 10 }, webhook: { maxAttempts: 6, timeoutMs: 5000 } } });
  });

  it("reports every problem with its path and never echoes the connection string", () => {
    const res = parseApprovalsConfig({
      store: { kind: "postgres", connectionString: "postgres://u:hunter2@db/x", extra: 1 },
      pendingMode: "wait",
      webhook: { url: "ftp://x" },
      holdSeconds: 0,
    });
    expect(res.ok).toBe(false);
    if (res.ok) return;
    const text = res.errors.join("\n");
    expect(text).toMatch(/^approvals\.store: /m);
    expect(text).toMatch(/^approvals\.pendingMode: /m);
    expect(text).toMatch(/^approvals\.webhook\.url: /m);
    expect(text).toMatch(/^approvals\.holdSeconds: /m);
    expect(text).not.toContain("hunter2");
  });
});
