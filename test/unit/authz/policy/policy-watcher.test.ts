import { mkdtempSync, rmSync, writeFileSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PolicyLoadError } from "../../../../authz/policy/compile-policy.js";
import type { CompiledPolicy } from "../../../../authz/policy/compile-policy.js";
import { watchPolicyFile } from "../../../../authz/policy/policy-watcher.js";
import type { PolicyWatcher } from "../../../../authz/policy/policy-watcher.js";
import { POLICY_HEADER } from "../../../fixtures/policy/decide.js";

const policyText = (id: string): string =>
  `${POLICY_HEADER}rules:\n  - { id: ${id}, verbs: [get], resources: [pods], effect: Allow }\n`;

/** Collects handler calls and lets a test wait for the next one. */
function recorder() {
  const events: ({ kind: "reload"; policy: CompiledPolicy } | { kind: "rejected"; errors: readonly string[] })[] = [];
  let wake: (() => void) | undefined;
  const push = (event: (typeof events)[number]): void => {
    events.push(event);
    wake?.();
  };
  return {
    events,
    handlers: {
      onReload: (policy: CompiledPolicy) => {
        push({ kind: "reload", policy });
      },
      onRejected: (errors: readonly string[]) => {
        push({ kind: "rejected", errors });
      },
    },
    async next(count: number): Promise<void> {
      const deadline = Date.now() + 10_000;
      while (events.length < count) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${count} watcher events`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 50).unref();
        });
      }
    },
  };
}

describe("watchPolicyFile", () => {
  let dir: string;
  let file: string;
  let watcher: PolicyWatcher | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "airlock-policy-"));
    file = join(dir, "policy.yaml");
  });
  afterEach(() => {
    watcher?.close();
    watcher = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses to start on an invalid or missing file", () => {
    writeFileSync(file, `${POLICY_HEADER}rules:\n  - { id: a, verbs: [get], effect: Allow }\n`);
    const rec = recorder();
    expect(() => watchPolicyFile(file, rec.handlers)).toThrow(PolicyLoadError);
    try {
      watchPolicyFile(file, rec.handlers);
    } catch (error) {
      expect(error).toBeInstanceOf(PolicyLoadError);
      expect((error as PolicyLoadError).code).toBe("POLICY_SCHEMA_INVALID");
      expect((error as PolicyLoadError).errors).toEqual(["policy.yaml: rules[0].resources: is required (or set nonResourceURLs)"]);
    }
    expect(() => watchPolicyFile(join(dir, "missing.yaml"), rec.handlers)).toThrow(/POLICY_READ_FAILED/);
  });

  it("reloads a valid change, refuses a bad one and keeps the last good policy", async () => {
    writeFileSync(file, policyText("first"));
    const rec = recorder();
    watcher = watchPolicyFile(file, rec.handlers, { debounceMs: 20, pollIntervalMs: 100 });
    const first = watcher.current();
    expect(first.rules.map((r) => r.id)).toEqual(["first"]);

    writeFileSync(file, policyText("second"));
    await rec.next(1);
    expect(rec.events[0]?.kind).toBe("reload");
    expect(watcher.current().rules.map((r) => r.id)).toEqual(["second"]);
    expect(watcher.current().version).not.toBe(first.version);

    writeFileSync(file, `${POLICY_HEADER}rules:\n  - { id: bad, verbs: [get], resources: [pods], effect: Maybe }\n`);
    await rec.next(2);
    expect(rec.events[1]).toEqual({
      kind: "rejected",
      errors: ["policy.yaml: rules[0].effect: must be one of Allow, Deny, RequireApproval"],
    });
    expect(watcher.current().rules.map((r) => r.id)).toEqual(["second"]);

    // An atomic replace (write elsewhere, rename over) is picked up too.
    const staged = join(dir, "staged.tmp");
    writeFileSync(staged, policyText("third"));
    renameSync(staged, file);
    await rec.next(3);
    expect(watcher.current().rules.map((r) => r.id)).toEqual(["third"]);
    // The same bad content is reported once, not on every poll.
    expect(rec.events.filter((e) => e.kind === "rejected")).toHaveLength(1);
  });

  it("falls back to polling when change events are missed", async () => {
    writeFileSync(file, policyText("first"));
    const rec = recorder();
    // A huge debounce means only the poller can deliver the change within the wait.
    watcher = watchPolicyFile(file, rec.handlers, { debounceMs: 60_000, pollIntervalMs: 50 });
    writeFileSync(file, policyText("polled"));
    await rec.next(1);
    expect(watcher.current().rules.map((r) => r.id)).toEqual(["polled"]);
  });

  it("stops reporting after close", async () => {
    writeFileSync(file, policyText("first"));
    const rec = recorder();
    const closing = watchPolicyFile(file, rec.handlers, { debounceMs: 10, pollIntervalMs: 20 });
    closing.close();
    writeFileSync(file, policyText("after-close"));
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(rec.events).toEqual([]);
    expect(closing.current().rules.map((r) => r.id)).toEqual(["first"]);
  });
});
