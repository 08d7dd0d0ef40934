/**
 * @module test/unit/authz/approvals/approval-status.test
 * The Kubernetes Status answers for pending and rejected approvals.
 */
import { describe, expect, it } from "vitest";
import type { ApprovalOutcome } from "../../../../authz/approvals/approval-outcome.js";
import { buildApprovalStatusResponse, sanitizeReasonText } from "../../../../authz/approvals/approval-status.js";

const pending: ApprovalOutcome = {
  kind: "pending",
  approvalId: "apr_0123456789abcdef",
  expiresAt: "2026-01-01T00:15:00.000Z",
  retryAfterSeconds: 10,
  approveUrl: "https://airlock.example/v1/approvals/apr_0123456789abcdef",
  ruleId: "deleting-workloads-needs-a-human",
  approvalsReceived: 0,
  approvalsRequired: 1,
};

describe("buildApprovalStatusResponse", () => {
  it("has no Status for a granted request", () => {
    expect(buildApprovalStatusResponse({ kind: "granted", approvalId: "a", grant: "once", ruleId: "r" })).toBeNull();
  });

  it("answers pending with 429, Retry-After and a metav1.Status naming the approval", () => {
    const res = buildApprovalStatusResponse(pending);
    expect(res).toEqual({
      httpStatus: 429,
      headers: { "retry-after": "10", "content-type": "application/json" },
      body: {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        reason: "PendingApproval",
        code: 429,
        message: expect.any(String) as unknown,
        details: {
          name: "apr_0123456789abcdef",
          group: "airlock.dev",
          kind: "approvals",
          retryAfterSeconds: 10,
          causes: [
            { reason: "ApprovalURL", message: pending.approveUrl },
            { reason: "ApprovalExpires", message: "2026-01-01T00:15:00.000Z" },
            { reason: "ApprovalRule", message: "deleting-workloads-needs-a-human" },
          ],
        },
      },
    });
    const message = res?.body.message ?? "";
    expect(message).toContain("needs human approval under rule deleting-workloads-needs-a-human");
    expect(message).toContain('airlock approvals approve apr_0123456789abcdef --reason <why>');
    expect(message).toContain(`POST ${pending.approveUrl}/approve`);
    expect(message).toContain("until 2026-01-01T00:15:00.000Z");
    expect(message).not.toContain("approvals so far");
  });

  it("shows N-of-M progress and rounds Retry-After up to a whole second of at least 1", () => {
    const res = buildApprovalStatusResponse({ ...pending, approvalsReceived: 1, approvalsRequired: 3, retryAfterSeconds: 0.2 });
    expect(res?.headers["retry-after"]).toBe("1");
    expect(res?.body.details.retryAfterSeconds).toBe(1);
    expect(res?.body.message).toContain("(1 of 3 approvals so far)");
  });

  it("answers rejected with 403 and the approver's reason, control characters removed", () => {
    const res = buildApprovalStatusResponse({
      kind: "rejected",
      approvalId: "apr_1",
      reason: "freeze\r\nuntil\u001b[31m Monday",
      approver: "bob",
      ruleId: "r1",
    });
    expect(res?.httpStatus).toBe(403);
    expect(res?.headers).toEqual({ "content-type": "application/json" });
    expect(res?.body).toMatchObject({ code: 403, reason: "Forbidden", details: { name: "apr_1", causes: [{ reason: "ApprovalRejected", message: "freeze until [31m Monday" }] } });
    expect(res?.body.message).toBe("approval apr_1 for this request (rule r1) was rejected by bob: freeze until [31m Monday");
  });
});

describe("sanitizeReasonText", () => {
  it("bounds length and trims", () => {
    expect(sanitizeReasonText("  ok  ")).toBe("ok");
    const long = sanitizeReasonText("x".repeat(2000));
    expect(long).toHaveLength(501);
    expect(long.endsWith("…")).toBe(true);
  });
});
