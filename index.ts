/**
 * @module airlock
 * Library entry point: every piece of Airlock importable on its own (decision path, identity, policy, credentials,
 * approvals, masking, ext_proc, audit) plus the composition root that `airlock serve` uses.
 */
export { loadEnvoyServices, loadEnvoyConfigRoot } from "./protos/load.js";
export { toProtoStruct, fromProtoStruct } from "./protos/struct-value.js";

export { parseKubeRequest } from "./authz/kube/request-attributes.js";
export type { KubeRequestAttributes, ParseKubeRequestResult } from "./authz/kube/request-attributes.js";
export { requestFingerprint, canonicalJson } from "./authz/kube/request-fingerprint.js";

export { createTokenVerifier, bearerTokenFromHeader } from "./authz/identity/token-verifier.js";
export type { AgentIdentity, TokenVerifier, VerifyTokenResult, IdentityErrorCode } from "./authz/identity/token-verifier.js";
export { identityConfigSchema, parseIdentityConfig } from "./authz/identity/identity-config.js";
export { openDevIssuer, devIdentityConfig, DEV_ISSUER, DEV_AUDIENCE } from "./authz/identity/dev-issuer.js";

export { parsePolicy, loadPolicyFile, BASELINE_POLICY_PATH } from "./authz/policy/compile-policy.js";
export type { CompiledPolicy } from "./authz/policy/compile-policy.js";
export { evaluatePolicy } from "./authz/policy/evaluate-policy.js";
export type { PolicyDecision, PolicyInput, PolicyEffect } from "./authz/policy/evaluate-policy.js";
export { watchPolicyFile } from "./authz/policy/policy-watcher.js";
export { runPolicyTests, runPolicyTestFile } from "./authz/policy/policy-tests.js";

export { CheckEngine } from "./authz/check/check-engine.js";
export type { CheckEngineDeps, ApprovalGate, AuditGate } from "./authz/check/check-engine.js";
export type { CheckOutcome, CheckDecisionRecord } from "./authz/check/check-outcome.js";
export { createAuthorizationHandlers } from "./authz/check/authorization-service.js";
export { toCheckResponse } from "./authz/check/check-response.js";
export { explainRequest } from "./authz/check/explain-request.js";

export { createUpstreamCredentials } from "./authz/credentials/upstream-credentials.js";
export { credentialsConfigSchema } from "./authz/credentials/credentials-config.js";

export { createApprovalService } from "./authz/approvals/approval-service.js";
export { buildApprovalApp } from "./authz/approvals/approval-app.js";
export { openSqliteApprovalStore } from "./authz/approvals/sqlite-approval-store.js";
export { openPostgresApprovalStore } from "./authz/approvals/postgres-approval-store.js";

export { maskResponseBody } from "./tap/mask/mask-response.js";
export { maskRequestBody } from "./tap/mask/mask-request-body.js";
export { loadMaskConfig, defaultMaskConfig } from "./tap/mask/mask-config.js";
export { createExternalProcessorHandlers } from "./tap/ext-proc/ext-proc-service.js";
export { openAuditSink } from "./tap/audit/audit-sink.js";
export type { AuditSink, DecisionEvent, ExchangeEvent, ApprovalEvent } from "./tap/audit/audit-event.js";

export { startAirlock } from "./bin/start-airlock.js";
export { loadAirlockConfig, parseAirlockConfig, airlockConfigSchema } from "./bin/airlock-config.js";
