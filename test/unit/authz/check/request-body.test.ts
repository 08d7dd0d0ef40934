/**
 * @module test/unit/authz/check/request-body
 * Body decoding for policy `object`: JSON and YAML decode, partial and undecodable bodies are flagged.
 */
import { describe, expect, it } from "vitest";
import { parseRequestBody } from "../../../../authz/check/request-body.js";

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

describe("parseRequestBody", () => {
  it("is absent without a body", () => {
    expect(parseRequestBody({}, "", undefined)).toMatchObject({ state: "absent", object: null });
  });

  it("decodes raw_body JSON (pack_as_bytes)", () => {
    const parsed = parseRequestBody({ "content-type": "application/json" }, "", json({ kind: "Pod" }));
    expect(parsed).toMatchObject({ state: "complete", object: { kind: "Pod" }, mediaType: "application/json" });
  });

  it("falls back to the UTF-8 body field", () => {
    const parsed = parseRequestBody({ "content-type": "application/merge-patch+json; charset=utf-8" }, '{"a":1}', Buffer.alloc(0));
    expect(parsed).toMatchObject({ state: "complete", object: { a: 1 }, mediaType: "application/merge-patch+json" });
  });

  it("decodes server-side apply YAML", () => {
    const parsed = parseRequestBody({ "content-type": "application/apply-patch+yaml" }, "", Buffer.from("kind: Pod\nspec:\n  hostPID: true\n"));
    expect(parsed).toMatchObject({ state: "complete", object: { kind: "Pod", spec: { hostPID: true } } });
  });

  it("marks Envoy's partial body", () => {
    const parsed = parseRequestBody({ "content-type": "application/json", "x-envoy-auth-partial-body": "true" }, "", json({ a: 1 }));
    expect(parsed.state).toBe("partial");
    expect(parsed.object).toBeNull();
  });

  it("marks a body shorter than its Content-Length as partial", () => {
    expect(parseRequestBody({ "content-type": "application/json", "content-length": "100" }, "", json({ a: 1 })).state).toBe("partial");
    expect(parseRequestBody({ "content-length": "10" }, "", undefined).state).toBe("partial");
  });

  it("flags malformed JSON, protobuf and CBOR as unparseable", () => {
    expect(parseRequestBody({ "content-type": "application/json" }, "", Buffer.from("{nope")).state).toBe("unparseable");
    expect(parseRequestBody({ "content-type": "application/vnd.kubernetes.protobuf" }, "", Buffer.from([0x6b, 0x38, 0x73, 0])).state).toBe("unparseable");
    expect(parseRequestBody({ "content-type": "application/cbor" }, "", Buffer.from([0xa1])).state).toBe("unparseable");
  });

  it("refuses YAML alias bombs", () => {
    const bomb = ["a: &a [x,x,x,x,x,x,x,x,x]", ...Array.from({ length: 30 }, (_, i) => `b${i}: &b${i} [*${i === 0 ? "a" : `b${i - 1}`},*${i === 0 ? "a" : `b${i - 1}`}]`)].join("\n");
    expect(parseRequestBody({ "content-type": "application/apply-patch+yaml" }, "", Buffer.from(bomb)).state).toBe("unparseable");
  });
});
