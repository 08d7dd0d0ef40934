/**
 * @module authz/kube/list-options
 * What kube-apiserver's RequestInfoFactory learns from the query of a name-less GET: watch or list, and the object
 * name implied by `fieldSelector=metadata.name=X`, including its fallback when `metav1.ListOptions` fails to decode.
 */

/** The outcome of RequestInfoFactory's ListOptions step for a name-less GET. */
export interface ListQueryDecision {
  readonly watch: boolean;
  /** Set from an exact `metadata.name` field-selector requirement; "" when there is none or decoding failed. */
  readonly name: string;
}

const LIST: ListQueryDecision = Object.freeze({ watch: false, name: "" });
const WATCH: ListQueryDecision = Object.freeze({ watch: true, name: "" });

/**
 * `runtime.Convert_Slice_string_To_bool` (the successful decode): only "0" and `strings.EqualFold(v, "false")` are
 * false. Go's EqualFold also folds U+017F (LATIN SMALL LETTER LONG S) to "s", so "falſe" is false here...
 */
function decodedBoolIsFalse(v: string): boolean {
  if (v === "0") return true;
  if (v.length !== 5) return false;
  const f = v.charCodeAt(0) | 0x20;
  const a = v.charCodeAt(1) | 0x20;
  const l = v.charCodeAt(2) | 0x20;
  const s = v.charCodeAt(3);
  const e = v.charCodeAt(4) | 0x20;
  return f === 0x66 && a === 0x61 && l === 0x6c && (s === 0x73 || s === 0x53 || s === 0x17f) && e === 0x65;
}

/** ...while the decode-failure fallback uses `strings.ToLower(v)` ∈ {"false", "0"}, where "falſe" stays true. */
function fallbackBoolIsFalse(v: string): boolean {
  if (v === "0") return true;
  if (v.length !== 5) return false;
  return v.toLowerCase() === "false";
}

/** `strconv.ParseInt(s, 10, 64)` succeeds: optional sign, ASCII digits (no underscores in base 10), in range. */
function isGoInt64(s: string): boolean {
  let i = 0;
  let negative = false;
  if (s.charCodeAt(0) === 0x2b || s.charCodeAt(0) === 0x2d) {
    negative = s.charCodeAt(0) === 0x2d;
    i = 1;
  }
  if (i >= s.length) return false;
  for (let j = i; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c < 0x30 || c > 0x39) return false;
  }
  while (i < s.length - 1 && s.charCodeAt(i) === 0x30) i++;
  const digits = s.slice(i);
  if (digits.length !== 19) return digits.length < 19;
  return digits <= (negative ? "9223372036854775808" : "9223372036854775807");
}

