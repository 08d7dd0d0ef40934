/**
 * @module tap/audit/audit-event
 * The audit event model (decision, exchange, approval) and the AuditSink contract the services call.
 */
import { z } from "zod";

/** The effect ext_authz decided; `Unauthenticated` and `Error` are recorded like any other decision. */
export const decisionEffectSchema = z.enum(["Allow", "Deny", "RequireApproval", "Unauthenticated", "Error"]);
export type DecisionEffect = z.infer<typeof decisionEffectSchema>;

/** Kubernetes request attributes as ext_authz parsed them (RequestInfo); empty strings when not applicable. */
export const kubeAttributesSchema = z.strictObject({
  verb: z.string(),
  apiGroup: z.string(),
  apiVersion: z.string(),
  resource: z.string(),
  subresource: z.string(),
  namespace: z.string(),
  name: z.string(),
});
export type KubeAttributes = z.infer<typeof kubeAttributesSchema>;

/** Emitted by ext_authz for EVERY Check, whatever the outcome (denied and pending requests never reach ext_proc). */
export const decisionEventSchema = z.strictObject({
  decisionId: z.string().min(1),
  requestId: z.string(),
  timeMicros: z.number().int().nonnegative(),
  sessionId: z.string(),
  subject: z.string(),
  groups: z.array(z.string()),
  workloadIdentity: z.string(),
  method: z.string(),
  path: z.string(),
  kube: kubeAttributesSchema,
  effect: decisionEffectSchema,
  ruleIds: z.array(z.string()),
  policyVersion: z.string(),
  approvalId: z.string(),
  reason: z.string(),
  /** Already masked by the caller: no Authorization, cookies or tokens (the sink redacts again as a backstop). */
  maskedRequestHeaders: z.record(z.string(), z.string()),
  maskedRequestBody: z.string(),
  checkLatencyMicros: z.number().int().nonnegative(),
  /**
   * Set when no ext_proc exchange will follow an allowed request, so its row is written at once with this outcome
   * instead of waiting for the exchange timeout: `stream_not_inspected` for exec, attach, port-forward and proxy
   * streams (ext_proc is off on their routes); `answered_by_gateway` for requests Airlock answers itself (token
   * exchange).
   */
  noExchange: z.enum(["stream_not_inspected", "answered_by_gateway"]).optional(),
});
export type DecisionEvent = z.infer<typeof decisionEventSchema>;

export const exchangeOutcomeSchema = z.enum(["complete", "blocked", "aborted"]);
export type ExchangeOutcome = z.infer<typeof exchangeOutcomeSchema>;

/** Emitted by ext_proc when the HTTP exchange of an allowed request ends. */
export const exchangeEventSchema = z.strictObject({
  requestId: z.string(),
  decisionId: z.string(),
  responseStatus: z.number().int().min(0).max(65535),
  maskedRequestBody: z.string(),
  maskedResponseBody: z.string(),
  responseTruncated: z.boolean(),
  requestBytes: z.number().int().nonnegative(),
  responseBytes: z.number().int().nonnegative(),
  upstreamLatencyMicros: z.number().int().nonnegative(),
  outcome: exchangeOutcomeSchema,
  reason: z.string(),
});
export type ExchangeEvent = z.infer<typeof exchangeEventSchema>;

export const approvalActionSchema = z.enum(["created", "approved", "rejected", "expired", "consumed"]);
export type ApprovalAction = z.infer<typeof approvalActionSchema>;

/** One row per approval life-cycle event. */
export const approvalEventSchema = z.strictObject({
  approvalId: z.string().min(1),
  timeMicros: z.number().int().nonnegative(),
  action: approvalActionSchema,
  actor: z.string(),
  reason: z.string(),
  fingerprint: z.string(),
  requesterSubject: z.string(),
  requesterSessionId: z.string(),
  ruleId: z.string(),
});
export type ApprovalEvent = z.infer<typeof approvalEventSchema>;

/** What a request row says happened after the decision. */
export type ResponseOutcome =
  | ExchangeOutcome
  /** Allowed, but no exchange arrived before the hold timeout (or the gateway restarted). */
  | "missing"
  /** Denied / pending / unauthenticated / error: never forwarded upstream. */
  | "not_forwarded"
  /** Allowed stream (exec, attach, port-forward, proxy) that ext_proc does not inspect: no response is recorded. */
  | "stream_not_inspected"
  /** Answered by Airlock itself (token exchange), never forwarded to the API server. */
  | "answered_by_gateway";

export type AdmissionVerdict = { ok: true } | { ok: false; reason: string };

/** Point-in-time sink metrics (also exported to prom-client when a registry is given). */
export interface AuditSinkMetrics {
  /** Rows (request + approval) appended to the spool and not yet confirmed by the store. */
  readonly queueDepth: number;
  /** Bytes held by spool segments on disk. */
  readonly spoolBytes: number;
  /** Age of the oldest row not yet in the store, in milliseconds (0 when the queue is empty). */
  readonly insertLagMs: number;
  /** Failed insert attempts since start (each is retried). */
  readonly insertFailures: number;
  /** Rows confirmed by the store since start. */
  readonly rowsDelivered: number;
  /** Allowed decisions waiting for their exchange. */
  readonly heldDecisions: number;
  readonly lastError: string | undefined;
}

/**
 * The sink the request path talks to. The record* methods are synchronous and cheap: they append to the
 * durable spool and return; delivery to ClickHouse happens in the background.
 */
export interface AuditSink {
  recordDecision(event: DecisionEvent): void;
  recordExchange(event: ExchangeEvent): void;
  recordApproval(event: ApprovalEvent): void;
  /** ext_authz asks before allowing anything: false when the spool is over budget or cannot be written. */
  canAccept(): AdmissionVerdict;
  /** Resolves when everything appended so far is in the store. */
  flush(): Promise<void>;
  /** Stops delivery after a best-effort flush; whatever is undelivered stays in the spool for the next start. */
  close(): Promise<void>;
  metrics(): AuditSinkMetrics;
}
