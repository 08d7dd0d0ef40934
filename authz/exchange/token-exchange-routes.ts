/**
 * @module authz/exchange/token-exchange-routes
 * The HTTP transport of the token exchange on the approval API's fastify app: the RFC 8693 token endpoint, the
 * exchange issuer's JWKS and RFC 8414 metadata. Encapsulated: its body parser and error format stay inside.
 */
import type { FastifyError, FastifyInstance, FastifyReply } from "fastify";
import type { ExchangeKeyRing } from "./exchange-key-ring.js";
import type { TokenExchangeConfig } from "./exchange-config.js";
import { TOKEN_EXCHANGE_GRANT_TYPE } from "./token-exchange.js";
import type { TokenExchangeErrorCode, TokenExchangeService } from "./token-exchange.js";

/** RFC 8693 token endpoint (form-encoded POST). */
export const TOKEN_ENDPOINT_PATH = "/oauth2/token";
/** Public keys of the exchange issuer (signing key plus retired keys whose tokens may still be live). */
export const EXCHANGE_JWKS_PATH = "/.well-known/airlock/exchange-jwks.json";
/** RFC 8414 authorization server metadata naming the two URLs above. */
export const AUTHORIZATION_SERVER_METADATA_PATH = "/.well-known/oauth-authorization-server";

/** What {@link registerTokenExchangeRoutes} needs. */
export interface TokenExchangeRouteDeps {
  readonly service: TokenExchangeService;
  readonly keyRing: ExchangeKeyRing;
  readonly config: TokenExchangeConfig;
  /** Base URL clients reach this server at (for the metadata document); the request's own origin when unset. */
  readonly publicUrl?: string;
  /** Told about unexpected failures (500s); never carries tokens. */
  readonly onError?: (error: unknown) => void;
}

function sendError(reply: FastifyReply, status: number, error: TokenExchangeErrorCode, description: string): FastifyReply {
  return reply
    .code(status)
    .header("cache-control", "no-store")
    .header("pragma", "no-cache")
    .send({ error, error_description: description });
}

/** Form body → every value of every parameter, so the service can refuse repeats (RFC 6749 §3.2). */
function formParameters(body: unknown): ReadonlyMap<string, readonly string[]> {
  const parameters = new Map<string, string[]>();
  if (typeof body !== "string") return parameters;
  for (const [name, value] of new URLSearchParams(body)) {
    parameters.set(name, [...(parameters.get(name) ?? []), value]);
  }
  return parameters;
}

/**
 * Registers the routes (call before `listen`). Every answer carries `Cache-Control: no-store` (RFC 6749 §5.1);
 * errors are `{ error, error_description }` with the RFC status, 429 plus `Retry-After` when rate limited.
 *
 * @example
 * await registerTokenExchangeRoutes(app, { service, keyRing, config: config.tokenExchange });
 */
export async function registerTokenExchangeRoutes(app: FastifyInstance, deps: TokenExchangeRouteDeps): Promise<void> {
  await app.register((scope, _options, done) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(
      "application/x-www-form-urlencoded",
      { parseAs: "string", bodyLimit: deps.config.bodyLimitBytes },
      (_request, body, done) => { done(null, body); },
    );
    scope.setErrorHandler((error: FastifyError, _request, reply) => {
      const status = error.statusCode ?? 500;
      if (status === 413) return sendError(reply, 413, "invalid_request", "the request body is too large");
      if (status === 415) return sendError(reply, 400, "invalid_request", "the body must be application/x-www-form-urlencoded");
      if (status >= 400 && status < 500) return sendError(reply, 400, "invalid_request", "the request could not be read");
      deps.onError?.(error);
      return sendError(reply, 500, "server_error", "the token could not be issued");
    });

    scope.post(TOKEN_ENDPOINT_PATH, { bodyLimit: deps.config.bodyLimitBytes }, async (request, reply) => {
      const result = await deps.service.exchange(formParameters(request.body), { remoteAddress: request.ip });
      if (!result.ok) {
        if (result.retryAfterSeconds !== undefined) void reply.header("retry-after", String(result.retryAfterSeconds));
        return sendError(reply, result.status, result.error, result.description);
      }
      return reply.code(200).header("cache-control", "no-store").header("pragma", "no-cache").send(result.response);
    });

    scope.get(EXCHANGE_JWKS_PATH, (_request, reply) =>
      // Short cache: a verifier elsewhere should see a new key within a minute of rotation.
      reply.header("cache-control", "public, max-age=60").send(deps.keyRing.jwks()),
    );

    scope.get(AUTHORIZATION_SERVER_METADATA_PATH, (request, reply) => {
      const base = (deps.publicUrl ?? `${request.protocol}://${request.host}`).replace(/\/+$/, "");
      return reply.header("cache-control", "public, max-age=300").send({
        issuer: deps.config.issuer,
        token_endpoint: `${base}${TOKEN_ENDPOINT_PATH}`,
        jwks_uri: `${base}${EXCHANGE_JWKS_PATH}`,
        grant_types_supported: [TOKEN_EXCHANGE_GRANT_TYPE],
        token_endpoint_auth_methods_supported: ["none"],
      });
    });
    done();
  });
}
