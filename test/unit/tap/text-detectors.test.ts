/**
 * @module test/unit/tap/text-detectors.test
 * Each detector with true and false positives, on/off switches, and adversarial inputs that would be
 * quadratic for a backtracking pattern (correctness only; timing lives in bench/).
 */
import { describe, expect, it } from "vitest";
import { defaultMaskConfig, loadMaskConfig, TEXT_DETECTOR_NAMES, type TextDetectorName } from "../../../tap/mask/mask-config.js";
import { maskText } from "../../../tap/mask/text-detectors.js";

const PH = "airlock:masked:sha256:[0-9a-f]{8}";

const truePositives: Record<TextDetectorName, Array<[string, RegExp]>> = {
  pemPrivateKey: [
    ["-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----", new RegExp(`^-----BEGIN RSA PRIVATE KEY-----${PH}-----END RSA PRIVATE KEY-----$`)],
    ["x -----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaA\\n-----END OPENSSH PRIVATE KEY----- y", new RegExp(`^x -----BEGIN OPENSSH PRIVATE KEY-----${PH}-----END OPENSSH PRIVATE KEY----- y$`)],
    ["-----BEGIN PRIVATE KEY-----\nMIIE", new RegExp(`^-----BEGIN PRIVATE KEY-----${PH}$`)],
    ["-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQ\n-----END PGP PRIVATE KEY BLOCK-----", new RegExp(`^-----BEGIN PGP PRIVATE KEY BLOCK-----${PH}-----END PGP PRIVATE KEY BLOCK-----$`)],
  ],
  jwt: [["token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig_nature-1 ok", new RegExp(`^token ${PH} ok$`)]],
  awsAccessKeyId: [["id=AKIAIOSFODNN7EXAMPLE;", new RegExp(`^id=${PH};$`)], ["ASIAY34FZKBOKMUTVV7A", new RegExp(`^${PH}$`)]],
  awsSecretAccessKey: [["aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", new RegExp(`^aws_secret_access_key = ${PH}$`)]],
  gcpApiKey: [["key AIzaSyD-1234567890abcdefghijklmnopqrstu end", new RegExp(`^key ${PH} end$`)]],
  githubToken: [
    ["ghp_abcdefghijklmnopqrstuvwxyz0123456789", new RegExp(`^${PH}$`)],
    ["t=github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", new RegExp(`^t=${PH}$`)],
  ],
  slackToken: [
    ["xoxb-1234567890-abcdefghij", new RegExp(`^${PH}$`)],
    ["post to https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX now", new RegExp(`^post to ${PH} now$`)],
  ],
  bearerToken: [
    ["Authorization: Bearer abcdefghijklmnop1234", new RegExp(`^Authorization: Bearer ${PH}$`)],
    ["authorization: bearer sometoken.with.dots-and_more", new RegExp(`^authorization: bearer ${PH}$`)],
  ],
  urlPassword: [
    ["postgres://app:s3cret@db:5432/x", new RegExp(`^postgres://app:${PH}@db:5432/x$`)],
    ["redis+tls://user:p%40ss@r.example", new RegExp(`^redis\\+tls://user:${PH}@r\\.example$`)],
  ],
  passwordAssignment: [
    ["password=hunter2", new RegExp(`^password=${PH}$`)],
    ['{"db_password": "hunter2", "user": "a"}', new RegExp(`^\\{"db_password": "${PH}", "user": "a"\\}$`)],
    ["spring.datasource.password=x1; other=2", new RegExp(`^spring\\.datasource\\.password=${PH}; other=2$`)],
    ["CLIENT_SECRET: abc", new RegExp(`^CLIENT_SECRET: ${PH}$`)],
  ],
};

