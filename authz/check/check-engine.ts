/**
 * @module authz/check/check-engine
 * The ext_authz decision path, transport-free: token → identity, path → Kubernetes attributes, body → object,
 * policy → effect, approvals → grant, credentials → upstream headers; every Check yields one outcome and one audit record.
 */
import { randomUUID } from "node:crypto";
import type { StructJson } from "../../protos/struct-value.js";
import type { AgentIdentity, VerifyTokenResult } from "../identity/token-verifier.js";
import { bearerTokenFromHeader } from "../identity/token-verifier.js";
import { parseKubeRequest, type KubeRequestAttributes } from "../kube/request-attributes.js";
import { requestFingerprint } from "../kube/request-fingerprint.js";
import type { CompiledPolicy } from "../policy/compile-policy.js";
import { evaluatePolicy, type ApprovalSettings, type PolicyDecision } from "../policy/evaluate-policy.js";
import type { ApprovalOutcome } from "../approvals/approval-outcome.js";
import { buildApprovalStatusResponse } from "../approvals/approval-status.js";
import type { UpstreamCredentials } from "../credentials/upstream-credentials.js";
import { readAgentScope, scopeAllows } from "../exchange/agent-scope.js";
import type { AllowOutcome, CheckDecisionRecord, CheckOutcome, CheckOutcomeCode, DenyOutcome } from "./check-outcome.js";
import { kubeStatus, type KubeStatusReason } from "./kube-status.js";
import { redactHeaders } from "./redact-headers.js";
import { parseRequestBody, type ParsedRequestBody } from "./request-body.js";
import { headersToRemove, maskableAccept } from "./upstream-headers.js";

/** The HTTP request as Envoy describes it in `attributes.request.http`. */
export interface CheckHttpRequest {
  readonly id: string;
  readonly method: string;
  /** Lower-case names, pseudo-headers included, duplicates comma-joined (Envoy's map). */
  readonly headers: Readonly<Record<string, string>>;
  /** Raw, undecoded, with the query. */
  readonly path: string;
  readonly body: string;
  readonly rawBody: Buffer | undefined;
}

/** The request as the approval store needs it; the gate masks the body before anything is stored or shown. */
export interface ApprovalRequestView {
  readonly method: string;
  readonly attributes: KubeRequestAttributes;
  readonly mediaType: string;
  /** Raw request body; never stored as is. */
  readonly body: Buffer | undefined;
}

export interface ApprovalGateInput {
  readonly fingerprint: string;
  readonly requester: { readonly subject: string; readonly groups: readonly string[]; readonly sessionId: string };
  readonly ruleId: string;
  readonly settings: ApprovalSettings;
  readonly request: ApprovalRequestView;
  /** Aborted when the Check's deadline is near: a held Check must answer before Envoy gives up. */
  readonly signal: AbortSignal;
}

/** The approval service's answer; granted allows, pending and rejected carry their own Status. */
export type ApprovalGateOutcome = ApprovalOutcome;

export interface ApprovalGate {
  resolve(input: ApprovalGateInput): Promise<ApprovalGateOutcome>;
}

export interface AuditGate {
  canAccept(): { readonly ok: true } | { readonly ok: false; readonly reason: string };
  recordDecision(record: CheckDecisionRecord): void;
}

export interface CheckEngineDeps {
  readonly verifyToken: (token: string) => Promise<VerifyTokenResult>;
  readonly currentPolicy: () => CompiledPolicy;
  readonly credentials: UpstreamCredentials;
  /** Absent: RequireApproval answers as pending-without-store, i.e. a 403 naming the rule (never an allow). */
  readonly approvals: ApprovalGate | undefined;
  readonly audit: AuditGate;
  /** Masks a request body for audit rows and approval previews; must never return secret values. */
  readonly maskRequestBody: (mediaType: string, body: Buffer, path: string | undefined) => string;
  readonly now?: () => number;
  readonly newId?: () => string;
}

export interface CheckInput {
  readonly http: CheckHttpRequest;
  readonly signal: AbortSignal;
}

/** Everything known about the request so far, for the audit record. */
interface CheckContext {
  readonly startedMs: number;
  readonly decisionId: string;
  readonly http: CheckHttpRequest;
  identity: AgentIdentity | undefined;
  attributes: KubeRequestAttributes | undefined;
  body: ParsedRequestBody | undefined;
  decision: PolicyDecision | undefined;
  approvalId: string;
  upstreamIdentity: string;
}

