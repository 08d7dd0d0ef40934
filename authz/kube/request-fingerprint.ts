/**
 * @module authz/kube/request-fingerprint
 * The request fingerprint approvals are bound to: a stable sha256 over subject, verb, normalised path and query,
 * media type and a canonical body digest, so a retry matches and any semantic change does not.
 */
import { createHash } from "node:crypto";
import { isAlias, isMap, isScalar, isSeq, parseAllDocuments } from "yaml";
import type { Node as YamlNode } from "yaml";
import { parseRequestUrl } from "./request-url.js";

export interface RequestFingerprintInput {
  readonly subject: string;
  readonly verb: string;
  /** The raw `:path` with query, as Envoy sent it. */
  readonly rawPath: string;
  /** The `Content-Type` header value ("" when absent). */
  readonly contentType: string;
  /** The complete request body, or undefined when there is none (an empty body counts as none). */
  readonly body: Uint8Array | undefined;
}

/** Bumped whenever the layout below changes, so fingerprints from different layouts never compare equal. */
const FINGERPRINT_VERSION = "airlock.request-fingerprint/v1";

/** Depth beyond which a JSON/YAML body is digested as raw bytes (deep nesting only serves to exhaust the stack). */
const MAX_NESTING_DEPTH = 512;
/**
 * Length of canonical text a YAML body may expand to through aliases before it is digested as raw bytes ("billion
 * laughs"). Bodies are at most 3 MiB (apiserver MaxRequestBodyBytes); the canonical form adds a few bytes per node.
 */
const MAX_CANONICAL_YAML_CHARS = 32 * 1024 * 1024;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

// ---------------------------------------------------------------------------------------------------------------
// canonicalJson (JS values)
// ---------------------------------------------------------------------------------------------------------------

function canonicalValue(value: unknown, seen: Set<object>, out: string[], depth: number): void {
  if (value === null) {
    out.push("null");
    return;
  }
  switch (typeof value) {
    case "string":
      out.push(JSON.stringify(value));
      return;
    case "boolean":
      out.push(value ? "true" : "false");
      return;
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("canonicalJson: non-finite number");
      out.push(JSON.stringify(value));
      return;
    case "bigint":
      out.push(value.toString());
      return;
    case "object":
      break;
    case "undefined":
    case "function":
    case "symbol":
      throw new TypeError(`canonicalJson: unsupported ${typeof value}`);
  }
  if (seen.has(value)) throw new TypeError("canonicalJson: cyclic value");
  // A fixed cap (not the stack size) decides what is too deep, so the outcome never depends on the caller's stack.
  if (depth >= MAX_NESTING_DEPTH) throw new TypeError(`canonicalJson: nested deeper than ${MAX_NESTING_DEPTH}`);
  seen.add(value);
  if (Array.isArray(value)) {
    out.push("[");
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out.push(",");
      const item: unknown = value[i];
      if (item === undefined) throw new TypeError("canonicalJson: undefined array element");
      canonicalValue(item, seen, out, depth + 1);
    }
    out.push("]");
  } else {
    const toJson = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJson === "function") {
      seen.delete(value);
      canonicalValue((toJson as () => unknown).call(value), seen, out, depth + 1);
      return;
    }
    const record = value as Record<string, unknown>;
    // Keys sorted by UTF-16 code units, as RFC 8785 (JCS) does.
    const keys = Object.keys(record).sort();
    out.push("{");
    let first = true;
    for (const key of keys) {
      const item = record[key];
      if (item === undefined) continue; // like JSON.stringify: an undefined property is an absent one
      if (!first) out.push(",");
      first = false;
      out.push(JSON.stringify(key), ":");
      canonicalValue(item, seen, out, depth + 1);
    }
    out.push("}");
  }
  seen.delete(value);
}

/**
 * Canonical JSON text of a JSON-like value: object keys sorted (UTF-16 code unit order, as RFC 8785), no
 * whitespace, strings as `JSON.stringify` writes them, bigints as integers. Throws TypeError on values JSON cannot
 * represent (undefined array elements, functions, symbols, non-finite numbers, cycles) and on nesting deeper than
 * 512 levels.
 */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  canonicalValue(value, new Set(), out, 0);
  return out.join("");
}

// ---------------------------------------------------------------------------------------------------------------
// JSON body text → canonical text (number literals kept verbatim)
// ---------------------------------------------------------------------------------------------------------------

