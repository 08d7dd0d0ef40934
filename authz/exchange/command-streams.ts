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
