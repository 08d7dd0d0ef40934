/**
 * @module authz/exchange/exchange-key-ring
 * The ES256 keys that sign exchanged tokens: generated into the state directory for development, read from a
 * mounted Secret in production; the newest signs, older ones stay published until their last token has expired.
 */
import { createPrivateKey, randomUUID } from "node:crypto";
import { chmod, mkdir, readdir, readFile, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK } from "jose";
import type { CryptoKey, JSONWebKeySet, JWK } from "jose";

/** Subdirectory of `stateDir` that holds the embedded (development) keys. */
export const EMBEDDED_KEY_DIRECTORY = "exchange-keys";

/** One key of the ring. */
export interface ExchangeKey {
  readonly kid: string;
  /** Public JWK as published (kty, crv, x, y, kid, alg, use). */
  readonly publicJwk: JWK;
  readonly publicKey: CryptoKey;
  readonly privateKey: CryptoKey;
  /** Ordering key: creation time (embedded) or file name (directory). The greatest signs. */
  readonly order: string;
  /** When a newer key took over signing; undefined for the signing key. */
  readonly retiredAtMs: number | undefined;
}

/** The signing keys and the published key set of the exchange issuer. */
export interface ExchangeKeyRing {
  /** The key that signs new tokens (the newest). */
  signingKey(): ExchangeKey;
  /** Public keys that verify live tokens: the signing key and retired keys whose tokens may not have expired. */
  jwks(): JSONWebKeySet;
  /** The public key for `kid` while it is published; undefined otherwise. */
  publicKey(kid: string): CryptoKey | undefined;
  /** Re-reads the key store (directory source) and prunes keys whose tokens have all expired. */
  refresh(): Promise<void>;
  /** Embedded source: generates a new signing key now (the previous one stays published). Directory: TypeError. */
  rotate(): Promise<void>;
  /** Called after the key set changed (rotation, reload); returns an unsubscribe function. */
  onChange(listener: () => void): () => void;
  /** Stops background timers. */
  close(): void;
}

/** How long a retired key stays published: the longest token it may have signed, plus clock skew. */
export interface PublicationWindow {
  readonly maxTokenLifetimeSeconds: number;
  readonly clockSkewSeconds: number;
}

/**
 * Pure: the keys to publish at `nowMs`, newest first. The signing key always; a retired key until
 * `retiredAt + maxTokenLifetime + skew`, after which no token it signed can still be valid.
 */
export function publishedKeys(keys: readonly ExchangeKey[], nowMs: number, window: PublicationWindow): readonly ExchangeKey[] {
  const graceMs = (window.maxTokenLifetimeSeconds + window.clockSkewSeconds) * 1000;
  return [...keys]
    .sort((a, b) => (a.order < b.order ? 1 : a.order > b.order ? -1 : 0))
    .filter((key, index) => index === 0 || key.retiredAtMs === undefined || nowMs < key.retiredAtMs + graceMs);
}

type PrivateP256Jwk = JWK & { kty: "EC"; crv: "P-256"; x: string; y: string; d: string };

function isPrivateP256Jwk(value: unknown): value is PrivateP256Jwk {
  if (typeof value !== "object" || value === null) return false;
  const jwk = value as Record<string, unknown>;
  return jwk.kty === "EC" && jwk.crv === "P-256" && typeof jwk.x === "string" && typeof jwk.y === "string" && typeof jwk.d === "string";
}

interface LoadedKey {
  readonly kid: string;
  readonly publicJwk: JWK;
  readonly publicKey: CryptoKey;
  readonly privateKey: CryptoKey;
}

async function importEcKey(jwk: JWK): Promise<CryptoKey> {
  const key = await importJWK(jwk, "ES256");
  // Only "oct" JWKs import as raw bytes; ours are EC, so this is a corrupted key file.
  if (key instanceof Uint8Array) throw new Error("exchange keys must be EC keys");
  return key;
}

async function loadPrivateJwk(jwk: PrivateP256Jwk): Promise<LoadedKey> {
  const bare: JWK = { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y };
  const kid = await calculateJwkThumbprint(bare, "sha256");
  const privateKey = await importEcKey({ kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y, d: jwk.d });
  const publicKey = await importEcKey(bare);
  return { kid, publicJwk: { ...bare, kid, alg: "ES256", use: "sig" }, publicKey, privateKey };
}

