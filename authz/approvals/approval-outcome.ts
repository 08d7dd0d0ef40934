/**
 * @module authz/approvals/approval-outcome
 * What the approval service tells the ext_authz Check about a RequireApproval request.
 */

export type ApprovalOutcome =
  | {
      readonly kind: "granted";
      readonly approvalId: string;
      readonly grant: "once" | "window";
      readonly ruleId: string;
    }
  | {
      readonly kind: "pending";
      readonly approvalId: string;
      /** ISO 8601: when this pending approval lapses. */
      readonly expiresAt: string;
      readonly retryAfterSeconds: number;
      /** The API resource of this approval (`<publicUrl>/v1/approvals/<id>`); approve by POSTing to `<approveUrl>/approve`. */
      readonly approveUrl: string;
      readonly ruleId: string;
      readonly approvalsReceived: number;
      readonly approvalsRequired: number;
    }
  | {
      readonly kind: "rejected";
      readonly approvalId: string;
      readonly reason: string;
      readonly approver: string;
      readonly ruleId: string;
    };
