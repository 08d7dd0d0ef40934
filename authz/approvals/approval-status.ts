/**
 * @module authz/approvals/approval-status
 * Builds the Kubernetes Status answer (HTTP status, headers, JSON body) the agent gets for a pending or rejected approval.
 */
import type { ApprovalOutcome } from "./approval-outcome.js";

/** metav1.Status as kubectl and client-go decode it; kubectl prints `message` after "Error from server (<reason>)". */
export interface KubernetesStatus {
  readonly kind: "Status";
  readonly apiVersion: "v1";
  readonly metadata: Record<string, never>;
  readonly status: "Failure";
  readonly message: string;
  readonly reason: string;
  readonly details: {
    readonly name: string;
    readonly group: string;
    readonly kind: string;
    readonly retryAfterSeconds?: number;
    readonly causes: readonly { readonly reason: string; readonly message: string; readonly field?: string }[];
  };
  readonly code: number;
}

export interface ApprovalStatusResponse {
  readonly httpStatus: 429 | 403;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: KubernetesStatus;
}

export const PENDING_APPROVAL_REASON = "PendingApproval";
export const APPROVAL_REJECTED_REASON = "Forbidden";
const DETAILS_GROUP = "airlock.dev";
const DETAILS_KIND = "approvals";
const MAX_REASON_CHARS = 500;

/** Approver-written text goes to the agent and into a terminal: no control characters, bounded length. */
export function sanitizeReasonText(text: string): string {
  // eslint-disable-next-line no-control-regex -- stripping control characters is the point
  const flat = text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ").trim();
  return flat.length > MAX_REASON_CHARS ? `${flat.slice(0, MAX_REASON_CHARS)}…` : flat;
}

function shellQuote(value: string): string {
  return /^[A-Za-z0-9_.:/@-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * Pending → 429 + Retry-After: client-go retries that on its own (up to 10 times), so kubectl waits instead of
 * failing; when it does give up, the message says what to do. Rejected → 403 with the approver's reason.
 * Granted has no Status (the Check allows), so it returns null.
 */
export function buildApprovalStatusResponse(outcome: ApprovalOutcome): ApprovalStatusResponse | null {
  switch (outcome.kind) {
    case "granted":
      return null;
    case "pending": {
      const retryAfterSeconds = Math.max(1, Math.ceil(outcome.retryAfterSeconds));
      const progress =
        outcome.approvalsRequired > 1
          ? ` (${outcome.approvalsReceived} of ${outcome.approvalsRequired} approvals so far)`
          : "";
      const message =
        `this request needs human approval under rule ${outcome.ruleId}: approval ${outcome.approvalId} is pending` +
        `${progress} until ${outcome.expiresAt}. An approver can run ` +
        `"airlock approvals approve ${shellQuote(outcome.approvalId)} --reason <why>" or POST ${outcome.approveUrl}/approve. ` +
        `Retry the same request after approval; it will be allowed then.`;
      return {
        httpStatus: 429,
        headers: { "retry-after": String(retryAfterSeconds), "content-type": "application/json" },
        body: {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Failure",
          message,
          reason: PENDING_APPROVAL_REASON,
          details: {
            name: outcome.approvalId,
            group: DETAILS_GROUP,
            kind: DETAILS_KIND,
            retryAfterSeconds,
            causes: [
              { reason: "ApprovalURL", message: outcome.approveUrl },
              { reason: "ApprovalExpires", message: outcome.expiresAt },
              { reason: "ApprovalRule", message: outcome.ruleId },
            ],
          },
          code: 429,
        },
      };
    }
    case "rejected": {
      const reason = sanitizeReasonText(outcome.reason);
      const approver = sanitizeReasonText(outcome.approver);
      return {
        httpStatus: 403,
        headers: { "content-type": "application/json" },
        body: {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Failure",
          message:
            `approval ${outcome.approvalId} for this request (rule ${outcome.ruleId}) was rejected by ${approver}: ` + reason,
          reason: APPROVAL_REJECTED_REASON,
          details: {
            name: outcome.approvalId,
            group: DETAILS_GROUP,
            kind: DETAILS_KIND,
            causes: [{ reason: "ApprovalRejected", message: reason }],
          },
          code: 403,
        },
      };
    }
  }
}