const JSON_LITERALS = ["true", "false", "null"] as const;

/**
 * A strict RFC 8259 parser that writes a canonical form as it goes, keeping every number's literal text (unlike
 * `JSON.parse`: 9007199254740993 and 9007199254740992 are different int64 values to the apiserver and must not share
 * a fingerprint; "1.0" vs "1" stay distinct, which only ever costs a re-approval). Duplicate keys are kept in order
 * (stable sort). Two output forms:
 * - `json`: canonical JSON text (sorted keys, no whitespace);
 * - `yaml`: exactly the typed form {@link CanonicalYaml} writes for the same text read as YAML (JSON is YAML), so
 *   the common JSON-in-`apply-patch+yaml` body skips the much slower YAML parser.
 */
class CanonicalJsonText {
  readonly #s: string;
  readonly #yaml: boolean;
  #pos = 0;

  constructor(text: string, form: "json" | "yaml") {
    this.#s = text;
    this.#yaml = form === "yaml";
  }

  /** The canonical text, or undefined if the input is not exactly one JSON value (or nests too deeply). */
  run(): string | undefined {
    this.#ws();
    const value = this.#value(0);
    this.#ws();
    return value !== undefined && this.#pos === this.#s.length ? value : undefined;
  }

  #ws(): void {
    const s = this.#s;
    while (this.#pos < s.length) {
      const c = s.charCodeAt(this.#pos);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      this.#pos++;
    }
  }

