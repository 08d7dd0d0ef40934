/**
 * @module test/unit/tap/masked-value.test
 * The fast base64 placeholder path (scratch decode, table encoding) against the plain Buffer reference,
 * property-tested over arbitrary and malformed input, keyed and unkeyed.
 */
import { createHash, createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { defaultMaskConfig, loadMaskConfig, type MaskConfig } from "../../../tap/mask/mask-config.js";
import { maskResponseBody } from "../../../tap/mask/mask-response.js";
import {
  base64OfLatin1,
  decodeBase64Transient,
  isMaskedPlaceholder,
  maskBase64Value,
  maskedPlaceholder,
} from "../../../tap/mask/masked-value.js";

const keyed = loadMaskConfig({ fingerprintKey: "0123456789abcdef0123" });

/** The straightforward definition the fast path must equal: decode, placeholder, encode. */
function reference(base64: string, config: MaskConfig): string {
  const original = Buffer.from(base64, "base64");
  const digest =
    config.fingerprintKey === undefined
      ? createHash("sha256").update(original).digest("hex")
      : createHmac("sha256", config.fingerprintKey).update(original).digest("hex");
  const algorithm = config.fingerprintKey === undefined ? "sha256" : "hmac";
  return Buffer.from(`airlock:masked:${algorithm}:${digest.slice(0, 8)}`, "utf8").toString("base64");
}

/** Base64-ish text: the alphabet, URL-safe characters, padding in odd places, whitespace and junk. */
const base64ish = fc
  .array(fc.constantFrom(...Array.from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n\t.é€")), { maxLength: 120 })
  .map((chars) => chars.join(""));

describe("maskBase64Value (fast path)", () => {
  it("equals decode → placeholder → encode for real base64 of arbitrary bytes (unkeyed and keyed)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const b64 = Buffer.from(bytes).toString("base64");
        return maskBase64Value(b64, defaultMaskConfig) === reference(b64, defaultMaskConfig) && maskBase64Value(b64, keyed) === reference(b64, keyed);
      }),
      { numRuns: 1000 },
    );
  });

  it("equals the reference for malformed input too (Node's lenient decoder, same length cap)", () => {
    fc.assert(
      fc.property(fc.oneof(base64ish, fc.string({ maxLength: 80 })), (text) => {
        return maskBase64Value(text, defaultMaskConfig) === reference(text, defaultMaskConfig) && maskBase64Value(text, keyed) === reference(text, keyed);
      }),
      { numRuns: 2000 },
    );
  });

  it("decodes exactly like Buffer.from(…, 'base64'), also around the view-cache and scratch sizes", () => {
    fc.assert(
      fc.property(fc.oneof(base64ish, fc.string({ maxLength: 40 })), (text) => Buffer.from(decodeBase64Transient(text)).equals(Buffer.from(text, "base64"))),
      { numRuns: 1000 },
    );
    for (const bytes of [0, 1, 2, 3, 1023, 1024, 1025, 4096, 65535, 65536, 65537, 200_000]) {
      const value = Buffer.alloc(bytes, 0x5a).toString("base64");
      expect(Buffer.from(decodeBase64Transient(value)).equals(Buffer.from(value, "base64"))).toBe(true);
      expect(maskBase64Value(value, defaultMaskConfig)).toBe(reference(value, defaultMaskConfig));
    }
  });

  it("decodes canonical-shaped base64 exactly like Buffer (the JS path): any trailing bits, padding, near-misses", () => {
    const alphabet = Array.from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
    const quantum = fc.array(fc.constantFrom(...alphabet), { minLength: 4, maxLength: 4 }).map((c) => c.join(""));
    // Whole quanta, then an optional padded quantum with arbitrary (often non-zero) dropped bits.
    const canonical = fc
      .tuple(fc.array(quantum, { maxLength: 30 }), fc.constantFrom("", "=", "=="), quantum)
      .map(([quanta, pad, last]) => quanta.join("") + (pad === "" ? "" : last.slice(0, 4 - pad.length) + pad));
    // One character of a canonical string replaced by something the JS path must hand to Node instead.
    const nearMiss = fc
      .tuple(canonical, fc.nat(), fc.constantFrom("=", "-", "_", " ", "\n", ".", "é", "€", "\u0000", "\uffff"))
      .map(([text, at, junk]) => (text === "" ? junk : text.slice(0, at % text.length) + junk + text.slice((at % text.length) + 1)));
    fc.assert(
      fc.property(fc.oneof(canonical, nearMiss), (text) => {
        return (
          Buffer.from(decodeBase64Transient(text)).equals(Buffer.from(text, "base64")) &&
          maskBase64Value(text, defaultMaskConfig) === reference(text, defaultMaskConfig)
        );
      }),
      { numRuns: 3000 },
    );
    for (const text of ["", "====", "A===", "QQ==", "QR==", "QUI=", "QUJ=", "QUJD", "A=B=", "=AAA", "AA=A", "QUJD===="]) {
      expect(Buffer.from(decodeBase64Transient(text)).equals(Buffer.from(text, "base64"))).toBe(true);
    }
  });

  it("does not let one value's scratch bytes leak into the next fingerprint", () => {
    const long = Buffer.from("a-long-secret-value-".repeat(10)).toString("base64");
    const short = Buffer.from("s").toString("base64");
    const first = maskBase64Value(long, defaultMaskConfig);
    expect(maskBase64Value(short, defaultMaskConfig)).toBe(reference(short, defaultMaskConfig));
    expect(maskBase64Value(long, defaultMaskConfig)).toBe(first);
  });

  it("produces standard base64 that decodes to a placeholder and is recognised as one", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const masked = maskBase64Value(Buffer.from(bytes).toString("base64"), defaultMaskConfig);
        const decoded = Buffer.from(masked, "base64").toString("utf8");
        return (
          /^[A-Za-z0-9+/]+={0,2}$/.test(masked) &&
          Buffer.from(decoded, "utf8").toString("base64") === masked &&
          /^airlock:masked:sha256:[0-9a-f]{8}$/.test(decoded) &&
          decoded === maskedPlaceholder(Buffer.from(bytes), defaultMaskConfig) &&
          isMaskedPlaceholder(masked)
        );
      }),
      { numRuns: 500 },
    );
    expect(isMaskedPlaceholder(maskBase64Value("eA==", keyed))).toBe(true);
  });
});

describe("base64OfLatin1", () => {
  it("equals Buffer's base64 for any string of code units below 256", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 }), (codes) => {
        const text = String.fromCharCode(...codes);
        return base64OfLatin1(text) === Buffer.from(text, "latin1").toString("base64");
      }),
      { numRuns: 1000 },
    );
  });
});

describe("Secret data keys that are special to JavaScript", () => {
  it("masks a data value stored under __proto__ (an own property after JSON.parse)", () => {
    const secretValue = Buffer.from("proto-LEAK").toString("base64");
    const body = Buffer.from(`{"kind":"Secret","data":{"__proto__":"${secretValue}","constructor":"${secretValue}"}}`);
    const result = maskResponseBody({ contentType: "application/json", body }, defaultMaskConfig);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const text = result.body.toString("utf8");
    expect(text).not.toContain(secretValue);
    expect(result.maskedCount).toBe(2);
    expect(text).toContain('"__proto__":"');
  });
});
