/**
 * @module bin/start-airlock
 * The composition root: wires identity, policy, credentials, approvals, the audit sink and masking into the
 * ext_authz + ext_proc gRPC server and the approval HTTP API, and stops them in order on shutdown.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { mkdirSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { pino, type Logger } from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import { loadEnvoyServices } from "../protos/load.js";
import { createApprovalService, type ApprovalService } from "../authz/approvals/approval-service.js";
import { buildApprovalApp } from "../authz/approvals/approval-app.js";
import { buildApprovalPreview } from "../authz/approvals/approval-preview.js";
import { openSqliteApprovalStore } from "../authz/approvals/sqlite-approval-store.js";
import { openPostgresApprovalStore } from "../authz/approvals/postgres-approval-store.js";
import type { ApprovalStore } from "../authz/approvals/approval-store.js";
import { createWebhookNotifier } from "../authz/approvals/webhook-notifier.js";
import { createAuthorizationHandlers } from "../authz/check/authorization-service.js";
import { openDirectoryKeyRing, openEmbeddedKeyRing, type ExchangeKeyRing } from "../authz/exchange/exchange-key-ring.js";
import { createTokenExchangeService, type TokenExchangeAuditEvent } from "../authz/exchange/token-exchange.js";
import { registerTokenExchangeRoutes, TOKEN_ENDPOINT_PATH } from "../authz/exchange/token-exchange-routes.js";
import { CheckEngine, type ApprovalGate } from "../authz/check/check-engine.js";
import type { CheckDecisionRecord } from "../authz/check/check-outcome.js";
import { createUpstreamCredentials } from "../authz/credentials/upstream-credentials.js";
import { createAuthzMetrics } from "../authz/observability/authz-metrics.js";
import { BASELINE_POLICY_PATH } from "../authz/policy/compile-policy.js";
import { watchPolicyFile } from "../authz/policy/policy-watcher.js";
import { openAuditSink, type SpoolingAuditSink } from "../tap/audit/audit-sink.js";
import type { DecisionEvent, ExchangeEvent } from "../tap/audit/audit-event.js";
import { createExternalProcessorHandlers } from "../tap/ext-proc/ext-proc-service.js";
import type { ExchangeRecord } from "../tap/ext-proc/exchange-record.js";
import { loadExtProcConfig } from "../tap/ext-proc/ext-proc-config.js";
import { loadMaskConfig } from "../tap/mask/mask-config.js";
import { maskRequestBody } from "../tap/mask/mask-request-body.js";
import type { AirlockConfig } from "./airlock-config.js";
import { buildVerifiers } from "./development-identity.js";
import { createHealthState } from "./health-service.js";

export interface RunningAirlock {
  readonly grpcAddress: string;
  readonly httpUrl: string;
  readonly logger: Logger;
  readonly audit: SpoolingAuditSink;
  readonly approvals: ApprovalService;
  /** Drains: health NOT_SERVING, gRPC graceful shutdown (forced after shutdownGraceMs), HTTP close, audit flush. */
  close(): Promise<void>;
}

export interface StartOptions {
  /** Where logs go; stderr by default so stdout stays for the listen addresses. */
  readonly logDestination?: NodeJS.WritableStream;
}

/** Logs never carry credentials or bodies: these paths are censored wherever they appear. */
const REDACT_PATHS = [
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "token",
  "*.token",
  "password",
  "*.password",
  "body",
  "*.body",
];

function splitHostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(":");
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ""), port: Number(address.slice(colon + 1)) };
}

function exchangeEvent(record: ExchangeRecord): ExchangeEvent {
  const firstByte = record.timings.firstByteMs;
  return {
    requestId: record.requestId ?? "",
    decisionId: record.decisionId ?? "",
    responseStatus: record.responseStatus ?? 0,
    maskedRequestBody: record.requestBody.text ?? "",
    maskedResponseBody: record.responseBody.text ?? "",
    responseTruncated: record.responseBody.truncated,
    requestBytes: record.requestBody.bytes,
    responseBytes: record.responseBody.bytes,
    upstreamLatencyMicros: firstByte === null ? 0 : Math.max(0, Math.round((firstByte - record.timings.startMs) * 1000)),
    outcome: record.outcome,
    reason: record.reason ?? (record.responseBody.omitted === null ? "" : `response body ${record.responseBody.omitted}`),
  };
}

