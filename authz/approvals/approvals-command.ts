/**
 * @module authz/approvals/approvals-command
 * `airlock approvals list|show ID|approve ID --reason R|reject ID --reason R`: a client of the approver HTTP API.
 */
import { parseArgs } from "node:util";
import type { ApprovalView } from "./approval-app.js";

export interface ApprovalsCommandIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

export type ApprovalsCommandEnv = Readonly<Record<string, string | undefined>>;

export const APPROVALS_USAGE = `usage:
  airlock approvals list [--state S] [--namespace N] [--requester R] [--limit N] [--output table|json]
  airlock approvals show ID [--output text|json]
  airlock approvals approve ID --reason R [--output text|json]
  airlock approvals reject ID --reason R [--output text|json]
options:
  --server URL   approval API base URL (or AIRLOCK_SERVER)
  --token T      approver OIDC token (or AIRLOCK_APPROVER_TOKEN; prefer the variable: arguments show in ps)`;

const REQUEST_TIMEOUT_MS = 30_000;

class UsageError extends Error {}

function line(stream: { write(text: string): unknown }, text: string): void {
  stream.write(text.endsWith("\n") ? text : `${text}\n`);
}

function target(view: ApprovalView): string {
  const a = view.preview.attributes;
  if (!a.resourceRequest) return view.preview.path;
  const resource = a.subresource === "" ? a.resource : `${a.resource}/${a.subresource}`;
  const group = a.apiGroup === "" ? "" : `.${a.apiGroup}`;
  return `${a.namespace === "" ? "" : `${a.namespace}/`}${resource}${group}${a.name === "" ? "" : `/${a.name}`}`;
}

/** Pads columns to the widest cell, like kubectl's table printer. */
function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd((widths[i] ?? 0) + 3))).join("")).join("\n");
}

function describe(view: ApprovalView): string {
  const body = view.preview.body;
  const bodyText =
    body.kind === "none" ? "(none)" : body.kind === "withheld" ? `(withheld: ${body.reason})` : `${body.text}${body.truncated ? "\n… (truncated)" : ""}`;
  const lines = [
    `ID:          ${view.id}`,
    `State:       ${view.state}`,
    `Rule:        ${view.ruleId}`,
    `Requester:   ${view.requester.subject} (session ${view.requester.sessionId}; groups ${view.requester.groups.join(", ") || "-"})`,
    `Request:     ${view.preview.method} ${view.preview.path}${view.preview.query === "" ? "" : `?${view.preview.query}`}`,
    `Verb:        ${view.preview.attributes.verb} ${target(view)}`,
    `Approvers:   ${view.approval.approverGroups.join(", ")}; ${view.approvers.length} of ${view.approvalsRequired} so far${view.approvers.length > 0 ? ` (${view.approvers.join(", ")})` : ""}`,
    `Grant:       ${view.approval.grant}, ${view.approval.ttlSeconds}s`,
    `Created:     ${view.createdAt}`,
    `Expires:     ${view.expiresAt}`,
  ];
  if (view.rejection !== null) lines.push(`Rejected by: ${view.rejection.by}: ${view.rejection.reason}`);
  lines.push("Body:", ...bodyText.split("\n").map((l) => `  ${l}`), "History:");
  for (const h of view.history) lines.push(`  ${h.at}  ${h.action.padEnd(9)} ${h.actor}${h.reason === "" ? "" : `: ${h.reason}`}`);
  return lines.join("\n");
}

interface ApiResult {
  readonly status: number;
  readonly body: unknown;
}

