/**
 * @module test/unit/tap/text-detector-prefilter.test
 * The cheap per-detector prefilters never skip a true positive: property tests over generated matches
 * and over random texts built from detector fragments, plus maskText against an unfiltered reference.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { defaultMaskConfig, type TextDetectorName } from "../../../tap/mask/mask-config.js";
import { MASK_MARKER, maskedPlaceholder } from "../../../tap/mask/masked-value.js";
import { maskText, REGEX_DETECTORS, type RegexDetector } from "../../../tap/mask/text-detectors.js";

/**
 * Each pattern without its lookarounds (fast-check cannot generate those): every match of the real
 * pattern is a match of this core, so a prefilter that accepts every core match accepts every match.
 */
const CORES: Record<Exclude<TextDetectorName, "pemPrivateKey">, RegExp> = {
  jwt: /^eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/,
  awsAccessKeyId: /^(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}$/,
  awsSecretAccessKey: /^(?:[aA][wW][sS]_?[sS][eE][cC][rR][eE][tT](?:_?[aA][cC][cC][eE][sS][sS])?_?[kK][eE][yY]["']?[ \t]{0,5}[:=][ \t]{0,5}["']?)[A-Za-z0-9/+=]{40}$/,
  gcpApiKey: /^AIza[0-9A-Za-z_-]{35}$/,
  githubToken: /^(?:gh[pousr]_[A-Za-z0-9]{36,40}|github_pat_[A-Za-z0-9_]{22,30})$/,
  slackToken: /^(?:xox[abposr]-[A-Za-z0-9-]{10,20}|https:\/\/hooks\.slack\.com\/services\/[A-Za-z0-9/_-]{1,20})$/,
  bearerToken: /^[bB][eE][aA][rR][eE][rR][ \t]{1,5}[A-Za-z0-9._~+/=-]{16,30}$/,
  urlPassword: /^[a-zA-Z][a-zA-Z0-9+.-]{0,20}:\/\/[^\s:/?#@"'<>]{1,20}:[^\s/?#@"'<>]{1,20}@$/,
  passwordAssignment:
    /^(?:[pP][aA][sS][sS][wW][oO][rR][dD]|[pP][aA][sS][sS][wW][dD]|[pP][wW][dD]|[pP][aA][sS][sS][pP][hH][rR][aA][sS][eE]|[sS][eE][cC][rR][eE][tT]|[cC][lL][iI][eE][nN][tT][_-]?[sS][eE][cC][rR][eE][tT]|[aA][pP][iI][_-]?[kK][eE][yY]|[aA][cC][cC][eE][sS][sS][_-]?[tT][oO][kK][eE][nN]|[aA][uU][tT][hH][_-]?[tT][oO][kK][eE][nN]|[aA][cC][cC][oO][uU][nN][tT][_-]?[kK][eE][yY])["']?[ \t]{0,3}[:=][ \t]{0,3}["']?[^\s"',;&]{1,20}$/,
};

/** Pieces that make detectors match, almost match, or sit at a boundary. */
const FRAGMENTS = [
  "eyJ", ".", "eyJhbGci", "_", "-", "AKIA", "ASIA", "ABIA", "ACCA", "IOSFODNN7EXAMPLE", "aws", "AWS_", "secret", "Secret",
  "_access", "_key", "KEY", "=", ":", " ", "\t", '"', "'", "AIza", "SyD-1234567890abcdefghijklmnopqrstu", "gh", "ghp_", "gho_",
  "github_pat_", "abcdefghijklmnopqrstuvwxyz0123456789", "xox", "xoxb-", "https://hooks.slack.com/services/", "T000/B000",
  "bearer", "Bearer ", "BEARER\t", "abcdefghijklmnop1234", "://", "postgres", "user", "@", "host", "pass", "password", "PASSWD",
  "pwd", "passphrase", "client-secret", "api_key", "ApiKey", "access-token", "auth_token", "account_key", "hunter2", "x", "Z", "9", ";",
  "/", "+", "é", "\n", MASK_MARKER,
] as const;

const fragmentText = fc.array(fc.constantFrom(...FRAGMENTS), { maxLength: 30 }).map((parts) => parts.join(""));
const anyText = fc.oneof(fragmentText, fc.string({ maxLength: 60 }), fc.string({ unit: "binary", maxLength: 40 }));

function fullMatch(detector: RegexDetector, text: string): boolean {
  detector.pattern.lastIndex = 0;
  const found = detector.pattern.test(text);
  detector.pattern.lastIndex = 0;
  return found;
}

/** maskText's algorithm with no prefilter at all: every enabled pattern runs on every text. */
function unfilteredReference(text: string): { text: string; maskedCount: number } {
  let out = text;
  let maskedCount = 0;
  for (const detector of REGEX_DETECTORS) {
    detector.pattern.lastIndex = 0;
    out = out.replace(detector.pattern, (match: string, ...groups: unknown[]) => {
      const secret = detector.secretGroup === 0 ? match : groups[detector.secretGroup - 1];
      if (typeof secret !== "string" || secret.startsWith(MASK_MARKER)) return match;
      maskedCount++;
      if (detector.secretGroup === 0) return maskedPlaceholder(match, defaultMaskConfig);
      const prefix = groups[0] as string;
      return `${prefix}${maskedPlaceholder(secret, defaultMaskConfig)}${match.slice(prefix.length + secret.length)}`;
    });
  }
  return { text: maskedCount === 0 ? text : out, maskedCount };
}

describe("text detector prefilters", () => {
  for (const detector of REGEX_DETECTORS) {
    it(`${detector.name}: accepts every generated match, wherever it sits in a text`, () => {
      fc.assert(
        fc.property(fc.stringMatching(CORES[detector.name]), anyText, anyText, (match, before, after) => {
          return detector.mayMatch(match) && detector.mayMatch(before + match + after);
        }),
        { numRuns: 300 },
      );
    });

    it(`${detector.name}: is true whenever the full pattern matches a random text`, () => {
      fc.assert(
        fc.property(anyText, (text) => !fullMatch(detector, text) || detector.mayMatch(text)),
        { numRuns: 2000 },
      );
    });
  }

  it("leave maskText's result equal to running every pattern unfiltered", () => {
    fc.assert(
      fc.property(anyText, (text) => {
        // PEM handling is separate (its own literal check); keep it out of the comparison.
        fc.pre(!text.includes("PRIVATE KEY"));
        const fast = maskText(text, defaultMaskConfig);
        const reference = unfilteredReference(text);
        return fast.text === reference.text && fast.maskedCount === reference.maskedCount;
      }),
      { numRuns: 3000 },
    );
  });

  it("still let the fixture true positives through (sanity check on the generators)", () => {
    const samples = ["id=AKIAIOSFODNN7EXAMPLE;", "Authorization: Bearer abcdefghijklmnop1234", "postgres://app:s3cret@db:5432/x", "CLIENT_SECRET: abc"];
    for (const sample of samples) expect(REGEX_DETECTORS.some((d) => fullMatch(d, sample) && d.mayMatch(sample))).toBe(true);
  });
});
