/**
 * @module authz/approvals/webhook-notifier
 * Posts approval notifications (created / decided / expired) to a webhook: a bounded queue, retries with backoff, never blocking the caller.
 */
import type { ApprovalRecord } from "./approval-record.js";

export type ApprovalNotificationEvent = "created" | "approved" | "rejected" | "expired";

export interface ApprovalNotification {
  readonly event: ApprovalNotificationEvent;
  readonly record: ApprovalRecord;
  /** `<publicUrl>/v1/approvals/<id>` */
  readonly approvalUrl: string;
}

/** The JSON posted: Slack-compatible (`text`), plus structured fields for other receivers. Never carries the request body. */
export interface ApprovalWebhookPayload {
  readonly text: string;
  readonly event: ApprovalNotificationEvent;
  readonly approval: {
    readonly id: string;
    readonly state: string;
    readonly ruleId: string;
    readonly requester: string;
    readonly session: string;
    readonly method: string;
    readonly path: string;
    readonly verb: string;
    readonly namespace: string;
    readonly resource: string;
    readonly name: string;
    readonly expiresAt: string;
    readonly approvers: readonly string[];
    readonly approvalsRequired: number;
    readonly rejectedBy: string | null;
    readonly reason: string | null;
    readonly url: string;
  };
}

export interface WebhookNotifierOptions {
  readonly url: string;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly maxQueueLength: number;
  /** Injected for tests; defaults to the global fetch. */
  readonly fetch?: typeof fetch;
  /** Told about each delivery given up on or dropped; the URL may hold a secret token, so it is not passed. */
  readonly onFailure?: (info: { readonly approvalId: string; readonly event: string; readonly why: string }) => void;
}

export interface WebhookNotifier {
  /** Queues and returns at once. */
  notify(notification: ApprovalNotification): void;
  /** Resolves when the queue is empty (tests, graceful shutdown). */
  drain(): Promise<void>;
  /** Stops retrying; pending deliveries are abandoned. */
  close(): void;
  readonly stats: { readonly delivered: number; readonly failed: number; readonly dropped: number };
}

/** Slack mrkdwn needs only &, <, > escaped. */
function slackEscape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function buildApprovalWebhookPayload(n: ApprovalNotification): ApprovalWebhookPayload {
  const r = n.record;
  const a = r.preview.attributes;
  const target = [a.namespace === "" ? "" : `${a.namespace}/`, a.resource, a.subresource === "" ? "" : `/${a.subresource}`, a.name === "" ? "" : ` ${a.name}`].join("");
  const what = `${a.verb} ${target}`.trim();
  const lastReason = [...r.history].reverse().find((h) => h.action === n.event)?.reason ?? null;
  const head: Record<ApprovalNotificationEvent, string> = {
    created: `:hourglass: Approval needed: *${slackEscape(r.requester.subject)}* wants to \`${slackEscape(what)}\``,
    approved: `:white_check_mark: Approved: \`${slackEscape(what)}\` for *${slackEscape(r.requester.subject)}* by ${slackEscape(r.approvers.join(", "))}`,
    rejected: `:no_entry: Rejected: \`${slackEscape(what)}\` for *${slackEscape(r.requester.subject)}* by ${slackEscape(r.rejection?.by ?? "")}: ${slackEscape(r.rejection?.reason ?? "")}`,
    expired: `:clock3: Expired: \`${slackEscape(what)}\` for *${slackEscape(r.requester.subject)}*`,
  };
  const text =
    `${head[n.event]}\n` +
    `rule \`${slackEscape(r.ruleId)}\` · approval \`${r.id}\` · ${r.preview.method} ${slackEscape(r.preview.path)}\n` +
    (n.event === "created"
      ? `needs ${r.settings.minApprovals} approval(s) from ${slackEscape(r.settings.approverGroups.join(", "))} before ${new Date(r.expiresAtMs).toISOString()} · <${n.approvalUrl}|review>`
      : `<${n.approvalUrl}|details>`);
  return {
    text,
    event: n.event,
    approval: {
      id: r.id,
      state: r.state,
      ruleId: r.ruleId,
      requester: r.requester.subject,
      session: r.requester.sessionId,
      method: r.preview.method,
      path: r.preview.path,
      verb: a.verb,
      namespace: a.namespace,
      resource: a.resource,
      name: a.name,
      expiresAt: new Date(r.expiresAtMs).toISOString(),
      approvers: r.approvers,
      approvalsRequired: r.settings.minApprovals,
      rejectedBy: r.rejection?.by ?? null,
      reason: n.event === "rejected" ? (r.rejection?.reason ?? null) : lastReason,
      url: n.approvalUrl,
    },
  };
}

/** Exponential backoff with full jitter, capped. */
export function webhookBackoffMs(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

interface QueuedDelivery {
  readonly payload: ApprovalWebhookPayload;
  attempts: number;
}

export function createWebhookNotifier(options: WebhookNotifierOptions): WebhookNotifier {
  const doFetch = options.fetch ?? fetch;
  const queue: QueuedDelivery[] = [];
  const stats = { delivered: 0, failed: 0, dropped: 0 };
  let running = false;
  let closed = false;
  let wake: (() => void) | null = null;
  let drainWaiters: (() => void)[] = [];
  const timers = new Set<NodeJS.Timeout>();

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
      wake = () => {
        clearTimeout(t);
        timers.delete(t);
        resolve();
      };
    });

  async function deliver(item: QueuedDelivery): Promise<boolean> {
    const res = await doFetch(options.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(item.payload),
      signal: AbortSignal.timeout(options.timeoutMs),
      redirect: "error",
    });
    await res.body?.cancel();
    if (res.ok) return true;
    // 4xx other than 408/429 will not get better by retrying.
    if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
      item.attempts = options.maxAttempts;
    }
    return false;
  }

  async function pump(): Promise<void> {
    running = true;
    while (!closed && queue.length > 0) {
      const item = queue[0];
      if (item === undefined) break;
      item.attempts++;
      let ok = false;
      try {
        ok = await deliver(item);
      } catch {
        ok = false;
      }
      if (ok) {
        stats.delivered++;
        queue.shift();
        continue;
      }
      if (item.attempts >= options.maxAttempts) {
        stats.failed++;
        queue.shift();
        options.onFailure?.({ approvalId: item.payload.approval.id, event: item.payload.event, why: "gave up after retries" });
        continue;
      }
      await sleep(webhookBackoffMs(item.attempts, options.initialBackoffMs, options.maxBackoffMs));
    }
    running = false;
    const waiters = drainWaiters;
    drainWaiters = [];
    for (const w of waiters) w();
  }

  return {
    notify(notification) {
      if (closed) return;
      if (queue.length >= options.maxQueueLength) {
        stats.dropped++;
        options.onFailure?.({ approvalId: notification.record.id, event: notification.event, why: "queue full" });
        return;
      }
      queue.push({ payload: buildApprovalWebhookPayload(notification), attempts: 0 });
      if (!running) void pump();
    },
    drain() {
      if (!running && queue.length === 0) return Promise.resolve();
      return new Promise<void>((resolve) => drainWaiters.push(resolve));
    },
    close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      wake?.();
      queue.length = 0;
    },
    stats,
  };
}
