/**
 * @module tap/audit/replay-transcript
 * Pure rendering of a session's audit rows into a readable transcript (kubectl-style actions) or JSON.
 */

/** A `requests` row as session-timeline.sql returns it (numbers may arrive quoted from some servers). */
export interface TimelineRow {
  time_us: number | string;
  time: string;
  request_id: string;
  decision_id: string;
  subject: string;
  method: string;
  verb: string;
  api_group: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
  path: string;
  effect: string;
  rule_ids: string[];
  approval_id: string;
  reason: string;
  response_status: number | string;
  response_outcome: string;
  response_truncated: number | string;
  response_bytes: number | string;
}

/** An `approvals` row as session-approvals.sql returns it. */
export interface ApprovalTimelineRow {
  time_us: number | string;
  time: string;
  approval_id: string;
  action: string;
  actor: string;
  reason: string;
  rule_id: string;
}

export interface TranscriptEntry {
  readonly timeMicros: number;
  readonly time: string;
  readonly kind: "request" | "approval";
  /** kubectl-style action for requests, `approval <id> <action>` for approval events. */
  readonly action: string;
  /** Allow / Deny / RequireApproval / ... for requests; the approval action for approval events. */
  readonly effect: string;
  readonly ruleIds: readonly string[];
  readonly status: number | undefined;
  readonly outcome: string;
  readonly approvalId: string;
  readonly actor: string;
  readonly reason: string;
  readonly requestId: string;
}

export interface Transcript {
  readonly sessionId: string;
  readonly subject: string;
  readonly entries: readonly TranscriptEntry[];
  readonly summary: Readonly<Record<string, number>>;
}

/** `deployments.apps`, `pods`, `widgets.example.com`: how kubectl names a resource across groups. */
function resourceRef(row: Pick<TimelineRow, "resource" | "api_group">): string {
  return row.api_group === "" ? row.resource : `${row.resource}.${row.api_group}`;
}

/** The kubectl command a human would type to make the same request (an approximation for reading). */
export function kubectlAction(row: Pick<TimelineRow, "verb" | "api_group" | "resource" | "subresource" | "namespace" | "name" | "path" | "method">): string {
  if (row.resource === "") {
    // Non-resource URL (/healthz, /version, /apis discovery).
    const method = row.method === "" ? "GET" : row.method.toUpperCase();
    return method === "GET" ? `kubectl get --raw ${row.path}` : `${method} ${row.path}`;
  }
  const ns = row.namespace === "" ? "" : ` -n ${row.namespace}`;
  const target = `${resourceRef(row)}${row.name === "" ? "" : ` ${row.name}`}`;
  const simple = row.name === "" ? resourceRef(row) : `${resourceRef(row)}/${row.name}`;
  switch (row.subresource) {
    case "exec": return `kubectl exec ${row.name}${ns} -- …`;
    case "attach": return `kubectl attach ${row.name}${ns}`;
    case "portforward": return `kubectl port-forward ${row.name}${ns}`;
    case "log": return `kubectl logs ${row.name}${ns}`;
    case "ephemeralcontainers": return `kubectl debug ${row.name}${ns}`;
    case "proxy": return `kubectl proxy → ${row.path}`;
    case "scale": return row.verb === "get" ? `kubectl get ${simple}${ns} --subresource=scale` : `kubectl scale ${simple}${ns}`;
    case "status": return `kubectl ${row.verb === "get" ? "get" : row.verb} ${simple}${ns} --subresource=status`;
    case "":
      break;
    default:
      return `kubectl ${row.verb} ${simple}/${row.subresource}${ns}`;
  }
  switch (row.verb) {
    case "get": return `kubectl get ${target}${ns}`;
    case "list": return `kubectl get ${resourceRef(row)}${row.namespace === "" ? " -A" : ns}`;
    case "watch": return `kubectl get ${target}${row.namespace === "" && row.name === "" ? " -A" : ns} --watch`;
    case "create": return `kubectl create ${resourceRef(row)}${ns} -f …`;
    case "update": return `kubectl replace ${target}${ns} -f …`;
    case "patch": return `kubectl patch ${target}${ns}`;
    case "delete": return `kubectl delete ${target}${ns}`;
    case "deletecollection": return `kubectl delete ${resourceRef(row)} --all${ns}`;
    default: return `kubectl ${row.verb} ${target}${ns}`;
  }
}

function num(v: number | string): number {
  return typeof v === "number" ? v : Number(v);
}

