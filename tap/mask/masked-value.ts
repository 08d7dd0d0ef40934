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
export function fingerprintOf(original: Uint8Array | string, config: MaskConfig): string {
  const digest =
    config.fingerprintKey === undefined
      ? // One-shot hash(): several times cheaper than createHash() per value on large Secret lists.
        hash("sha256", original, "hex")
      : createHmac("sha256", config.fingerprintKey).update(original).digest("hex");
  return digest.slice(0, 8);
}

function algorithmOf(config: MaskConfig): "sha256" | "hmac" {
  return config.fingerprintKey === undefined ? "sha256" : "hmac";
}

/** `airlock:masked:sha256:1a2b3c4d` (or `airlock:masked:hmac:…` when keyed) for the given original. */
export function maskedPlaceholder(original: Uint8Array | string, config: MaskConfig): string {
  return `${MASK_MARKER}${algorithmOf(config)}:${fingerprintOf(original, config)}`;
}

/*
 * Hot path for Secret lists: each value used to cost three Buffers (decode, placeholder, re-encode) and
 * two native string conversions. Now the value is decoded into one reusable scratch buffer and the
 * placeholder is base64-encoded here: the constant head `airlock:masked:sha256` (a whole number of
 * 3-byte groups) is encoded once, only the short tail `:1a2b3c4d` per value. The bytes hashed are
 * exactly what `Buffer.from(value, "base64")` yields (same decoder, same length cap), so fingerprints
 * stay equal to those of the `stringData` form of the same value.
 */
const SCRATCH_BYTES = 64 * 1024;
/** Views of the scratch buffer by length, so short values hash without allocating a view each time. */
const CACHED_VIEW_BYTES = 1024;
let scratch: Buffer | undefined;
const scratchViews: (Buffer | undefined)[] = [];

/**
 * The length `Buffer.from(value, "base64")` allocates and so at most decodes (Node's base64ByteLength):
 * 3/4 of the length after dropping up to two trailing `=`.
 */
function base64DecodedLimit(base64: string): number {
  let chars = base64.length;
  if (chars > 0 && base64.charCodeAt(chars - 1) === 0x3d) chars--;
  if (chars > 1 && base64.charCodeAt(chars - 1) === 0x3d) chars--;
  return (chars * 3) >>> 2;
}

/**
 * The decoded bytes of a base64 value, valid only until the next call (a view of the scratch buffer
 * for values up to 64 KiB, a fresh Buffer beyond). Exported for the equivalence tests.
 */
export function decodeBase64Transient(base64: string): Uint8Array {
  const limit = base64DecodedLimit(base64);
  if (limit > SCRATCH_BYTES) return Buffer.from(base64, "base64");
  scratch ??= Buffer.allocUnsafeSlow(SCRATCH_BYTES);
  let length = limit <= CACHED_VIEW_BYTES ? decodeCanonicalBase64(base64, scratch) : -1;
  // Anything but canonical padded base64 goes through Node's lenient decoder, as before.
  if (length < 0) length = scratch.write(base64, 0, limit, "base64");
  if (length > CACHED_VIEW_BYTES) return scratch.subarray(0, length);
  let view = scratchViews[length];
  if (view === undefined) {
    view = scratch.subarray(0, length);
    scratchViews[length] = view;
  }
  return view;
}

const BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** 6-bit value of each standard-alphabet ASCII character, -1 for every other code unit below 128. */
const BASE64_VALUE: Int8Array = (() => {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < BASE64_ALPHABET.length; i++) table[BASE64_ALPHABET.charCodeAt(i)] = i;
  return table;
})();

function base64Value(code: number): number {
  return code < 128 ? (BASE64_VALUE[code] ?? -1) : -1;
}

/*
 * Short Secret values (the bulk of a SecretList) decode faster in JS than through Buffer#write, whose
 * per-call cost is mostly the crossing into C++. Only the canonical form is handled here: length a
 * multiple of 4, standard alphabet only, `=` only as one or two final characters. For that form every
 * decoder yields the same bytes (bits left over before the padding are dropped, as Node drops them) and
 * the count equals base64DecodedLimit, so fingerprints cannot change; everything else returns -1.
 */
function decodeCanonicalBase64(base64: string, target: Uint8Array): number {
  const chars = base64.length;
  if ((chars & 3) !== 0) return -1;
  let pad = 0;
  if (chars > 0 && base64.charCodeAt(chars - 1) === 0x3d) pad = base64.charCodeAt(chars - 2) === 0x3d ? 2 : 1;
  const whole = pad === 0 ? chars : chars - 4;
  let out = 0;
  for (let i = 0; i < whole; i += 4) {
    const a = base64Value(base64.charCodeAt(i));
    const b = base64Value(base64.charCodeAt(i + 1));
    const c = base64Value(base64.charCodeAt(i + 2));
    const d = base64Value(base64.charCodeAt(i + 3));
    if ((a | b | c | d) < 0) return -1;
    const bits = (a << 18) | (b << 12) | (c << 6) | d;
    target[out++] = bits >>> 16;
    target[out++] = (bits >>> 8) & 255;
    target[out++] = bits & 255;
  }
  if (pad === 0) return out;
  const a = base64Value(base64.charCodeAt(whole));
  const b = base64Value(base64.charCodeAt(whole + 1));
  const c = pad === 1 ? base64Value(base64.charCodeAt(whole + 2)) : 0;
  if ((a | b | c) < 0) return -1;
  const bits = (a << 18) | (b << 12) | (c << 6);
  target[out++] = bits >>> 16;
  if (pad === 1) target[out++] = (bits >>> 8) & 255;
  return out;
}

