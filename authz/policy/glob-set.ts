/**
 * @module authz/policy/glob-set
 * Precompiled `*` globs for policy matching (subjects, namespaces, resources, names, non-resource URLs) in linear time.
 */

/**
 * One compiled glob. `*` matches any run of characters (including none and including `/`); every other
 * character is literal. There is deliberately no `?`, no character class and no escaping: policy
 * authors read these like RBAC, and a tiny language cannot hide a surprising match.
 *
 * Matching never backtracks: the pattern is split on `*` into literal pieces; the first piece must be a
 * prefix, the last a suffix, and the middle pieces are found left to right with `indexOf` (leftmost
 * placement is always optimal for `*`-only globs), so a hostile subject or path cannot make it slow.
 */
export interface Glob {
  readonly pattern: string;
  matches(value: string): boolean;
}

/** A set of globs, split so that the common cases (exact names, `*`) cost one Set lookup or nothing. */
export interface GlobSet {
  readonly patterns: readonly string[];
  /** True when the set contains a bare `*`. */
  readonly matchesEverything: boolean;
  matches(value: string): boolean;
  /** True when any value in `values` matches. */
  matchesAny(values: readonly string[]): boolean;
}

export function compileGlob(pattern: string): Glob {
  if (!pattern.includes("*")) {
    return Object.freeze({ pattern, matches: (value: string) => value === pattern });
  }
  if (pattern === "*") {
    return Object.freeze({ pattern, matches: () => true });
  }
  const pieces = pattern.split("*");
  const first = pieces[0] ?? "";
  const last = pieces[pieces.length - 1] ?? "";
  const middle = pieces.slice(1, -1).filter((piece) => piece.length > 0);
  const minLength = first.length + last.length + middle.reduce((sum, piece) => sum + piece.length, 0);
  if (middle.length === 0) {
    // `prefix*`, `*suffix`, `prefix*suffix`: the RBAC-style trailing `*` lands here.
    return Object.freeze({
      pattern,
      matches: (value: string) =>
        value.length >= first.length + last.length && value.startsWith(first) && value.endsWith(last),
    });
  }
  return Object.freeze({
    pattern,
    matches(value: string): boolean {
      if (value.length < minLength || !value.startsWith(first) || !value.endsWith(last)) return false;
      let cursor = first.length;
      const end = value.length - last.length;
      for (const piece of middle) {
        const at = value.indexOf(piece, cursor);
        if (at < 0 || at + piece.length > end) return false;
        cursor = at + piece.length;
      }
      return true;
    },
  });
}

export function compileGlobSet(patterns: readonly string[]): GlobSet {
  const exact = new Set<string>();
  const globs: Glob[] = [];
  let matchesEverything = false;
  for (const pattern of patterns) {
    if (pattern === "*") matchesEverything = true;
    else if (pattern.includes("*")) globs.push(compileGlob(pattern));
    else exact.add(pattern);
  }
  const matches = matchesEverything
    ? () => true
    : (value: string): boolean => {
        if (exact.has(value)) return true;
        for (const glob of globs) if (glob.matches(value)) return true;
        return false;
      };
  return Object.freeze({
    patterns: Object.freeze([...patterns]),
    matchesEverything,
    matches,
    matchesAny(values: readonly string[]): boolean {
      for (const value of values) if (matches(value)) return true;
      return false;
    },
  });
}
