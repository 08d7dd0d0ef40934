/**
 * @module bin/token-command
 * `airlock token`: prints a short-lived token from the built-in development issuer, which `airlock serve` accepts in
 * its development configuration (agents' audience by default, approvers' with --approver).
 */
import { parseArgs } from "node:util";
import { openDevIssuer, parseDurationSeconds } from "../authz/identity/dev-issuer.js";
import { loadAirlockConfig } from "./airlock-config.js";
import { writeLine, type CliIo } from "./cli-io.js";
import { DEV_APPROVER_AUDIENCE } from "./development-identity.js";

const USAGE = "usage: airlock token --sub S [--groups a,b] [--ttl 5m] [--session ID] [--approver] [--config FILE]";

export async function runTokenCommand(args: readonly string[], io: CliIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        sub: { type: "string" },
        groups: { type: "string", default: "" },
        ttl: { type: "string", default: "5m" },
        session: { type: "string" },
        approver: { type: "boolean", default: false },
        config: { type: "string" },
      },
      strict: true,
    }));
  } catch (error) {
    writeLine(io.stderr, `${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.sub === undefined || values.sub.trim() === "") {
    writeLine(io.stderr, USAGE);
    return 2;
  }
  let ttlSeconds: number;
  try {
    ttlSeconds = parseDurationSeconds(values.ttl);
  } catch (error) {
    writeLine(io.stderr, `--ttl: ${(error as Error).message}`);
    return 2;
  }
  const config = await loadAirlockConfig(values.config);
  const issuer = await openDevIssuer(config.stateDir);
  const token = await issuer.issue({
    subject: values.sub,
    groups: values.groups.split(",").map((group) => group.trim()).filter((group) => group !== ""),
    ttlSeconds,
    ...(values.session === undefined ? {} : { sessionId: values.session }),
    ...(values.approver ? { audience: DEV_APPROVER_AUDIENCE } : {}),
  });
  writeLine(io.stdout, token);
  return 0;
}
