/**
 * @module test/helpers/audit-events
 * Builders of realistic audit events (decisions, exchanges, approvals) for the audit tests and bench.
 */
import type { ApprovalEvent, DecisionEvent, ExchangeEvent } from "../../tap/audit/audit-event.js";

let counter = 0;

export function decisionEvent(overrides: Partial<DecisionEvent> = {}): DecisionEvent {
  counter++;
  return {
    decisionId: `dec-${process.pid}-${counter}`,
    requestId: `req-${process.pid}-${counter}`,
    timeMicros: Date.now() * 1000 + (counter % 1000),
    sessionId: "session-1",
    subject: "system:serviceaccount:agents:claude",
    groups: ["agents"],
    workloadIdentity: "spiffe://cluster.local/ns/agents/sa/claude",
    method: "GET",
    path: "/api/v1/namespaces/prod/pods",
    kube: { verb: "list", apiGroup: "", apiVersion: "v1", resource: "pods", subresource: "", namespace: "prod", name: "" },
    effect: "Allow",
    ruleIds: ["read-only-outside-secrets"],
    policyVersion: "v1",
    approvalId: "",
    reason: "",
    maskedRequestHeaders: { accept: "application/json", "user-agent": "kubectl/v1.32" },
    maskedRequestBody: "",
    checkLatencyMicros: 120,
    ...overrides,
  };
}

export function exchangeFor(d: DecisionEvent, overrides: Partial<ExchangeEvent> = {}): ExchangeEvent {
  return {
    requestId: d.requestId,
    decisionId: d.decisionId,
    responseStatus: 200,
    maskedRequestBody: "",
    maskedResponseBody: '{"kind":"PodList","items":[]}',
    responseTruncated: false,
    requestBytes: 0,
    responseBytes: 29,
    upstreamLatencyMicros: 2_000,
    outcome: "complete",
    reason: "",
    ...overrides,
  };
}

export function approvalEvent(overrides: Partial<ApprovalEvent> = {}): ApprovalEvent {
  return {
    approvalId: "apr-1",
    timeMicros: Date.now() * 1000,
    action: "created",
    actor: "system:serviceaccount:agents:claude",
    reason: "",
    fingerprint: "sha256:abc",
    requesterSubject: "system:serviceaccount:agents:claude",
    requesterSessionId: "session-1",
    ruleId: "deleting-workloads-needs-a-human",
    ...overrides,
  };
}
