/**
 * @module bin/cli-io
 * The streams a CLI command reads and writes, passed in so commands are testable without spawning processes.
 */
export interface CliIo {
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
}

/** Writes a line to a stream (the same helper the exchange commands use). */
export { writeCommandLine as writeLine } from "../authz/exchange/command-streams.js";
