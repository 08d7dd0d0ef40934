/**
 * @module authz/exchange/exchange-command
 * `airlock exchange`: operator helpers for the token exchange — hash a client secret for the configuration,
 * mint a new client secret, and generate a production signing key file for the mounted Secret.
 */
import { generateKeyPairSync } from "node:crypto";
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { generateClientSecret, hashClientSecret, MAX_SECRET_LENGTH } from "./client-secret.js";
import { writeCommandLine } from "./command-streams.js";
import type { CommandStreams } from "./command-streams.js";

export const EXCHANGE_USAGE = `usage:
  airlock exchange hash-secret [--secret-env VAR]   print the secretHash of a client secret read from stdin (or VAR)
  airlock exchange new-client-secret                print a fresh random secret and its secretHash
  airlock exchange generate-key --dir DIR           write DIR/<UTC timestamp>.pem, a new ES256 signing key (0600)`;

async function readStdin(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const buffer = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    total += buffer.length;
    if (total > MAX_SECRET_LENGTH + 2) throw new Error(`the secret must be at most ${MAX_SECRET_LENGTH} characters`);
    chunks.push(buffer);
  }
  // One trailing newline (from `echo` or a file) is not part of the secret.
  return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
}

/** Runs `airlock exchange <subcommand>`. The secret is read from stdin or the environment, never from argv (ps shows argv). */
export async function runExchangeCommand(
  argv: readonly string[],
  io: CommandStreams,
  env: Readonly<Record<string, string | undefined>> = {},
): Promise<number> {
  const [subcommand, ...rest] = argv;
  try {
    switch (subcommand) {
      case "hash-secret": {
        const { values } = parseArgs({ args: rest, options: { "secret-env": { type: "string" } }, strict: true });
        let secret: string;
        if (values["secret-env"] !== undefined) {
          secret = env[values["secret-env"]] ?? "";
          if (secret === "") throw new Error(`environment variable ${values["secret-env"]} is not set`);
        } else {
          if (io.stdin === undefined) throw new Error("no stdin to read the secret from");
          secret = await readStdin(io.stdin);
        }
        writeCommandLine(io.stdout, await hashClientSecret(secret));
        return 0;
      }
      case "new-client-secret": {
        parseArgs({ args: rest, options: {}, strict: true });
        const secret = generateClientSecret();
        writeCommandLine(io.stdout, `secret: ${secret}`);
        writeCommandLine(io.stdout, `secretHash: ${await hashClientSecret(secret)}`);
        return 0;
      }
      case "generate-key": {
        const { values } = parseArgs({ args: rest, options: { dir: { type: "string" } }, strict: true });
        if (values.dir === undefined) throw new TypeError("--dir is required");
        const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
        // File names order keys (the greatest signs), so a sortable UTC timestamp names it.
        const name = `${new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}Z$/, "Z")}.pem`;
        const path = join(values.dir, name);
        await writeFile(path, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600, flag: "wx" });
        await chmod(path, 0o600);
        writeCommandLine(io.stdout, path);
        return 0;
      }
      case undefined:
      default:
        writeCommandLine(io.stderr, EXCHANGE_USAGE);
        return 2;
    }
  } catch (error) {
    writeCommandLine(io.stderr, `airlock exchange ${subcommand ?? ""}: ${error instanceof Error ? error.message : "failed"}`);
    return error instanceof TypeError ? 2 : 1;
  }
}
