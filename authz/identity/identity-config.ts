/**
 * @module authz/identity/identity-config
 * Agent identity configuration: which OIDC issuers are trusted, where their keys come from, and the claim rules.
 */
import { freezeConfig } from "../config/freeze-config.js";
import { z } from "zod";

/**
 * JWS algorithms an issuer may be allowed to use. `none` is deliberately absent: an unsigned token is never an
 * identity. HS* are symmetric and need a shared secret (`hmacSecretFile`), never a published key set.
 */
export const SUPPORTED_JWS_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
  "HS256",
  "HS384",
  "HS512",
] as const;

/** One of {@link SUPPORTED_JWS_ALGORITHMS}. */
export type JwsAlgorithm = (typeof SUPPORTED_JWS_ALGORITHMS)[number];

/** True for the symmetric (shared secret) algorithms. */
export function isHmacAlgorithm(algorithm: JwsAlgorithm): boolean {
  return algorithm.startsWith("HS");
}

/**
 * JWK members that only private or symmetric keys carry. A configured or fetched key set holding any of them is
 * a leak of signing material (and would let anyone who can read the config mint tokens), so it is refused.
 */
export const PRIVATE_JWK_MEMBERS: readonly string[] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"];

const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * Where keys may be fetched from: `https:` anywhere, plain `http:` only on loopback (tests, a sidecar issuer).
 * Credentials in the URL are refused because URLs end up in error messages.
 */
export function keyUrlProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return "must be an absolute URL";
  }
  if (url.username !== "" || url.password !== "") return "must not carry credentials";
  if (url.hash !== "") return "must not have a fragment";
  if (url.protocol === "https:") return undefined;
  if (url.protocol === "http:" && (LOOPBACK_HOSTS.has(url.hostname) || url.hostname.startsWith("127."))) {
    return undefined;
  }
  return "must use https (http is accepted only for loopback hosts)";
}

const keyUrlSchema = z.string().superRefine((value, ctx) => {
  const problem = keyUrlProblem(value);
  if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
});

const claimNameSchema = z.string().min(1, "claim name must not be empty");

const algorithmSchema = z.enum(SUPPORTED_JWS_ALGORITHMS, {
  error: (issue) =>
    issue.input === "none" || issue.input === "None" || issue.input === "NONE"
      ? '"none" is never allowed: agent tokens must be signed'
      : `unsupported algorithm; expected one of ${SUPPORTED_JWS_ALGORITHMS.join(", ")}`,
});

const jwkSchema = z.looseObject({ kty: z.string().min(1) }).superRefine((jwk, ctx) => {
  if (jwk.kty === "oct") {
    ctx.addIssue({ code: "custom", message: 'symmetric ("oct") keys are not allowed; use hmacSecretFile', path: ["kty"] });
  }
  for (const member of PRIVATE_JWK_MEMBERS) {
    if (member in jwk) {
      ctx.addIssue({ code: "custom", message: `private key member "${member}" must not be configured`, path: [member] });
    }
  }
});

const localJwksSchema = z.strictObject({ keys: z.array(jwkSchema).min(1, "at least one public key is required") });

