/**
 * @module bin/config-flag
 * Pulls `--config FILE` out of a subcommand's arguments, so commands that own their flags can still read the same
 * configuration file as `airlock serve`.
 */
export function takeConfigFlag(args: readonly string[]): { configPath: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let configPath: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (arg === "--config") {
      configPath = args[i + 1];
      i++;
    } else if (arg.startsWith("--config=")) {
      configPath = arg.slice("--config=".length);
    } else {
      rest.push(arg);
    }
  }
  return { configPath, rest };
}
