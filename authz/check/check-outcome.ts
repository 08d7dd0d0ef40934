/**
 * @module authz/check/check-outcome
 * The closed set of answers a Check can give and the audit record each one produces; check-engine decides,
 * check-response translates to Envoy's CheckResponse.
 */
import type { StructJson } from "../../protos/struct-value.js";
import type { KubernetesStatus } from "../approvals/approval-status.js";
import type { KubeStatus } from "./kube-status.js";

/** Every Check ends in exactly one of these; the gRPC status code sent to Envoy follows from it. */
export type CheckOutcomeCode =
  | "ALLOWED"
  | "UNAUTHENTICATED"
  | "BAD_REQUEST"
  | "DENIED"
  | "PENDING_APPROVAL"
  | "APPROVAL_REJECTED"
  | "AUDIT_UNAVAILABLE";

export interface AllowOutcome {
  readonly code: "ALLOWED";
  readonly decisionId: string;
  /** Headers to set upstream; repeated names are appended in order (Impersonate-Group). */
  readonly setHeaders: readonly (readonly [name: string, value: string])[];
  readonly removeHeaders: readonly string[];
  readonly metadata: { readonly [key: string]: StructJson };
}

export interface DenyOutcome {
  readonly code: Exclude<CheckOutcomeCode, "ALLOWED">;
  readonly decisionId: string;
  readonly httpStatus: number;
  /** The metav1.Status JSON body the agent receives; its `code` equals httpStatus. */
  readonly status: KubeStatus | KubernetesStatus;
  readonly responseHeaders: readonly (readonly [name: string, value: string])[];
  readonly metadata: { readonly [key: string]: StructJson };
}

export type CheckOutcome = AllowOutcome | DenyOutcome;

/** What ext_authz hands the audit sink for every Check (denied and pending requests never reach ext_proc). */
export interface CheckDecisionRecord {
  readonly decisionId: string;
  readonly requestId: string;
  readonly timeMicros: number;
  readonly sessionId: string;
  readonly subject: string;
  readonly groups: readonly string[];
  readonly upstreamIdentity: string;
  readonly method: string;
  readonly path: string;
  readonly kube: {
    readonly verb: string;
    readonly apiGroup: string;
    readonly apiVersion: string;
    readonly resource: string;
    readonly subresource: string;
    readonly namespace: string;
    readonly name: string;
  };
  readonly effect: "Allow" | "Deny" | "RequireApproval" | "Unauthenticated" | "Error";
  readonly outcome: CheckOutcomeCode | "INTERNAL_ERROR";
  readonly ruleIds: readonly string[];
  readonly policyVersion: string;
  readonly approvalId: string;
  readonly reason: string;
  readonly requestHeaders: Readonly<Record<string, string>>;
  readonly requestBody: string;
  readonly checkLatencyMicros: number;
  /** False for streams Envoy does not send through ext_proc (exec, attach, port-forward, proxy). */
  readonly exchangeExpected: boolean;
}
