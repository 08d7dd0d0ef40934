/**
 * @module authz/approvals/approval-store
 * The storage contract every approval store (SQLite, PostgreSQL) implements; each operation is atomic on its own.
 */
import type { ApprovalRecord, ApprovalState } from "./approval-record.js";

/** Input for a new pending record; the store adds state, history and the id it was given. */
export type NewApproval = Pick<
  ApprovalRecord,
  "id" | "fingerprint" | "requester" | "ruleId" | "settings" | "preview" | "createdAtMs" | "expiresAtMs"
>;

export interface ApprovalListFilter {
  readonly state?: ApprovalState;
  readonly namespace?: string;
  readonly requesterSubject?: string;
  readonly limit: number;
}

/** One approver's vote or rejection. `ttlSeconds` of the record decides the grant end once approved. */
export interface ApprovalDecisionInput {
  readonly id: string;
  readonly action: "approve" | "reject";
  readonly approver: string;
  readonly reason: string;
  readonly nowMs: number;
}

/** Why a decision was not recorded; the API maps these to 404 / 409. */
export type ApprovalDecisionFailure = "not_found" | "already_decided" | "expired" | "duplicate_approver";

export type ApprovalDecisionResult =
  | {
      readonly ok: true;
      readonly record: ApprovalRecord;
      /** True when this call moved the record out of `pending` (threshold reached, or rejected). */
      readonly decided: boolean;
    }
  | { readonly ok: false; readonly failure: ApprovalDecisionFailure; readonly record: ApprovalRecord | null };

/**
 * Each method is one transaction. The guarantees the service relies on, across processes sharing a store:
 * - `createPending` never leaves two open (pending/approved) records for one fingerprint+requester;
 * - `consumeOnce` succeeds for exactly one caller per approved `once` record;
 * - `decide` counts each approver once and reaches `approved` exactly when the N-th distinct vote lands;
 * - `expire` / `expireDue` move a record to `expired` once, so each expiry is reported once.
 */
export interface ApprovalStore {
  readonly kind: "sqlite" | "postgres";
  get(id: string): Promise<ApprovalRecord | null>;
  /** The open (pending or approved) record for this fingerprint and requester subject, if any. */
  findOpen(fingerprint: string, requesterSubject: string): Promise<ApprovalRecord | null>;
  /** The newest rejected record for this fingerprint and requester whose `expiresAtMs` is after `nowMs`. */
  findActiveRejection(fingerprint: string, requesterSubject: string, nowMs: number): Promise<ApprovalRecord | null>;
  /** Inserts a pending record unless an open one exists; returns whichever record is open afterwards. */
  createPending(input: NewApproval): Promise<{ readonly record: ApprovalRecord; readonly created: boolean }>;
  /** Records a vote or rejection. An overdue pending record fails with "expired" without being changed (call `expire`). */
  decide(input: ApprovalDecisionInput): Promise<ApprovalDecisionResult>;
  /** approved+once+unexpired → consumed; true for exactly one caller. */
  consumeOnce(id: string, consumer: string, nowMs: number): Promise<boolean>;
  /** pending/approved with `expiresAtMs <= nowMs` → expired; true if this call did it. */
  expire(id: string, nowMs: number): Promise<boolean>;
  /** Expires every overdue open record; returns the records this call expired. */
  expireDue(nowMs: number): Promise<readonly ApprovalRecord[]>;
  list(filter: ApprovalListFilter): Promise<readonly ApprovalRecord[]>;
  /** Calls `listener(id)` after any change to a record, in this process or (PostgreSQL) any other; `"*"` means "anything may have changed". */
  subscribe(listener: (id: string) => void): () => void;
  close(): Promise<void>;
}
