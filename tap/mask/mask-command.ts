/**
 * @module tap/mask/mask-command
 * `airlock mask [--content-type T] [--path /api/v1/...]`: masks a response body from stdin to stdout,
 * exiting non-zero with a clear message wherever the gateway would fail closed.
 */
import { loadMaskConfig, type MaskConfig } from "./mask-config.js";
import { planResponseMasking } from "./response-plan.js";

export interface MaskCommandIo {
  readonly stdin: AsyncIterable<Buffer | string>;
  readonly stdout: { write(chunk: Buffer | string): unknown };
  readonly stderr: { write(chunk: Buffer | string): unknown };
}

export const MASK_COMMAND_USAGE = `usage: airlock mask [--content-type TYPE] [--path /api/v1/...] [--content-encoding ENC]
Reads a Kubernetes API response body from stdin and writes the masked body to stdout.
  --content-type      response content type (default application/json)
  --path              request path with query; selects watch framing (?watch=1) and object kinds
  --content-encoding  response content-encoding (anything but identity is refused, as the gateway does)
Exit status: 0 masked, 2 usage error, 3 blocked (the gateway would answer 502).`;

/** Exit codes: 0 success, 2 usage, 3 blocked. */
export async function runMaskCommand(argv: readonly string[], io: MaskCommandIo, config: MaskConfig = loadMaskConfig({})): Promise<number> {
  let contentType = "application/json";
  let path: string | undefined;
  let contentEncoding: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const [flag, inline] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    if (flag === "--help" || flag === "-h") {
      io.stdout.write(`${MASK_COMMAND_USAGE}\n`);
      return 0;
    }
    const value = inline ?? argv[i + 1];
    if (inline === undefined) i++;
    if (value === undefined || (flag !== "--content-type" && flag !== "--path" && flag !== "--content-encoding")) {
      io.stderr.write(`airlock mask: ${value === undefined && flag.startsWith("--") ? `${flag} needs a value` : `unknown argument ${arg}`}\n${MASK_COMMAND_USAGE}\n`);
      return 2;
    }
    if (flag === "--content-type") contentType = value;
    else if (flag === "--path") path = value;
    else contentEncoding = value;
  }
  const plan = planResponseMasking({ contentType, contentEncoding, path }, config);
  if (plan.action === "block") {
    io.stderr.write(`airlock mask: blocked (${plan.code}): ${plan.message}\n`);
    return 3;
  }
  if (plan.action === "skip") {
    for await (const chunk of io.stdin) io.stdout.write(chunk);
    return 0;
  }
  let masked = 0;
  try {
    for await (const chunk of io.stdin) {
      const result = plan.masker.push(typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk);
      if (!result.ok) {
        io.stderr.write(`airlock mask: blocked (${result.code}): ${result.message}\n`);
        return 3;
      }
      masked += result.maskedCount;
      if (result.out.length > 0) io.stdout.write(result.out);
    }
    const ended = plan.masker.end();
    if (!ended.ok) {
      io.stderr.write(`airlock mask: blocked (${ended.code}): ${ended.message}\n`);
      return 3;
    }
    masked += ended.maskedCount;
    if (ended.out.length > 0) io.stdout.write(ended.out);
  } catch (err) {
    io.stderr.write(`airlock mask: blocked (internal_error): masking failed: ${err instanceof Error ? err.name : "error"}\n`);
    return 3;
  }
  io.stderr.write(`airlock mask: ${masked} value(s) masked\n`);
  return 0;
}