const EMPTY_KUBE = { verb: "", apiGroup: "", apiVersion: "", resource: "", subresource: "", namespace: "", name: "" };

/** Subresources whose routes carry ext_proc off (envoy/sidecar.yaml): one decision at upgrade time, no exchange. */
const STREAM_SUBRESOURCES = new Set(["exec", "attach", "portforward", "proxy"]);

function isUninspectedStream(attributes: KubeRequestAttributes): boolean {
  return attributes.upgrade || attributes.kubeVerb === "proxy" || STREAM_SUBRESOURCES.has(attributes.subresource);
}

function describeAction(attributes: KubeRequestAttributes): string {
  if (!attributes.resourceRequest) return `${attributes.verb} ${attributes.path}`;
  const resource = attributes.subresource === "" ? attributes.resource : `${attributes.resource}/${attributes.subresource}`;
  const group = attributes.apiGroup === "" ? "" : `.${attributes.apiGroup}`;
  const name = attributes.name === "" ? "" : ` "${attributes.name}"`;
  const where = attributes.namespace === "" ? "" : ` in namespace "${attributes.namespace}"`;
  return `${attributes.verb} ${resource}${group}${name}${where}`;
}

export class CheckEngine {
  readonly #deps: CheckEngineDeps;
  readonly #now: () => number;
  readonly #newId: () => string;

  constructor(deps: CheckEngineDeps) {
    this.#deps = deps;
    // Sub-millisecond clock: audit rows carry microseconds.
    this.#now = deps.now ?? ((): number => performance.timeOrigin + performance.now());
    this.#newId = deps.newId ?? randomUUID;
  }

  /** Decides one Check. Throws only on internal failure, which the transport turns into a gRPC error (deny). */
  async check(input: CheckInput): Promise<CheckOutcome> {
    const ctx: CheckContext = {
      startedMs: this.#now(),
      decisionId: this.#newId(),
      http: input.http,
      identity: undefined,
      attributes: undefined,
      body: undefined,
      decision: undefined,
      approvalId: "",
      upstreamIdentity: "",
    };
    try {
      const outcome = await this.#decide(ctx, input.signal);
      this.#record(ctx, outcome.code, this.#effectOf(outcome.code), outcome.code === "ALLOWED" ? "" : outcome.status.message);
      return outcome;
    } catch (error) {
      this.#record(ctx, "INTERNAL_ERROR", "Error", `internal error: ${(error as Error).name}`);
      throw error;
    }
  }

