/**
 * @module authz/exchange/client-secret
 * Registered agent clients' secrets: stored only as a salted scrypt hash, checked in constant time.
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";

/**
 * Stored form: `scrypt$N=<cost>,r=<blockSize>,p=<parallelism>$<salt, base64url>$<hash, base64url>`.
 * Example: `scrypt$N=32768,r=8,p=1$3q2-7w…$Yk9…` (16-byte salt, 32-byte hash). The parameters travel with the hash
 * so they can be raised later without invalidating registered clients.
 */
export const SECRET_HASH_PATTERN = /^scrypt\$N=(\d{1,7}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9_-]{16,128})\$([A-Za-z0-9_-]{32,128})$/;

/** Defaults of {@link hashClientSecret}: OWASP's scrypt baseline (N=2^15, r=8, p=1), ~40 ms and 32 MiB. */
export const DEFAULT_SCRYPT_COST = 32_768;
const DEFAULT_BLOCK_SIZE = 8;
const DEFAULT_PARALLELISM = 1;
const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** Shortest secret accepted for hashing: 128 bits of base64url. */
export const MIN_SECRET_LENGTH = 22;
/** Longest secret read; anything longer is refused before hashing. */
export const MAX_SECRET_LENGTH = 1024;

/** Bounds on stored parameters: a hostile or mistyped config must not make every exchange take seconds. */
const MAX_COST = 1 << 17;
const MAX_BLOCK_SIZE = 16;
const MAX_PARALLELISM = 4;

function parametersInBounds(cost: number, blockSize: number, parallelism: number): boolean {
  const isPowerOfTwo = Number.isSafeInteger(cost) && cost > 1 && (cost & (cost - 1)) === 0;
  return isPowerOfTwo && cost <= MAX_COST && blockSize >= 1 && blockSize <= MAX_BLOCK_SIZE && parallelism >= 1 && parallelism <= MAX_PARALLELISM;
}

/** A parsed stored hash. */
export interface ParsedSecretHash {
  readonly cost: number;
  readonly blockSize: number;
  readonly parallelism: number;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

/** Parses a stored hash; `undefined` when it is not in the documented format or its parameters are out of bounds. */
export function parseSecretHash(text: string): ParsedSecretHash | undefined {
  const match = SECRET_HASH_PATTERN.exec(text);
  if (match === null) return undefined;
  const cost = Number(match[1]);
  const blockSize = Number(match[2]);
  const parallelism = Number(match[3]);
  if (!parametersInBounds(cost, blockSize, parallelism)) return undefined;
  const salt = Buffer.from(match[4] ?? "", "base64url");
  const hash = Buffer.from(match[5] ?? "", "base64url");
  if (salt.length < SALT_BYTES || hash.length < HASH_BYTES) return undefined;
  return { cost, blockSize, parallelism, salt, hash };
}

function derive(secret: string, parsed: Omit<ParsedSecretHash, "hash">, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(
      secret,
      parsed.salt,
      length,
      // scrypt needs 128·N·r bytes; allow that plus headroom.
      { N: parsed.cost, r: parsed.blockSize, p: parsed.parallelism, maxmem: 256 * parsed.cost * parsed.blockSize + 1024 * 1024 },
      (error, key) => {
        if (error) reject(error);
        else resolve(key);
      },
    );
  });
}

/**
 * Hashes a client secret for the `clients[].secretHash` configuration (what `airlock exchange hash-secret` prints).
 * Throws a TypeError for secrets that are too short or too long.
 *
 * @example
 * const stored = await hashClientSecret(randomBytes(32).toString("base64url"));
 */
export async function hashClientSecret(secret: string, options: { readonly cost?: number } = {}): Promise<string> {
  if (secret.length < MIN_SECRET_LENGTH) throw new TypeError(`a client secret must be at least ${MIN_SECRET_LENGTH} characters`);
  if (secret.length > MAX_SECRET_LENGTH) throw new TypeError(`a client secret must be at most ${MAX_SECRET_LENGTH} characters`);
  const cost = options.cost ?? DEFAULT_SCRYPT_COST;
  if (!parametersInBounds(cost, DEFAULT_BLOCK_SIZE, DEFAULT_PARALLELISM)) {
    throw new TypeError(`scrypt cost must be a power of two between 2 and ${MAX_COST}`);
  }
  const salt = randomBytes(SALT_BYTES);
  const parameters = { cost, blockSize: DEFAULT_BLOCK_SIZE, parallelism: DEFAULT_PARALLELISM, salt };
  const stored = `scrypt$N=${cost},r=${DEFAULT_BLOCK_SIZE},p=${DEFAULT_PARALLELISM}$${salt.toString("base64url")}$`;
  const hash = await derive(secret, parameters, HASH_BYTES);
  return `${stored}${hash.toString("base64url")}`;
}

/** Generates a fresh random client secret (256 bits, base64url). */
export function generateClientSecret(): string {
  return randomBytes(32).toString("base64url");
}

/**
 * True when `secret` matches the stored hash. The comparison is constant-time, and an unparseable stored hash or an
 * oversized secret is simply `false` (the configuration schema has already refused malformed hashes).
 */
export async function verifyClientSecret(secret: string, stored: ParsedSecretHash): Promise<boolean> {
  if (secret.length === 0 || secret.length > MAX_SECRET_LENGTH) return false;
  const candidate = await derive(secret, stored, stored.hash.length);
  return candidate.length === stored.hash.length && timingSafeEqual(candidate, stored.hash);
}