function isAlphanumeric(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$` with at most 63 characters (label name part or label value). */
function isLabelName(s: string): boolean {
  if (s.length === 0 || s.length > 63) return false;
  if (!isAlphanumeric(s.charCodeAt(0)) || !isAlphanumeric(s.charCodeAt(s.length - 1))) return false;
  for (let i = 1; i < s.length - 1; i++) {
    const c = s.charCodeAt(i);
    if (!isAlphanumeric(c) && c !== 0x2d && c !== 0x5f && c !== 0x2e) return false;
  }
  return true;
}

/** Lower-case RFC 1123 subdomain, at most 253 characters: labels `[a-z0-9]([-a-z0-9]*[a-z0-9])?` joined by dots. */
function isDns1123Subdomain(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  let labelStart = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (i === labelStart) return false;
      const first = s.charCodeAt(labelStart);
      const last = s.charCodeAt(i - 1);
      if (first === 0x2d || last === 0x2d) return false;
      labelStart = i + 1;
    } else if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) || c === 0x2d)) {
      return false;
    }
  }
  return true;
}

/** `content.IsLabelKey`: `[prefix/]name`, prefix a DNS subdomain, name a label name. */
function isLabelKey(k: string): boolean {
  const slash = k.indexOf("/");
  if (slash < 0) return isLabelName(k);
  if (k.indexOf("/", slash + 1) >= 0) return false;
  return isDns1123Subdomain(k.slice(0, slash)) && isLabelName(k.slice(slash + 1));
}

function isLabelValue(v: string): boolean {
  return v === "" || isLabelName(v);
}

// Label-selector tokens, mirroring labels.Lexer. Keywords "in"/"notin" are identifiers in value position.
const T_ERROR = 0;
const T_END = 1;
const T_CLOSE = 2;
const T_COMMA = 3;
const T_NOT = 4;
const T_DOUBLE_EQ = 5;
const T_EQ = 6;
const T_GT = 7;
const T_IDENT = 8;
const T_IN = 9;
const T_LT = 10;
const T_NOT_EQ = 11;
const T_NOTIN = 12;
const T_OPEN = 13;

function isSpecial(c: number): boolean {
  return c === 0x3d || c === 0x21 || c === 0x28 || c === 0x29 || c === 0x2c || c === 0x3e || c === 0x3c;
}

function isBlank(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
}

function specialToken(s: string): number {
  switch (s) {
    case ")": return T_CLOSE;
    case ",": return T_COMMA;
    case "!": return T_NOT;
    case "==": return T_DOUBLE_EQ;
    case "=": return T_EQ;
    case ">": return T_GT;
    case "<": return T_LT;
    case "!=": return T_NOT_EQ;
    case "(": return T_OPEN;
    default: return T_ERROR;
  }
}

/**
 * labels.Lexer over the whole selector. Linear: every character is read at most twice. Go's lexer reads bytes and
 * treats NUL as end of input; NUL never reaches here (the query decoder refuses control characters).
 */
function lexLabelSelector(s: string): { toks: number[]; lits: string[] } {
  const toks: number[] = [];
  const lits: string[] = [];
  let pos = 0;
  for (;;) {
    while (pos < s.length && isBlank(s.charCodeAt(pos))) pos++;
    if (pos >= s.length) {
      toks.push(T_END);
      lits.push("");
      return { toks, lits };
    }
    if (isSpecial(s.charCodeAt(pos))) {
      // scanSpecialSymbol: extend while the buffer keeps being (or once was) a known operator.
      let last = T_ERROR;
      let lastLit = "";
      let end = pos;
      while (end < s.length && isSpecial(s.charCodeAt(end))) {
        const candidate = s.slice(pos, end + 1);
        const tok = specialToken(candidate);
        if (tok !== T_ERROR) {
          last = tok;
          lastLit = candidate;
        } else if (last !== T_ERROR) {
          break;
        }
        end++;
      }
      if (last === T_ERROR) {
        toks.push(T_ERROR);
        lits.push(s.slice(pos, end));
        return { toks, lits };
      }
      pos += lastLit.length;
      toks.push(last);
      lits.push(lastLit);
    } else {
      let end = pos;
      while (end < s.length && !isSpecial(s.charCodeAt(end)) && !isBlank(s.charCodeAt(end))) end++;
      const lit = s.slice(pos, end);
      pos = end;
      toks.push(lit === "in" ? T_IN : lit === "notin" ? T_NOTIN : T_IDENT);
      lits.push(lit);
    }
  }
}

/**
 * Whether `labels.Parse(selector)` succeeds (its grammar and NewRequirement's validation). Only whether it errors
 * matters here: a label-selector error discards the metadata.name field-selector name.
 */
function isValidLabelSelector(selector: string): boolean {
  const { toks, lits } = lexLabelSelector(selector);
  let p = 0;
  // In value context "in"/"notin" are plain identifiers (Parser.lookahead/consume with Values).
  const valueTok = (i: number): number => {
    const t = toks[i] ?? T_END;
    return t === T_IN || t === T_NOTIN ? T_IDENT : t;
  };
  for (;;) {
    const t = valueTok(p);
    if (t === T_END) return true;
    if (t !== T_IDENT && t !== T_NOT) return false;
    // parseKeyAndInferOperator
    let doesNotExist = false;
    let keyTok = valueTok(p++);
    if (keyTok === T_NOT) {
      doesNotExist = true;
      keyTok = valueTok(p++);
    }
    if (keyTok !== T_IDENT) return false;
    if (!isLabelKey(lits[p - 1] ?? "")) return false;
    const next = valueTok(p);
    if (!doesNotExist && next !== T_END && next !== T_COMMA) {
      // parseOperator (key/operator context: "in"/"notin" are keywords)
      const op = toks[p++] ?? T_END;
      if (op === T_IN || op === T_NOTIN) {
        if (valueTok(p++) !== T_OPEN) return false;
        const first = valueTok(p);
        if (first === T_CLOSE) {
          p++; // "()" is the set {""}, which is valid
        } else if (first === T_IDENT || first === T_COMMA) {
          // parseIdentifiersList: identifiers and (possibly empty) comma-separated entries up to ")".
          for (;;) {
            const vt = valueTok(p++);
            if (vt === T_IDENT) {
              if (!isLabelValue(lits[p - 1] ?? "")) return false;
              const after = valueTok(p);
              if (after === T_CLOSE) break;
              if (after !== T_COMMA) return false;
            } else if (vt === T_COMMA) {
              if (valueTok(p) === T_CLOSE) break;
            } else {
              return false;
            }
          }
          if (valueTok(p++) !== T_CLOSE) return false;
        } else {
          return false;
        }
      } else if (op === T_EQ || op === T_DOUBLE_EQ || op === T_NOT_EQ || op === T_GT || op === T_LT) {
        // parseExactValue: empty value when followed by end or ",".
        let value = "";
        const vt = valueTok(p);
        if (vt !== T_END && vt !== T_COMMA) {
          p++;
          if (vt !== T_IDENT) return false;
          value = lits[p - 1] ?? "";
        }
        if ((op === T_GT || op === T_LT) && !isGoInt64(value)) return false;
        if (!isLabelValue(value)) return false;
      } else {
        return false;
      }
    }
    // After a requirement: end, or "," followed by an identifier or "!".
    const sep = valueTok(p++);
    if (sep === T_END) return true;
    if (sep !== T_COMMA) return false;
    const afterComma = valueTok(p);
    if (afterComma !== T_IDENT && afterComma !== T_NOT) return false;
  }
}

/** Compares by Unicode code point, which is Go's byte-wise order on the UTF-8 encoding. */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      // Surrogates (U+D800-DFFF code units) encode code points above U+FFFF: they sort after U+E000-FFFF.
      const xs = x >= 0xd800 && x <= 0xdfff;
      const ys = y >= 0xd800 && y <= 0xdfff;
      if (xs !== ys) return xs ? 1 : -1;
      return x - y;
    }
  }
  return a.length - b.length;
}

/** `fields.UnescapeValue`: `\\`, `\,`, `\=` are escapes; any other escape, or a bare `,`/`=`, is an error. */
function unescapeFieldValue(s: string): string | undefined {
  if (!s.includes("\\") && !s.includes(",") && !s.includes("=")) return s;
  let out = "";
  let inSlash = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i] ?? "";
    if (inSlash) {
      if (ch !== "\\" && ch !== "," && ch !== "=") return undefined;
      out += ch;
      inSlash = false;
    } else if (ch === "\\") {
      inSlash = true;
    } else if (ch === "," || ch === "=") {
      return undefined;
    } else {
      out += ch;
    }
  }
  return inSlash ? undefined : out;
}

/**
 * `fields.ParseSelector(s)` then `RequiresExactMatch("metadata.name")`: terms split on unescaped commas, sorted
 * byte-wise, each split at the first `!=`, `==` or `=`; the first sorted `=`/`==` term on metadata.name wins.
 * Returns undefined when the selector does not parse, else the name ("" when there is no such term).
 */
function fieldSelectorName(selector: string): string | undefined {
  let best: string | undefined;
  let bestName = "";
  let start = 0;
  let inSlash = false;
  for (let i = 0; i <= selector.length; i++) {
    // splitTerms: a backslash protects the next character from being a separator; the last term always ends at
    // the end of input, even after a dangling backslash (which UnescapeValue then rejects).
    if (i < selector.length) {
      const c = selector.charCodeAt(i);
      if (inSlash) {
        inSlash = false;
        continue;
      }
      if (c === 0x5c) {
        inSlash = true;
        continue;
      }
      if (c !== 0x2c) continue;
    }
    const term = selector.slice(start, i);
    start = i + 1;
    if (term === "") continue;
    let opAt = -1;
    let opLen = 0;
    let notEqual = false;
    for (let j = 0; j < term.length; j++) {
      const t = term.charCodeAt(j);
      if (t === 0x21 && term.charCodeAt(j + 1) === 0x3d) {
        opAt = j;
        opLen = 2;
        notEqual = true;
        break;
      }
      if (t === 0x3d) {
        opAt = j;
        opLen = term.charCodeAt(j + 1) === 0x3d ? 2 : 1;
        break;
      }
    }
    if (opAt < 0) return undefined;
    const value = unescapeFieldValue(term.slice(opAt + opLen));
    if (value === undefined) return undefined;
    if (!notEqual && term.slice(0, opAt) === "metadata.name" && (best === undefined || compareCodePoints(term, best) < 0)) {
      best = term;
      bestName = value;
    }
  }
  return bestName;
}

/** `content.IsPathSegmentName`: not "." or "..", and no "/" or "%". */
function isPathSegmentName(name: string): boolean {
  return name !== "." && name !== ".." && !name.includes("/") && !name.includes("%");
}

/**
 * Mirrors requestinfo.go for a GET without a name: decode `metainternalversion.ListOptions` from the query (first
 * value of each known parameter; label/field selector parse errors and non-int64 `limit`/`timeoutSeconds` fail the
 * decode); on success take `watch` and an exact metadata.name requirement (if it is a valid path segment name); on
 * failure fall back to `watch` alone with no name.
 */
export function decideListQuery(query: Readonly<Record<string, readonly string[]>>, parameterCount: number): ListQueryDecision {
  if (parameterCount === 0) return LIST; // ParameterCodec.DecodeParameters returns early on empty parameters.
  const watchValue = query.watch?.[0];
  const decodedWatch = watchValue !== undefined && !decodedBoolIsFalse(watchValue);
  const fallbackWatch = watchValue !== undefined && !fallbackBoolIsFalse(watchValue);

  const fieldSelector = query.fieldSelector?.[0];
  const name = fieldSelector === undefined ? "" : fieldSelectorName(fieldSelector);
  // Only the name and the "falſe" corner differ between success and fallback; skip the label parse otherwise.
  if (name === "" && decodedWatch === fallbackWatch) return decodedWatch ? WATCH : LIST;

  let decoded = name !== undefined;
  const limit = query.limit?.[0];
  const timeoutSeconds = query.timeoutSeconds?.[0];
  if (decoded && limit !== undefined && !isGoInt64(limit)) decoded = false;
  if (decoded && timeoutSeconds !== undefined && !isGoInt64(timeoutSeconds)) decoded = false;
  const labelSelector = query.labelSelector?.[0];
  if (decoded && labelSelector !== undefined && !isValidLabelSelector(labelSelector)) decoded = false;

  if (!decoded || name === undefined) return fallbackWatch ? WATCH : LIST;
  const exactName = isPathSegmentName(name) ? name : "";
  if (exactName === "") return decodedWatch ? WATCH : LIST;
  return Object.freeze({ watch: decodedWatch, name: exactName });
}

/** Exposed for tests: whether kube's `labels.Parse` would accept the selector. */
export { isValidLabelSelector as labelSelectorParses };
