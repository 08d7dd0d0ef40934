/**
 * @module test/integration/authz/exchange/exchange-key-ring.test
 * Key ring storage on a real file system: embedded development keys (persisted 0600, reused, rotated, pruned) and
 * production keys from a Secret-like directory (newest file signs, reload, `airlock exchange generate-key`).
 */
import { chmod, mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { generateKeyPairSync } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runExchangeCommand } from "../../../../authz/exchange/exchange-command.js";
import { EMBEDDED_KEY_DIRECTORY, openDirectoryKeyRing, openEmbeddedKeyRing } from "../../../../authz/exchange/exchange-key-ring.js";
import { parseSecretHash, verifyClientSecret } from "../../../../authz/exchange/client-secret.js";

const WINDOW = { maxTokenLifetimeSeconds: 900, clockSkewSeconds: 30 };
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-keys-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function pem(): string {
  return generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
}

describe("embedded key ring", () => {
  it("generates a key at first start (0700/0600) and reuses it on the next start", async () => {
    const first = await openEmbeddedKeyRing({ stateDir: dir, rotateAfterDays: 30, ...WINDOW });
    const kid = first.signingKey().kid;
    first.close();
    const keyDir = join(dir, EMBEDDED_KEY_DIRECTORY);
    expect((await stat(keyDir)).mode & 0o777).toBe(0o700);
    const files = await readdir(keyDir);
    expect(files).toHaveLength(1);
    expect((await stat(join(keyDir, files[0] ?? ""))).mode & 0o777).toBe(0o600);
    const second = await openEmbeddedKeyRing({ stateDir: dir, rotateAfterDays: 30, ...WINDOW });
    expect(second.signingKey().kid).toBe(kid);
    second.close();
  });

  it("refuses a key file others can read", async () => {
    (await openEmbeddedKeyRing({ stateDir: dir, rotateAfterDays: 30, ...WINDOW })).close();
    const keyDir = join(dir, EMBEDDED_KEY_DIRECTORY);
    const [file] = await readdir(keyDir);
    await chmod(join(keyDir, file ?? ""), 0o644);
    await expect(openEmbeddedKeyRing({ stateDir: dir, rotateAfterDays: 30, ...WINDOW })).rejects.toThrow(/chmod 600/);
  });

  it("rotates when the signing key is older than rotateAfterDays and deletes keys whose tokens have expired", async () => {
    let now = Date.now();
    const ring = await openEmbeddedKeyRing({ stateDir: dir, rotateAfterDays: 1, ...WINDOW, now: () => now });
    const oldKid = ring.signingKey().kid;
    let changes = 0;
    ring.onChange(() => changes++);
    now += 86_400_000 + 1;
    await ring.refresh();
    const newKid = ring.signingKey().kid;
    expect(newKid).not.toBe(oldKid);
    expect(changes).toBe(1);
    expect(ring.jwks().keys.map((key) => key.kid)).toEqual([newKid, oldKid]);
    now += (900 + 30) * 1000 + 1;
    await ring.refresh();
    expect(ring.jwks().keys.map((key) => key.kid)).toEqual([newKid]);
    expect(await readdir(join(dir, EMBEDDED_KEY_DIRECTORY))).toHaveLength(1);
    ring.close();
  });
});

describe("directory key ring (mounted Secret)", () => {
  it("signs with the newest file name, publishes older keys for a token lifetime, and follows reloads", async () => {
    await writeFile(join(dir, "2025-01-01.pem"), pem());
    await mkdir(join(dir, "..data"));
    let now = Date.now();
    const ring = await openDirectoryKeyRing({ path: dir, reloadIntervalMs: 3_600_000, ...WINDOW, now: () => now });
    const first = ring.signingKey().kid;
    await expect(ring.rotate()).rejects.toThrow(TypeError);

    await writeFile(join(dir, "2025-06-01.pem"), pem());
    await ring.refresh();
    const second = ring.signingKey().kid;
    expect(second).not.toBe(first);
    expect(ring.jwks().keys.map((key) => key.kid)).toEqual([second, first]);
    now += (900 + 30) * 1000 + 1;
    expect(ring.jwks().keys.map((key) => key.kid)).toEqual([second]);
    ring.close();
  });

  it("accepts keys written by `airlock exchange generate-key` and refuses a directory without keys", async () => {
    await expect(openDirectoryKeyRing({ path: dir, reloadIntervalMs: 60_000, ...WINDOW })).rejects.toThrow(/holds no/);
    const stdout = new PassThrough();
    const chunks: Buffer[] = [];
    stdout.on("data", (chunk: Buffer) => chunks.push(chunk));
    expect(await runExchangeCommand(["generate-key", "--dir", dir], { stdout, stderr: new PassThrough() })).toBe(0);
    const path = Buffer.concat(chunks).toString().trim();
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const ring = await openDirectoryKeyRing({ path: dir, reloadIntervalMs: 60_000, ...WINDOW });
    expect(ring.jwks().keys).toHaveLength(1);
    ring.close();
  });

  it("refuses a non-P-256 key without quoting it", async () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" });
    await writeFile(join(dir, "a.pem"), rsa);
    const error = await openDirectoryKeyRing({ path: dir, reloadIntervalMs: 60_000, ...WINDOW }).catch((caught: unknown) => caught);
    expect(String(error)).toMatch(/P-256/);
    expect(String(error)).not.toContain("BEGIN");
  });
});

describe("airlock exchange hash-secret", () => {
  it("hashes a secret read from stdin into a verifiable secretHash", async () => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const chunks: Buffer[] = [];
    stdout.on("data", (chunk: Buffer) => chunks.push(chunk));
    stdin.end("a-client-secret-of-sufficient-length\n");
    expect(await runExchangeCommand(["hash-secret"], { stdin, stdout, stderr: new PassThrough() })).toBe(0);
    const parsed = parseSecretHash(Buffer.concat(chunks).toString().trim());
    expect(parsed).toBeDefined();
    if (parsed === undefined) return;
    expect(await verifyClientSecret("a-client-secret-of-sufficient-length", parsed)).toBe(true);
    expect(await verifyClientSecret("a-client-secret-of-sufficient-lengtH", parsed)).toBe(false);
  });
});
