/**
 * @module tap/mask/text-detectors
 * Value detectors for free text (pods/log, Event and Status messages, ConfigMap values, env literals):
 * PEM private keys, JWTs, cloud keys, GitHub/Slack tokens, bearer tokens, URL passwords, password assignments.
 */
import type { MaskConfig, TextDetectorName } from "./mask-config.js";
import { MASK_MARKER, maskedPlaceholder } from "./masked-value.js";

/*
 * Linear time: every pattern starts with a literal or a one-character lookbehind boundary (so within a run
 * of token characters only the first position can start a match), and every variable-length part is a
 * single character class whose successor cannot be a member of that class. Irregexp therefore gives back
 * at most one run per start position, and starts are at most one per run: O(n) per pattern.
 * PEM blocks are found with indexOf, not with a lazy `[\s\S]*?`, which is quadratic on many BEGINs.
 */
export interface RegexDetector {
  readonly name: Exclude<TextDetectorName, "pemPrivateKey">;
  readonly pattern: RegExp;
  /** Capture group holding the secret part; 0 = the whole match. */
  readonly secretGroup: number;
  /**
   * Cheap necessary condition: false only when `pattern` cannot match anywhere in the text. Each one
   * checks literals that every match must contain (a prefix of the pattern, or a literal all its
   * alternatives share), with the pattern's own case rule or looser. Most strings (env values, log
   * lines without credentials) then cost a few `includes` instead of a regex scan per detector.
   */
  readonly mayMatch: (text: string) => boolean;
}

// Literals every match of the corresponding pattern below contains; keep them in step with the patterns
// (the property tests in test/unit/tap/text-detectors.test.ts check each prefilter against its pattern).
const AWS_KEY_ID_ANYWHERE = /AKIA|ASIA|ABIA|ACCA/;
const AWS_SECRET_KEY_NAME_ANYWHERE = /aws_?secret/i;
const GITHUB_PREFIX_ANYWHERE = /gh[pousr]_|github_pat_/;
const SLACK_PREFIX_ANYWHERE = /xox[abposr]-|https:\/\/hooks\.slack\.com\/services\//;
const BEARER_ANYWHERE = /bearer[ \t]/i;
const PASSWORD_KEYWORD_ANYWHERE = /password|passwd|pwd|passphrase|secret|client[_-]?secret|api[_-]?key|access[_-]?token|auth[_-]?token|account[_-]?key/i;

