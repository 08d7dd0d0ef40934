/**
 * @module tap/mask/masked-value
 * The placeholder that replaces a secret value: a fixed marker plus a short fingerprint of the original.
 */
import { createHmac, hash } from "node:crypto";
import type { MaskConfig } from "./mask-config.js";

/** Every placeholder starts with this, so tools (and the detectors) can recognise already-masked text. */
export const MASK_MARKER = "airlock:masked:";

/**
 * 8 hex characters (32 bits) of SHA-256 — or HMAC-SHA256 when a fingerprint key is configured — over
 * the original bytes: enough for an auditor to see that a value changed, too short to identify it.
 */
export function fingerprintOf(original: Buffer | string, config: MaskConfig): string {
  const digest =
    config.fingerprintKey === undefined
      ? // One-shot hash(): several times cheaper than createHash() per value on large Secret lists.
        hash("sha256", original, "hex")
      : createHmac("sha256", config.fingerprintKey).update(original).digest("hex");
  return digest.slice(0, 8);
}

/** `airlock:masked:sha256:1a2b3c4d` (or `airlock:masked:hmac:…` when keyed) for the given original. */
export function maskedPlaceholder(original: Buffer | string, config: MaskConfig): string {
  const algorithm = config.fingerprintKey === undefined ? "sha256" : "hmac";
  return `${MASK_MARKER}${algorithm}:${fingerprintOf(original, config)}`;
}

/**
 * Masks a base64 value (Secret `data`, ConfigMap `binaryData`, CSR certificate): the result is still
 * valid base64, because clients decode it, and decodes to the placeholder. The fingerprint is taken
 * over the decoded bytes, so `data` and `stringData` forms of one value get the same fingerprint.
 */
export function maskBase64Value(base64: string, config: MaskConfig): string {
  return Buffer.from(maskedPlaceholder(Buffer.from(base64, "base64"), config), "utf8").toString("base64");
}

/** True when a string is already one of our placeholders (plain or base64-encoded). */
export function isMaskedPlaceholder(value: string): boolean {
  return value.startsWith(MASK_MARKER) || value.startsWith(BASE64_MARKER_PREFIX);
}

// base64("airlock:masked:") is "YWlybG9jazptYXNrZWQ6" (15 bytes → 20 chars, no padding at a 3-byte boundary).
const BASE64_MARKER_PREFIX = Buffer.from(MASK_MARKER, "utf8").toString("base64");
