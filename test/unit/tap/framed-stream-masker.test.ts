/**
 * @module test/unit/tap/framed-stream-masker.test
 * The per-chunk region path of the line framer: multi-byte UTF-8 cut anywhere, invalid UTF-8 falling
 * back to line-by-line with exact bytes, unchanged regions returned as they came, byte-accurate caps.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { splitAt } from "../../helpers/split-buffer.js";
import { defaultMaskConfig, loadMaskConfig, type MaskConfig } from "../../../tap/mask/mask-config.js";
import { FramedStreamMasker, type LineMasker } from "../../../tap/mask/framed-stream-masker.js";
import type { BodyMasker } from "../../../tap/mask/mask-result.js";
import { TextStreamMasker } from "../../../tap/mask/text-stream-masker.js";
import { WatchStreamMasker } from "../../../tap/mask/watch-stream-masker.js";

function run(masker: BodyMasker, chunks: Buffer[]): { out: Buffer; count: number } {
  const outs: Buffer[] = [];
  let count = 0;
  for (const chunk of [...chunks, undefined]) {
    const r = chunk === undefined ? masker.end() : masker.push(chunk);
    if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
    outs.push(r.out);
    count += r.maskedCount;
  }
  return { out: Buffer.concat(outs), count };
}


const secretB64 = Buffer.from("ünïcode-LEAK-🔑").toString("base64");
const events = [
  { type: "ADDED", object: { kind: "Secret", metadata: { name: "é-one", labels: { note: "日本語 ✓ 🔑" } }, data: { k: secretB64 } } },
  { type: "BOOKMARK", object: { kind: "Secret", metadata: { resourceVersion: "12", annotations: { "x/y": "ünchanged 🔑" } } } },
  { type: "MODIFIED", object: { kind: "Secret", metadata: { name: "two" }, data: { k: secretB64, other: "eA==" } } },
];
const watchText = events.map((e) => `${JSON.stringify(e)}\n`).join("");
const watchBytes = Buffer.from(watchText, "utf8");
const watchOneShot = run(new WatchStreamMasker(defaultMaskConfig), [watchBytes]);

describe("FramedStreamMasker regions", () => {
  it("masks multi-byte UTF-8 watch events identically at every cut offset (including inside a character)", () => {
    expect(watchOneShot.out.toString("utf8")).not.toContain(secretB64);
    expect(watchOneShot.count).toBe(3);
    const outLines = watchOneShot.out.toString("utf8").split("\n");
    expect(outLines[1]).toBe(JSON.stringify(events[1]));
    expect(outLines[0]).toContain("日本語 ✓ 🔑");
    for (let offset = 0; offset <= watchBytes.length; offset++) {
      expect(run(new WatchStreamMasker(defaultMaskConfig), splitAt(watchBytes, [offset])).out.equals(watchOneShot.out)).toBe(true);
    }
  });

  it("gives the same output for random multi-cut chunkings of a multi-byte stream (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: watchBytes.length }), { maxLength: 30 }), (offsets) => {
        return run(new WatchStreamMasker(defaultMaskConfig), splitAt(watchBytes, offsets)).out.equals(watchOneShot.out);
      }),
      { numRuns: 300 },
    );
  });

  it("returns a region with no masked line byte for byte", () => {
    const bookmarks = Buffer.from(`${JSON.stringify(events[1])}\n${JSON.stringify({ type: "ERROR", object: { kind: "Status", message: "gone" } })}\n`);
    const masker = new WatchStreamMasker(defaultMaskConfig);
    const pushed = masker.push(bookmarks);
    expect(pushed.ok && pushed.out.equals(bookmarks)).toBe(true);
  });

  it("keeps the exact bytes of unchanged lines when a region holds invalid UTF-8, and still masks the rest", () => {
    const invalidBookmark = Buffer.concat([Buffer.from('{"type":"BOOKMARK","object":{"metadata":{"x":"'), Buffer.from([0xff, 0xc3]), Buffer.from('"}}}\n')]);
    const secretLine = Buffer.from(`${JSON.stringify(events[0])}\n`);
    const body = Buffer.concat([secretLine, invalidBookmark, secretLine]);
    const oneShot = run(new WatchStreamMasker(defaultMaskConfig), [body]);
    expect(oneShot.count).toBe(2);
    expect(oneShot.out.includes(invalidBookmark)).toBe(true);
    expect(oneShot.out.toString("utf8")).not.toContain(secretB64);
    for (let offset = 0; offset <= body.length; offset++) {
      expect(run(new WatchStreamMasker(defaultMaskConfig), splitAt(body, [offset])).out.equals(oneShot.out)).toBe(true);
    }
  });

  it("passes invalid UTF-8 log lines byte for byte and masks secrets on other lines of the same chunk", () => {
    const binaryLine = Buffer.concat([Buffer.from("binary: "), Buffer.from([0xfe, 0x80, 0x41]), Buffer.from("\n")]);
    const body = Buffer.concat([binaryLine, Buffer.from("password=hunter2-LEAK\n"), binaryLine]);
    const { out, count } = run(new TextStreamMasker(defaultMaskConfig), [body]);
    expect(count).toBe(1);
    expect(out.subarray(0, binaryLine.length).equals(binaryLine)).toBe(true);
    expect(out.subarray(out.length - binaryLine.length).equals(binaryLine)).toBe(true);
    expect(out.toString("latin1")).not.toContain("LEAK");
  });

  it("applies the line cap in bytes, not characters, on both region paths", () => {
    const config: MaskConfig = loadMaskConfig({ maxWatchEventBytes: 30 });
    // 10 three-byte characters: 10 UTF-16 units (×3 = 30, within the cheap bound) and 30 bytes.
    const fits = Buffer.from(`${"€".repeat(10)}\n`);
    expect(run(new TextStreamMasker(config), [fits]).out.equals(fits)).toBe(true);
    // 11 of them: 33 bytes, one over the cap, whether valid or followed by an invalid byte.
    const over = new TextStreamMasker(config).push(Buffer.from(`${"€".repeat(11)}\n`));
    expect(over).toMatchObject({ ok: false, code: "event_too_large" });
    const overInvalid = new TextStreamMasker(config).push(Buffer.concat([Buffer.from("€".repeat(10)), Buffer.from([0xff, 0x0a])]));
    expect(overInvalid).toMatchObject({ ok: false, code: "event_too_large" });
    // Surrogate pairs: 7 emoji are 14 units (×3 = 42 > 30, so counted exactly) and 28 bytes: fits.
    const emoji = Buffer.from(`${"🔑".repeat(7)}\n`);
    expect(run(new TextStreamMasker(config), [emoji]).out.equals(emoji)).toBe(true);
  });

  it("hands every line to the line masker exactly once, in order, with the right terminated flag", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: "binary", maxLength: 12 }).map((s) => s.replace(/\n/g, "")), { maxLength: 12 }), fc.boolean(), fc.array(fc.nat(), { maxLength: 8 }), (lines, trailing, cuts) => {
        const text = lines.join("\n") + (trailing && lines.length > 0 ? "\n" : "");
        const bytes = Buffer.from(text, "utf8");
        const seen: Array<[string, boolean]> = [];
        const upper: LineMasker = (line, terminated) => {
          seen.push([line, terminated]);
          return { ok: true, masked: line.toUpperCase(), maskedCount: 1 };
        };
        const { out } = run(new FramedStreamMasker(upper, 1 << 20, "event_too_large"), splitAt(bytes, cuts.map((c) => c % (bytes.length + 1))));
        const expectedLines = text === "" ? [] : text.split("\n");
        if (text.endsWith("\n")) expectedLines.pop();
        expect(seen.map(([line]) => line)).toEqual(expectedLines);
        expect(seen.map(([, terminated]) => terminated)).toEqual(expectedLines.map((_, i) => i < expectedLines.length - 1 || text.endsWith("\n")));
        expect(out.toString("utf8")).toBe(text.toUpperCase());
      }),
      { numRuns: 300 },
    );
  });
});