/** Standard padded base64 of a short string of code units < 256 (here: ASCII placeholder tails). */
export function base64OfLatin1(text: string): string {
  let out = "";
  let i = 0;
  for (; i + 2 < text.length; i += 3) {
    const n = (text.charCodeAt(i) << 16) | (text.charCodeAt(i + 1) << 8) | text.charCodeAt(i + 2);
    out += BASE64_ALPHABET.charAt(n >>> 18) + BASE64_ALPHABET.charAt((n >>> 12) & 63) + BASE64_ALPHABET.charAt((n >>> 6) & 63) + BASE64_ALPHABET.charAt(n & 63);
  }
  const rest = text.length - i;
  if (rest === 1) {
    const n = text.charCodeAt(i) << 16;
    out += `${BASE64_ALPHABET.charAt(n >>> 18)}${BASE64_ALPHABET.charAt((n >>> 12) & 63)}==`;
  } else if (rest === 2) {
    const n = (text.charCodeAt(i) << 16) | (text.charCodeAt(i + 1) << 8);
    out += `${BASE64_ALPHABET.charAt(n >>> 18)}${BASE64_ALPHABET.charAt((n >>> 12) & 63)}${BASE64_ALPHABET.charAt((n >>> 6) & 63)}=`;
  }
  return out;
}

interface Base64PlaceholderHead {
  /** base64 of the longest 3-byte-aligned prefix of `airlock:masked:<algorithm>:`. */
  readonly encodedHead: string;
  /** The rest of that prefix, encoded per value together with the fingerprint. */
  readonly plainTail: string;
}

function placeholderHead(algorithm: "sha256" | "hmac"): Base64PlaceholderHead {
  const prefix = `${MASK_MARKER}${algorithm}:`;
  const aligned = prefix.length - (prefix.length % 3);
  return { encodedHead: base64OfLatin1(prefix.slice(0, aligned)), plainTail: prefix.slice(aligned) };
}

const HMAC_HEAD = placeholderHead("hmac");
const SHA256_HEAD = placeholderHead("sha256");

const HEX_DIGITS = "0123456789abcdef";

/*
 * The unkeyed placeholder `airlock:masked:sha256:` + 8 hex digits is 30 bytes: the first 21 encode to a
 * constant, the last 9 (`:` + 2 hex, then 3 + 3 hex) to three 4-character groups, each looked up in a
 * table indexed by the fingerprint bits it holds: 256 entries for the first, 4096 for the other two.
 */
const SHA256_FIRST_GROUP: readonly string[] = (() => {
  if (SHA256_HEAD.plainTail.length !== 1) throw new Error("placeholder layout changed: rebuild the tables");
  return Array.from({ length: 256 }, (_, byte) =>
    SHA256_HEAD.encodedHead + base64OfLatin1(SHA256_HEAD.plainTail + HEX_DIGITS.charAt(byte >>> 4) + HEX_DIGITS.charAt(byte & 15)),
  );
})();
const THREE_HEX_GROUP: readonly string[] = Array.from({ length: 4096 }, (_, bits) =>
  base64OfLatin1(HEX_DIGITS.charAt(bits >>> 8) + HEX_DIGITS.charAt((bits >>> 4) & 15) + HEX_DIGITS.charAt(bits & 15)),
);

/** base64 of `airlock:masked:sha256:` + the first 4 digest bytes in hex, from the table pieces. */
function base64Sha256Placeholder(digest: string): string {
  // `digest` is the "binary" (latin1) form of the raw digest: one character per byte, no hex string.
  const b0 = digest.charCodeAt(0);
  const b1 = digest.charCodeAt(1);
  const b2 = digest.charCodeAt(2);
  const b3 = digest.charCodeAt(3);
  return (
    (SHA256_FIRST_GROUP[b0] as string) +
    ((THREE_HEX_GROUP[(b1 << 4) | (b2 >>> 4)] as string) + (THREE_HEX_GROUP[((b2 & 15) << 8) | b3] as string))
  );
}

/**
 * Masks a base64 value (Secret `data`, ConfigMap `binaryData`, CSR certificate): the result is still
 * valid base64, because clients decode it, and decodes to the placeholder. The fingerprint is taken
 * over the decoded bytes, so `data` and `stringData` forms of one value get the same fingerprint.
 */
export function maskBase64Value(base64: string, config: MaskConfig): string {
  const decoded = decodeBase64Transient(base64);
  if (config.fingerprintKey === undefined) return base64Sha256Placeholder(hash("sha256", decoded, "binary"));
  return HMAC_HEAD.encodedHead + base64OfLatin1(HMAC_HEAD.plainTail + fingerprintOf(decoded, config));
}

/** True when a string is already one of our placeholders (plain or base64-encoded). */
export function isMaskedPlaceholder(value: string): boolean {
  return value.startsWith(MASK_MARKER) || value.startsWith(BASE64_MARKER_PREFIX);
}

// base64("airlock:masked:") is "YWlybG9jazptYXNrZWQ6" (15 bytes → 20 chars, no padding at a 3-byte boundary).
const BASE64_MARKER_PREFIX = base64OfLatin1(MASK_MARKER);
