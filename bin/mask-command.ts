/**
 * @module bin/mask-command
 * `airlock mask`: the masking core on stdin/stdout, with the masking settings of the configuration file if given.
 */
import { runMaskCommand } from "../tap/mask/mask-command.js";
import { loadMaskConfig } from "../tap/mask/mask-config.js";
import { loadAirlockConfig } from "./airlock-config.js";
import type { CliIo } from "./cli-io.js";
import { takeConfigFlag } from "./config-flag.js";

export async function runMaskCliCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { configPath, rest } = takeConfigFlag(args);
  const config = await loadAirlockConfig(configPath);
  return runMaskCommand(rest, { stdin: io.stdin as AsyncIterable<Buffer>, stdout: io.stdout, stderr: io.stderr }, loadMaskConfig(config.mask));
}
