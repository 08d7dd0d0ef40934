/**
 * @module test/unit/tap/planted-secrets
 * Loads the hand-written masking fixtures and checks that no planted secret (plain or base64) survives.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";

export const FIXTURE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "fixtures", "mask");

export function fixture(name: string): Buffer {
  return readFileSync(join(FIXTURE_DIR, name));
}

const planted = (JSON.parse(fixture("planted-secrets.json").toString("utf8")) as { secrets: string[] }).secrets;

/** Every planted secret, plus the fragments that matter when a secret spans lines (PEM bodies). */
export const PLANTED_SECRETS: readonly string[] = planted;

/** Asserts that no planted secret byte sequence (nor its base64 form, nor the LEAK marker) is in `output`. */
export function expectNoPlantedSecret(output: Buffer | string): void {
  const text = typeof output === "string" ? output : output.toString("utf8");
  expect(text).not.toContain("LEAK");
  for (const secret of PLANTED_SECRETS) {
    expect(text).not.toContain(secret);
    expect(text).not.toContain(Buffer.from(secret, "utf8").toString("base64"));
  }
  // Decoded Secret data must not hide one either.
  for (const match of text.matchAll(/"([A-Za-z0-9+/]{16,}={0,2})"/g)) {
    const decoded = Buffer.from(match[1]!, "base64").toString("utf8");
    expect(decoded).not.toContain("LEAK");
  }
}
