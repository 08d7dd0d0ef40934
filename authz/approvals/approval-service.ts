/**
 * @module authz/approvals/approval-service
 * The approval core used by the ext_authz Check and the approver API: create-or-find, grants, decisions, expiry, hold-mode waits.
 */
import { randomBytes } from "node:crypto";
import type { ApprovalOutcome } from "./approval-outcome.js";
import type {
  ApprovalAction,
  ApprovalPreview,
  ApprovalRecord,
  ApprovalRequester,
  ApprovalSettings,
  ApprovalState,
} from "./approval-record.js";
import type { ApprovalStore } from "./approval-store.js";
import type { ApprovalsConfig } from "./approvals-config.js";
import type { ApprovalNotificationEvent, WebhookNotifier } from "./webhook-notifier.js";

/** A verified approver token's identity (from the identity module, approver audience). */
export interface ApproverIdentity {
  readonly subject: string;
  readonly groups: readonly string[];
  readonly issuer: string;
}

/** One approval event for the audit sink. */
export interface ApprovalAuditEvent {
  readonly approvalId: string;
  readonly timeMicros: number;
  readonly action: ApprovalAction;
  readonly actor: string;
  readonly reason: string;
  readonly fingerprint: string;
  readonly requesterSubject: string;
  readonly requesterSession: string;
  readonly ruleId: string;
}

export interface ResolvePendingRequestInput {
  readonly fingerprint: string;
  readonly requester: ApprovalRequester;
  readonly ruleId: string;
  readonly settings: ApprovalSettings;
  readonly preview: ApprovalPreview;
  /** Aborted when the Check's deadline is near: a held Check answers (pending) before Envoy gives up. */
  readonly signal?: AbortSignal;
}

/** The closed set of reasons an approver action is refused; the API maps each to one HTTP status. */
export type ApprovalDecisionErrorCode =
  | "not_found"
  | "invalid_reason"
  | "agent_identity"
  | "not_an_approver"
  | "self_approval"
  | "duplicate_approver"
  | "already_decided"
  | "expired";

export type ApprovalDecisionOutcome =
  | { readonly ok: true; readonly record: ApprovalRecord; readonly decided: boolean }
  | { readonly ok: false; readonly code: ApprovalDecisionErrorCode; readonly message: string };

export interface ApprovalDecisionRequest {
  readonly approvalId: string;
  readonly action: "approve" | "reject";
  readonly identity: ApproverIdentity;
  readonly reason: string;
}

export type ApprovalServiceConfig = Pick<
  ApprovalsConfig,
  | "pendingMode"
  | "holdSeconds"
  | "retryAfterSeconds"
  | "defaultTtlSeconds"
  | "publicUrl"
  | "agentGroups"
  | "agentIssuers"
  | "expirySweepSeconds"
>;

export interface ApprovalServiceDeps {
  readonly store: ApprovalStore;
  readonly config: ApprovalServiceConfig;
  /** The audit sink's approval entry point; it must not throw for long (it spools), but failures are caught. */
  readonly recordApproval: (event: ApprovalAuditEvent) => void | Promise<void>;
  readonly notifier?: WebhookNotifier;
  readonly nowMs?: () => number;
  readonly newId?: () => string;
  /** Told about audit or sweep failures; never receives tokens or bodies. */
  readonly onError?: (what: string, error: unknown) => void;
}

export interface ApprovalService {
  /**
   * The Check's entry point for a RequireApproval decision. In `hold` mode a pending answer first waits up to
   * holdSeconds for a decision. Throws only on store failure, which the Check must turn into a deny.
   */
  resolvePendingRequest(input: ResolvePendingRequestInput, options?: { readonly signal?: AbortSignal }): Promise<ApprovalOutcome>;
  /** Resolves with the record once it leaves `pending` (or lapses), or as it is at the timeout/abort; null if unknown. */
  waitForDecision(approvalId: string, timeoutMs: number, signal?: AbortSignal): Promise<ApprovalRecord | null>;
  decide(request: ApprovalDecisionRequest): Promise<ApprovalDecisionOutcome>;
  get(approvalId: string): Promise<ApprovalRecord | null>;
  list(filter: { readonly state?: ApprovalState; readonly namespace?: string; readonly requesterSubject?: string; readonly limit: number }): Promise<readonly ApprovalRecord[]>;
  /** Expires overdue records once each (audit + notification); returns how many. */
  sweepExpired(): Promise<number>;
  /** True when the identity belongs to an agent group or agent issuer: such identities never approve. */
  isAgentIdentity(identity: ApproverIdentity): boolean;
  /** True when the identity is in one of the record's approver groups (and may therefore see and decide it). */
  isApproverFor(identity: ApproverIdentity, record: ApprovalRecord): boolean;
  approvalUrl(approvalId: string): string;
  /** Starts the periodic expiry sweep (unref'd timer). */
  start(): void;
  /** Stops the sweep and releases waiters; the store is closed by its owner. */
  close(): void;
}

const MAX_RESOLVE_ATTEMPTS = 8;
/** Held Checks re-read the store this often even without a notification (a dropped LISTEN connection). */
const HOLD_POLL_MS = 2000;