/**
 * Merge, order and describe. A decision row written as `missing` and an exchange-only row (`Unknown`) with
 * the same decision id are two halves of one request (two replicas each saw one) and print as one line.
 */
export function buildTranscript(sessionId: string, requests: readonly TimelineRow[], approvals: readonly ApprovalTimelineRow[]): Transcript {
  const exchangeOnly = new Map<string, TimelineRow>();
  for (const r of requests) if (r.effect === "Unknown" && r.decision_id !== "") exchangeOnly.set(r.decision_id, r);
  const paired = new Set<string>();
  for (const r of requests) {
    if (r.effect !== "Unknown" && r.response_outcome === "missing" && exchangeOnly.has(r.decision_id)) paired.add(r.decision_id);
  }
  const merged: TranscriptEntry[] = [];
  for (const r of requests) {
    if (r.effect === "Unknown" && paired.has(r.decision_id)) continue;
    const other = r.effect !== "Unknown" && paired.has(r.decision_id) ? exchangeOnly.get(r.decision_id) : undefined;
    const row: TimelineRow = other === undefined ? r : {
      ...r, response_status: other.response_status, response_outcome: other.response_outcome,
      response_truncated: other.response_truncated, response_bytes: other.response_bytes,
    };
    const status = num(row.response_status);
    merged.push({
      timeMicros: num(row.time_us),
      time: row.time,
      kind: "request",
      action: kubectlAction(row),
      effect: row.effect,
      ruleIds: row.rule_ids,
      status: status === 0 ? undefined : status,
      outcome: row.response_outcome,
      approvalId: row.approval_id,
      actor: row.subject,
      reason: row.reason,
      requestId: row.request_id,
    });
  }
  for (const a of approvals) {
    merged.push({
      timeMicros: num(a.time_us),
      time: a.time,
      kind: "approval",
      action: `approval ${a.approval_id} ${a.action}`,
      effect: a.action,
      ruleIds: a.rule_id === "" ? [] : [a.rule_id],
      status: undefined,
      outcome: "",
      approvalId: a.approval_id,
      actor: a.actor,
      reason: a.reason,
      requestId: "",
    });
  }
  merged.sort((x, y) => x.timeMicros - y.timeMicros);
  const summary: Record<string, number> = {};
  for (const e of merged) if (e.kind === "request") summary[e.effect] = (summary[e.effect] ?? 0) + 1;
  const subject = requests.find((r) => r.subject !== "")?.subject ?? "";
  return { sessionId, subject, entries: merged, summary };
}

const EFFECT_LABEL: Readonly<Record<string, string>> = {
  Allow: "ALLOWED",
  Deny: "DENIED",
  RequireApproval: "PENDING",
  Unauthenticated: "UNAUTHN",
  Error: "ERROR",
  Unknown: "UNKNOWN",
};

/** Human-readable transcript, one line per request or approval event. */
export function renderTranscriptText(t: Transcript): string {
  const lines: string[] = [];
  lines.push(`session ${t.sessionId}${t.subject === "" ? "" : ` (${t.subject})`}: ${t.entries.length} events`);
  for (const e of t.entries) {
    if (e.kind === "approval") {
      const by = e.actor === "" ? "" : ` by ${e.actor}`;
      const why = e.reason === "" ? "" : `: "${e.reason}"`;
      lines.push(`${e.time}  APPROVAL  ${e.approvalId} ${e.effect}${by}${why}`);
      continue;
    }
    const label = (EFFECT_LABEL[e.effect] ?? e.effect).padEnd(8);
    const parts = [`${e.time}  ${label}  ${e.action}`];
    if (e.status !== undefined) parts.push(`→ ${e.status}`);
    if (e.outcome !== "" && e.outcome !== "complete" && e.outcome !== "not_forwarded") parts.push(`(${e.outcome})`);
    if (e.ruleIds.length > 0) parts.push(`[rule ${e.ruleIds.join(", ")}]`);
    if (e.approvalId !== "") parts.push(`[approval ${e.approvalId}]`);
    if (e.effect !== "Allow" && e.reason !== "") parts.push(`: ${e.reason}`);
    lines.push(parts.join(" "));
  }
  const summary = Object.entries(t.summary).map(([k, v]) => `${k} ${v}`).join(", ");
  if (summary !== "") lines.push(`summary: ${summary}`);
  return `${lines.join("\n")}\n`;
}

export function renderTranscriptJson(t: Transcript): string {
  return `${JSON.stringify(t, null, 2)}\n`;
}