  #value(depth: number): string | undefined {
    if (depth > MAX_NESTING_DEPTH) return undefined;
    const s = this.#s;
    const c = s.charCodeAt(this.#pos);
    if (c === 0x7b) return this.#object(depth);
    if (c === 0x5b) return this.#array(depth);
    if (c === 0x22) {
      const str = this.#string();
      if (str === undefined) return undefined;
      return this.#yaml ? '["s",' + JSON.stringify(str) + "]" : JSON.stringify(str);
    }
    let literal: string | undefined;
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      literal = this.#number();
    } else {
      literal = JSON_LITERALS.find((l) => s.startsWith(l, this.#pos));
      if (literal !== undefined) this.#pos += literal.length;
    }
    if (literal === undefined) return undefined;
    // As YAML, numbers, true, false and null are plain scalars that are not certainly strings.
    return this.#yaml ? '["p","' + literal + '"]' : literal;
  }

  #object(depth: number): string | undefined {
    const s = this.#s;
    this.#pos++; // {
    const entries: { key: string; text: string }[] = [];
    this.#ws();
    if (s.charCodeAt(this.#pos) === 0x7d) {
      this.#pos++;
      return this.#yaml ? '["m",[]]' : "{}";
    }
    for (;;) {
      this.#ws();
      if (s.charCodeAt(this.#pos) !== 0x22) return undefined;
      const key = this.#string();
      if (key === undefined) return undefined;
      this.#ws();
      if (s.charCodeAt(this.#pos) !== 0x3a) return undefined;
      this.#pos++;
      this.#ws();
      const value = this.#value(depth + 1);
      if (value === undefined) return undefined;
      if (this.#yaml) {
        // Sorted by the key's canonical text, as CanonicalYaml sorts.
        const keyText = '["s",' + JSON.stringify(key) + "]";
        entries.push({ key: keyText, text: "[" + keyText + "," + value + "]" });
      } else {
        entries.push({ key, text: JSON.stringify(key) + ":" + value });
      }
      this.#ws();
      const next = s.charCodeAt(this.#pos++);
      if (next === 0x7d) break;
      if (next !== 0x2c) return undefined;
    }
    // Array.prototype.sort is stable: duplicate keys keep their order.
    entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    let out = this.#yaml ? '["m",[' : "{";
    for (let i = 0; i < entries.length; i++) out += (i > 0 ? "," : "") + (entries[i]?.text ?? "");
    return out + (this.#yaml ? "]]" : "}");
  }

  #array(depth: number): string | undefined {
    const s = this.#s;
    this.#pos++; // [
    this.#ws();
    if (s.charCodeAt(this.#pos) === 0x5d) {
      this.#pos++;
      return this.#yaml ? '["l",[]]' : "[]";
    }
    let out = this.#yaml ? '["l",[' : "[";
    for (let first = true; ; first = false) {
      this.#ws();
      const value = this.#value(depth + 1);
      if (value === undefined) return undefined;
      out += (first ? "" : ",") + value;
      this.#ws();
      const next = s.charCodeAt(this.#pos++);
      if (next === 0x5d) return out + (this.#yaml ? "]]" : "]");
      if (next !== 0x2c) return undefined;
    }
  }

  /** A JSON string starting at the opening quote, decoded; undefined when malformed. */
  #string(): string | undefined {
    const s = this.#s;
    const start = ++this.#pos;
    let simple = true;
    for (;;) {
      if (this.#pos >= s.length) return undefined;
      const c = s.charCodeAt(this.#pos);
      if (c === 0x22) break;
      if (c < 0x20) return undefined;
      if (c === 0x5c) {
        simple = false;
        const e = s.charCodeAt(this.#pos + 1);
        if (e === 0x75 /* u */) {
          for (let k = 2; k < 6; k++) {
            const h = s.charCodeAt(this.#pos + k);
            if (!((h >= 0x30 && h <= 0x39) || (h >= 0x41 && h <= 0x46) || (h >= 0x61 && h <= 0x66))) return undefined;
          }
          this.#pos += 6;
          continue;
        }
        if (e !== 0x22 && e !== 0x5c && e !== 0x2f && e !== 0x62 && e !== 0x66 && e !== 0x6e && e !== 0x72 && e !== 0x74) {
          return undefined;
        }
        this.#pos += 2;
        continue;
      }
      this.#pos++;
    }
    const raw = s.slice(start, this.#pos);
    this.#pos++; // closing quote
    // The escapes were validated above, so JSON.parse of the quoted slice cannot throw and decodes them exactly.
    return simple ? raw : (JSON.parse(`"${raw}"`) as string);
  }

  /** RFC 8259 number grammar; the literal is returned verbatim. */
  #number(): string | undefined {
    const s = this.#s;
    const start = this.#pos;
    const digitsFrom = (): number => {
      const from = this.#pos;
      while (this.#pos < s.length) {
        const c = s.charCodeAt(this.#pos);
        if (c < 0x30 || c > 0x39) break;
        this.#pos++;
      }
      return this.#pos - from;
    };
    if (s.charCodeAt(this.#pos) === 0x2d) this.#pos++;
    if (s.charCodeAt(this.#pos) === 0x30) {
      this.#pos++;
    } else if (digitsFrom() === 0) {
      return undefined;
    }
    if (s.charCodeAt(this.#pos) === 0x2e) {
      this.#pos++;
      if (digitsFrom() === 0) return undefined;
    }
    const e = s.charCodeAt(this.#pos);
    if (e === 0x65 || e === 0x45) {
      this.#pos++;
      const sign = s.charCodeAt(this.#pos);
      if (sign === 0x2b || sign === 0x2d) this.#pos++;
      if (digitsFrom() === 0) return undefined;
    }
    return s.slice(start, this.#pos);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// YAML body → canonical text
// ---------------------------------------------------------------------------------------------------------------

/**
 * Plain scalars that kube's YAML decoder (go-yaml v2 via sigs.k8s.io/yaml, YAML 1.1 resolution) could turn into
 * something other than a string start with a digit, sign, dot, `~`, `<`, or are one of these words in any case.
 */
const NON_STRING_WORDS = new Set(["y", "yes", "n", "no", "true", "false", "on", "off", "null"]);

function plainIsCertainlyString(text: string): boolean {
  const c = text.charCodeAt(0);
  const letter = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
  return letter && !NON_STRING_WORDS.has(text.toLowerCase());
}

/**
 * Writes a YAML node as a typed canonical JSON text. Scalars are *not* resolved with this library's schema: the
 * apiserver resolves plain scalars with YAML 1.1 rules (`yes`, `on`, `1:30`, timestamps...) that differ from any
 * schema here, and a fingerprint must never merge two documents the apiserver would read differently. So:
 * - quoted and block scalars, and plain scalars that can only be strings → `["s", value]`;
 * - other plain scalars keep their source text → `["p", text]`;
 * - explicit tags are kept (`[..., tag]`), aliases are expanded, mappings are `["m", [[k, v], ...]]` sorted by the
 *   key's canonical text (stable), sequences `["l", [...]]`, empty nodes `["n"]`.
 * JSON written as YAML and the equivalent block YAML produce the same text.
 */
class CanonicalYaml {
  /** Canonical text of the latest node defining each anchor, in document order (what an alias refers to). */
  readonly #anchors = new Map<string, string>();

  node(node: unknown, depth: number): string | undefined {
    if (depth > MAX_NESTING_DEPTH) return undefined;
    if (node === null || node === undefined) return '["n"]';
    if (isAlias(node)) {
      // Expanding through the memoised text of the anchored node keeps alias bombs linear in the output size, which
      // the length cap below bounds. An alias to an anchor still being written (a cycle) is not found: refused.
      return this.#anchors.get(node.source);
    }
    const text = this.#node(node, depth);
    if (text === undefined || text.length > MAX_CANONICAL_YAML_CHARS) return undefined;
    const anchor = (node as { anchor?: unknown }).anchor;
    if (typeof anchor === "string") this.#anchors.set(anchor, text);
    return text;
  }

  #node(node: unknown, depth: number): string | undefined {
    const tag = (node as YamlNode).tag;
    const tail = tag === undefined ? "]" : "," + JSON.stringify(tag) + "]";
    if (isScalar(node)) {
      const value = node.value;
      if (value === null) return '["n"' + tail;
      if (typeof value !== "string") return undefined; // failsafe schema: every scalar is a string
      if (node.type === "PLAIN" && (tag !== undefined || !plainIsCertainlyString(value))) {
        return '["p",' + JSON.stringify(value) + tail;
      }
      return '["s",' + JSON.stringify(value) + tail;
    }
    if (isSeq(node)) {
      let out = '["l",[';
      for (let i = 0; i < node.items.length; i++) {
        const item = this.node(node.items[i], depth + 1);
        if (item === undefined) return undefined;
        out += (i > 0 ? "," : "") + item;
        if (out.length > MAX_CANONICAL_YAML_CHARS) return undefined;
      }
      return out + "]" + tail;
    }
    if (isMap(node)) {
      const entries: { key: string; value: string }[] = [];
      let length = 0;
      for (const pair of node.items) {
        const key = this.node(pair.key, depth + 1);
        if (key === undefined) return undefined;
        const value = this.node(pair.value, depth + 1);
        if (value === undefined) return undefined;
        length += key.length + value.length;
        if (length > MAX_CANONICAL_YAML_CHARS) return undefined;
        entries.push({ key, value });
      }
      entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      let out = '["m",[';
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i];
        if (entry !== undefined) out += (i > 0 ? ",[" : "[") + entry.key + "," + entry.value + "]";
      }
      return out + "]" + tail;
    }
    return undefined;
  }
}

function canonicalYamlText(text: string): string | undefined {
  // kubectl's server-side apply sends JSON as application/apply-patch+yaml: read it as such, ~10x faster.
  const asJson = new CanonicalJsonText(text, "yaml").run();
  if (asJson !== undefined) return '["y",[' + asJson + "]]";
  // Failsafe schema: no type resolution (see CanonicalYaml); YAML 1.1 syntax like the apiserver's decoder;
  // duplicate keys are kept rather than refused, merge keys stay literal `<<` keys.
  const docs = parseAllDocuments(text, {
    version: "1.1",
    schema: "failsafe",
    uniqueKeys: false,
    merge: false,
    prettyErrors: false,
    keepSourceTokens: false,
  });
  if (!Array.isArray(docs)) return undefined; // type guard only: an empty stream is an empty array
  let out = '["y",[';
  for (let i = 0; i < docs.length; i++) {
    const doc = docs[i];
    if (doc === undefined || doc.errors.length > 0) return undefined;
    const node = new CanonicalYaml().node(doc.contents, 0);
    if (node === undefined) return undefined;
    out += (i > 0 ? "," : "") + node;
  }
  return out + "]]";
}

// ---------------------------------------------------------------------------------------------------------------
// Path and query
// ---------------------------------------------------------------------------------------------------------------

/** Characters left as-is in a canonical path: RFC 3986 unreserved, sub-delims, ':', '@' and '/'. */
function isPathSafe(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e || // - . _ ~
    c === 0x21 || c === 0x24 || c === 0x26 || c === 0x27 || c === 0x28 || c === 0x29 || // ! $ & ' ( )
    c === 0x2a || c === 0x2b || c === 0x2c || c === 0x3b || c === 0x3d || // * + , ; =
    c === 0x3a || c === 0x40 || c === 0x2f // : @ /
  );
}

function isUnreserved(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
}

/** Percent-encodes (upper-case hex, UTF-8) every character `keep` rejects: one spelling per decoded string. */
function canonicalEncode(s: string, keep: (c: number) => boolean): string {
  let plain = true;
  for (let i = 0; i < s.length; i++) {
    if (!keep(s.charCodeAt(i))) {
      plain = false;
      break;
    }
  }
  if (plain) return s;
  let out = "";
  for (const byte of Buffer.from(s, "utf8")) {
    out += keep(byte) && byte < 0x80 ? String.fromCharCode(byte) : "%" + (byte < 16 ? "0" : "") + byte.toString(16).toUpperCase();
  }
  return out;
}

/**
 * The decoded path and query in one canonical spelling: the path percent-decoded (as the apiserver reads it) and
 * re-encoded canonically, then `?` and the parameters sorted by key. Values of one key keep their order: kube reads
 * only the first `fieldSelector`, `watch`..., so reordering them changes the request. Nothing is dropped. An
 * undecodable target (which the parser refuses anyway) is returned as `raw:` + itself, which no decoded form equals.
 */
export function normalisedPathAndQuery(rawPath: string): string {
  const parsed = parseRequestUrl(rawPath);
  if (!parsed.ok) return "raw:" + rawPath;
  const { path, query } = parsed.url;
  let out = canonicalEncode(path, isPathSafe);
  const keys = Object.keys(query).sort();
  let first = true;
  for (const key of keys) {
    const encodedKey = canonicalEncode(key, isUnreserved);
    for (const value of query[key] ?? []) {
      out += (first ? "?" : "&") + encodedKey + "=" + canonicalEncode(value, isUnreserved);
      first = false;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Fingerprint
// ---------------------------------------------------------------------------------------------------------------

function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

function mediaTypeOf(contentType: string): string {
  const semicolon = contentType.indexOf(";");
  return (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
}

function isJsonMediaType(mediaType: string): boolean {
  return mediaType === "application/json" || (mediaType.startsWith("application/") && mediaType.endsWith("+json"));
}

function isYamlMediaType(mediaType: string): boolean {
  return mediaType === "application/yaml" || (mediaType.startsWith("application/") && mediaType.endsWith("+yaml"));
}

/** `[kind, digest]` of the body: canonical JSON/YAML text when it decodes, the raw bytes otherwise. */
function bodyDigest(mediaType: string, body: Uint8Array): [string, string] {
  const json = isJsonMediaType(mediaType);
  if (json || isYamlMediaType(mediaType)) {
    let text: string | undefined;
    try {
      // ignoreBOM keeps a BOM in the text, so it fails the JSON grammar (Go's decoder refuses it too).
      text = utf8.decode(body);
    } catch {
      text = undefined;
    }
    if (text !== undefined) {
      try {
        // (JSON.parse + canonicalJson would lose number literals, and measured slower than this parser.)
        if (json) {
          const canonical = new CanonicalJsonText(text, "json").run();
          if (canonical !== undefined) return ["json", sha256Hex(canonical)];
        } else {
          const canonical = canonicalYamlText(text);
          if (canonical !== undefined) return ["yaml", sha256Hex(canonical)];
        }
      } catch {
        // e.g. a TypeError for nesting past the cap, or a RangeError from the YAML parser: digest the bytes
      }
    }
  }
  return ["raw", sha256Hex(body)];
}

/**
 * Stable hex sha256 binding an approval to one request: subject, verb, normalised path and query, media type
 * (JSON patch and merge patch of the same text mean different things) and a canonical body digest. The same
 * request twice gives the same fingerprint, as do JSON bodies differing only in whitespace or key order; any
 * change in subject, verb, path, query, media type or body value gives another.
 */
export function requestFingerprint(input: RequestFingerprintInput): string {
  const body = input.body !== undefined && input.body.length > 0 ? input.body : undefined;
  const mediaType = body === undefined ? "" : mediaTypeOf(input.contentType);
  const [bodyKind, digest] = body === undefined ? ["none", ""] : bodyDigest(mediaType, body);
  // A JSON array of strings is an unambiguous framing of the fields.
  return sha256Hex(
    JSON.stringify([FINGERPRINT_VERSION, input.subject, input.verb, normalisedPathAndQuery(input.rawPath), mediaType, bodyKind, digest]),
  );
}