export function newApprovalId(): string {
  return `apr_${randomBytes(8).toString("hex")}`;
}

export function createApprovalService(deps: ApprovalServiceDeps): ApprovalService {
  const { store, config } = deps;
  const now = deps.nowMs ?? Date.now;
  const newId = deps.newId ?? newApprovalId;
  const baseUrl = config.publicUrl.replace(/\/+$/, "");
  const agentGroups = new Set(config.agentGroups);
  const agentIssuers = new Set(config.agentIssuers);
  let sweepTimer: NodeJS.Timeout | null = null;
  const closers = new Set<() => void>();

  const reportError = (what: string, error: unknown) => {
    deps.onError?.(what, error);
  };

  const approvalUrl = (id: string) => `${baseUrl}/v1/approvals/${encodeURIComponent(id)}`;

  async function emit(record: ApprovalRecord, action: ApprovalAction, actor: string, reason: string, atMs: number) {
    try {
      await deps.recordApproval({
        approvalId: record.id,
        timeMicros: atMs * 1000,
        action,
        actor,
        reason,
        fingerprint: record.fingerprint,
        requesterSubject: record.requester.subject,
        requesterSession: record.requester.sessionId,
        ruleId: record.ruleId,
      });
    } catch (error) {
      reportError("audit", error);
    }
  }

  function notify(record: ApprovalRecord, event: ApprovalNotificationEvent) {
    deps.notifier?.notify({ event, record, approvalUrl: approvalUrl(record.id) });
  }

  async function expireAndReport(id: string, atMs: number): Promise<void> {
    if (!(await store.expire(id, atMs))) return;
    const record = await store.get(id);
    if (record === null) return;
    await emit(record, "expired", "system", "", atMs);
    notify(record, "expired");
  }

  /** Rules with a missing or nonsensical TTL/threshold get the safe reading: a default TTL, at least one approver. */
  function normalizeSettings(settings: ApprovalSettings): ApprovalSettings {
    return {
      approverGroups: [...settings.approverGroups],
      minApprovals: Number.isInteger(settings.minApprovals) && settings.minApprovals >= 1 ? settings.minApprovals : 1,
      grant: settings.grant === "window" ? "window" : "once",
      ttlSeconds:
        Number.isInteger(settings.ttlSeconds) && settings.ttlSeconds > 0 ? settings.ttlSeconds : config.defaultTtlSeconds,
    };
  }

  function pendingOutcome(record: ApprovalRecord): ApprovalOutcome {
    return {
      kind: "pending",
      approvalId: record.id,
      expiresAt: new Date(record.expiresAtMs).toISOString(),
      retryAfterSeconds: config.retryAfterSeconds,
      approveUrl: approvalUrl(record.id),
      ruleId: record.ruleId,
      approvalsReceived: record.approvers.length,
      approvalsRequired: record.settings.minApprovals,
    };
  }

  async function resolveOnce(input: ResolvePendingRequestInput): Promise<ApprovalOutcome> {
    const subject = input.requester.subject;
    // Each pass either answers or observes that another request/replica changed the record; then it re-reads.
    for (let attempt = 0; attempt < MAX_RESOLVE_ATTEMPTS; attempt++) {
      const t = now();
      const open = await store.findOpen(input.fingerprint, subject);
      if (open !== null) {
        if (open.expiresAtMs <= t) {
          await expireAndReport(open.id, t);
          continue;
        }
        if (open.state === "pending") return pendingOutcome(open);
        if (open.settings.grant === "window") {
          return { kind: "granted", approvalId: open.id, grant: "window", ruleId: open.ruleId };
        }
        if (await store.consumeOnce(open.id, subject, t)) {
          await emit(open, "consumed", subject, input.requester.sessionId, t);
          return { kind: "granted", approvalId: open.id, grant: "once", ruleId: open.ruleId };
        }
        continue; // another retry won the single use: this one needs a new approval
      }
      const rejected = await store.findActiveRejection(input.fingerprint, subject, t);
      if (rejected !== null) {
        return {
          kind: "rejected",
          approvalId: rejected.id,
          reason: rejected.rejection?.reason ?? "",
          approver: rejected.rejection?.by ?? "",
          ruleId: rejected.ruleId,
        };
      }
      const settings = normalizeSettings(input.settings);
      const { record, created } = await store.createPending({
        id: newId(),
        fingerprint: input.fingerprint,
        requester: { subject, groups: [...input.requester.groups], sessionId: input.requester.sessionId },
        ruleId: input.ruleId,
        settings,
        preview: input.preview,
        createdAtMs: t,
        expiresAtMs: t + settings.ttlSeconds * 1000,
      });
      if (created) {
        await emit(record, "created", subject, "", t);
        notify(record, "created");
      }
      if (record.state === "pending" && record.expiresAtMs > t) return pendingOutcome(record);
      // an approved record appeared between our reads: loop to grant or consume it
    }
    throw new Error("approval store kept changing under this request");
  }

  function waitForDecision(approvalId: string, timeoutMs: number, signal?: AbortSignal): Promise<ApprovalRecord | null> {
    return new Promise((resolve, reject) => {
      let settled = false;
      let reading = false;
      let again = false;
      const finish = (record: ApprovalRecord | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearInterval(poller);
        unsubscribe();
        signal?.removeEventListener("abort", onAbort);
        closers.delete(onAbort);
        resolve(record);
      };
      const fail = (error: unknown) => {
        if (settled) return;
        finish(null);
        reject(error instanceof Error ? error : new Error("approval store read failed"));
      };
      const isSettled = (r: ApprovalRecord | null) => r === null || r.state !== "pending" || r.expiresAtMs <= now();
      const read = () => {
        if (settled) return;
        if (reading) {
          again = true;
          return;
        }
        reading = true;
        store.get(approvalId).then(
          (record) => {
            reading = false;
            if (isSettled(record)) finish(record);
            else if (again) {
              again = false;
              read();
            }
          },
          (error: unknown) => {
            reading = false;
            fail(error);
          },
        );
      };
      const onAbort = () => {
        store.get(approvalId).then(finish, fail);
      };
      const unsubscribe = store.subscribe((id) => {
        if (id === approvalId || id === "*") read();
      });
      const timer = setTimeout(onAbort, Math.max(0, timeoutMs));
      const poller = setInterval(read, HOLD_POLL_MS);
      closers.add(onAbort);
      if (signal?.aborted === true) onAbort();
      else signal?.addEventListener("abort", onAbort, { once: true });
      read(); // the decision may already be in: subscribe first, then read, so nothing is missed
    });
  }

  return {
    async resolvePendingRequest(input, options) {
      const signal = options?.signal ?? input.signal;
      const first = await resolveOnce(input);
      if (first.kind !== "pending" || config.pendingMode !== "hold" || signal?.aborted === true) return first;
      await waitForDecision(first.approvalId, config.holdSeconds * 1000, signal);
      return resolveOnce(input);
    },

    waitForDecision,

    async decide(request) {
      const reason = request.reason.trim();
      if (reason.length === 0) return { ok: false, code: "invalid_reason", message: "a reason is required" };
      const { identity } = request;
      if (isAgentIdentity(identity)) {
        return { ok: false, code: "agent_identity", message: "agent identities can never approve or reject" };
      }
      const t = now();
      const record = await store.get(request.approvalId);
      if (record === null) return { ok: false, code: "not_found", message: `approval ${request.approvalId} not found` };
      if (!isApproverFor(identity, record)) {
        return {
          ok: false,
          code: "not_an_approver",
          message: `rule ${record.ruleId} needs an approver in one of: ${record.settings.approverGroups.join(", ")}`,
        };
      }
      if (request.action === "approve" && identity.subject === record.requester.subject) {
        return { ok: false, code: "self_approval", message: "the requester cannot approve their own request" };
      }
      const result = await store.decide({
        id: record.id,
        action: request.action,
        approver: identity.subject,
        reason,
        nowMs: t,
      });
      if (!result.ok) {
        if (result.failure === "expired") await expireAndReport(record.id, t);
        const messages: Record<typeof result.failure, string> = {
          not_found: `approval ${record.id} not found`,
          already_decided: `approval ${record.id} is already ${result.record?.state ?? "decided"}`,
          expired: `approval ${record.id} has expired`,
          duplicate_approver: `${identity.subject} has already acted on approval ${record.id}`,
        };
        return { ok: false, code: result.failure, message: messages[result.failure] };
      }
      await emit(result.record, request.action === "approve" ? "approved" : "rejected", identity.subject, reason, t);
      if (result.decided) notify(result.record, request.action === "approve" ? "approved" : "rejected");
      return { ok: true, record: result.record, decided: result.decided };
    },

    async get(approvalId) {
      const record = await store.get(approvalId);
      if (record === null || (record.state !== "pending" && record.state !== "approved")) return record;
      const t = now();
      if (record.expiresAtMs > t) return record;
      await expireAndReport(record.id, t);
      return store.get(approvalId);
    },

    async list(filter) {
      await sweepExpired();
      return store.list(filter);
    },

    sweepExpired,
    isAgentIdentity,
    isApproverFor,
    approvalUrl,

    start() {
      if (sweepTimer !== null) return;
      sweepTimer = setInterval(() => {
        sweepExpired().catch((error: unknown) => {
          reportError("expiry sweep", error);
        });
      }, config.expirySweepSeconds * 1000);
      sweepTimer.unref();
    },

    close() {
      if (sweepTimer !== null) clearInterval(sweepTimer);
      sweepTimer = null;
      for (const release of [...closers]) release();
    },
  };

  function isAgentIdentity(identity: ApproverIdentity): boolean {
    return agentIssuers.has(identity.issuer) || identity.groups.some((g) => agentGroups.has(g));
  }

  function isApproverFor(identity: ApproverIdentity, record: ApprovalRecord): boolean {
    return identity.groups.some((g) => record.settings.approverGroups.includes(g));
  }

  async function sweepExpired(): Promise<number> {
    const t = now();
    const expired = await store.expireDue(t);
    for (const record of expired) {
      await emit(record, "expired", "system", "", t);
      notify(record, "expired");
    }
    return expired.length;
  }
}
