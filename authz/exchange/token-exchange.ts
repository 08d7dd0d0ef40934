/**
 * @module authz/exchange/token-exchange
 * RFC 8693 token exchange: checks a subject token (an OIDC token from a trusted issuer, or a registered client's
 * secret) against the trust rules, narrows the scope, and mints a short-lived Airlock-signed agent JWT.
 */
import { createHash, randomUUID } from "node:crypto";
import { decodeJwt, SignJWT } from "jose";
import { parseIdentityConfig } from "../identity/identity-config.js";
import { createTokenVerifier } from "../identity/token-verifier.js";
import type { IdentityErrorCode, IssuerWarmFailure, TokenVerifier } from "../identity/token-verifier.js";
import { AGENT_SCOPE_CLAIM, formatScopeParameter, narrowScope, parseScopeParameter } from "./agent-scope.js";
import type { AgentScope, RequestedScope } from "./agent-scope.js";
import { createClientRateLimiter } from "./client-rate-limiter.js";
import { parseSecretHash, verifyClientSecret } from "./client-secret.js";
import type { ParsedSecretHash } from "./client-secret.js";
import type { ExchangeClientConfig, TokenExchangeConfig, TrustRuleConfig } from "./exchange-config.js";
import type { ExchangeKeyRing } from "./exchange-key-ring.js";

/** RFC 8693 §2.1 grant type. */
export const TOKEN_EXCHANGE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange";
/** RFC 8693 §3 token type of the issued token (and of JWT subject tokens). */
export const JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt";
/** Subject token types that carry an OIDC JWT. */
export const OIDC_SUBJECT_TOKEN_TYPES: readonly string[] = [
  JWT_TOKEN_TYPE,
  "urn:ietf:params:oauth:token-type:id_token",
  "urn:ietf:params:oauth:token-type:access_token",
];
/** Airlock's subject token type for a registered client's secret (sent with `client_id`). */
export const CLIENT_SECRET_TOKEN_TYPE = "urn:airlock:params:oauth:token-type:client-secret";

/** Claim naming what granted an exchanged token: `rule:<trust rule id>` or `client:<client id>`. */
export const GRANT_CLAIM = "airlock_grant";

/**
 * The closed set of errors the endpoint answers, with their RFC meaning:
 * - `invalid_request` (400; 429 when rate limited): a parameter is missing, repeated or unsupported
 *   (including `subject_token_type`, `actor_token`, `requested_token_type`), or the client sends too fast.
 * - `unsupported_grant_type` (400): `grant_type` is not token exchange.
 * - `invalid_grant` (400): the subject token is not valid (untrusted issuer, wrong audience, expired, bad signature,
 *   claim conditions not met, unknown client or wrong secret — deliberately indistinguishable).
 * - `unauthorized_client` (400): the client authenticated but may not exchange (disabled).
 * - `invalid_scope` (400): the scope is malformed or wider than the trust rule grants.
 * - `invalid_target` (400): `audience`/`resource` names something other than Airlock's agent audience.
 * - `temporarily_unavailable` (503): the subject token issuer's keys cannot be fetched right now.
 * - `server_error` (500): anything unexpected (signing failed); never carries details.
 */
export type TokenExchangeErrorCode =
  | "invalid_request"
  | "unsupported_grant_type"
  | "invalid_grant"
  | "unauthorized_client"
  | "invalid_scope"
  | "invalid_target"
  | "temporarily_unavailable"
  | "server_error";

/** RFC 8693 §2.2.1 success response. */
export interface TokenExchangeResponse {
  readonly access_token: string;
  readonly issued_token_type: typeof JWT_TOKEN_TYPE;
  readonly token_type: "Bearer";
  readonly expires_in: number;
  /** Present when the granted scope narrows anything (RFC 6749 §5.1: the scope differs from "everything"). */
  readonly scope?: string;
}

export type TokenExchangeResult =
  | { readonly ok: true; readonly response: TokenExchangeResponse }
  | {
      readonly ok: false;
      readonly status: number;
      readonly error: TokenExchangeErrorCode;
      /** RFC 6749 `error_description`: safe to show the client, never token material. */
      readonly description: string;
      readonly retryAfterSeconds?: number;
    };