/** Parses a key file (PEM PKCS#8/SEC1 EC private key, or a private JWK) into an ES256 key; throws naming the file. */
async function parseKeyFile(path: string, text: string): Promise<LoadedKey> {
  if (path.endsWith(".json")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error(`${path} is not valid JSON`);
    }
    const jwk = typeof parsed === "object" && parsed !== null && "privateJwk" in parsed ? parsed.privateJwk : parsed;
    if (!isPrivateP256Jwk(jwk)) throw new Error(`${path} does not hold an ES256 (P-256) private JWK`);
    return loadPrivateJwk(jwk);
  }
  let exported: unknown;
  try {
    const key = createPrivateKey({ key: text, format: "pem" });
    if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
      throw new Error("not P-256");
    }
    exported = key.export({ format: "jwk" });
  } catch {
    // The cause may quote key material; it is dropped on purpose.
    throw new Error(`${path} does not hold a PEM EC P-256 private key`);
  }
  if (!isPrivateP256Jwk({ ...(exported as object), kty: "EC" })) throw new Error(`${path} does not hold a PEM EC P-256 private key`);
  return loadPrivateJwk(exported as PrivateP256Jwk);
}

function isNotFound(error: unknown): boolean {
  return error instanceof Error && "code" in error && error.code === "ENOENT";
}

function ringFrom(
  read: () => readonly ExchangeKey[],
  window: PublicationWindow,
  now: () => number,
  actions: { refresh(): Promise<void>; rotate(): Promise<void>; close(): void },
  listeners: Set<() => void>,
): ExchangeKeyRing {
  const published = (): readonly ExchangeKey[] => publishedKeys(read(), now(), window);
  return {
    signingKey() {
      const [newest] = published();
      // Both loaders refuse to open without a key, so this is a programming error, not an input.
      if (newest === undefined) throw new Error("the exchange key ring holds no key");
      return newest;
    },
    jwks: () => ({ keys: published().map((key) => ({ ...key.publicJwk })) }),
    publicKey: (kid) => published().find((key) => key.kid === kid)?.publicKey,
    refresh: () => actions.refresh(),
    rotate: () => actions.rotate(),
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close: () => { actions.close(); },
  };
}

/** Options shared by both key sources. */
export interface KeyRingOptions extends PublicationWindow {
  /** Clock in epoch milliseconds; defaults to `Date.now`. */
  readonly now?: () => number;
  /** Told about background failures (a reload that failed keeps the last good keys). Never carries key material. */
  readonly onError?: (error: Error) => void;
}

/** Options of {@link openEmbeddedKeyRing}. */
export interface EmbeddedKeyRingOptions extends KeyRingOptions {
  readonly stateDir: string;
  /** A signing key older than this is replaced on open and by the hourly check. */
  readonly rotateAfterDays: number;
  /** How often rotation and pruning are checked; 1 hour by default. */
  readonly checkIntervalMs?: number;
}

interface EmbeddedFile {
  readonly createdAtMs: number;
  readonly privateJwk: unknown;
}

const EMBEDDED_FILE = /^key-(\d{13})-[0-9a-f-]{36}\.json$/;

/**
 * Development keys in `${stateDir}/exchange-keys/` (directory 0700, each key a 0600 JSON file named by its creation
 * time). A key is retired when a newer one is created; files whose tokens have all expired are deleted.
 */
