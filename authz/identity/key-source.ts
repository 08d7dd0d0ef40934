/**
 * @module authz/identity/key-source
 * Where an issuer's verification keys come from: a fixed public key set or a shared HMAC secret file.
 */
import { readFile } from "node:fs/promises";
import { createLocalJWKSet } from "jose";
import type { CompactJWSHeaderParameters, CryptoKey, FlattenedJWSInput, JSONWebKeySet } from "jose";
import type { JwsAlgorithm } from "./identity-config.js";

/** Resolves the key for one (not yet verified) token; shaped like jose's `JWTVerifyGetKey`. */
export type KeyResolver = (header: CompactJWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>;

/** The keys of one issuer. */
export interface KeySource {
  readonly getKey: KeyResolver;
  /** Loads or fetches the keys ahead of the first request; rejects with {@link KeysUnavailableError}. */
  warm(): Promise<void>;
}

/** The issuer's keys could not be obtained (network, file, malformed key set). Verification must deny. */
export class KeysUnavailableError extends Error {
  override readonly name = "KeysUnavailableError";
}

/**
 * A key source over a fixed public JSON Web Key Set (inline configuration, the development issuer, embedding).
 * jose's local set caches each imported key, so steady-state resolution is a lookup.
 */
export function createLocalKeySource(jwks: JSONWebKeySet): KeySource {
  let resolve: ReturnType<typeof createLocalJWKSet>;
  try {
    resolve = createLocalJWKSet(jwks);
  } catch (cause) {
    throw new TypeError("local JSON Web Key Set is malformed", { cause });
  }
  return { getKey: (header, token) => resolve(header, token), warm: () => Promise.resolve() };
}

/** Minimum HMAC key sizes from RFC 7518 §3.2: a key at least as long as the hash output. */
const HMAC_PARAMETERS: Readonly<Record<string, { hash: string; minBytes: number }>> = {
  HS256: { hash: "SHA-256", minBytes: 32 },
  HS384: { hash: "SHA-384", minBytes: 48 },
  HS512: { hash: "SHA-512", minBytes: 64 },
};

/**
 * A key source over a shared secret read from a file (exact bytes, no trimming). The file is read once, on
 * warm-up or first use, and each allowed algorithm gets its own non-extractable CryptoKey so requests never
 * re-import it. A read failure is retried on the next use (local file, cheap) and denies meanwhile.
 */
export function createHmacKeySource(path: string, algorithms: readonly JwsAlgorithm[]): KeySource {
  let keys: Promise<ReadonlyMap<string, CryptoKey>> | undefined;

  async function load(): Promise<ReadonlyMap<string, CryptoKey>> {
    let secret: Buffer;
    try {
      secret = await readFile(path);
    } catch (cause) {
      // The path is configuration, not secret; the secret itself never reaches a message.
      throw new KeysUnavailableError(`cannot read hmacSecretFile ${path}`, { cause });
    }
    const imported = new Map<string, CryptoKey>();
    for (const algorithm of algorithms) {
      const parameters = HMAC_PARAMETERS[algorithm];
      if (parameters === undefined) throw new KeysUnavailableError(`${algorithm} is not an HMAC algorithm`);
      if (secret.length < parameters.minBytes) {
        throw new KeysUnavailableError(`hmacSecretFile is shorter than the ${parameters.minBytes} bytes ${algorithm} needs`);
      }
      imported.set(
        algorithm,
        await crypto.subtle.importKey("raw", secret, { name: "HMAC", hash: parameters.hash }, false, ["verify"]),
      );
    }
    return imported;
  }

  function ensure(): Promise<ReadonlyMap<string, CryptoKey>> {
    if (keys === undefined) {
      const attempt = load();
      keys = attempt;
      attempt.catch(() => {
        if (keys === attempt) keys = undefined;
      });
    }
    return keys;
  }

  return {
    async getKey(header) {
      const key = (await ensure()).get(header.alg);
      // Unreachable when jose's algorithm allow-list (same list) ran first; kept so a mismatch denies.
      if (key === undefined) throw new KeysUnavailableError("no HMAC key for this algorithm");
      return key;
    },
    async warm() {
      await ensure();
    },
  };
}
