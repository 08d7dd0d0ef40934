/**
 * @module test/unit/tap/mask-command.test
 * `airlock mask`: stdin → masked stdout; exit 3 with a clear message where the gateway fails closed.
 */
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { runMaskCommand } from "../../../tap/mask/mask-command.js";
import { expectNoPlantedSecret, fixture } from "./planted-secrets.js";

async function runCli(argv: string[], input: Buffer): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const stdin = Readable.from([input.subarray(0, 7), input.subarray(7)]);
  const code = await runMaskCommand(argv, {
    stdin,
    stdout: { write: (c: Buffer | string) => (stdout += c.toString()) },
    stderr: { write: (c: Buffer | string) => (stderr += c.toString()) },
  });
  return { code, stdout, stderr };
}

describe("airlock mask", () => {
  it("masks a JSON body", async () => {
    const r = await runCli([], fixture("secret-list.json"));
    expect(r.code).toBe(0);
    expectNoPlantedSecret(r.stdout);
    expect(JSON.parse(r.stdout)).toMatchObject({ kind: "SecretList" });
  });

  it("masks a watch stream and a log", async () => {
    const watch = await runCli(["--path", "/api/v1/secrets?watch=1"], fixture("watch-secrets.jsonl"));
    expect(watch.code).toBe(0);
    expectNoPlantedSecret(watch.stdout);
    const log = await runCli(["--content-type=text/plain", "--path=/api/v1/namespaces/p/pods/x/log"], fixture("pod-log.txt"));
    expect(log.code).toBe(0);
    expectNoPlantedSecret(log.stdout);
  });

  it("exits 3 with a clear message where the gateway would fail closed", async () => {
    const proto = await runCli(["--content-type", "application/vnd.kubernetes.protobuf"], fixture("secret.json"));
    expect(proto).toMatchObject({ code: 3, stdout: "" });
    expect(proto.stderr).toContain("blocked (unsupported_content_type)");
    const gzip = await runCli(["--content-encoding", "gzip"], fixture("secret.json"));
    expect(gzip.code).toBe(3);
    const bad = await runCli([], Buffer.from("{nope"));
    expect(bad).toMatchObject({ code: 3, stdout: "" });
    expect(bad.stderr).toContain("unparseable_json");
  });

  it("exits 2 on usage errors and 0 on --help", async () => {
    expect((await runCli(["--bogus", "x"], Buffer.alloc(0))).code).toBe(2);
    expect((await runCli(["--path"], Buffer.alloc(0))).code).toBe(2);
    const help = await runCli(["--help"], Buffer.alloc(0));
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("usage: airlock mask");
  });
});