async function call(server: string, token: string, method: "GET" | "POST", path: string, body?: unknown): Promise<ApiResult> {
  const res = await fetch(`${server.replace(/\/+$/, "")}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      accept: "application/json",
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    redirect: "error",
  });
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = text === "" ? null : JSON.parse(text);
  } catch {
    parsed = null;
  }
  return { status: res.status, body: parsed };
}

function apiErrorMessage(result: ApiResult): string {
  const error = (result.body as { error?: { message?: unknown; reason?: unknown } } | null)?.error;
  const message = typeof error?.message === "string" ? error.message : "unexpected response";
  const reason = typeof error?.reason === "string" ? ` (${error.reason})` : "";
  return `error: HTTP ${result.status}${reason}: ${message}`;
}

/** Returns the exit code: 0 done, 1 the API refused or could not be reached, 2 usage error. */
export async function runApprovalsCommand(
  argv: readonly string[],
  io: ApprovalsCommandIo,
  env: ApprovalsCommandEnv,
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        server: { type: "string" },
        token: { type: "string" },
        reason: { type: "string" },
        state: { type: "string" },
        namespace: { type: "string" },
        requester: { type: "string" },
        limit: { type: "string" },
        output: { type: "string", short: "o" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    line(io.stderr, `error: ${error instanceof Error ? error.message : "bad arguments"}\n${APPROVALS_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    line(io.stdout, APPROVALS_USAGE);
    return 0;
  }
  try {
    const [sub, id, ...extra] = positionals;
    const server = values.server ?? env["AIRLOCK_SERVER"];
    const token = values.token ?? env["AIRLOCK_APPROVER_TOKEN"];
    if (sub === undefined) throw new UsageError("a subcommand is required");
    if (server === undefined || server === "") throw new UsageError("--server or AIRLOCK_SERVER is required");
    if (!/^https?:\/\//.test(server)) throw new UsageError("--server must be an http(s) URL");
    if (token === undefined || token === "") throw new UsageError("--token or AIRLOCK_APPROVER_TOKEN is required");
    if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0] ?? ""}`);
    const output = values.output ?? (sub === "list" ? "table" : "text");
    if (!["table", "text", "json"].includes(output)) throw new UsageError("--output must be table, text or json");
    const json = output === "json";

    switch (sub) {
      case "list": {
        if (id !== undefined) throw new UsageError(`unexpected argument ${id}`);
        const query = new URLSearchParams();
        if (values.state !== undefined) query.set("state", values.state);
        if (values.namespace !== undefined) query.set("namespace", values.namespace);
        if (values.requester !== undefined) query.set("requester", values.requester);
        if (values.limit !== undefined) query.set("limit", values.limit);
        const qs = query.toString();
        const result = await call(server, token, "GET", `/v1/approvals${qs === "" ? "" : `?${qs}`}`);
        if (result.status !== 200) {
          line(io.stderr, apiErrorMessage(result));
          return 1;
        }
        const items = (result.body as { items: ApprovalView[] }).items;
        if (json) {
          line(io.stdout, JSON.stringify(items, null, 2));
        } else if (items.length === 0) {
          line(io.stdout, "No approvals found.");
        } else {
          const rows = items.map((v) => [
            v.id,
            v.state,
            v.ruleId,
            v.requester.subject,
            `${v.preview.attributes.verb} ${target(v)}`,
            `${v.approvers.length}/${v.approvalsRequired}`,
            v.expiresAt,
          ]);
          line(io.stdout, table([["ID", "STATE", "RULE", "REQUESTER", "REQUEST", "APPROVALS", "EXPIRES"], ...rows]));
        }
        return 0;
      }
      case "show":
      case "approve":
      case "reject": {
        if (id === undefined) throw new UsageError(`${sub} needs an approval ID`);
        const path = `/v1/approvals/${encodeURIComponent(id)}`;
        let result: ApiResult;
        if (sub === "show") {
          result = await call(server, token, "GET", path);
        } else {
          if (values.reason === undefined || values.reason.trim() === "") throw new UsageError(`${sub} needs --reason`);
          result = await call(server, token, "POST", `${path}/${sub}`, { reason: values.reason });
        }
        if (result.status !== 200) {
          line(io.stderr, apiErrorMessage(result));
          return 1;
        }
        const view = result.body as ApprovalView;
        if (json) line(io.stdout, JSON.stringify(view, null, 2));
        else if (sub === "show") line(io.stdout, describe(view));
        else line(io.stdout, `approval ${view.id} is now ${view.state} (${view.approvers.length} of ${view.approvalsRequired} approvals)`);
        return 0;
      }
      default:
        throw new UsageError(`unknown subcommand ${sub}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      line(io.stderr, `error: ${error.message}\n${APPROVALS_USAGE}`);
      return 2;
    }
    // Network failures: name the kind, never the token.
    line(io.stderr, `error: could not reach the approval API: ${error instanceof Error ? error.message : "unknown error"}`);
    return 1;
  }
}
