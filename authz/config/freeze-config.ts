/**
 * @module authz/config/freeze-config
 * Deep-freezes a configuration once it is parsed, so no part of the running process can change it afterwards.
 */

/**
 * Freezes `value` and everything reachable from it, in place, and returns it. A node that is already frozen is taken
 * as frozen all the way down (which also ends cycles).
 */
export function freezeConfig<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) freezeConfig(child);
  }
  return value;
}
