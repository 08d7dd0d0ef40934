/**
 * @module tap/audit/verify-command
 * `airlock audit verify [--since T] [--session S]`: recomputes the hash chains, exits non-zero on a break.
 */
import { parseArgs } from "node:util";
import { parseAuditConfig, type AuditConfig, type AuditConfigInput } from "./audit-config.js";
import { describeError } from "./audit-errors.js";
import { verifyAuditChains } from "./chain-verifier.js";
import {
  EXIT_FINDING, EXIT_OK, EXIT_STORE, EXIT_USAGE, withStore, type AuditCommandDeps, type AuditCommandIo,
} from "./replay-command.js";

export const VERIFY_USAGE = "usage: airlock audit verify [--since TIME] [--session SESSION] [--format text|json]\n"
  + "  TIME: ISO 8601 (2026-11-30T00:00:00Z), 'YYYY-MM-DD HH:MM:SS' (UTC), or a duration back from now (90m, 24h, 7d)\n";

/** Parse --since into µs since the epoch; undefined when it is not a time. */
export function parseSince(text: string, nowMs: number = Date.now()): number | undefined {
  const rel = /^(\d+)(s|m|h|d)$/.exec(text.trim());
  if (rel !== null) {
    const unitMs = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as "s" | "m" | "h" | "d"];
    return (nowMs - Number(rel[1]) * unitMs) * 1000;
  }
  const iso = /^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/.test(text.trim());
  if (!iso) return undefined;
  const normalised = text.trim().replace(" ", "T");
  const ms = Date.parse(/Z|[+-]\d{2}:?\d{2}$/.test(normalised) || normalised.length === 10 ? normalised : `${normalised}Z`);
  return Number.isNaN(ms) ? undefined : ms * 1000;
}

export async function runAuditVerifyCommand(
  argv: readonly string[], io: AuditCommandIo, config: AuditConfig | AuditConfigInput, deps: AuditCommandDeps = {},
): Promise<number> {
  let sinceMicros: number | undefined;
  let sessionId: string | undefined;
  let format: "text" | "json";
  try {
    const { values } = parseArgs({
      args: [...argv],
      options: {
        since: { type: "string" }, session: { type: "string" },
        format: { type: "string", default: "text" }, help: { type: "boolean", short: "h" },
      },
      allowPositionals: false,
    });
    if (values.help === true) {
      io.out(VERIFY_USAGE);
      return EXIT_OK;
    }
    if (values.since !== undefined) {
      sinceMicros = parseSince(values.since);
      if (sinceMicros === undefined) throw new Error(`--since ${JSON.stringify(values.since)} is not a time`);
    }
    if (values.session !== undefined) {
      if (values.session === "") throw new Error("--session needs a session id");
      sessionId = values.session;
    }
    if (values.format !== "text" && values.format !== "json") throw new Error("--format must be text or json");
    format = values.format;
  } catch (err) {
    io.err(`airlock audit verify: ${(err as Error).message}\n${VERIFY_USAGE}`);
    return EXIT_USAGE;
  }
  let cfg: AuditConfig;
  try {
    cfg = parseAuditConfig(config);
  } catch (err) {
    io.err(`airlock audit verify: ${describeError(err)}\n`);
    return EXIT_USAGE;
  }
  try {
    const report = await withStore(cfg, deps, (store) => verifyAuditChains(store, {
      ...(sinceMicros !== undefined ? { sinceMicros } : {}),
      ...(sessionId !== undefined ? { sessionId } : {}),
    }));
    if (format === "json") {
      io.out(`${JSON.stringify({ ok: report.firstBreak === undefined, ...report }, null, 2)}\n`);
    } else {
      for (const c of report.chains) {
        io.out(`chain ${c.gatewayInstance}/${c.chainId}: positions ${c.fromSeq}..${c.toSeq}, ${c.rowsChecked} rows verified`
          + `${c.startsAfterGenesis ? " (starts after genesis: earlier rows expired or were not selected)" : ""}\n`);
      }
      if (report.firstBreak === undefined) {
        io.out(`OK: ${report.rowsChecked} rows in ${report.chains.length} chain(s), no broken link\n`);
      } else {
        const b = report.firstBreak;
        io.out(`BROKEN: chain ${b.gatewayInstance}/${b.chainId} at position ${b.chainSeq} (${b.table}): ${b.kind}: ${b.detail}\n`);
      }
    }
    return report.firstBreak === undefined ? EXIT_OK : EXIT_FINDING;
  } catch (err) {
    io.err(`airlock audit verify: ${describeError(err)}\n`);
    return EXIT_STORE;
  }
}