export async function openEmbeddedKeyRing(options: EmbeddedKeyRingOptions): Promise<ExchangeKeyRing> {
  const now = options.now ?? Date.now;
  const directory = join(options.stateDir, EMBEDDED_KEY_DIRECTORY);
  const listeners = new Set<() => void>();
  let keys: readonly ExchangeKey[] = [];
  let files = new Map<string, string>();

  async function read(): Promise<void> {
    await mkdir(directory, { recursive: true, mode: 0o700 });
    const info = await stat(directory);
    if ((info.mode & 0o077) !== 0) {
      throw new Error(`${directory} is accessible by group or others (mode ${(info.mode & 0o777).toString(8)}); run chmod 700 on it`);
    }
    const entries: { name: string; createdAtMs: number; key: LoadedKey }[] = [];
    for (const name of (await readdir(directory)).sort()) {
      if (!EMBEDDED_FILE.test(name)) continue;
      const path = join(directory, name);
      const fileInfo = await stat(path);
      if ((fileInfo.mode & 0o077) !== 0) {
        throw new Error(`${path} is accessible by group or others (mode ${(fileInfo.mode & 0o777).toString(8)}); run chmod 600 on it`);
      }
      const text = await readFile(path, "utf8");
      let parsed: EmbeddedFile;
      try {
        parsed = JSON.parse(text) as EmbeddedFile;
      } catch {
        throw new Error(`${path} is not valid JSON`);
      }
      if (!Number.isSafeInteger(parsed.createdAtMs) || !isPrivateP256Jwk(parsed.privateJwk)) {
        throw new Error(`${path} is not an exchange key file`);
      }
      entries.push({ name, createdAtMs: parsed.createdAtMs, key: await loadPrivateJwk(parsed.privateJwk) });
    }
    entries.sort((a, b) => a.createdAtMs - b.createdAtMs || (a.name < b.name ? -1 : 1));
    keys = entries.map((entry, index) => ({
      ...entry.key,
      order: `${String(entry.createdAtMs).padStart(16, "0")}:${entry.name}`,
      retiredAtMs: entries[index + 1]?.createdAtMs,
    }));
    files = new Map(entries.map((entry) => [entry.key.kid, join(directory, entry.name)]));
  }

  async function generate(): Promise<void> {
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    const createdAtMs = now();
    const path = join(directory, `key-${String(createdAtMs).padStart(13, "0")}-${randomUUID()}.json`);
    await writeFile(path, `${JSON.stringify({ createdAtMs, privateJwk })}\n`, { mode: 0o600, flag: "wx" });
    // writeFile's mode is filtered by the umask; make 0600 explicit.
    await chmod(path, 0o600);
  }

  async function prune(): Promise<void> {
    const keep = new Set(publishedKeys(keys, now(), options).map((key) => key.kid));
    for (const key of keys) {
      const path = files.get(key.kid);
      if (keep.has(key.kid) || path === undefined) continue;
      try {
        await unlink(path);
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
  }

  function rotationDue(): boolean {
    const newest = keys.at(-1);
    if (newest === undefined) return true;
    const createdAtMs = Number(newest.order.slice(0, 16));
    return now() - createdAtMs >= options.rotateAfterDays * 86_400_000;
  }

  function notify(): void {
    for (const listener of listeners) listener();
  }

  async function refresh(): Promise<void> {
    const before = keys.map((key) => key.kid).join();
    await read();
    if (rotationDue()) {
      await generate();
      await read();
    }
    await prune();
    await read();
    if (keys.map((key) => key.kid).join() !== before) notify();
  }

  await refresh();
  const timer = setInterval(() => {
    refresh().catch((error: unknown) => options.onError?.(error instanceof Error ? error : new Error(String(error))));
  }, options.checkIntervalMs ?? 3_600_000);
  timer.unref();

  return ringFrom(() => keys, options, now, {
    refresh,
    async rotate() {
      await read();
      await generate();
      await read();
      await prune();
      await read();
      notify();
    },
    close: () => { clearInterval(timer); },
  }, listeners);
}

/** Options of {@link openDirectoryKeyRing}. */
export interface DirectoryKeyRingOptions extends KeyRingOptions {
  /** Directory of `*.pem` / `*.json` private keys (a mounted Secret). Hidden entries (`..data`) are skipped. */
  readonly path: string;
  readonly reloadIntervalMs: number;
}

/**
 * Production keys from a directory, typically a mounted Secret. File names order the keys: the lexically greatest
 * signs (name them by date, e.g. `2025-06-01.pem`). A key counts as retired from the moment this process first
 * saw a newer one, so a replica that starts after a rotation still publishes the older keys for a full token
 * lifetime. A reload that fails keeps the last good set.
 */
export async function openDirectoryKeyRing(options: DirectoryKeyRingOptions): Promise<ExchangeKeyRing> {
  const now = options.now ?? Date.now;
  const listeners = new Set<() => void>();
  const firstSeenMs = new Map<string, number>();
  let keys: readonly ExchangeKey[] = [];

  async function read(): Promise<void> {
    const names = (await readdir(options.path)).filter((name) => !name.startsWith(".") && /\.(pem|json)$/.test(name)).sort();
    const loaded: { name: string; key: LoadedKey }[] = [];
    for (const name of names) {
      const path = join(options.path, name);
      loaded.push({ name, key: await parseKeyFile(path, await readFile(path, "utf8")) });
    }
    if (loaded.length === 0) throw new Error(`${options.path} holds no *.pem or *.json exchange key`);
    const seenAt = now();
    for (const { key } of loaded) if (!firstSeenMs.has(key.kid)) firstSeenMs.set(key.kid, seenAt);
    const before = keys.map((key) => key.kid).join();
    keys = loaded.map(({ name, key }, index) => {
      const newer = loaded.slice(index + 1).map((entry) => firstSeenMs.get(entry.key.kid) ?? seenAt);
      return { ...key, order: name, retiredAtMs: newer.length === 0 ? undefined : Math.min(...newer) };
    });
    if (before !== "" && keys.map((key) => key.kid).join() !== before) {
      for (const listener of listeners) listener();
    }
  }

  await read();
  const timer = setInterval(() => {
    read().catch((error: unknown) => options.onError?.(error instanceof Error ? error : new Error(String(error))));
  }, options.reloadIntervalMs);
  timer.unref();

  return ringFrom(() => keys, options, now, {
    refresh: read,
    rotate: () => Promise.reject(new TypeError("keys from a directory are rotated by adding a newer key file to it")),
    close: () => { clearInterval(timer); },
  }, listeners);
}
