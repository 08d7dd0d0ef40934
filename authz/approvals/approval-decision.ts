/**
 * @module authz/approvals/approval-decision
 * The rules every approval store applies inside its `decide` transaction: when a vote or rejection is refused, and how long a decision lasts.
 */
import type { ApprovalRecord } from "./approval-record.js";
import type { ApprovalDecisionInput, ApprovalDecisionResult } from "./approval-store.js";

/** Either the `decide` answer that changes nothing, or the record the vote or rejection may be recorded against. */
export type ApprovalDecisionCheck =
  | Extract<ApprovalDecisionResult, { readonly ok: false }>
  | { readonly ok: true; readonly record: ApprovalRecord };

/**
 * Whether `input` may be recorded against `record` (read under the store's lock). An overdue pending record is
 * reported as expired but not changed: the caller's `expire` then records the expiry exactly once.
 */
export function checkDecision(record: ApprovalRecord | null, input: ApprovalDecisionInput): ApprovalDecisionCheck {
  if (record === null) return { ok: false, failure: "not_found", record: null };
  if (record.state !== "pending") {
    return { ok: false, failure: record.state === "expired" ? "expired" : "already_decided", record };
  }
  if (record.expiresAtMs <= input.nowMs) return { ok: false, failure: "expired", record };
  if (record.approvers.includes(input.approver)) return { ok: false, failure: "duplicate_approver", record };
  return { ok: true, record };
}

/** A rejection blocks, and an approval grants, for the rule's `ttlSeconds` from the decision. */
export function decisionExpiresAtMs(record: ApprovalRecord, nowMs: number): number {
  return nowMs + record.settings.ttlSeconds * 1000;
}