/** Exported (read-only) for the prefilter property tests. */
export const REGEX_DETECTORS: readonly RegexDetector[] = [
  {
    name: "jwt",
    pattern: /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g,
    secretGroup: 0,
    mayMatch: (text) => text.includes(".eyJ"),
  },
  {
    name: "awsAccessKeyId",
    pattern: /(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])/g,
    secretGroup: 0,
    mayMatch: (text) => AWS_KEY_ID_ANYWHERE.test(text),
  },
  {
    name: "awsSecretAccessKey",
    pattern: /(aws_?secret(?:_?access)?_?key["']?[ \t]{0,5}[:=][ \t]{0,5}["']?)([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])/gi,
    secretGroup: 2,
    mayMatch: (text) => AWS_SECRET_KEY_NAME_ANYWHERE.test(text),
  },
  {
    name: "gcpApiKey",
    pattern: /(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])/g,
    secretGroup: 0,
    mayMatch: (text) => text.includes("AIza"),
  },
  {
    name: "githubToken",
    pattern: /(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})/g,
    secretGroup: 0,
    mayMatch: (text) => GITHUB_PREFIX_ANYWHERE.test(text),
  },
  {
    name: "slackToken",
    pattern: /(?<![A-Za-z0-9-])(?:xox[abposr]-[A-Za-z0-9-]{10,}|https:\/\/hooks\.slack\.com\/services\/[A-Za-z0-9/_-]+)/g,
    secretGroup: 0,
    mayMatch: (text) => SLACK_PREFIX_ANYWHERE.test(text),
  },
  {
    name: "bearerToken",
    // At least 16 token characters so prose ("the bearer of bad news") does not match.
    pattern: /(?<![A-Za-z0-9])(bearer[ \t]{1,5})([A-Za-z0-9._~+/=-]{16,})/gi,
    secretGroup: 2,
    mayMatch: (text) => BEARER_ANYWHERE.test(text),
  },
  {
    name: "urlPassword",
    pattern: /(?<![A-Za-z0-9+.-])([a-z][a-z0-9+.-]{0,20}:\/\/[^\s:/?#@"'<>]{1,256}:)([^\s/?#@"'<>]{1,256})@/gi,
    secretGroup: 2,
    mayMatch: (text) => text.includes("://") && text.includes("@"),
  },
  {
    name: "passwordAssignment",
    pattern:
      /(?<![A-Za-z0-9])((?:password|passwd|pwd|passphrase|secret|client[_-]?secret|api[_-]?key|access[_-]?token|auth[_-]?token|account[_-]?key)["']?[ \t]{0,3}[:=][ \t]{0,3}["']?)([^\s"',;&]+)/gi,
    secretGroup: 2,
    mayMatch: (text) => (text.includes("=") || text.includes(":")) && PASSWORD_KEYWORD_ANYWHERE.test(text),
  },
];

const PEM_BEGIN = /-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----/g;
const PEM_END = /-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----/g;

export interface TextMaskResult {
  readonly text: string;
  readonly maskedCount: number;
  /** A PEM private key began but did not end in this text; everything after BEGIN was masked. */
  readonly unterminatedPem: boolean;
}

/** Masks every enabled detector's matches in `text`; returns the input string itself when nothing matched. */
export function maskText(text: string, config: MaskConfig): TextMaskResult {
  let out = text;
  let maskedCount = 0;
  let unterminatedPem = false;
  if (config.detectors.pemPrivateKey && out.includes("PRIVATE KEY")) {
    const pem = maskPemBlocks(out, config);
    out = pem.text;
    maskedCount += pem.maskedCount;
    unterminatedPem = pem.unterminatedPem;
  }
  for (const detector of REGEX_DETECTORS) {
    if (!config.detectors[detector.name] || !detector.mayMatch(out)) continue;
    detector.pattern.lastIndex = 0;
    if (!detector.pattern.test(out)) continue;
    out = out.replace(detector.pattern, (match: string, ...groups: unknown[]) => {
      const secret = detector.secretGroup === 0 ? match : groups[detector.secretGroup - 1];
      if (typeof secret !== "string" || secret.startsWith(MASK_MARKER)) return match;
      maskedCount++;
      if (detector.secretGroup === 0) return maskedPlaceholder(match, config);
      const prefix = groups[0] as string;
      return `${prefix}${maskedPlaceholder(secret, config)}${match.slice(prefix.length + secret.length)}`;
    });
  }
  return { text: maskedCount === 0 ? text : out, maskedCount, unterminatedPem };
}

/**
 * Replaces the body of each PEM private key block (keeping the BEGIN/END lines so readers see what it
 * was). An unterminated block is masked to the end of the text and reported, so a line-by-line caller
 * can keep masking following lines until it sees the END line.
 */
function maskPemBlocks(text: string, config: MaskConfig): TextMaskResult {
  let out = "";
  let cursor = 0;
  let maskedCount = 0;
  PEM_BEGIN.lastIndex = 0;
  for (;;) {
    PEM_BEGIN.lastIndex = cursor;
    const begin = PEM_BEGIN.exec(text);
    if (!begin) break;
    const bodyStart = begin.index + begin[0].length;
    PEM_END.lastIndex = bodyStart;
    const end = PEM_END.exec(text);
    maskedCount++;
    if (!end) {
      out += text.slice(cursor, bodyStart) + maskedPlaceholder(text.slice(bodyStart), config);
      return { text: out, maskedCount, unterminatedPem: true };
    }
    out += text.slice(cursor, bodyStart) + maskedPlaceholder(text.slice(bodyStart, end.index), config) + end[0];
    cursor = end.index + end[0].length;
  }
  out += text.slice(cursor);
  return { text: out, maskedCount, unterminatedPem: false };
}

/** Finds where a PEM private key block that began on an earlier line ends (index after END), or -1. */
export function findPemEnd(text: string): number {
  PEM_END.lastIndex = 0;
  const end = PEM_END.exec(text);
  return end ? end.index + end[0].length : -1;
}
