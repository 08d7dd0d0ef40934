/**
 * @module authz/exchange/key-ring-key-source
 * A live verification KeySource over the exchange key ring, so ext_authz verifies exchanged tokens with the keys
 * as they rotate (no rebuilt verifier, no HTTP round trip to our own JWKS).
 */
import { errors } from "jose";
import type { KeySource } from "../identity/key-source.js";
import type { ExchangeKeyRing } from "./exchange-key-ring.js";

/** Options of {@link createKeyRingKeySource}. */
export interface KeyRingKeySourceOptions {
  /**
   * An unknown `kid` makes the ring re-read its store (another replica may already sign with a key this one has
   * not loaded yet), at most once per this interval. 30 s by default, like the remote JWKS cooldown.
   */
  readonly refreshCooldownMs?: number;
  readonly now?: () => number;
}

/**
 * The key source for the exchange issuer's entry in the agent identity configuration. Resolution is a map lookup;
 * a kid that is not (or no longer) published is refused with jose's JWKSNoMatchingKey, which the verifier reports
 * as `TOKEN_KEY_UNKNOWN`.
 */
export function createKeyRingKeySource(ring: ExchangeKeyRing, options: KeyRingKeySourceOptions = {}): KeySource {
  const now = options.now ?? Date.now;
  const cooldownMs = options.refreshCooldownMs ?? 30_000;
  let lastRefreshMs = Number.NEGATIVE_INFINITY;
  let refreshing: Promise<void> | undefined;

  async function refreshOnce(): Promise<void> {
    const at = now();
    if (refreshing === undefined && at - lastRefreshMs < cooldownMs) return;
    if (refreshing === undefined) {
      lastRefreshMs = at;
      refreshing = ring.refresh().finally(() => {
        refreshing = undefined;
      });
    }
    try {
      await refreshing;
    } catch {
      // The ring keeps its last good keys; the lookup below decides.
    }
  }

  return {
    async getKey(header) {
      if (header.alg !== "ES256") throw new errors.JOSEAlgNotAllowed('"alg" (Algorithm) Header Parameter value not allowed');
      const kid = header.kid;
      if (typeof kid !== "string" || kid === "") throw new errors.JWKSNoMatchingKey();
      const known = ring.publicKey(kid);
      if (known !== undefined) return known;
      await refreshOnce();
      const reloaded = ring.publicKey(kid);
      if (reloaded === undefined) throw new errors.JWKSNoMatchingKey();
      return reloaded;
    },
    warm: () => Promise.resolve(),
  };
}
