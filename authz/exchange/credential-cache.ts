/**
 * @module authz/exchange/credential-cache
 * Where the kubectl credential plugin keeps exchanged tokens between invocations: a user-only directory, on a
 * memory-backed tmpfs when `$XDG_RUNTIME_DIR` exists, one 0600 file per server+client, replaced atomically.
 */
import { createHash, randomUUID } from "node:crypto";
import { chmod, lstat, mkdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";

/** A cached token and its times (epoch ms). */
export interface CachedCredential {
  readonly accessToken: string;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
}

/**
 * The cache directory: `$XDG_RUNTIME_DIR/airlock` (tmpfs, per user, gone at logout), else `~/.cache/airlock`.
 * An explicit directory wins.
 */
export function credentialCacheDirectory(env: Readonly<Record<string, string | undefined>>, explicit?: string): string {
  if (explicit !== undefined && explicit !== "") return explicit;
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime !== undefined && runtime !== "") return join(runtime, "airlock");
  const home = env.HOME !== undefined && env.HOME !== "" ? env.HOME : homedir();
  return join(home, ".cache", "airlock");
}

/** The cache file name for one server and client identity (a digest: neither appears in the file system). */
export function credentialCacheKey(parts: readonly string[]): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
}

function ownedByMe(uid: number): boolean {
  return typeof process.getuid !== "function" || process.getuid() === uid;
}

/**
 * Creates the directory 0700 (tightening it if it is ours and too open). Throws if it is not a directory we own:
 * a token must never land where someone else can read or replace it.
 */
async function ensurePrivateDirectory(directory: string): Promise<void> {
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const info = await lstat(directory);
  if (!info.isDirectory()) throw new Error(`${directory} is not a directory`);
  if (!ownedByMe(info.uid)) throw new Error(`${directory} belongs to another user`);
  if ((info.mode & 0o077) !== 0) await chmod(directory, 0o700);
}

function isCachedCredential(value: unknown): value is CachedCredential {
  if (typeof value !== "object" || value === null) return false;
  const entry = value as Record<string, unknown>;
  return (
    typeof entry.accessToken === "string" &&
    entry.accessToken !== "" &&
    typeof entry.issuedAtMs === "number" &&
    typeof entry.expiresAtMs === "number" &&
    entry.expiresAtMs > entry.issuedAtMs
  );
}

/** Reads a cached credential; anything unusual (missing, foreign, too open, malformed) is simply "no cache". */
export async function readCachedCredential(directory: string, key: string): Promise<CachedCredential | undefined> {
  const path = join(directory, `${key}.json`);
  try {
    const info = await lstat(path);
    if (!info.isFile() || !ownedByMe(info.uid) || (info.mode & 0o077) !== 0) return undefined;
    const parsed: unknown = JSON.parse(await readFile(path, "utf8"));
    return isCachedCredential(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Writes a credential: private temporary file (0600), then rename over the old one, so readers never see half. */
export async function writeCachedCredential(directory: string, key: string, credential: CachedCredential): Promise<void> {
  await ensurePrivateDirectory(directory);
  const path = join(directory, `${key}.json`);
  const temporary = join(directory, `.${key}.${randomUUID()}.tmp`);
  try {
    await writeFile(temporary, JSON.stringify(credential), { mode: 0o600, flag: "wx" });
    await chmod(temporary, 0o600);
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}
