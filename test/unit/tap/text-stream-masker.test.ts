/**
 * @module test/unit/tap/text-stream-masker.test
 * pods/log streams: identical output at every cut offset, PEM blocks spanning lines and chunks masked.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { defaultMaskConfig, loadMaskConfig } from "../../../tap/mask/mask-config.js";
import { TextStreamMasker } from "../../../tap/mask/text-stream-masker.js";
import { expectNoPlantedSecret, fixture } from "./planted-secrets.js";

const log = fixture("pod-log.txt");

function run(chunks: Buffer[], config = defaultMaskConfig): Buffer {
  const masker = new TextStreamMasker(config);
  const outs: Buffer[] = [];
  for (const chunk of chunks) {
    const r = masker.push(chunk);
    if (!r.ok) throw new Error(r.code);
    outs.push(r.out);
  }
  const e = masker.end();
  if (!e.ok) throw new Error(e.code);
  outs.push(e.out);
  return Buffer.concat(outs);
}

const oneShot = run([log]);

describe("TextStreamMasker", () => {
  it("masks every planted secret in a log, keeping other lines and the PEM markers", () => {
    expectNoPlantedSecret(oneShot);
    const text = oneShot.toString();
    expect(text.split("\n")).toHaveLength(log.toString().split("\n").length);
    expect(text).toContain("2026-01-01T00:00:00Z starting app version=1.2.3\n");
    expect(text).toMatch(/-----BEGIN RSA PRIVATE KEY-----airlock:masked:sha256:[0-9a-f]{8}\nairlock:masked:sha256:[0-9a-f]{8}\nairlock:masked:sha256:[0-9a-f]{8}-----END RSA PRIVATE KEY-----\n/);
  });

  it("gives identical output for a cut at every byte offset", () => {
    for (let offset = 0; offset <= log.length; offset++) {
      expect(run([log.subarray(0, offset), log.subarray(offset)]).equals(oneShot)).toBe(true);
    }
  });

  it("gives identical output for random chunkings (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 60 }), (sizes) => {
        const chunks: Buffer[] = [];
        let at = 0;
        let i = 0;
        while (at < log.length) {
          const size = sizes[i++ % sizes.length]!;
          chunks.push(log.subarray(at, at + size));
          at += size;
        }
        return run(chunks).equals(oneShot);
      }),
      { numRuns: 200 },
    );
  });

  it("keeps masking after an unterminated BEGIN until the stream ends", () => {
    const out = run([Buffer.from("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE-LEAK\nmore-LEAK")]).toString();
    expect(out).not.toContain("LEAK");
  });

  it("passes logs untouched when log masking is off", () => {
    expect(run([log], loadMaskConfig({ maskLogs: false })).equals(log)).toBe(true);
  });

  it("fails closed on a line longer than the cap", () => {
    const masker = new TextStreamMasker(loadMaskConfig({ maxWatchEventBytes: 64 }));
    expect(masker.push(Buffer.alloc(65, 0x61))).toMatchObject({ ok: false, code: "event_too_large" });
  });
});