function decisionEvent(record: CheckDecisionRecord): DecisionEvent {
  return {
    decisionId: record.decisionId,
    requestId: record.requestId,
    timeMicros: Math.round(record.timeMicros),
    sessionId: record.sessionId,
    subject: record.subject,
    groups: [...record.groups],
    workloadIdentity: record.upstreamIdentity,
    method: record.method,
    path: record.path,
    kube: { ...record.kube },
    effect: record.effect,
    ruleIds: [...record.ruleIds],
    policyVersion: record.policyVersion,
    approvalId: record.approvalId,
    reason: record.reason,
    maskedRequestHeaders: { ...record.requestHeaders },
    maskedRequestBody: record.requestBody,
    checkLatencyMicros: record.checkLatencyMicros,
    ...(record.exchangeExpected ? {} : { noExchange: "stream_not_inspected" as const }),
  };
}

/** A token exchange as an audit request row: POST /oauth2/token, answered by Airlock itself. */
function exchangeDecisionEvent(event: TokenExchangeAuditEvent): DecisionEvent {
  const issued = event.outcome === "issued";
  return {
    decisionId: `exchange-${randomUUID()}`,
    requestId: "",
    timeMicros: Math.round(event.timeMicros),
    sessionId: event.sessionId,
    subject: issued ? event.subject : event.subjectTokenSubject,
    groups: [...event.groups],
    workloadIdentity: event.clientId !== "" ? `client:${event.clientId}` : `oidc:${event.subjectTokenIssuer}`,
    method: "POST",
    path: TOKEN_ENDPOINT_PATH,
    kube: { verb: "", apiGroup: "", apiVersion: "", resource: "", subresource: "", namespace: "", name: "" },
    effect: issued ? "Allow" : "Deny",
    ruleIds: event.grant === "" ? [] : [event.grant],
    policyVersion: "",
    approvalId: "",
    reason: issued
      ? `token ${event.tokenId} issued until ${new Date(event.expiresAtSeconds * 1000).toISOString()}${event.scope === undefined ? "" : `, scope ${JSON.stringify(event.scope)}`}`
      : `${event.error}: ${event.description}`,
    maskedRequestHeaders: {},
    maskedRequestBody: "",
    checkLatencyMicros: 0,
    noExchange: "answered_by_gateway",
  };
}

async function openApprovalStore(config: AirlockConfig): Promise<ApprovalStore> {
  const store = config.approvals.store;
  if (store.kind === "sqlite") return openSqliteApprovalStore({ path: store.path });
  return openPostgresApprovalStore({ connectionString: store.connectionString, poolMax: store.poolMax });
}

