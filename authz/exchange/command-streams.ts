/**
 * @module authz/exchange/command-streams
 * The streams the exchange CLI commands use (structurally the same as bin's CliIo), passed in for testability.
 */

/** Streams of a command; bin's `CliIo` satisfies it. */
export interface CommandStreams {
  readonly stdin?: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

/** Writes one line. */
export function writeCommandLine(stream: NodeJS.WritableStream, text: string): void {
  stream.write(text.endsWith("\n") ? text : `${text}\n`);
}

/** The exit code of a command called wrongly. */
export const USAGE_EXIT_CODE = 2;

/** Writes what is wrong with the command line, then the command's usage; returns {@link USAGE_EXIT_CODE}. */
export function writeUsageProblem(stream: NodeJS.WritableStream, problem: string, usage: string): number {
  writeCommandLine(stream, `${problem}\n${usage}`);
  return USAGE_EXIT_CODE;
}
