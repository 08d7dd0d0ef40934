/**
 * @module authz/approvals/approvals-config
 * The approvals section of Airlock's configuration: zod schema, defaults with units in key names, parsed once and frozen.
 */
import { z } from "zod";
import { freezeConfig } from "../config/freeze-config.js";

const httpUrl = z.url({ protocol: /^https?$/ });

export const webhookConfigSchema = z.strictObject({
  url: httpUrl,
  timeoutMs: z.number().int().positive().default(5000),
  maxAttempts: z.number().int().min(1).max(20).default(6),
  initialBackoffMs: z.number().int().positive().default(500),
  maxBackoffMs: z.number().int().positive().default(60_000),
  /** Events beyond this wait in no queue: they are dropped (and counted) rather than grow memory without bound. */
  maxQueueLength: z.number().int().positive().default(1000),
});

export const approvalsConfigSchema = z.strictObject({
  store: z
    .discriminatedUnion("kind", [
      z.strictObject({ kind: z.literal("sqlite"), path: z.string().min(1).default("./.airlock/approvals.db") }),
      z.strictObject({
        kind: z.literal("postgres"),
        connectionString: z.string().min(1),
        poolMax: z.number().int().positive().default(10),
      }),
    ])
    .default({ kind: "sqlite", path: "./.airlock/approvals.db" }),
  /** `retry`: answer 429 + Retry-After at once. `hold`: keep the Check open up to holdSeconds waiting for a decision. */
  pendingMode: z.enum(["retry", "hold"]).default("retry"),
  holdSeconds: z.number().int().min(1).max(600).default(25),
  retryAfterSeconds: z.number().int().min(1).max(3600).default(10),
  /** Used when a rule gives no positive ttlSeconds. */
  defaultTtlSeconds: z.number().int().positive().default(900),
  /** Where approvers reach this API; the agent's Status names `<publicUrl>/v1/approvals/<id>`. */
  publicUrl: httpUrl.default("http://127.0.0.1:8081"),
  webhook: webhookConfigSchema.optional(),
  /** The audience approver tokens must carry (the agent audience must differ). */
  approverAudience: z.string().min(1).default("airlock-approvers"),
  /** Identities in these groups, or from these issuers, are agents and can never approve. */
  agentGroups: z.array(z.string().min(1)).default([]),
  agentIssuers: z.array(z.string().min(1)).default([]),
  previewMaxBytes: z.number().int().min(256).max(1_048_576).default(16_384),
  /** How often expired approvals are swept (for expiry events and notifications). */
  expirySweepSeconds: z.number().int().min(1).max(3600).default(15),
});

export type ApprovalsConfig = z.output<typeof approvalsConfigSchema>;
export type ApprovalsConfigInput = z.input<typeof approvalsConfigSchema>;

export type ApprovalsConfigResult =
  | { readonly ok: true; readonly config: Readonly<ApprovalsConfig> }
  | { readonly ok: false; readonly errors: readonly string[] };

/** Validates and freezes. Errors are path-qualified ("approvals.webhook.url: ..."); the connection string never appears in them. */
export function parseApprovalsConfig(input: unknown, pathPrefix = "approvals"): ApprovalsConfigResult {
  const result = approvalsConfigSchema.safeParse(input);
  if (!result.success) {
    return {
      ok: false,
      errors: result.error.issues.map((issue) => {
        const path = [pathPrefix, ...issue.path.map(String)].filter((p) => p !== "").join(".");
        return `${path}: ${issue.message}`;
      }),
    };
  }
  return { ok: true, config: freezeConfig(result.data) };
}
