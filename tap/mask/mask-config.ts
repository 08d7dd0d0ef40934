/**
 * @module tap/mask/mask-config
 * Masking settings (zod schema, parsed once and frozen): size limits, key-name rules, detectors, skip list.
 */
import { z } from "zod";

/** Names of the text detectors in text-detectors.ts; each can be switched off on its own. */
export const TEXT_DETECTOR_NAMES = [
  "pemPrivateKey",
  "jwt",
  "awsAccessKeyId",
  "awsSecretAccessKey",
  "gcpApiKey",
  "githubToken",
  "slackToken",
  "bearerToken",
  "urlPassword",
  "passwordAssignment",
] as const;
export type TextDetectorName = (typeof TEXT_DETECTOR_NAMES)[number];

const detectorsSchema = z.strictObject(
  Object.fromEntries(TEXT_DETECTOR_NAMES.map((name) => [name, z.boolean().default(true)])) as Record<
    TextDetectorName,
    z.ZodDefault<z.ZodBoolean>
  >,
);

/** A regular expression given as a string in config; compiled once here so a bad pattern is a config error. */
const regexSource = z.string().min(1).superRefine((source, ctx) => {
  try {
    new RegExp(source, "i");
  } catch (err) {
    ctx.addIssue({ code: "custom", message: `invalid regular expression: ${(err as Error).message}` });
  }
});

/**
 * A response whose body may pass unprocessed (for speed). Matching is explicit: the Kubernetes resource
 * (with optional subresource, e.g. "pods/log") and verb must both match, or the request path must match
 * the glob (`*` = one path segment, `**` = anything). Nothing is skipped by default.
 */
const skipRuleSchema = z.union([
  z.strictObject({ resource: z.string().min(1), verbs: z.array(z.string().min(1)).min(1) }),
  z.strictObject({ pathGlob: z.string().startsWith("/") }),
]);

export const maskConfigSchema = z.strictObject({
  /** Largest response body (non-streaming) that is buffered and masked; larger ones are blocked. */
  maxBodyBytes: z.number().int().positive().default(32 * 1024 * 1024),
  /** Largest single watch event / log line carried across chunks; a longer one blocks the stream. */
  maxWatchEventBytes: z.number().int().positive().default(8 * 1024 * 1024),
  /** Env var names and ConfigMap keys whose literal values are masked whatever the value looks like. */
  sensitiveKeyPatterns: z
    .array(regexSource)
    .default([
      "passw(or)?d",
      "passphrase",
      "pwd",
      "secret",
      "token",
      "api[-_]?key",
      "private[-_]?key",
      "access[-_]?key",
      "account[-_]?key",
      "credential",
      "session[-_]?key",
      "dsn",
      "connection[-_]?string",
    ]),
  /** Mask ConfigMap values by key-name rules and value detectors. */
  maskConfigMaps: z.boolean().default(true),
  /** Mask literal env[].value in pod templates by key-name rules and value detectors. */
  maskEnvValues: z.boolean().default(true),
  /** Run text detectors over pods/log bodies, Event messages and Status messages. */
  maskLogs: z.boolean().default(true),
  detectors: detectorsSchema.prefault({}),
  /**
   * Optional key for keyed fingerprints (HMAC-SHA256). Without it fingerprints are plain SHA-256
   * prefixes, which are stable across replicas but let a guesser confirm a weak password offline.
   */
  fingerprintKey: z.string().min(16).optional(),
  /** Responses that may skip body processing; empty by default (every body is inspected). */
  skipBodyFor: z.array(skipRuleSchema).default([]),
});

export type MaskConfigInput = z.input<typeof maskConfigSchema>;
export type SkipRule = z.output<typeof skipRuleSchema>;

/** Parsed, compiled and frozen masking settings. */
export interface MaskConfig {
  readonly maxBodyBytes: number;
  readonly maxWatchEventBytes: number;
  readonly sensitiveKey: RegExp;
  readonly maskConfigMaps: boolean;
  readonly maskEnvValues: boolean;
  readonly maskLogs: boolean;
  readonly detectors: Readonly<Record<TextDetectorName, boolean>>;
  readonly fingerprintKey: string | undefined;
  readonly skipBodyFor: readonly SkipRule[];
}

export type MaskConfigResult = { ok: true; config: MaskConfig } | { ok: false; errors: string[] };

/** Validates raw settings; errors are path-qualified ("detectors.jwt: expected boolean"). */
export function parseMaskConfig(input: unknown): MaskConfigResult {
  const parsed = maskConfigSchema.safeParse(input ?? {});
  if (!parsed.success) {
    return {
      ok: false,
      errors: parsed.error.issues.map((issue) => `${issue.path.map(String).join(".") || "(root)"}: ${issue.message}`),
    };
  }
  const raw = parsed.data;
  // One alternation compiled once; key names are short, so a combined pattern is cheap per key.
  const sensitiveKey = new RegExp(raw.sensitiveKeyPatterns.map((p) => `(?:${p})`).join("|"), "i");
  const config: MaskConfig = {
    maxBodyBytes: raw.maxBodyBytes,
    maxWatchEventBytes: raw.maxWatchEventBytes,
    sensitiveKey,
    maskConfigMaps: raw.maskConfigMaps,
    maskEnvValues: raw.maskEnvValues,
    maskLogs: raw.maskLogs,
    detectors: Object.freeze({ ...raw.detectors }),
    fingerprintKey: raw.fingerprintKey,
    skipBodyFor: Object.freeze(raw.skipBodyFor.map((rule) => Object.freeze({ ...rule }))),
  };
  return { ok: true, config: Object.freeze(config) };
}

/** Parses settings or throws one Error listing every problem (for startup code). */
export function loadMaskConfig(input: unknown): MaskConfig {
  const result = parseMaskConfig(input);
  if (!result.ok) throw new Error(`invalid masking config: ${result.errors.join("; ")}`);
  return result.config;
}

/** The baseline: everything on, nothing skipped. */
export const defaultMaskConfig: MaskConfig = loadMaskConfig({});
