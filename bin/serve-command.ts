/**
 * @module bin/serve-command
 * `airlock serve [--config FILE]`: starts Airlock, prints its listen addresses on stdout, and drains on SIGTERM/SIGINT.
 */
import { parseArgs } from "node:util";
import { loadAirlockConfig } from "./airlock-config.js";
import { writeLine, type CliIo } from "./cli-io.js";
import { startAirlock } from "./start-airlock.js";

export async function runServeCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({ args: [...args], options: { config: { type: "string" } }, strict: true });
  const config = await loadAirlockConfig(values.config);
  const running = await startAirlock(config);
  writeLine(io.stdout, `airlock: ext_authz + ext_proc (gRPC) listening on ${running.grpcAddress}`);
  writeLine(io.stdout, `airlock: approval API (HTTP) listening on ${running.httpUrl}`);
  if (config.identity === "development") {
    writeLine(io.stdout, `airlock: development issuer active; get a token with: airlock token --sub me --groups agents`);
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      running.logger.info({ signal }, "shutting down");
      running.close().then(
        () => { resolve(0); },
        () => { resolve(1); },
      );
    };
    process.once("SIGTERM", () => { stop("SIGTERM"); });
    process.once("SIGINT", () => { stop("SIGINT"); });
  });
}
