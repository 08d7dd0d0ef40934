/**
 * @module authz/exchange/client-rate-limiter
 * Per-client token buckets for the exchange endpoint, in memory, bounded in size (least recently used evicted).
 */

/** Options of {@link createClientRateLimiter}. */
export interface ClientRateLimiterOptions {
  /** Requests a client may make back to back. */
  readonly burst: number;
  /** Sustained rate. */
  readonly refillPerMinute: number;
  /** Buckets kept; the least recently used is dropped first (it would be nearly full again anyway). */
  readonly maxTrackedClients: number;
  /** Clock in epoch milliseconds. */
  readonly now?: () => number;
}

/** A limiter verdict; `retryAfterSeconds` is when the next token will be in the bucket. */
export type RateVerdict = { readonly ok: true } | { readonly ok: false; readonly retryAfterSeconds: number };

export interface ClientRateLimiter {
  /** Takes one token from `key`'s bucket. */
  take(key: string): RateVerdict;
}

interface Bucket {
  tokens: number;
  updatedAtMs: number;
}

/**
 * Token buckets keyed by client. A Map keeps insertion order, so re-inserting on use makes the first entry the
 * least recently used one.
 */
export function createClientRateLimiter(options: ClientRateLimiterOptions): ClientRateLimiter {
  const now = options.now ?? Date.now;
  const perMs = options.refillPerMinute / 60_000;
  const buckets = new Map<string, Bucket>();
  return {
    take(key) {
      const at = now();
      const bucket = buckets.get(key) ?? { tokens: options.burst, updatedAtMs: at };
      buckets.delete(key);
      // A clock that steps backwards refills nothing rather than a negative amount.
      bucket.tokens = Math.min(options.burst, bucket.tokens + Math.max(0, at - bucket.updatedAtMs) * perMs);
      bucket.updatedAtMs = at;
      buckets.set(key, bucket);
      if (buckets.size > options.maxTrackedClients) {
        const oldest = buckets.keys().next();
        if (oldest.done !== true) buckets.delete(oldest.value);
      }
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return { ok: true };
      }
      return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / perMs / 1000)) };
    },
  };
}
