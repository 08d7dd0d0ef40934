/**
 * @module authz/exchange/exchange-config
 * Configuration of the token exchange (key `tokenExchange`): the Airlock issuer, its keys, the trust rules for
 * OIDC subject tokens, registered agent clients and the per-client rate limit.
 */
import { z } from "zod";
import { freezeConfig } from "../config/freeze-config.js";
import { identityConfigSchema } from "../identity/identity-config.js";
import { isNamespacePattern, MAX_SCOPE_NAMESPACES } from "./agent-scope.js";
import { parseSecretHash } from "./client-secret.js";

/** Default `iss` of exchanged tokens. `.invalid` (RFC 2606) never resolves, so it cannot collide with a real issuer. */
export const DEFAULT_EXCHANGE_ISSUER = "https://airlock.invalid/exchange";
/** Default `aud` of exchanged tokens: the agent audience ext_authz accepts. */
export const DEFAULT_EXCHANGE_AUDIENCE = "airlock";

const identifier = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/, "must be 1-128 letters, digits, _ . : - (starting with a letter or digit)");

const groupName = z
  .string()
  .min(1, "group names must not be empty")
  .refine((group) => !/[\s,]/.test(group), "group names contain no commas or whitespace");

/** A granted scope; see AgentScope. */
export const scopeConfigSchema = z.strictObject({
  namespaces: z
    .array(z.string().refine(isNamespacePattern, "must be a namespace name, `*` globs allowed"))
    .min(1, "list at least one namespace, or leave namespaces out for no namespace limit")
    .max(MAX_SCOPE_NAMESPACES)
    .optional(),
  readOnly: z.boolean().default(false),
});

/** The OIDC part of a trust rule is exactly an identity issuer entry: issuer, key source, audiences, claim conditions. */
const oidcIssuerSchema = identityConfigSchema.shape.issuers.element;

const grantSchema = {
  /** Groups the exchanged token carries. Only these: the subject token's own groups are never passed through. */
  groups: z.array(groupName).default([]),
  scope: scopeConfigSchema.prefault({}),
  /** Lifetime of tokens this rule issues; the global maximum when unset, never more. */
  tokenLifetimeSeconds: z.number().int().min(10).max(86_400).optional(),
};

const trustRuleSchema = z.strictObject({
  id: identifier,
  oidc: oidcIssuerSchema,
  /** Fixed subject of the exchanged token; the subject token's subject (`oidc.claims.subject`) when unset. */
  subject: z.string().min(1).max(256).optional(),
  ...grantSchema,
});

const clientSchema = z.strictObject({
  clientId: identifier,
  secretHash: z.string().refine((text) => parseSecretHash(text) !== undefined, {
    error: "must be a hash printed by `airlock exchange hash-secret` (scrypt$N=…,r=…,p=…$salt$hash)",
  }),
  /** Subject of the exchanged token; the client id when unset. */
  subject: z.string().min(1).max(256).optional(),
  /** A disabled client is answered `unauthorized_client` even with the right secret. */
  enabled: z.boolean().default(true),
  ...grantSchema,
});

const keysSchema = z.discriminatedUnion("source", [
  z.strictObject({
    /** Development: generated at first start under `${stateDir}/exchange-keys/` (0700 dir, 0600 files). */
    source: z.literal("embedded"),
    /** A new signing key is generated when the current one is older than this; the old one stays published. */
    rotateAfterDays: z.number().int().min(1).max(3650).default(30),
  }),
  z.strictObject({
    /** Production: a directory of PEM (PKCS#8) or private-JWK files, e.g. a mounted Secret; the newest file name signs. */
    source: z.literal("directory"),
    path: z.string().min(1),
    /** How often the directory is re-read (kubelet updates a mounted Secret within about a minute). */
    reloadIntervalMs: z.number().int().min(1_000).max(3_600_000).default(60_000),
  }),
]);

