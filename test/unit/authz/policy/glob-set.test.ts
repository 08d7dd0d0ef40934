import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileGlob, compileGlobSet } from "../../../../authz/policy/glob-set.js";

/** Reference semantics: classic dynamic programming over the whole pattern. */
function referenceMatch(pattern: string, value: string): boolean {
  let row: boolean[] = [true, ...Array.from(value, () => false)];
  for (const p of pattern) {
    const next: boolean[] = [p === "*" && row[0] === true];
    for (let i = 1; i <= value.length; i++) {
      next[i] = p === "*" ? (row[i] === true || next[i - 1] === true) : row[i - 1] === true && value[i - 1] === p;
    }
    row = next;
  }
  return row[value.length] === true;
}

describe("globs", () => {
  it.each([
    ["prod-*", "prod-a", true],
    ["prod-*", "prod-", true],
    ["prod-*", "production", false],
    ["*", "", true],
    ["/healthz*", "/healthz/etcd", true],
    ["/healthz*", "/health", false],
    ["*-admin", "cluster-admin", true],
    ["a*b*c", "aXbYc", true],
    ["a*b*c", "acb", false],
    ["a*a", "a", false],
    ["a*a", "aa", true],
    ["system:*", "system:masters", true],
    ["exact", "exact", true],
    ["exact", "exactly", false],
    ["*.?", "x.?", true],
  ])("%s against %s → %s", (pattern, value, expected) => {
    expect(compileGlob(pattern).matches(value)).toBe(expected);
  });

  it("agrees with the reference matcher on arbitrary input", () => {
    const alphabet = fc.constantFrom("a", "b", "*", "-", "/");
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 8 }), fc.array(fc.constantFrom("a", "b", "-", "/"), { maxLength: 12 }), (p, v) => {
        const pattern = p.join("");
        const value = v.join("");
        expect(compileGlob(pattern).matches(value)).toBe(referenceMatch(pattern, value));
      }),
      { numRuns: 2000 },
    );
  });

  it("stays linear on adversarial input (no backtracking)", () => {
    // A backtracking matcher explores exponentially many splits here; ours does a handful of indexOf calls.
    const pattern = `${"a*".repeat(20)}b`;
    expect(compileGlob(pattern).matches("a".repeat(50_000))).toBe(false);
  });

  it("combines exact names, globs and * in a set", () => {
    const set = compileGlobSet(["pods", "deploy*"]);
    expect(set.matches("pods")).toBe(true);
    expect(set.matches("deployments")).toBe(true);
    expect(set.matches("secrets")).toBe(false);
    expect(set.matchesAny(["x", "pods"])).toBe(true);
    expect(set.matchesAny([])).toBe(false);
    expect(compileGlobSet(["*"]).matchesEverything).toBe(true);
    expect(compileGlobSet([""]).matches("")).toBe(true);
  });
});