const issuerSchema = z
  .strictObject({
    /** Must equal the token's `iss` exactly. */
    issuer: z.string().min(1, "issuer must not be empty"),
    discoveryUrl: keyUrlSchema.optional(),
    jwksUrl: keyUrlSchema.optional(),
    hmacSecretFile: z.string().min(1, "path must not be empty").optional(),
    localJwks: localJwksSchema.optional(),
    audiences: z.array(z.string().min(1)).min(1, "at least one audience is required"),
    algorithms: z
      .array(algorithmSchema)
      .min(1, "at least one algorithm is required")
      .refine((list) => new Set(list).size === list.length, "algorithms must not repeat"),
    claims: z
      .strictObject({
        subject: claimNameSchema.default("sub"),
        groups: claimNameSchema.default("groups"),
        session: claimNameSchema.default("sid"),
      })
      .prefault({}),
    maxTokenLifetimeMinutes: z.number().int().min(1).max(1440).default(60),
    requiredClaims: z.record(claimNameSchema, z.union([z.string(), z.number(), z.boolean()])).optional(),
  })
  .superRefine((issuer, ctx) => {
    const sources = (["discoveryUrl", "jwksUrl", "hmacSecretFile", "localJwks"] as const).filter(
      (key) => issuer[key] !== undefined,
    );
    if (sources.length === 0) {
      ctx.addIssue({
        code: "custom",
        message: "exactly one key source is required: discoveryUrl, jwksUrl, hmacSecretFile or localJwks",
      });
    }
    for (const extra of sources.slice(1)) {
      ctx.addIssue({
        code: "custom",
        message: `${extra} cannot be combined with ${sources[0] ?? ""}: configure exactly one key source`,
        path: [extra],
      });
    }
    const hmac = issuer.algorithms.filter(isHmacAlgorithm);
    if (issuer.hmacSecretFile !== undefined && hmac.length !== issuer.algorithms.length) {
      ctx.addIssue({
        code: "custom",
        message: "with hmacSecretFile only HS256/HS384/HS512 may be allowed",
        path: ["algorithms"],
      });
    }
    if (issuer.hmacSecretFile === undefined && hmac.length > 0) {
      ctx.addIssue({
        code: "custom",
        message: `${hmac.join(", ")} needs hmacSecretFile; public key sets cannot verify HMAC tokens`,
        path: ["algorithms"],
      });
    }
  });

/** Zod schema of the identity configuration; see {@link parseIdentityConfig}. */
export const identityConfigSchema = z
  .strictObject({
    issuers: z
      .array(issuerSchema)
      .min(1, "at least one issuer is required")
      .superRefine((issuers, ctx) => {
        const seen = new Set<string>();
        issuers.forEach((entry, index) => {
          if (seen.has(entry.issuer)) {
            ctx.addIssue({ code: "custom", message: "issuer is configured twice", path: [index, "issuer"] });
          }
          seen.add(entry.issuer);
        });
      }),
    /** Tolerance for clock differences with the issuer, applied to exp, nbf and iat. */
    clockSkewSeconds: z.number().int().min(0).max(300).default(30),
    /** Keys older than this are refetched before use; a background refresh starts at half this age. */
    jwksCacheMaxAgeMs: z.number().int().min(1_000).max(86_400_000).default(600_000),
    /** Minimum gap between two key fetches for one issuer (bounds refetches forced by unknown `kid`s). */
    jwksCooldownMs: z.number().int().min(0).max(3_600_000).default(30_000),
    /** Upper bound for one discovery or JWKS HTTP request, body included. */
    jwksTimeoutMs: z.number().int().min(100).max(60_000).default(5_000),
  })
  .superRefine((config, ctx) => {
    if (config.jwksCooldownMs > config.jwksCacheMaxAgeMs) {
      ctx.addIssue({ code: "custom", message: "must not exceed jwksCacheMaxAgeMs", path: ["jwksCooldownMs"] });
    }
  });

/** The validated, defaulted identity configuration. Values returned by {@link parseIdentityConfig} are frozen. */
export type IdentityConfig = z.output<typeof identityConfigSchema>;

/** One trusted issuer of {@link IdentityConfig}. */
export type IssuerConfig = IdentityConfig["issuers"][number];

/** Raised by {@link parseIdentityConfig}; the message lists every problem with its path. */
export class IdentityConfigError extends Error {
  override readonly name = "IdentityConfigError";
  readonly issues: readonly z.core.$ZodIssue[];

  constructor(error: z.ZodError) {
    super(`invalid identity configuration:\n${z.prettifyError(error)}`);
    this.issues = error.issues;
  }
}

/**
 * Validates raw configuration (parsed YAML/JSON) once at start-up and returns it deep-frozen.
 *
 * @example
 * const config = parseIdentityConfig({ issuers: [{ issuer: "https://token.actions.githubusercontent.com",
 *   discoveryUrl: "https://token.actions.githubusercontent.com/.well-known/openid-configuration",
 *   audiences: ["airlock"], algorithms: ["RS256"] }] });
 */
export function parseIdentityConfig(input: unknown): IdentityConfig {
  const result = identityConfigSchema.safeParse(input);
  if (!result.success) throw new IdentityConfigError(result.error);
  return freezeConfig(result.data);
}
