/**
 * @module bin/audit-command
 * `airlock replay SESSION` and `airlock audit verify`, against the audit store of the configuration (embedded chDB
 * under stateDir by default).
 */
import { runReplayCommand } from "../tap/audit/replay-command.js";
import { runAuditVerifyCommand } from "../tap/audit/verify-command.js";
import { loadAirlockConfig } from "./airlock-config.js";
import { writeLine, type CliIo } from "./cli-io.js";
import { takeConfigFlag } from "./config-flag.js";

export async function runAuditCliCommand(command: "replay" | "audit", args: readonly string[], io: CliIo): Promise<number> {
  const { configPath, rest } = takeConfigFlag(args);
  const config = await loadAirlockConfig(configPath);
  const auditIo = { out: (text: string) => io.stdout.write(text), err: (text: string) => io.stderr.write(text) };
  if (command === "replay") return runReplayCommand(rest, auditIo, config.audit);
  const [sub, ...verifyArgs] = rest;
  if (sub !== "verify") {
    writeLine(io.stderr, "usage: airlock audit verify [--since T] [--session S] [--config FILE]");
    return 2;
  }
  return runAuditVerifyCommand(verifyArgs, auditIo, config.audit);
}
