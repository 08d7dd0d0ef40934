/**
 * @module test/unit/authz/approvals/webhook-payload.test
 * The webhook payload (Slack-compatible text, no request body) and the retry backoff.
 */
import { describe, expect, it } from "vitest";
import type { ApprovalRecord } from "../../../../authz/approvals/approval-record.js";
import { buildApprovalWebhookPayload, webhookBackoffMs } from "../../../../authz/approvals/webhook-notifier.js";

const record: ApprovalRecord = {
  id: "apr_1",
  fingerprint: "fp",
  requester: { subject: "agent<x>", groups: ["agents"], sessionId: "s1" },
  ruleId: "r1",
  settings: { approverGroups: ["sre"], minApprovals: 2, grant: "once", ttlSeconds: 900 },
  preview: {
    method: "DELETE",
    path: "/apis/apps/v1/namespaces/prod/deployments/web",
    query: "",
    attributes: { verb: "delete", apiGroup: "apps", apiVersion: "v1", resource: "deployments", subresource: "", namespace: "prod", name: "web", resourceRequest: true },
    body: { kind: "masked", text: '{"secretish":"value-never-sent"}', truncated: false },
  },
  createdAtMs: 0,
  expiresAtMs: 900_000,
  state: "pending",
  decidedAtMs: null,
  approvers: [],
  rejection: null,
  history: [{ atMs: 0, action: "created", actor: "agent<x>", reason: "" }],
};

describe("buildApprovalWebhookPayload", () => {
  it("writes Slack text with escaped user-controlled values and structured fields, without the body", () => {
    const p = buildApprovalWebhookPayload({ event: "created", record, approvalUrl: "https://a.example/v1/approvals/apr_1" });
    expect(p.text).toContain("Approval needed: *agent&lt;x&gt;* wants to `delete prod/deployments web`");
    expect(p.text).toContain("needs 2 approval(s) from sre before 1970-01-01T00:15:00.000Z");
    expect(p.text).toContain("<https://a.example/v1/approvals/apr_1|review>");
    expect(p.approval).toMatchObject({ id: "apr_1", namespace: "prod", resource: "deployments", approvalsRequired: 2 });
    expect(JSON.stringify(p)).not.toContain("value-never-sent");
  });

  it("names the rejecting approver and reason", () => {
    const rejected: ApprovalRecord = { ...record, state: "rejected", rejection: { by: "bob", reason: "freeze" } };
    const p = buildApprovalWebhookPayload({ event: "rejected", record: rejected, approvalUrl: "u" });
    expect(p.text).toContain("Rejected:");
    expect(p.text).toContain("by bob: freeze");
    expect(p.approval).toMatchObject({ rejectedBy: "bob", reason: "freeze" });
  });
});

describe("webhookBackoffMs", () => {
  it("grows exponentially with jitter in [ceiling/2, ceiling] and is capped", () => {
    expect(webhookBackoffMs(1, 500, 60_000, () => 0)).toBe(250);
    expect(webhookBackoffMs(1, 500, 60_000, () => 1)).toBe(500);
    expect(webhookBackoffMs(4, 500, 60_000, () => 1)).toBe(4000);
    expect(webhookBackoffMs(30, 500, 60_000, () => 1)).toBe(60_000);
  });
});
