/**
 * @module test/unit/tap/audit/audit-row.test
 * Row construction: decision/exchange merge, outcomes, bounds, and the secret backstops.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  APPROVAL_COLUMNS, boundUtf8, buildApprovalRow, buildRequestRow, REDACTED, redactHeaders, REQUEST_COLUMNS, scrubSecrets, wellFormed,
} from "../../../../tap/audit/audit-row.js";
import { approvalEvent, decisionEvent, exchangeFor } from "../../../helpers/audit-events.js";

const limits = { requestBodyMaxBytes: 1024, responseBodyMaxBytes: 64 };
const CHAIN = ["gateway_instance", "chain_id", "chain_seq", "prev_hash"];

describe("buildRequestRow", () => {
  it("builds keys in column order, so the row serialises as the canonical form", () => {
    const d = decisionEvent();
    expect([...Object.keys(buildRequestRow(d, exchangeFor(d), limits, 0)), ...CHAIN]).toEqual([...REQUEST_COLUMNS]);
    expect([...Object.keys(buildRequestRow(undefined, exchangeFor(d), limits, 0)), ...CHAIN]).toEqual([...REQUEST_COLUMNS]);
    expect([...Object.keys(buildApprovalRow(approvalEvent())), ...CHAIN]).toEqual([...APPROVAL_COLUMNS]);
  });

  it("merges an allowed decision with its exchange", () => {
    const d = decisionEvent({ maskedRequestBody: "decision-copy" });
    const row = buildRequestRow(d, exchangeFor(d, { maskedRequestBody: '{"spec":{}}', requestBytes: 11, responseStatus: 201 }), limits, 0);
    expect(row).toMatchObject({
      effect: "Allow", response_outcome: "complete", response_status: 201, request_body: '{"spec":{}}', request_bytes: 11,
      session_id: d.sessionId, decision_id: d.decisionId, verb: "list", resource: "pods", namespace: "prod", time_us: d.timeMicros,
    });
  });

  it.each([
    ["Deny", "not_forwarded"], ["RequireApproval", "not_forwarded"], ["Unauthenticated", "not_forwarded"], ["Error", "not_forwarded"], ["Allow", "missing"],
  ] as const)("a %s decision without exchange is %s", (effect, outcome) => {
    const row = buildRequestRow(decisionEvent({ effect, maskedRequestBody: "abc" }), undefined, limits, 0);
    expect(row.response_outcome).toBe(outcome);
    expect(row.response_status).toBe(0);
    expect(row.request_body).toBe("abc");
  });

  it("an allowed stream that ext_proc never sees (exec, port-forward) is stream_not_inspected, not missing", () => {
    const row = buildRequestRow(decisionEvent({ effect: "Allow", noExchange: "stream_not_inspected" }), undefined, limits, 0);
    expect(row.response_outcome).toBe("stream_not_inspected");
  });

  it("records an exchange whose decision is unknown here with effect Unknown", () => {
    const x = exchangeFor(decisionEvent(), { outcome: "blocked", reason: "unparseable body" });
    const row = buildRequestRow(undefined, x, limits, 42);
    expect(row).toMatchObject({ effect: "Unknown", time_us: 42, decision_id: x.decisionId, request_id: x.requestId, response_outcome: "blocked", reason: "unparseable body" });
  });

  it("bounds the response body and sets the truncated flag", () => {
    const d = decisionEvent();
    const row = buildRequestRow(d, exchangeFor(d, { maskedResponseBody: "x".repeat(100) }), limits, 0);
    expect(row.response_body).toHaveLength(64);
    expect(row.response_truncated).toBe(1);
    const upstreamTruncated = buildRequestRow(d, exchangeFor(d, { responseTruncated: true }), limits, 0);
    expect(upstreamTruncated.response_truncated).toBe(1);
  });

  it("never stores credentials: secret headers, bearer tokens, PEM blocks", () => {
    const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl";
    const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
    const d = decisionEvent({
      maskedRequestHeaders: { Authorization: `Bearer ${jwt}`, Cookie: "a=b", "X-Trace": `t ${jwt}`, Accept: "application/json" },
      maskedRequestBody: `{"token":"${jwt}"}`,
    });
    const row = buildRequestRow(d, exchangeFor(d, { maskedRequestBody: "", maskedResponseBody: `{"ca":"${pem}"}` }), { requestBodyMaxBytes: 4096, responseBodyMaxBytes: 4096 }, 0);
    const serialised = JSON.stringify(row);
    expect(serialised).not.toContain(jwt);
    expect(serialised).not.toContain("MIIB");
    expect(JSON.parse(row.request_headers)).toEqual({ accept: "application/json", authorization: REDACTED, cookie: REDACTED, "x-trace": `t ${REDACTED}` });
  });
});

describe("string helpers", () => {
  it("scrubSecrets leaves ordinary text alone", () => {
    expect(scrubSecrets('{"kind":"Pod","metadata":{"name":"eyJ"}}')).toBe('{"kind":"Pod","metadata":{"name":"eyJ"}}');
  });

  it("redactHeaders sorts names and lower-cases them", () => {
    expect(redactHeaders({ B: "2", a: "1" })).toBe('{"a":"1","b":"2"}');
  });

  it("redactHeaders writes exactly what serialising a sorted, redacted object gives, odd names included", () => {
    // The reference: the plain-object construction the direct writer must reproduce byte for byte.
    const reference = (headers: Readonly<Record<string, string>>): string => {
      const out: Record<string, string> = {};
      for (const [name, value] of Object.entries(headers).map(([k, v]): [string, string] => [k.toLowerCase(), v])
        .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
        out[wellFormed(name)] = ["authorization", "cookie", "x-api-key"].includes(name) ? REDACTED : scrubSecrets(wellFormed(value));
      }
      return JSON.stringify(out);
    };
    const name = fc.oneof(
      fc.constantFrom("__proto__", "0", "7", "10", "01", "Accept", "accept", "ACCEPT", "Authorization", "cookie", "x-api-key", "x\uD800", "x\uDC00y", "é", "a\"b", "a\\b", "tab\t"),
      fc.string({ maxLength: 12 }),
    );
    const value = fc.oneof(fc.string({ maxLength: 30 }), fc.constant("Bearer eyJhbGciOi.eyJzdWIiOi.c2ln"), fc.constant("a\uD800\n\"q\""));
    fc.assert(fc.property(fc.array(fc.tuple(name, value), { maxLength: 8 }), (pairs) => {
      const headers = Object.fromEntries(pairs) as Record<string, string>;
      expect(redactHeaders(headers)).toBe(reference(headers));
    }), { numRuns: 2000 });
  });

  it("wellFormed replaces lone surrogates only", () => {
    expect(wellFormed("a\uD800b")).toBe("a\uFFFDb");
    expect(wellFormed("😀")).toBe("😀");
  });

  it("boundUtf8 never exceeds the limit nor splits a character", () => {
    // Regression: a literal U+FFFD cut away entirely (limit 0) once failed an over-strict assertion.
    expect(boundUtf8("\uFFFD", 0)).toEqual({ text: "", truncated: true });
    fc.assert(fc.property(fc.string({ unit: "grapheme", maxLength: 200 }), fc.nat(400), (text, max) => {
      const { text: out, truncated } = boundUtf8(text, max);
      expect(Buffer.byteLength(out, "utf8")).toBeLessThanOrEqual(Math.max(max, truncated ? 0 : Buffer.byteLength(text)));
      expect(text.startsWith(out)).toBe(true);
      // A cut never manufactures a replacement character (one may only come from the input itself).
      if (out.includes("\uFFFD")) expect(text.includes("\uFFFD")).toBe(true);
      expect(truncated).toBe(Buffer.byteLength(text, "utf8") > max);
    }));
  });
});