export async function startAirlock(config: AirlockConfig, options: StartOptions = {}): Promise<RunningAirlock> {
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const logger = pino(
    { level: config.logLevel, base: { service: "airlock" }, redact: { paths: REDACT_PATHS, censor: "[redacted]" } },
    options.logDestination ?? process.stderr,
  );
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics = createAuthzMetrics(registry);
  const gatewayInstance = config.gatewayInstance ?? config.audit.gatewayInstance ?? hostname();
  const closers: (() => Promise<void> | void)[] = [];

  try {
    // Token exchange keys first: tokens Airlock issues are agent tokens the verifier must accept.
    const exchange = config.tokenExchange;
    let exchangeKeys: ExchangeKeyRing | undefined;
    if (exchange.enabled) {
      const window = {
        maxTokenLifetimeSeconds: exchange.maxTokenLifetimeSeconds,
        clockSkewSeconds: exchange.clockSkewSeconds,
        onError: (error: Error) => { logger.error({ error: error.message }, "exchange key ring refresh failed; last good keys stay"); },
      };
      exchangeKeys =
        exchange.keys.source === "embedded"
          ? await openEmbeddedKeyRing({ ...window, stateDir: config.stateDir, rotateAfterDays: exchange.keys.rotateAfterDays })
          : await openDirectoryKeyRing({ ...window, path: exchange.keys.path, reloadIntervalMs: exchange.keys.reloadIntervalMs });
      const ring = exchangeKeys;
      closers.push(() => { ring.close(); });
    }

    // Identity: agent and approver verifiers; remote keys are fetched now, not on the first request.
    const verifiers = await buildVerifiers(config, exchangeKeys);
    for (const failure of [...(await verifiers.agent.warm()), ...(await verifiers.approver.warm())]) {
      logger.warn({ issuer: failure.issuer, problem: failure.message }, "issuer keys unavailable at start; its tokens are refused until they load");
    }

    // Policy, hot-reloaded; a bad edit is refused and the last good policy stays in force.
    const policyPath = config.policy.file ?? BASELINE_POLICY_PATH;
    const policy = watchPolicyFile(policyPath, {
      onReload(next) {
        metrics.observePolicyReload("loaded");
        metrics.setPolicyVersionInfo(next.version);
        logger.info({ policy: policyPath, version: next.version }, "policy reloaded");
      },
      onRejected(errors) {
        metrics.observePolicyReload("rejected");
        logger.error({ policy: policyPath, errors }, "policy change refused; the previous policy stays in force");
      },
    });
    closers.push(() => { policy.close(); });
    metrics.setPolicyVersionInfo(policy.current().version);

    const credentials = await createUpstreamCredentials(config.credentials);
    if (credentials.mode === "developmentStaticToken") {
      logger.warn("credentials.mode is developmentStaticToken: every allowed request uses one fixed token. Development only.");
    } else if (credentials.mode === "none") {
      logger.warn("credentials.mode is none: allowed requests reach the API server with no credential (development defaults)");
    }

    // Audit: spool first, so nothing decided from here on can be lost.
    const audit = await openAuditSink({ ...config.audit, gatewayInstance }, { logger, metricsRegistry: registry });
    closers.push(() => audit.close());

    const mask = loadMaskConfig(config.mask);
    const maskBodyText = (mediaType: string, body: Buffer, path?: string): string => {
      const result = maskRequestBody({ contentType: mediaType, path, body }, mask);
      return result.ok ? result.text : `[request body not recorded: ${result.code}]`;
    };

    // Approvals.
    const approvalStore = await openApprovalStore(config);
    closers.push(() => approvalStore.close());
    const notifier = config.approvals.webhook
      ? createWebhookNotifier({
          ...config.approvals.webhook,
          onFailure: (info) => { logger.warn(info, "approval webhook delivery given up"); },
        })
      : undefined;
    if (notifier) closers.push(() => { notifier.close(); });
    const approvals = createApprovalService({
      store: approvalStore,
      config: config.approvals,
      recordApproval: ({ requesterSession, ...event }) => {
        audit.recordApproval({ ...event, requesterSessionId: requesterSession });
      },
      ...(notifier === undefined ? {} : { notifier }),
      onError: (what, error) => { logger.error({ what, error: String(error) }, "approval service error"); },
    });
    approvals.start();
    closers.push(() => { approvals.close(); });
    const approvalGate: ApprovalGate = {
      resolve: (input) => {
        const attributes = input.request.attributes;
        const queryAt = attributes.rawPath.indexOf("?");
        const preview = buildApprovalPreview({
          method: input.request.method,
          path: attributes.path,
          query: queryAt < 0 ? "" : attributes.rawPath.slice(queryAt + 1),
          attributes,
          body: input.request.body,
          maskBody: (text) => {
            const result = maskRequestBody({ contentType: input.request.mediaType, path: attributes.path, body: Buffer.from(text, "utf8") }, mask);
            return result.ok ? { ok: true, text: result.text } : { ok: false };
          },
          maxBytes: config.approvals.previewMaxBytes,
        });
        return approvals.resolvePendingRequest(
          { fingerprint: input.fingerprint, requester: input.requester, ruleId: input.ruleId, settings: input.settings, preview },
          { signal: input.signal },
        );
      },
    };

    // ext_authz.
    const engine = new CheckEngine({
      verifyToken: (token) => verifiers.agent.verify(token),
      currentPolicy: () => policy.current(),
      credentials,
      approvals: approvalGate,
      audit: {
        canAccept: () => audit.canAccept(),
        recordDecision: (record) => { audit.recordDecision(decisionEvent(record)); },
      },
      maskRequestBody: (mediaType, body, path) => maskBodyText(mediaType, body, path),
    });
    const authorization = createAuthorizationHandlers(engine, {
      deadlineMarginMs: config.server.checkDeadlineMarginMs,
      defaultTimeoutMs: config.server.checkDefaultTimeoutMs,
      onOutcome: (outcome, latencyMs) => {
        const ruleIds = outcome.metadata.rule_ids;
        metrics.observeCheck(outcome, Array.isArray(ruleIds) ? ruleIds.map(String) : [], latencyMs);
      },
      onError: (error) => {
        metrics.observeCheckError();
        logger.error({ error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) }, "check failed; answered with a gRPC error (Envoy denies)");
      },
    });

    // ext_proc.
    const extProc = createExternalProcessorHandlers({
      config: loadExtProcConfig({ mask: config.mask, allowModeOverride: true }),
      onExchange: (record) => { audit.recordExchange(exchangeEvent(record)); },
      logger,
    });

    // gRPC server: ext_authz + ext_proc + health on one port.
    const services = loadEnvoyServices();
    const health = createHealthState(["envoy.service.auth.v3.Authorization", "envoy.service.ext_proc.v3.ExternalProcessor"]);
    const server = new grpc.Server({
      "grpc.max_receive_message_length": config.server.grpcMaxReceiveMessageBytes,
      "grpc.keepalive_permit_without_calls": 1,
    });
    server.addService(services.authorization.service, authorization);
    server.addService(services.externalProcessor.service, extProc);
    server.addService(services.health.service, health.handlers);
    const grpcPort = await new Promise<number>((resolve, reject) => {
      server.bindAsync(config.server.grpcAddress, grpc.ServerCredentials.createInsecure(), (error, port) => {
        if (error) reject(error);
        else resolve(port);
      });
    });
    const grpcHost = splitHostPort(config.server.grpcAddress).host;
    const grpcAddress = `${grpcHost.includes(":") ? `[${grpcHost}]` : grpcHost}:${grpcPort}`;
    closers.push(
      () =>
        new Promise<void>((resolve) => {
          health.set("NOT_SERVING");
          const force = setTimeout(() => { server.forceShutdown(); resolve(); }, config.server.shutdownGraceMs);
          server.tryShutdown(() => { clearTimeout(force); resolve(); });
        }),
    );

    // HTTP: approval API, development JWKS, metrics, health.
    const app = buildApprovalApp({
      service: approvals,
      verifyApproverToken: async (token) => {
        const result = await verifiers.approver.verify(token);
        return result.ok
          ? { ok: true, identity: { subject: result.identity.subject, groups: result.identity.groups, issuer: result.identity.issuer } }
          : { ok: false, code: result.code, message: result.message };
      },
      onError: (error) => { logger.error({ error: String(error) }, "approval API error"); },
    });
    if (exchangeKeys) {
      const service = createTokenExchangeService({
        config: exchange,
        keyRing: exchangeKeys,
        // Every attempt, issued or refused, without token material (the event type carries none): logged, and
        // written as a request row so the exchanged session's timeline starts with the exchange that opened it.
        recordExchange: (event) => {
          logger.info({ audit: "token-exchange", ...event }, "token exchange");
          audit.recordDecision(exchangeDecisionEvent(event));
        },
      });
      for (const failure of await service.warm()) {
        logger.warn({ issuer: failure.issuer, problem: failure.message }, "trust rule issuer keys unavailable at start");
      }
      await registerTokenExchangeRoutes(app, {
        service,
        keyRing: exchangeKeys,
        config: exchange,
        publicUrl: config.approvals.publicUrl,
        onError: (error) => { logger.error({ error: String(error) }, "token exchange error"); },
      });
    }
    const devIssuer = verifiers.devIssuer;
    if (devIssuer) {
      app.get("/.well-known/jwks.json", () => devIssuer.jwks());
    }
    app.get("/metrics", async (_request, reply) => {
      void reply.header("content-type", registry.contentType);
      return registry.metrics();
    });
    app.get("/healthz", () => ({ status: "ok" }));
    const http = splitHostPort(config.server.httpAddress);
    await app.listen({ host: http.host, port: http.port });
    const bound = app.server.address();
    const httpPort = typeof bound === "object" && bound !== null ? bound.port : http.port;
    const httpUrl = `http://${http.host.includes(":") ? `[${http.host}]` : http.host}:${httpPort}`;
    closers.push(() => app.close());

    logger.info({ grpcAddress, httpUrl, policy: policyPath, credentials: credentials.mode, gatewayInstance }, "airlock started");
    let closing: Promise<void> | undefined;
    return {
      grpcAddress,
      httpUrl,
      logger,
      audit,
      approvals,
      close() {
        closing ??= (async () => {
          // Reverse order: stop taking requests first, flush the audit sink last.
          for (const close of closers.reverse()) {
            try {
              await close();
            } catch (error) {
              logger.error({ error: String(error) }, "error while stopping");
            }
          }
        })();
        return closing;
      },
    };
  } catch (error) {
    for (const close of closers.reverse()) {
      try {
        await close();
      } catch {
        // already failing; the original error is what matters
      }
    }
    throw error;
  }
}