/** One audit record per exchange attempt. Carries no token, secret or signature. */
export interface TokenExchangeAuditEvent {
  readonly timeMicros: number;
  readonly outcome: "issued" | "refused";
  /** Empty when issued. */
  readonly error: TokenExchangeErrorCode | "";
  readonly description: string;
  /** `rule:<id>` / `client:<id>`; empty when nothing granted. */
  readonly grant: string;
  readonly subjectTokenType: string;
  /** The subject token's `iss` (verified when issued, as claimed when refused; truncated). */
  readonly subjectTokenIssuer: string;
  /** The subject token's subject (verified when issued, as claimed when refused; truncated). */
  readonly subjectTokenSubject: string;
  readonly clientId: string;
  /** Of the issued token; empty/[] when refused. */
  readonly subject: string;
  readonly groups: readonly string[];
  readonly sessionId: string;
  readonly tokenId: string;
  readonly scope: AgentScope | undefined;
  readonly expiresAtSeconds: number;
  readonly remoteAddress: string;
}

/** What {@link createTokenExchangeService} needs. */
export interface TokenExchangeDeps {
  readonly config: TokenExchangeConfig;
  readonly keyRing: ExchangeKeyRing;
  /** Called once per attempt, issued or refused; must not throw (errors are swallowed so they cannot deny). */
  readonly recordExchange?: (event: TokenExchangeAuditEvent) => void;
  /** Clock in epoch milliseconds. */
  readonly now?: () => number;
}

/** The exchange, independent of HTTP (the fastify routes are a thin transport over it). */
export interface TokenExchangeService {
  /** Handles one request. `parameters` are the form fields with every value (repeats are refused). Never throws. */
  exchange(parameters: ReadonlyMap<string, readonly string[]>, meta: { readonly remoteAddress: string }): Promise<TokenExchangeResult>;
  /** Fetches the keys of every trusted OIDC issuer; returns the issuers whose keys failed to load. */
  warm(): Promise<readonly IssuerWarmFailure[]>;
}

/** Longest subject token or secret read; larger values are refused before any work. */
const MAX_SUBJECT_TOKEN_LENGTH = 32 * 1024;
const MAX_AUDIT_TEXT = 256;

/**
 * A syntactically valid hash of a random secret nobody knows: unknown client ids are checked against it so the
 * answer takes as long as for a known client and reveals nothing about which ids exist.
 */
const DUMMY_SECRET_HASH = `scrypt$N=32768,r=8,p=1$${Buffer.alloc(16, 7).toString("base64url")}$${Buffer.alloc(32, 9).toString("base64url")}`;

interface Grant {
  readonly grant: string;
  readonly subject: string;
  readonly groups: readonly string[];
  readonly scope: AgentScope;
  readonly lifetimeSeconds: number;
  readonly subjectTokenIssuer: string;
  readonly subjectTokenSubject: string;
}

type Failure = Extract<TokenExchangeResult, { ok: false }>;

function fail(error: TokenExchangeErrorCode, description: string, extra: { status?: number; retryAfterSeconds?: number } = {}): Failure {
  const status = extra.status ?? (error === "server_error" ? 500 : error === "temporarily_unavailable" ? 503 : 400);
  return extra.retryAfterSeconds === undefined
    ? { ok: false, status, error, description }
    : { ok: false, status, error, description, retryAfterSeconds: extra.retryAfterSeconds };
}

function truncate(text: string): string {
  return text.length > MAX_AUDIT_TEXT ? `${text.slice(0, MAX_AUDIT_TEXT)}…` : text;
}

/** Rate-limit keys may come from untrusted text: hash them so the map never holds attacker-sized strings. */
function bucketKey(...parts: readonly string[]): string {
  return createHash("sha256").update(parts.join("\u0000")).digest("base64url");
}

function identityFailure(code: IdentityErrorCode, message: string): Failure {
  if (code === "KEYS_UNAVAILABLE") return fail("temporarily_unavailable", "the subject_token issuer's keys are unavailable; try again later");
  return fail("invalid_grant", `subject_token rejected: ${message}`);
}

interface PreparedRule {
  readonly rule: TrustRuleConfig;
  readonly verifier: TokenVerifier;
}

