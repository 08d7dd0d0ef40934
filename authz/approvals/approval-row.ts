/**
 * @module authz/approvals/approval-row
 * Maps the relational rows both stores share (approvals, approval_votes, approval_history) to ApprovalRecord, validating JSON columns.
 */
import { z } from "zod";
import { approvalPreviewSchema } from "./approval-preview-schema.js";
import type { ApprovalAction, ApprovalRecord, ApprovalState } from "./approval-record.js";
import type { NewApproval } from "./approval-store.js";

/** Column values as both drivers return them (PostgreSQL BIGINT arrives as a string). */
export interface ApprovalRow {
  readonly id: string;
  readonly fingerprint: string;
  readonly requester_subject: string;
  readonly requester_groups: string;
  readonly requester_session: string;
  readonly rule_id: string;
  readonly settings: string;
  readonly preview: string;
  readonly created_at_ms: number | string;
  readonly expires_at_ms: number | string;
  readonly state: string;
  readonly decided_at_ms: number | string | null;
  readonly rejected_by: string | null;
  readonly rejection_reason: string | null;
}

export interface ApprovalVoteRow {
  readonly approval_id: string;
  readonly approver: string;
}

export interface ApprovalHistoryRow {
  readonly approval_id: string;
  readonly at_ms: number | string;
  readonly action: string;
  readonly actor: string;
  readonly reason: string;
}

/** The columns a new record is inserted with (besides `state`), in the order of {@link newApprovalRowValues}. */
export const NEW_APPROVAL_COLUMNS: readonly string[] = [
  "id",
  "fingerprint",
  "requester_subject",
  "requester_groups",
  "requester_session",
  "rule_id",
  "settings",
  "preview",
  "namespace",
  "created_at_ms",
  "expires_at_ms",
];

/** The values of {@link NEW_APPROVAL_COLUMNS} for a new pending record; JSON columns are serialised here. */
export function newApprovalRowValues(input: NewApproval): (string | number)[] {
  return [
    input.id,
    input.fingerprint,
    input.requester.subject,
    JSON.stringify(input.requester.groups),
    input.requester.sessionId,
    input.ruleId,
    JSON.stringify(input.settings),
    JSON.stringify(input.preview),
    input.preview.attributes.namespace,
    input.createdAtMs,
    input.expiresAtMs,
  ];
}

const STATES: readonly ApprovalState[] = ["pending", "approved", "rejected", "expired", "consumed"];
const ACTIONS: readonly ApprovalAction[] = ["created", "approved", "rejected", "expired", "consumed"];

const settingsSchema = z.strictObject({
  approverGroups: z.array(z.string()).readonly(),
  minApprovals: z.number().int().positive(),
  grant: z.enum(["once", "window"]),
  ttlSeconds: z.number().int().positive(),
});

const groupsSchema = z.array(z.string());

function toMs(value: number | string): number {
  const n = typeof value === "number" ? value : Number(value);
  if (!Number.isSafeInteger(n)) throw new Error("approval row: corrupt timestamp");
  return n;
}

function oneOf<T extends string>(value: string, allowed: readonly T[], what: string): T {
  const found = allowed.find((a) => a === value);
  if (found === undefined) throw new Error(`approval row: unknown ${what}`);
  return found;
}

/** Throws on a corrupt row, so a damaged store denies rather than grants. */
export function approvalRecordFromRows(
  row: ApprovalRow,
  votes: readonly ApprovalVoteRow[],
  history: readonly ApprovalHistoryRow[],
): ApprovalRecord {
  const rejection =
    row.rejected_by === null ? null : { by: row.rejected_by, reason: row.rejection_reason ?? "" };
  return {
    id: row.id,
    fingerprint: row.fingerprint,
    requester: {
      subject: row.requester_subject,
      groups: groupsSchema.parse(JSON.parse(row.requester_groups)),
      sessionId: row.requester_session,
    },
    ruleId: row.rule_id,
    settings: settingsSchema.parse(JSON.parse(row.settings)),
    preview: approvalPreviewSchema.parse(JSON.parse(row.preview)),
    createdAtMs: toMs(row.created_at_ms),
    expiresAtMs: toMs(row.expires_at_ms),
    state: oneOf(row.state, STATES, "state"),
    decidedAtMs: row.decided_at_ms === null ? null : toMs(row.decided_at_ms),
    approvers: votes.filter((v) => v.approval_id === row.id).map((v) => v.approver),
    rejection,
    history: history
      .filter((h) => h.approval_id === row.id)
      .map((h) => ({ atMs: toMs(h.at_ms), action: oneOf(h.action, ACTIONS, "action"), actor: h.actor, reason: h.reason })),
  };
}

