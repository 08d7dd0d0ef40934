/**
 * @module test/unit/tap/watch-stream-masker.test
 * Watch streams: split at every byte offset and at random offsets (fast-check) the output equals the
 * one-shot result and never holds a secret; BOOKMARK/ERROR pass byte for byte; the tail is capped.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { splitAt } from "../../helpers/split-buffer.js";
import { defaultMaskConfig, loadMaskConfig } from "../../../tap/mask/mask-config.js";
import type { StreamMaskResult } from "../../../tap/mask/mask-result.js";
import { WatchStreamMasker } from "../../../tap/mask/watch-stream-masker.js";
import { expectNoPlantedSecret, fixture } from "./planted-secrets.js";

const stream = fixture("watch-secrets.jsonl");

function run(chunks: Buffer[], config = defaultMaskConfig): { out: Buffer; count: number; maxHeld: number } {
  const masker = new WatchStreamMasker(config);
  const outs: Buffer[] = [];
  let count = 0;
  let maxHeld = 0;
  const take = (r: StreamMaskResult): void => {
    if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
    outs.push(r.out);
    count += r.maskedCount;
  };
  for (const chunk of chunks) {
    take(masker.push(chunk));
    maxHeld = Math.max(maxHeld, masker.heldBytes);
  }
  take(masker.end());
  return { out: Buffer.concat(outs), count, maxHeld };
}


const oneShot = run([stream]);

describe("WatchStreamMasker", () => {
  it("masks ADDED/MODIFIED/DELETED objects and passes BOOKMARK and ERROR byte for byte", () => {
    expectNoPlantedSecret(oneShot.out);
    const inLines = stream.toString().split("\n");
    const outLines = oneShot.out.toString().split("\n");
    expect(outLines).toHaveLength(inLines.length);
    expect(outLines[2]).toBe(inLines[2]);
    expect(outLines[4]).toBe(inLines[4]);
    for (const line of outLines.filter((l) => l !== "")) expect(() => JSON.parse(line) as unknown).not.toThrow();
    expect(oneShot.count).toBeGreaterThan(0);
  });

  it("gives the same output when the stream is cut at every single byte offset", () => {
    for (let offset = 0; offset <= stream.length; offset++) {
      const { out } = run(splitAt(stream, [offset]));
      expect(out.equals(oneShot.out)).toBe(true);
    }
  });

  it("gives the same output for random multi-cut chunkings (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: stream.length }), { maxLength: 40 }), (offsets) => {
        const { out } = run(splitAt(stream, offsets));
        return out.equals(oneShot.out);
      }),
      { numRuns: 300 },
    );
  });

  it("handles one-byte chunks", () => {
    const chunks = Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1));
    expect(run(chunks).out.equals(oneShot.out)).toBe(true);
  });

  it("masks a final event without a trailing newline at end of stream", () => {
    const trimmed = stream.subarray(0, stream.length - 1);
    const { out } = run([trimmed]);
    expect(out.equals(oneShot.out.subarray(0, oneShot.out.length - 1))).toBe(true);
  });

  it("caps the carried tail: memory stays bounded and an over-long event fails closed", () => {
    const config = loadMaskConfig({ maxWatchEventBytes: 2048 });
    const masker = new WatchStreamMasker(config);
    const big = Buffer.from(JSON.stringify({ type: "ADDED", object: { kind: "Secret", data: { k: "QUJD".repeat(1000) } } }));
    let result: StreamMaskResult = { ok: true, out: Buffer.alloc(0), maskedCount: 0 };
    for (let i = 0; i < big.length && result.ok; i += 100) {
      result = masker.push(big.subarray(i, i + 100));
      expect(masker.heldBytes).toBeLessThanOrEqual(2048);
    }
    expect(result).toMatchObject({ ok: false, code: "event_too_large" });
    // A failed masker stays failed.
    expect(masker.push(Buffer.from("\n"))).toMatchObject({ ok: false, code: "event_too_large" });
    expect(masker.end()).toMatchObject({ ok: false });
  });

  it("stays bounded over a long stream (many events, small chunks)", () => {
    const events = Array.from({ length: 2000 }, (_, i) => stream.toString().split("\n")[i % 5]! + "\n").join("");
    const body = Buffer.from(events);
    const chunks: Buffer[] = [];
    for (let i = 0; i < body.length; i += 777) chunks.push(body.subarray(i, i + 777));
    const { out, maxHeld } = run(chunks);
    expectNoPlantedSecret(out);
    expect(maxHeld).toBeLessThanOrEqual(defaultMaskConfig.maxWatchEventBytes);
    expect(maxHeld).toBeLessThan(2048);
  });

  it("fails closed on a garbled event", () => {
    const masker = new WatchStreamMasker(defaultMaskConfig);
    expect(masker.push(Buffer.from('{"type":"ADDED","object":{"kind":"Secret"\n'))).toMatchObject({ ok: false, code: "unparseable_watch_event" });
    const other = new WatchStreamMasker(defaultMaskConfig);
    expect(other.push(Buffer.from("[1,2]\n"))).toMatchObject({ ok: false, code: "unparseable_watch_event" });
  });

  it("masks Table watch events (kubectl get -w)", () => {
    const table = JSON.parse(fixture("table-secrets-object.json").toString()) as unknown;
    const line = Buffer.from(`${JSON.stringify({ type: "ADDED", object: table })}\n`);
    const { out } = run([line]);
    expectNoPlantedSecret(out);
  });
});