/** Zod schema of the `tokenExchange` configuration section. */
export const tokenExchangeConfigSchema = z
  .strictObject({
    /** Off by default: nothing is served or trusted until configured. */
    enabled: z.boolean().default(false),
    issuer: z.string().min(1).default(DEFAULT_EXCHANGE_ISSUER),
    audience: z.string().min(1).default(DEFAULT_EXCHANGE_AUDIENCE),
    /** Upper bound for every exchanged token (RFC 8693 `expires_in`); 15 minutes by default. */
    maxTokenLifetimeSeconds: z.number().int().min(10).max(86_400).default(900),
    /** Tolerance for clock differences with subject-token issuers. */
    clockSkewSeconds: z.number().int().min(0).max(300).default(30),
    keys: keysSchema.prefault({ source: "embedded" }),
    trustRules: z.array(trustRuleSchema).default([]),
    clients: z.array(clientSchema).default([]),
    rateLimit: z
      .strictObject({
        /** Exchanges a client may make back to back. */
        burst: z.number().int().min(1).max(10_000).default(10),
        /** Sustained rate per client. */
        refillPerMinute: z.number().int().min(1).max(600_000).default(30),
        /** Buckets kept in memory; the least recently used go first. */
        maxTrackedClients: z.number().int().min(100).max(1_000_000).default(10_000),
      })
      .prefault({}),
    /** Request bodies are small forms; anything larger is refused before parsing. */
    bodyLimitBytes: z.number().int().min(1024).max(1024 * 1024).default(64 * 1024),
  })
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.trustRules.forEach((rule, index) => {
      if (seen.has(rule.id)) ctx.addIssue({ code: "custom", message: "trust rule id is used twice", path: ["trustRules", index, "id"] });
      seen.add(rule.id);
      if (rule.oidc.issuer === config.issuer) {
        ctx.addIssue({ code: "custom", message: "a trust rule must not trust Airlock's own exchange issuer", path: ["trustRules", index, "oidc", "issuer"] });
      }
    });
    const clientIds = new Set<string>();
    config.clients.forEach((client, index) => {
      if (clientIds.has(client.clientId)) ctx.addIssue({ code: "custom", message: "clientId is registered twice", path: ["clients", index, "clientId"] });
      clientIds.add(client.clientId);
    });
    for (const [section, list] of [["trustRules", config.trustRules], ["clients", config.clients]] as const) {
      list.forEach((entry, index) => {
        if (entry.tokenLifetimeSeconds !== undefined && entry.tokenLifetimeSeconds > config.maxTokenLifetimeSeconds) {
          ctx.addIssue({ code: "custom", message: "must not exceed maxTokenLifetimeSeconds", path: [section, index, "tokenLifetimeSeconds"] });
        }
      });
    }
  });

/** The validated, defaulted `tokenExchange` section. */
export type TokenExchangeConfig = z.output<typeof tokenExchangeConfigSchema>;
/** One trust rule for OIDC subject tokens. */
export type TrustRuleConfig = TokenExchangeConfig["trustRules"][number];
/** One registered agent client. */
export type ExchangeClientConfig = TokenExchangeConfig["clients"][number];

/** Raised by {@link parseTokenExchangeConfig}; every issue is path-qualified. */
export class TokenExchangeConfigError extends Error {
  override readonly name = "TokenExchangeConfigError";
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid tokenExchange configuration:\n${problems.map((problem) => `  - ${problem}`).join("\n")}`);
    this.problems = problems;
  }
}

/** Validates the section once (embedding, tests; `airlock serve` parses it as part of the whole file) and freezes it. */
export function parseTokenExchangeConfig(input: unknown): TokenExchangeConfig {
  const result = tokenExchangeConfigSchema.safeParse(input ?? {});
  if (!result.success) {
    throw new TokenExchangeConfigError(
      result.error.issues.map((issue) => `tokenExchange.${issue.path.join(".") || "(root)"}: ${issue.message}`),
    );
  }
  return freezeConfig(result.data);
}
