/**
 * @module bin/approvals-command
 * `airlock approvals ...`: the approver client (server URL and token from flags or AIRLOCK_SERVER /
 * AIRLOCK_APPROVER_TOKEN).
 */
import { runApprovalsCommand } from "../authz/approvals/approvals-command.js";
import type { CliIo } from "./cli-io.js";

export function runApprovalsCliCommand(args: readonly string[], io: CliIo): Promise<number> {
  return runApprovalsCommand(args, { stdout: io.stdout, stderr: io.stderr }, io.env);
}
