/**
 * @module test/unit/tap/json-body-masker.test
 * The whole-body JSON masker's input decoding: the ASCII shortcut must give exactly the UTF-8 decoding.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { decodeUtf8, maskJsonBuffer } from "../../../tap/mask/json-body-masker.js";
import { defaultMaskConfig } from "../../../tap/mask/mask-config.js";

describe("decodeUtf8", () => {
  it("equals Buffer#toString('utf8') for arbitrary bytes, ASCII or not (invalid sequences included)", () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ max: 127, maxLength: 200 })), (bytes) => {
        const body = Buffer.from(bytes);
        return decodeUtf8(body) === body.toString("utf8");
      }),
      { numRuns: 2000 },
    );
  });

  it("masks a Secret with non-ASCII keys and values the same way on both decoding paths", () => {
    const doc = { kind: "Secret", metadata: { name: "ünïcode", annotations: { note: "€ ok" } }, data: { "pässword": Buffer.from("s3cr€t").toString("base64") } };
    const result = maskJsonBuffer(Buffer.from(JSON.stringify(doc)), undefined, defaultMaskConfig);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const masked = JSON.parse(result.out.toString("utf8")) as { metadata: { name: string; annotations: { note: string } }; data: Record<string, string> };
    expect(masked.metadata.name).toBe("ünïcode");
    expect(masked.metadata.annotations.note).toBe("€ ok");
    expect(Buffer.from(masked.data["pässword"] ?? "", "base64").toString("utf8")).toMatch(/^airlock:masked:sha256:[0-9a-f]{8}$/);
  });
});