  async #decide(ctx: CheckContext, signal: AbortSignal): Promise<CheckOutcome> {
    const http = ctx.http;
    const gate = this.#deps.audit.canAccept();
    if (!gate.ok) {
      return this.#deny(ctx, "AUDIT_UNAVAILABLE", 503, "ServiceUnavailable",
        `airlock: request refused because it cannot be recorded (${gate.reason}); decision ${ctx.decisionId}`);
    }

    const token = bearerTokenFromHeader(http.headers.authorization);
    if (token === undefined) {
      return this.#deny(ctx, "UNAUTHENTICATED", 401, "Unauthorized",
        `airlock: a bearer token is required (decision ${ctx.decisionId})`);
    }
    const verified = await this.#deps.verifyToken(token);
    if (!verified.ok) {
      return this.#deny(ctx, "UNAUTHENTICATED", 401, "Unauthorized",
        `airlock: token rejected: ${verified.message} [${verified.code}] (decision ${ctx.decisionId})`);
    }
    const identity = verified.identity;
    ctx.identity = identity;

    const parsed = parseKubeRequest(http.method, http.path, http.headers);
    if (!parsed.ok) {
      return this.#deny(ctx, "BAD_REQUEST", 400, "BadRequest",
        `airlock: request not understood: ${parsed.message} [${parsed.code}] (decision ${ctx.decisionId})`);
    }
    const attributes = parsed.attributes;
    ctx.attributes = attributes;

    const body = parseRequestBody(http.headers, http.body, http.rawBody);
    ctx.body = body;

    // A token's scope (from token exchange) can only narrow what the policy allows, never widen it: a request
    // outside the scope is denied before the policy is asked; inside it, the policy decides as for any agent.
    const scope = readAgentScope(identity.claims);
    if (!scope.ok) {
      return this.#deny(ctx, "UNAUTHENTICATED", 401, "Unauthorized",
        `airlock: token rejected: its scope claim is malformed (decision ${ctx.decisionId})`);
    }
    const inScope = scopeAllows(scope.scope, attributes);
    if (!inScope.ok) {
      return this.#deny(ctx, "DENIED", 403, "Forbidden",
        `airlock: ${identity.subject} may not ${describeAction(attributes)}: outside the token's scope: ${inScope.reason} (decision ${ctx.decisionId})`);
    }

    const decision = evaluatePolicy(this.#deps.currentPolicy(), {
      attributes,
      user: { subject: identity.subject, groups: identity.groups, claims: identity.claims },
      body: { state: body.state, object: body.object },
    });
    ctx.decision = decision;
    const action = describeAction(attributes);
    const ruleList = decision.rules.map((rule) => rule.id).join(", ");

    switch (decision.effect) {
      case "Deny": {
        const custom = decision.rules.find((rule) => rule.effect === "Deny" && rule.message !== undefined)?.message;
        const why = decision.defaulted ? "no rule allows it (default deny)" : `denied by rule ${ruleList}`;
        return this.#deny(ctx, "DENIED", 403, "Forbidden",
          `airlock: ${identity.subject} may not ${action}: ${why}${custom === undefined ? "" : `: ${custom}`} (decision ${ctx.decisionId})`);
      }
      case "RequireApproval":
        return this.#requireApproval(ctx, identity, attributes, body, decision, action, signal);
      case "Allow":
        return this.#allow(ctx, identity, attributes, decision);
    }
  }

  async #requireApproval(
    ctx: CheckContext,
    identity: AgentIdentity,
    attributes: KubeRequestAttributes,
    body: ParsedRequestBody,
    decision: PolicyDecision,
    action: string,
    signal: AbortSignal,
  ): Promise<CheckOutcome> {
    const rule = decision.rules.find((candidate) => candidate.effect === "RequireApproval");
    const settings = decision.approval;
    const gate = this.#deps.approvals;
    if (!rule || !settings || !gate) {
      return this.#deny(ctx, "DENIED", 403, "Forbidden",
        `airlock: ${action} needs a human approval (rule ${rule?.id ?? "?"}) but no approval store is configured (decision ${ctx.decisionId})`);
    }
    const fingerprint = requestFingerprint({
      subject: identity.subject,
      verb: attributes.verb,
      rawPath: attributes.rawPath,
      contentType: body.mediaType,
      body: body.bytes,
    });
    const outcome = await gate.resolve({
      fingerprint,
      requester: { subject: identity.subject, groups: identity.groups, sessionId: identity.sessionId },
      ruleId: rule.id,
      settings,
      request: { method: ctx.http.method, attributes, mediaType: body.mediaType, body: body.bytes },
      signal,
    });
    ctx.approvalId = outcome.approvalId;
    const answer = buildApprovalStatusResponse(outcome);
    if (answer === null) return this.#allow(ctx, identity, attributes, decision);
    const status = { ...answer.body, message: `airlock: ${answer.body.message} (decision ${ctx.decisionId})` };
    return {
      code: outcome.kind === "pending" ? "PENDING_APPROVAL" : "APPROVAL_REJECTED",
      decisionId: ctx.decisionId,
      httpStatus: answer.httpStatus,
      status,
      responseHeaders: Object.entries(answer.headers).filter(([name]) => name !== "content-type"),
      metadata: this.#metadata(ctx, outcome.kind === "pending" ? "RequireApproval" : "Deny"),
    };
  }

  async #allow(
    ctx: CheckContext,
    identity: AgentIdentity,
    attributes: KubeRequestAttributes,
    decision: PolicyDecision,
  ): Promise<AllowOutcome> {
    const credential = await this.#deps.credentials.credentialFor(
      { subject: identity.subject, groups: identity.groups, sessionId: identity.sessionId },
      decision.serviceAccount,
    );
    ctx.upstreamIdentity = credential.upstreamIdentity;
    const setHeaders: (readonly [string, string])[] = [...credential.headers];
    // Upgrades (exec over WebSocket) negotiate their own protocol; Accept rewriting only matters for bodies ext_proc masks.
    if (!attributes.upgrade) setHeaders.push(["accept", maskableAccept(ctx.http.headers.accept)]);
    return {
      code: "ALLOWED",
      decisionId: ctx.decisionId,
      setHeaders,
      // Envoy applies headers_to_remove after the set mutations: a name Airlock sets must not also be removed, or
      // its own credential (or Impersonate-User) would vanish. Overwriting already replaces the client's value.
      removeHeaders: headersToRemove(ctx.http.headers).filter((name) => !setHeaders.some(([setName]) => setName === name)),
      metadata: this.#metadata(ctx, "Allow"),
    };
  }

  #deny(
    ctx: CheckContext,
    code: DenyOutcome["code"],
    httpStatus: number,
    reason: KubeStatusReason,
    message: string,
    details?: Parameters<typeof kubeStatus>[3],
    responseHeaders: readonly (readonly [string, string])[] = [],
  ): DenyOutcome {
    return {
      code,
      decisionId: ctx.decisionId,
      httpStatus,
      status: kubeStatus(httpStatus, reason, message, details),
      responseHeaders,
      metadata: this.#metadata(ctx, this.#effectOf(code)),
    };
  }

  #effectOf(code: CheckOutcomeCode): CheckDecisionRecord["effect"] {
    switch (code) {
      case "ALLOWED":
        return "Allow";
      case "UNAUTHENTICATED":
        return "Unauthenticated";
      case "PENDING_APPROVAL":
        return "RequireApproval";
      case "AUDIT_UNAVAILABLE":
        return "Error";
      case "BAD_REQUEST":
      case "DENIED":
      case "APPROVAL_REJECTED":
        return "Deny";
    }
  }

  /** ext_authz dynamic_metadata: what ext_proc and the access log learn about this decision. */
  #metadata(ctx: CheckContext, effect: string): { [key: string]: StructJson } {
    const a = ctx.attributes;
    return {
      decision_id: ctx.decisionId,
      request_id: ctx.http.id,
      effect,
      subject: ctx.identity?.subject ?? "",
      groups: [...(ctx.identity?.groups ?? [])],
      session_id: ctx.identity?.sessionId ?? "",
      rule_ids: (ctx.decision?.rules ?? []).map((rule) => rule.id),
      policy_version: ctx.decision?.policyVersion ?? "",
      approval_id: ctx.approvalId,
      upstream_identity: ctx.upstreamIdentity,
      kube: {
        verb: a?.verb ?? "",
        api_group: a?.apiGroup ?? "",
        api_version: a?.apiVersion ?? "",
        resource: a?.resource ?? "",
        subresource: a?.subresource ?? "",
        namespace: a?.namespace ?? "",
        name: a?.name ?? "",
        path: a?.path ?? "",
        resource_request: a?.resourceRequest ?? false,
      },
    };
  }

  #record(ctx: CheckContext, outcome: CheckDecisionRecord["outcome"], effect: CheckDecisionRecord["effect"], reason: string): void {
    const a = ctx.attributes;
    const endedMs = this.#now();
    let requestBody = "";
    if (ctx.body?.bytes !== undefined) {
      try {
        // The path tells the masker which kind a body without `kind` is (e.g. a merge patch to a Secret).
        requestBody = this.#deps.maskRequestBody(ctx.body.mediaType, ctx.body.bytes, ctx.attributes?.path);
      } catch {
        requestBody = "[request body withheld: it could not be masked]";
      }
    }
    this.#deps.audit.recordDecision({
      decisionId: ctx.decisionId,
      requestId: ctx.http.id,
      timeMicros: ctx.startedMs * 1000,
      sessionId: ctx.identity?.sessionId ?? "",
      subject: ctx.identity?.subject ?? "",
      groups: ctx.identity?.groups ?? [],
      upstreamIdentity: ctx.upstreamIdentity,
      method: ctx.http.method,
      path: ctx.http.path,
      kube: a
        ? { verb: a.verb, apiGroup: a.apiGroup, apiVersion: a.apiVersion, resource: a.resource, subresource: a.subresource, namespace: a.namespace, name: a.name }
        : EMPTY_KUBE,
      effect,
      outcome,
      ruleIds: (ctx.decision?.rules ?? []).map((rule) => rule.id),
      policyVersion: ctx.decision?.policyVersion ?? "",
      approvalId: ctx.approvalId,
      reason,
      requestHeaders: redactHeaders(ctx.http.headers),
      requestBody,
      checkLatencyMicros: Math.max(0, Math.round((endedMs - ctx.startedMs) * 1000)),
      exchangeExpected: a === undefined || !isUninspectedStream(a),
    });
  }
}