/**
 * Builds the exchange. Each trust rule gets its own verifier (an identity issuer entry: keys, audiences, algorithms,
 * lifetime cap, required claims), so two rules may trust the same issuer under different claim conditions; rules
 * are tried in configuration order and the first that accepts the token grants.
 *
 * @example
 * const service = createTokenExchangeService({ config, keyRing, recordExchange: (event) => audit.record(event) });
 * const result = await service.exchange(new Map([["grant_type", [TOKEN_EXCHANGE_GRANT_TYPE]], ...]), { remoteAddress });
 */
export function createTokenExchangeService(deps: TokenExchangeDeps): TokenExchangeService {
  const { config, keyRing } = deps;
  const now = deps.now ?? Date.now;
  const rulesByIssuer = new Map<string, PreparedRule[]>();
  for (const rule of config.trustRules) {
    const identity = parseIdentityConfig({ issuers: [rule.oidc], clockSkewSeconds: config.clockSkewSeconds });
    const prepared = { rule, verifier: createTokenVerifier(identity, { now }) };
    rulesByIssuer.set(rule.oidc.issuer, [...(rulesByIssuer.get(rule.oidc.issuer) ?? []), prepared]);
  }
  const clients = new Map<string, { client: ExchangeClientConfig; hash: ParsedSecretHash }>();
  for (const client of config.clients) {
    const hash = parseSecretHash(client.secretHash);
    // The schema refused unparseable hashes; a hand-built config that skipped it is a programming error.
    if (hash === undefined) throw new TypeError(`client ${client.clientId} has a malformed secretHash`);
    clients.set(client.clientId, { client, hash });
  }
  const parsedDummy = parseSecretHash(DUMMY_SECRET_HASH);
  if (parsedDummy === undefined) throw new Error("dummy secret hash is malformed");
  const dummyHash: ParsedSecretHash = parsedDummy;
  const limiter = createClientRateLimiter({ ...config.rateLimit, now });

  function lifetimeOf(entry: { readonly tokenLifetimeSeconds?: number | undefined }): number {
    return Math.min(entry.tokenLifetimeSeconds ?? config.maxTokenLifetimeSeconds, config.maxTokenLifetimeSeconds);
  }

  function limited(key: string): Failure | undefined {
    const verdict = limiter.take(key);
    if (verdict.ok) return undefined;
    return fail("invalid_request", `too many token requests from this client; retry in ${verdict.retryAfterSeconds} s`, {
      status: 429,
      retryAfterSeconds: verdict.retryAfterSeconds,
    });
  }

  async function oidcGrant(subjectToken: string, audit: { issuer: string; subject: string }): Promise<Grant | Failure> {
    let claimedIssuer = "";
    let claimedSubject = "";
    try {
      const unverified = decodeJwt(subjectToken);
      claimedIssuer = typeof unverified.iss === "string" ? unverified.iss : "";
      claimedSubject = typeof unverified.sub === "string" ? unverified.sub : "";
    } catch {
      return limited(bucketKey("malformed")) ?? fail("invalid_grant", "subject_token is not a well-formed signed JWT");
    }
    audit.issuer = truncate(claimedIssuer);
    audit.subject = truncate(claimedSubject);
    const rules = rulesByIssuer.get(claimedIssuer);
    if (rules === undefined) {
      // All untrusted issuers share one bucket: inventing issuers cannot mint fresh rate-limit budgets.
      return limited(bucketKey("untrusted")) ?? fail("invalid_grant", "subject_token rejected: its issuer is not trusted by any trust rule");
    }
    const slow = limited(bucketKey("oidc", claimedIssuer, claimedSubject));
    if (slow !== undefined) return slow;
    let first: Failure | undefined;
    for (const { rule, verifier } of rules) {
      const verified = await verifier.verify(subjectToken);
      if (verified.ok) {
        return {
          grant: `rule:${rule.id}`,
          subject: rule.subject ?? verified.identity.subject,
          groups: rule.groups,
          scope: { ...(rule.scope.namespaces === undefined ? {} : { namespaces: rule.scope.namespaces }), readOnly: rule.scope.readOnly },
          lifetimeSeconds: lifetimeOf(rule),
          subjectTokenIssuer: verified.identity.issuer,
          subjectTokenSubject: verified.identity.subject,
        };
      }
      first ??= identityFailure(verified.code, verified.message);
    }
    return first ?? fail("invalid_grant", "subject_token rejected");
  }

  async function clientGrant(secret: string, clientId: string): Promise<Grant | Failure> {
    const registered = clients.get(clientId);
    const slow = limited(registered === undefined ? bucketKey("unknown-client") : bucketKey("client", clientId));
    if (slow !== undefined) return slow;
    const matches = await verifyClientSecret(secret, registered?.hash ?? dummyHash);
    if (registered === undefined || !matches) return fail("invalid_grant", "client_id or client secret is not valid");
    const { client } = registered;
    if (!client.enabled) return fail("unauthorized_client", `client ${client.clientId} is disabled`);
    return {
      grant: `client:${client.clientId}`,
      subject: client.subject ?? client.clientId,
      groups: client.groups,
      scope: { ...(client.scope.namespaces === undefined ? {} : { namespaces: client.scope.namespaces }), readOnly: client.scope.readOnly },
      lifetimeSeconds: lifetimeOf(client),
      subjectTokenIssuer: "",
      subjectTokenSubject: client.clientId,
    };
  }

  async function sign(grant: Grant, scope: AgentScope, nowSeconds: number): Promise<{ token: string; sessionId: string; tokenId: string; exp: number }> {
    const key = keyRing.signingKey();
    const sessionId = randomUUID();
    const tokenId = randomUUID();
    const exp = nowSeconds + grant.lifetimeSeconds;
    const token = await new SignJWT({ groups: [...grant.groups], sid: sessionId, [AGENT_SCOPE_CLAIM]: scope, [GRANT_CLAIM]: grant.grant })
      .setProtectedHeader({ alg: "ES256", kid: key.kid, typ: "JWT" })
      .setIssuer(config.issuer)
      .setAudience(config.audience)
      .setSubject(grant.subject)
      .setIssuedAt(nowSeconds)
      .setNotBefore(nowSeconds)
      .setExpirationTime(exp)
      .setJti(tokenId)
      .sign(key.privateKey);
    return { token, sessionId, tokenId, exp };
  }

  async function handle(
    parameters: ReadonlyMap<string, readonly string[]>,
    audit: { issuer: string; subject: string; clientId: string; subjectTokenType: string; grant: string },
    record: (issued: { subject: string; groups: readonly string[]; sessionId: string; tokenId: string; scope: AgentScope; exp: number }) => void,
  ): Promise<TokenExchangeResult> {
    // RFC 6749 §3.2: request parameters must not be included more than once.
    for (const [name, values] of parameters) {
      if (values.length > 1) return fail("invalid_request", `parameter ${name.slice(0, 64)} is repeated`);
    }
    const single = (name: string): string | undefined => {
      const value = parameters.get(name)?.[0];
      return value === "" ? undefined : value;
    };
    const grantType = single("grant_type");
    if (grantType === undefined) return fail("invalid_request", "grant_type is required");
    if (grantType !== TOKEN_EXCHANGE_GRANT_TYPE) return fail("unsupported_grant_type", `grant_type must be ${TOKEN_EXCHANGE_GRANT_TYPE}`);
    const subjectToken = single("subject_token");
    const subjectTokenType = single("subject_token_type");
    if (subjectToken === undefined) return fail("invalid_request", "subject_token is required");
    if (subjectTokenType === undefined) return fail("invalid_request", "subject_token_type is required");
    audit.subjectTokenType = truncate(subjectTokenType);
    if (subjectToken.length > MAX_SUBJECT_TOKEN_LENGTH) return fail("invalid_request", "subject_token is too long");
    if (single("actor_token") !== undefined || single("actor_token_type") !== undefined) {
      return fail("invalid_request", "delegation (actor_token) is not supported");
    }
    const requestedType = single("requested_token_type");
    if (requestedType !== undefined && requestedType !== JWT_TOKEN_TYPE && requestedType !== "urn:ietf:params:oauth:token-type:access_token") {
      return fail("invalid_request", `requested_token_type must be ${JWT_TOKEN_TYPE}`);
    }
    for (const name of ["audience", "resource"]) {
      const target = single(name);
      if (target !== undefined && target !== config.audience) {
        return fail("invalid_target", `${name} must be ${config.audience} (the only audience this server issues tokens for)`);
      }
    }
    let requested: RequestedScope | undefined;
    const scopeText = parameters.get("scope")?.[0];
    if (scopeText !== undefined) {
      const parsed = parseScopeParameter(scopeText);
      if (!parsed.ok) return fail("invalid_scope", parsed.reason);
      requested = parsed.scope;
    }

    let grant: Grant | Failure;
    if (subjectTokenType === CLIENT_SECRET_TOKEN_TYPE) {
      const clientId = single("client_id");
      if (clientId === undefined) return fail("invalid_request", "client_id is required with a client-secret subject_token");
      audit.clientId = truncate(clientId);
      grant = await clientGrant(subjectToken, clientId);
    } else if (OIDC_SUBJECT_TOKEN_TYPES.includes(subjectTokenType)) {
      grant = await oidcGrant(subjectToken, audit);
    } else {
      return fail("invalid_request", `unsupported subject_token_type; use ${JWT_TOKEN_TYPE} or ${CLIENT_SECRET_TOKEN_TYPE}`);
    }
    if ("ok" in grant) return grant;
    audit.grant = grant.grant;
    audit.issuer = truncate(grant.subjectTokenIssuer);
    audit.subject = truncate(grant.subjectTokenSubject);

    const narrowed = narrowScope(grant.scope, requested);
    if (!narrowed.ok) return fail("invalid_scope", `${narrowed.reason} (the trust rule ${grant.grant} limits the scope)`);
    const issued = await sign(grant, narrowed.scope, Math.floor(now() / 1000));
    record({ subject: grant.subject, groups: grant.groups, sessionId: issued.sessionId, tokenId: issued.tokenId, scope: narrowed.scope, exp: issued.exp });
    const scope = formatScopeParameter(narrowed.scope);
    return {
      ok: true,
      response: {
        access_token: issued.token,
        issued_token_type: JWT_TOKEN_TYPE,
        token_type: "Bearer",
        expires_in: grant.lifetimeSeconds,
        ...(scope === "" ? {} : { scope }),
      },
    };
  }

  return {
    async exchange(parameters, meta) {
      const audit = { issuer: "", subject: "", clientId: "", subjectTokenType: "", grant: "" };
      let issuedEvent: TokenExchangeAuditEvent | undefined;
      const base = () => ({
        timeMicros: Math.round(now() * 1000),
        grant: audit.grant,
        subjectTokenType: audit.subjectTokenType,
        subjectTokenIssuer: audit.issuer,
        subjectTokenSubject: audit.subject,
        clientId: audit.clientId,
        remoteAddress: meta.remoteAddress,
      });
      let result: TokenExchangeResult;
      try {
        result = await handle(parameters, audit, (issued) => {
          issuedEvent = {
            ...base(),
            outcome: "issued",
            error: "",
            description: "",
            subject: issued.subject,
            groups: [...issued.groups],
            sessionId: issued.sessionId,
            tokenId: issued.tokenId,
            scope: issued.scope,
            expiresAtSeconds: issued.exp,
          };
        });
      } catch {
        // Fail closed; the cause may hold key or token details, so it is not echoed.
        result = fail("server_error", "the token could not be issued");
      }
      const event: TokenExchangeAuditEvent =
        result.ok && issuedEvent !== undefined
          ? issuedEvent
          : {
              ...base(),
              outcome: "refused",
              error: result.ok ? "server_error" : result.error,
              description: result.ok ? "" : result.description,
              subject: "",
              groups: [],
              sessionId: "",
              tokenId: "",
              scope: undefined,
              expiresAtSeconds: 0,
            };
      try {
        deps.recordExchange?.(event);
      } catch {
        // Auditing must not turn an answer into an exception; the sink reports its own failures.
      }
      return result;
    },
    async warm() {
      const failures = await Promise.all([...rulesByIssuer.values()].map(async (rules) => (await Promise.all(rules.map(({ verifier }) => verifier.warm()))).flat()));
      return failures.flat();
    },
  };
}
