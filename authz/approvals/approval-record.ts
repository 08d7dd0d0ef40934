/**
 * @module authz/approvals/approval-record
 * The data model of a pending-approval record: settings from the policy rule, the masked preview, states, history.
 */

/** The approval block of a RequireApproval rule, exactly as the policy produces it. */
export type { ApprovalSettings } from "../policy/evaluate-policy.js";
import type { ApprovalSettings } from "../policy/evaluate-policy.js";

/** Lifecycle of one record. `pending` and `approved` are "open": at most one open record per fingerprint+requester. */
export type ApprovalState = "pending" | "approved" | "rejected" | "expired" | "consumed";

/** Kubernetes request attributes shown to approvers (empty string when not applicable). */
export interface ApprovalRequestAttributes {
  readonly verb: string;
  readonly apiGroup: string;
  readonly apiVersion: string;
  readonly resource: string;
  readonly subresource: string;
  readonly namespace: string;
  readonly name: string;
  readonly resourceRequest: boolean;
}

/** The request body as approvers may see it: never a raw Secret/ConfigMap value. */
export type ApprovalPreviewBody =
  | { readonly kind: "none" }
  | { readonly kind: "withheld"; readonly reason: string }
  | { readonly kind: "masked"; readonly text: string; readonly truncated: boolean };

/** What approvers see of the request. Built by `buildApprovalPreview`, already masked. */
export interface ApprovalPreview {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly attributes: ApprovalRequestAttributes;
  readonly body: ApprovalPreviewBody;
}

/** Who asked: the agent's verified identity and session. */
export interface ApprovalRequester {
  readonly subject: string;
  readonly groups: readonly string[];
  readonly sessionId: string;
}

/** Actions recorded in history and emitted to the audit sink. A vote below the N-of-M threshold is an "approved" action on a still-pending record. */
export type ApprovalAction = "created" | "approved" | "rejected" | "expired" | "consumed";

export interface ApprovalHistoryEntry {
  readonly atMs: number;
  readonly action: ApprovalAction;
  /** The approver's subject, the requester for created/consumed, or "system" for expiry. */
  readonly actor: string;
  readonly reason: string;
}

export interface ApprovalRecord {
  readonly id: string;
  readonly fingerprint: string;
  readonly requester: ApprovalRequester;
  readonly ruleId: string;
  readonly settings: ApprovalSettings;
  readonly preview: ApprovalPreview;
  readonly createdAtMs: number;
  /**
   * While pending: the decision deadline. Once approved: the end of the grant (a `once` grant must be used
   * before it, a `window` grant allows the fingerprint until it). Once rejected: until when the rejection
   * answers retries of the same request.
   */
  readonly expiresAtMs: number;
  readonly state: ApprovalState;
  readonly decidedAtMs: number | null;
  /** Distinct approvers who voted to approve, in order. */
  readonly approvers: readonly string[];
  readonly rejection: { readonly by: string; readonly reason: string } | null;
  readonly history: readonly ApprovalHistoryEntry[];
}