const falsePositives: Record<TextDetectorName, string[]> = {
  pemPrivateKey: ["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", "mentions PRIVATE KEY rotation"],
  jwt: ["eyJhbGciOiJIUzI1NiJ9 only a header", "version 1.2.3", "eyJ.eyJ"],
  awsAccessKeyId: ["AKIA123", "XAKIAIOSFODNN7EXAMPLEX", "akiaiosfodnn7example"],
  awsSecretAccessKey: ["aws_secret_access_key is required", "aws_secret_access_key=short"],
  gcpApiKey: ["AIzaShort", "the AIza prefix"],
  githubToken: ["ghp_short", "ghx_abcdefghijklmnopqrstuvwxyz0123456789"],
  slackToken: ["xoxb-short", "https://slack.com/help"],
  bearerToken: ["the bearer of bad news", "Bearer short", "bearer token required"],
  urlPassword: ["http://host:8080/path", "https://user@host/x", "mailto:a@b.c", "see http://example.com/a:b@c"],
  passwordAssignment: ["password policy updated", "passwordless=true", "reset your password", "secretary=bob"],
};

describe("text detectors", () => {
  for (const name of TEXT_DETECTOR_NAMES) {
    const only = loadMaskConfig({ detectors: Object.fromEntries(TEXT_DETECTOR_NAMES.map((n) => [n, n === name])) });
    it(`${name}: finds true positives`, () => {
      for (const [input, expected] of truePositives[name]) {
        const result = maskText(input, only);
        expect(result.text).toMatch(expected);
        expect(result.maskedCount).toBeGreaterThan(0);
      }
    });
    it(`${name}: ignores false positives`, () => {
      for (const input of falsePositives[name]) {
        const result = maskText(input, only);
        expect(result).toEqual({ text: input, maskedCount: 0, unterminatedPem: false });
      }
    });
    it(`${name}: can be switched off`, () => {
      const off = loadMaskConfig({ detectors: { [name]: false } });
      const input = truePositives[name][0]![0];
      const all = maskText(input, defaultMaskConfig);
      expect(all.maskedCount).toBeGreaterThan(0);
      // With this detector off, its own match survives unless another detector covers the same text.
      const without = maskText(input, loadMaskConfig({ detectors: Object.fromEntries(TEXT_DETECTOR_NAMES.map((n) => [n, false])) }));
      expect(without.text).toBe(input);
      expect(maskText(input, off).maskedCount).toBeLessThanOrEqual(all.maskedCount);
    });
  }

  it("returns the very same string when nothing matched", () => {
    const input = "plain log line with nothing secret";
    expect(maskText(input, defaultMaskConfig).text).toBe(input);
  });

  it("does not re-mask its own placeholders", () => {
    const once = maskText("password=hunter2", defaultMaskConfig);
    const twice = maskText(once.text, defaultMaskConfig);
    expect(twice).toEqual({ text: once.text, maskedCount: 0, unterminatedPem: false });
  });

  it("masks many secrets in one text and counts them", () => {
    const input = "a password=x1 b AKIAIOSFODNN7EXAMPLE c ghp_abcdefghijklmnopqrstuvwxyz0123456789 d";
    expect(maskText(input, defaultMaskConfig).maskedCount).toBe(3);
  });

  it("handles adversarial inputs that would be quadratic for backtracking patterns", () => {
    const n = 200_000;
    const adversarial = [
      "eyJ".repeat(n),
      `eyJ${"a".repeat(n)}.eyJ${"b".repeat(n)}`,
      "-----BEGIN RSA PRIVATE KEY-----".repeat(n / 40),
      "postgres://".repeat(n / 10),
      `http://${"a".repeat(n)}:`,
      "bearer ".repeat(n / 7),
      "password=".repeat(n / 9),
      "AKIA".repeat(n / 4),
      "a".repeat(n),
    ];
    for (const input of adversarial) {
      const result = maskText(input, defaultMaskConfig);
      expect(typeof result.text).toBe("string");
    }
    // A BEGIN with no END: everything after the first BEGIN is masked.
    const pem = maskText("-----BEGIN RSA PRIVATE KEY-----".repeat(1000), defaultMaskConfig);
    expect(pem.unterminatedPem).toBe(true);
    expect(pem.text).toMatch(new RegExp(`^-----BEGIN RSA PRIVATE KEY-----${PH}$`));
  });
});
