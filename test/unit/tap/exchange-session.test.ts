/**
 * @module test/unit/tap/exchange-session.test
 * The ext_proc state machine driven message by message as Envoy would: one matching reply per message,
 * response bodies masked and re-framed, fail-closed 502s, skip rules, records with ext_authz metadata.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ProcessingRequest__Output } from "../../../protos/generated/envoy/service/ext_proc/v3/ProcessingRequest.js";
import type { ProcessingResponse } from "../../../protos/generated/envoy/service/ext_proc/v3/ProcessingResponse.js";
import type { Struct__Output } from "../../../protos/generated/google/protobuf/Struct.js";
import type { Value__Output } from "../../../protos/generated/google/protobuf/Value.js";
import { loadExtProcConfig, type ExtProcConfig } from "../../../tap/ext-proc/ext-proc-config.js";
import type { ExchangeRecord } from "../../../tap/ext-proc/exchange-record.js";
import { ExchangeSession } from "../../../tap/ext-proc/exchange-session.js";
import { defaultMaskConfig } from "../../../tap/mask/mask-config.js";
import { maskResponseBody } from "../../../tap/mask/mask-response.js";
import { expectNoPlantedSecret, fixture } from "./planted-secrets.js";

type Phase = "request_headers" | "response_headers";
type BodyPhase = "request_body" | "response_body";

const AUTHZ = {
  decision_id: "dec-1",
  subject: "agent:ci",
  groups: ["agents"],
  session_id: "sess-9",
  kube: { verb: "get", api_group: "", resource: "secrets", subresource: "", namespace: "prod", name: "db" },
  rule_ids: ["read-only"],
  policy_version: "v7",
};

/** JSON → Struct as grpc-js decodes it (with the `kind` oneof name set, as on the wire). */
function toValue(value: unknown): Value__Output {
  if (value === null) return { kind: "nullValue", nullValue: "NULL_VALUE" };
  if (typeof value === "string") return { kind: "stringValue", stringValue: value };
  if (typeof value === "number") return { kind: "numberValue", numberValue: value };
  if (typeof value === "boolean") return { kind: "boolValue", boolValue: value };
  if (Array.isArray(value)) return { kind: "listValue", listValue: { values: value.map(toValue) } };
  return { kind: "structValue", structValue: toStruct(value as Record<string, unknown>) };
}

function toStruct(object: Record<string, unknown>): Struct__Output {
  return { fields: Object.fromEntries(Object.entries(object).map(([k, v]) => [k, toValue(v)])) };
}

function base(extra: Partial<ProcessingRequest__Output>, authz: Record<string, unknown> | null = AUTHZ): ProcessingRequest__Output {
  return {
    metadata_context:
      authz === null
        ? null
        : { filter_metadata: { "envoy.filters.http.ext_authz": toStruct(authz) }, typed_filter_metadata: {} },
    attributes: {},
    observability_mode: false,
    ...extra,
  };
}

function headers(phase: Phase, pairs: Array<[string, string]>, endOfStream = false, authz?: Record<string, unknown> | null): ProcessingRequest__Output {
  return base(
    { request: phase, [phase]: { headers: { headers: pairs.map(([key, value]) => ({ key, value: "", raw_value: Buffer.from(value) })) }, attributes: {}, end_of_stream: endOfStream } },
    authz,
  );
}

function body(phase: BodyPhase, bytes: Buffer, endOfStream: boolean, authz?: Record<string, unknown> | null): ProcessingRequest__Output {
  return base({ request: phase, [phase]: { body: bytes, end_of_stream: endOfStream } }, authz);
}

const GET_SECRET: Array<[string, string]> = [
  [":method", "GET"],
  [":path", "/api/v1/namespaces/prod/secrets/db"],
  [":authority", "kube.local"],
  ["x-request-id", "req-123"],
  ["authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"],
  ["cookie", "session=abc"],
  ["x-api-token", "tok"],
  ["accept", "application/json"],
];
const JSON_200: Array<[string, string]> = [[":status", "200"], ["content-type", "application/json"], ["content-length", "999"]];

/** Drives messages, asserting one reply per message whose oneof matches the message (or immediate). */
function drive(session: ExchangeSession, messages: ProcessingRequest__Output[]): { replies: ProcessingResponse[]; records: ExchangeRecord[] } {
  const replies: ProcessingResponse[] = [];
  const records: ExchangeRecord[] = [];
  for (const message of messages) {
    const step = session.handle(message);
    expect(step.reply).not.toBeNull();
    const reply = step.reply!;
    const keys = Object.keys(reply).filter((k) => k !== "mode_override");
    expect(keys).toHaveLength(1);
    expect([message.request, "immediate_response"]).toContain(keys[0]);
    replies.push(reply);
    if (step.record) records.push(step.record);
  }
  return { replies, records };
}

/** What Envoy would forward downstream for the response body given the body replies. */
function forwardedBody(inputs: Buffer[], replies: ProcessingResponse[]): Buffer {
  const out: Buffer[] = [];
  replies.forEach((reply, i) => {
    const mutation = reply.response_body?.response?.body_mutation;
    if (!mutation) out.push(inputs[i]!);
    else if (mutation.clear_body) out.push(Buffer.alloc(0));
    else out.push(Buffer.from(mutation.body as Buffer));
  });
  return Buffer.concat(out);
}

function chunk(buffer: Buffer, size: number): Buffer[] {
  const parts: Buffer[] = [];
  for (let i = 0; i < buffer.length; i += size) parts.push(buffer.subarray(i, i + size));
  return parts;
}

const config = loadExtProcConfig({});
let now = 1_000;
const clock = (): number => ++now;

describe("ExchangeSession: a masked GET", () => {
  it("continues the request untouched, strips content-length, holds JSON chunks and emits the masked body last", () => {
    const session = new ExchangeSession(config, clock);
    const secret = fixture("secret.json");
    const chunks = chunk(secret, 100);
    const { replies, records } = drive(session, [
      headers("request_headers", GET_SECRET, true),
      headers("response_headers", JSON_200),
      ...chunks.map((c, i) => body("response_body", c, i === chunks.length - 1)),
    ]);
    expect(replies[0]).toEqual({ request_headers: { response: { status: "CONTINUE" } } });
    expect(replies[1]!.response_headers!.response!.header_mutation!.remove_headers).toEqual(["content-length"]);
    for (const reply of replies.slice(2, -1)) expect(reply.response_body!.response!.body_mutation).toEqual({ clear_body: true });
    const forwarded = forwardedBody(chunks, replies.slice(2));
    const expected = maskResponseBody({ contentType: "application/json", path: "/api/v1/namespaces/prod/secrets/db", body: secret }, defaultMaskConfig);
    expect(expected.ok && forwarded.equals(expected.body)).toBe(true);
    expectNoPlantedSecret(forwarded);

    expect(records).toHaveLength(1);
    const record = records[0]!;
    expect(record).toMatchObject({
      requestId: "req-123",
      decisionId: "dec-1",
      subject: "agent:ci",
      groups: ["agents"],
      sessionId: "sess-9",
      ruleIds: ["read-only"],
      policyVersion: "v7",
      kube: { verb: "get", resource: "secrets", namespace: "prod", name: "db" },
      method: "GET",
      path: "/api/v1/namespaces/prod/secrets/db",
      authority: "kube.local",
      responseStatus: 200,
      outcome: "complete",
      reason: null,
      maskedCount: 4,
      requestBody: { text: null, bytes: 0, omitted: "none" },
      responseBody: { bytes: secret.length, truncated: false, omitted: null },
    });
    expect(record.redactedHeaders).toEqual(["authorization", "cookie", "x-api-token"]);
    expect(record.requestHeaders.accept).toBe("application/json");
    expect(record.timings.startMs).toBeLessThan(record.timings.firstByteMs!);
    expect(record.timings.firstByteMs!).toBeLessThan(record.timings.endMs);
    const serialized = JSON.stringify(record);
    expectNoPlantedSecret(serialized);
    expect(serialized).not.toContain("eyJzdWIiOiJhZ2VudCJ9");
    expect(serialized).not.toContain("session=abc");
  });

  it("handles a body delivered in a single BUFFERED message", () => {
    const session = new ExchangeSession(config, clock);
    const secret = fixture("secret-list.json");
    const { replies, records } = drive(session, [headers("request_headers", GET_SECRET, true), headers("response_headers", JSON_200), body("response_body", secret, true)]);
    expectNoPlantedSecret(forwardedBody([secret], replies.slice(2)));
    expect(records[0]!.outcome).toBe("complete");
  });

  it("passes an unchanged chunk without a body mutation", () => {
    const session = new ExchangeSession(config, clock);
    const ns = Buffer.from('{"kind":"Namespace","metadata":{"name":"prod"}}');
    const { replies } = drive(session, [headers("request_headers", GET_SECRET, true), headers("response_headers", JSON_200), body("response_body", ns, true)]);
    expect(replies[2]).toEqual({ response_body: { response: { status: "CONTINUE" } } });
  });
});

describe("ExchangeSession: watch streams", () => {
  const watch = fixture("watch-secrets.jsonl");
  const expected = maskResponseBody({ contentType: "application/json", path: "/api/v1/namespaces/prod/secrets?watch=1", body: watch }, defaultMaskConfig);

  it("re-frames events cut at random offsets and never forwards a secret (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: watch.length - 1 }), { maxLength: 25 }), (cuts) => {
        const offsets = [...new Set(cuts)].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let last = 0;
        for (const o of [...offsets, watch.length]) {
          chunks.push(watch.subarray(last, o));
          last = o;
        }
        const session = new ExchangeSession(config, clock);
        const watchHeaders: Array<[string, string]> = [[":method", "GET"], [":path", "/api/v1/namespaces/prod/secrets?watch=1"]];
        const { replies, records } = drive(session, [
          headers("request_headers", watchHeaders, true, { ...AUTHZ, kube: { verb: "watch", resource: "secrets", namespace: "prod" } }),
          headers("response_headers", [[":status", "200"], ["content-type", "application/json"], ["transfer-encoding", "chunked"]]),
          ...chunks.map((c, i) => body("response_body", c, i === chunks.length - 1)),
        ]);
        const forwarded = forwardedBody(chunks, replies.slice(2));
        expectNoPlantedSecret(forwarded);
        expect(expected.ok && forwarded.equals(expected.body)).toBe(true);
        expect(records).toHaveLength(1);
      }),
      { numRuns: 150 },
    );
  });

  it("treats trailers after a fully framed stream as the end", () => {
    const session = new ExchangeSession(config, clock);
    const { replies, records } = drive(session, [
      headers("request_headers", [[":method", "GET"], [":path", "/api/v1/secrets?watch=true"]], true),
      headers("response_headers", JSON_200),
      body("response_body", watch, false),
      base({ request: "response_trailers", response_trailers: { trailers: { headers: [] } } }),
    ]);
    expect(replies[3]).toEqual({ response_trailers: {} });
    expect(records[0]!.outcome).toBe("complete");
  });

  it("blocks trailers that arrive while part of an event is held back", () => {
    const session = new ExchangeSession(config, clock);
    const { replies, records } = drive(session, [
      headers("request_headers", [[":method", "GET"], [":path", "/api/v1/secrets?watch=true"]], true),
      headers("response_headers", JSON_200),
      body("response_body", watch.subarray(0, 50), false),
      base({ request: "response_trailers", response_trailers: { trailers: { headers: [] } } }),
    ]);
    expect(replies[3]!.immediate_response).toBeDefined();
    expect(records[0]!.outcome).toBe("blocked");
  });
});

describe("ExchangeSession: fail closed", () => {
  function blockedAtHeaders(responseHeaders: Array<[string, string]>): { replies: ProcessingResponse[]; records: ExchangeRecord[]; session: ExchangeSession } {
    const session = new ExchangeSession(config, clock);
    const result = drive(session, [headers("request_headers", GET_SECRET, true), headers("response_headers", responseHeaders)]);
    return { ...result, session };
  }

  for (const [label, hs, code] of [
    ["protobuf", [[":status", "200"], ["content-type", "application/vnd.kubernetes.protobuf"]], "unsupported_content_type"],
    ["CBOR", [[":status", "200"], ["content-type", "application/cbor"]], "unsupported_content_type"],
    ["YAML", [[":status", "200"], ["content-type", "application/yaml"]], "unsupported_content_type"],
    ["gzip", [[":status", "200"], ["content-type", "application/json"], ["content-encoding", "gzip"]], "content_encoded"],
  ] as Array<[string, Array<[string, string]>, string]>) {
    it(`answers ${label} with an immediate 502 Status and records it blocked`, () => {
      const { replies, records, session } = blockedAtHeaders(hs);
      const immediate = replies[1]!.immediate_response!;
      expect(immediate.status).toEqual({ code: 502 });
      const status = JSON.parse(Buffer.from(immediate.body as Buffer).toString()) as { kind: string; code: number; details: { causes: Array<{ reason: string }> } };
      expect(status).toMatchObject({ kind: "Status", code: 502, status: "Failure", reason: "ResponseBlocked" });
      expect(status.details.causes[0]!.reason).toBe(code);
      expect(immediate.headers!.set_headers![0]!.header!.key).toBe("content-type");
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({ outcome: "blocked", responseBody: { text: null, omitted: "blocked" }, maskedCount: 0 });
      expect(records[0]!.reason).toContain(code);
      // Anything Envoy still sends gets the same block, and no second record.
      const again = session.handle(body("response_body", fixture("secret.json"), true));
      expect(again.reply!.immediate_response).toBeDefined();
      expect(again.record).toBeNull();
      expect(session.abort("late")).toBeNull();
    });
  }

  it("blocks unparseable JSON at the end of the body, never passing held chunks", () => {
    const session = new ExchangeSession(config, clock);
    const broken = fixture("secret.json").subarray(0, 300);
    const { replies, records } = drive(session, [headers("request_headers", GET_SECRET, true), headers("response_headers", JSON_200), body("response_body", broken, false), body("response_body", Buffer.from("}"), true)]);
    expect(replies[2]!.response_body!.response!.body_mutation).toEqual({ clear_body: true });
    expect(replies[3]!.immediate_response).toBeDefined();
    expect(records[0]).toMatchObject({ outcome: "blocked" });
  });

  it("blocks a body over the limit as soon as it is exceeded", () => {
    const small = loadExtProcConfig({ mask: { maxBodyBytes: 200 } });
    const session = new ExchangeSession(small, clock);
    const { replies } = drive(session, [headers("request_headers", GET_SECRET, true), headers("response_headers", JSON_200), body("response_body", fixture("secret.json").subarray(0, 150), false), body("response_body", fixture("secret.json").subarray(150, 300), false)]);
    expect(replies[3]!.immediate_response).toBeDefined();
  });

  it("lets a body-less response through whatever its type (HEAD, 204)", () => {
    const session = new ExchangeSession(config, clock);
    const { replies, records } = drive(session, [headers("request_headers", GET_SECRET, true), headers("response_headers", [[":status", "204"], ["content-type", "application/vnd.kubernetes.protobuf"]], true)]);
    expect(replies[1]).toEqual({ response_headers: { response: { status: "CONTINUE" } } });
    expect(records[0]).toMatchObject({ outcome: "complete", responseStatus: 204, responseBody: { omitted: "none" } });
  });

  it("blocks a response body that arrives before response headers, and unknown messages", () => {
    const s1 = new ExchangeSession(config, clock);
    expect(s1.handle(body("response_body", Buffer.from("{}"), true)).reply!.immediate_response).toBeDefined();
    const s2 = new ExchangeSession(config, clock);
    const step = s2.handle(base({}));
    expect(step.reply!.immediate_response).toBeDefined();
    expect(step.record!.reason).toContain("protocol_error");
  });

  it("blocks a body without content-type", () => {
    const session = new ExchangeSession(config, clock);
    const { replies } = drive(session, [headers("request_headers", GET_SECRET, true), headers("response_headers", [[":status", "200"]]), body("response_body", Buffer.from("x"), true)]);
    expect(replies[2]!.immediate_response).toBeDefined();
  });
});

describe("ExchangeSession: skip rules, request bodies, modes", () => {
  const skipConfig = (allowModeOverride: boolean): ExtProcConfig =>
    loadExtProcConfig({ allowModeOverride, mask: { skipBodyFor: [{ resource: "pods", verbs: ["list"] }] } });
  const listPods: Array<[string, string]> = [[":method", "GET"], [":path", "/api/v1/pods"]];
  const podsAuthz = { ...AUTHZ, kube: { verb: "list", resource: "pods" } };

  it("switches the response body off with mode_override when Envoy allows it", () => {
    const session = new ExchangeSession(skipConfig(true), clock);
    const { replies, records } = drive(session, [headers("request_headers", listPods, true, podsAuthz), headers("response_headers", JSON_200, false, podsAuthz), body("response_body", Buffer.from("{}"), true)]);
    expect(replies[1]!.mode_override).toEqual({ response_body_mode: "NONE" });
    expect(records[0]!.responseBody.omitted).toBe("skipped");
  });

  it("without mode override, passes skipped chunks back unchanged and records no body", () => {
    const session = new ExchangeSession(skipConfig(false), clock);
    const { replies, records } = drive(session, [headers("request_headers", listPods, true, podsAuthz), headers("response_headers", JSON_200, false, podsAuthz), body("response_body", Buffer.from("not even json"), true)]);
    expect(replies[1]!.mode_override).toBeUndefined();
    expect(replies[2]).toEqual({ response_body: { response: { status: "CONTINUE" } } });
    expect(records[0]!.responseBody).toMatchObject({ text: null, omitted: "skipped" });
  });

  it("never alters the request body and records a masked copy", () => {
    const session = new ExchangeSession(config, clock);
    const create = Buffer.from(JSON.stringify({ kind: "Secret", apiVersion: "v1", metadata: { name: "n" }, stringData: { pw: "req-LEAK" } }));
    const reqHeaders: Array<[string, string]> = [[":method", "POST"], [":path", "/api/v1/namespaces/prod/secrets"], ["content-type", "application/json"]];
    const { replies, records } = drive(session, [
      headers("request_headers", reqHeaders),
      body("request_body", create.subarray(0, 20), false),
      body("request_body", create.subarray(20), true),
      headers("response_headers", [[":status", "201"], ["content-type", "application/json"]]),
      body("response_body", fixture("secret.json"), true),
    ]);
    expect(replies[1]).toEqual({ request_body: { response: { status: "CONTINUE" } } });
    expect(replies[2]).toEqual({ request_body: { response: { status: "CONTINUE" } } });
    const record = records[0]!;
    expect(record.requestBody).toMatchObject({ bytes: create.length, omitted: null, truncated: false });
    expect(JSON.parse(record.requestBody.text!)).toMatchObject({ kind: "Secret", stringData: { pw: expect.stringMatching(/^airlock:masked:/) as unknown } });
    expectNoPlantedSecret(JSON.stringify(record));
  });

  it("records uninspectable and oversized request bodies without content", () => {
    const s1 = new ExchangeSession(config, clock);
    s1.handle(headers("request_headers", [[":method", "POST"], [":path", "/api/v1/namespaces/p/secrets"], ["content-type", "application/vnd.kubernetes.protobuf"]]));
    s1.handle(body("request_body", Buffer.from("k8s\0LEAK"), true));
    expect(s1.abort("test")!.requestBody).toMatchObject({ text: null, omitted: "uninspectable" });
    const s2 = new ExchangeSession(loadExtProcConfig({ requestBodyCaptureMaxBytes: 4 }), clock);
    s2.handle(headers("request_headers", [[":method", "POST"], [":path", "/api/v1/namespaces/p/secrets"], ["content-type", "application/json"]]));
    s2.handle(body("request_body", Buffer.from('{"kind":"Secret"}'), true));
    expect(s2.abort("test")!.requestBody).toMatchObject({ text: null, omitted: "too_large", bytes: 17 });
  });

  it("answers request trailers", () => {
    const session = new ExchangeSession(config, clock);
    expect(session.handle(base({ request: "request_trailers", request_trailers: { trailers: { headers: [] } } })).reply).toEqual({ request_trailers: {} });
  });

  it("never replies in observability mode but still records", () => {
    const session = new ExchangeSession(config, clock);
    const step1 = session.handle({ ...headers("request_headers", GET_SECRET, true), observability_mode: true });
    const step2 = session.handle({ ...headers("response_headers", JSON_200, true), observability_mode: true });
    expect(step1.reply).toBeNull();
    expect(step2.reply).toBeNull();
    expect(step2.record!.outcome).toBe("complete");
  });

  it("records an aborted exchange once, and nothing after completion", () => {
    const session = new ExchangeSession(config, clock);
    session.handle(headers("request_headers", GET_SECRET, true));
    const aborted = session.abort("client went away");
    expect(aborted).toMatchObject({ outcome: "aborted", reason: "client went away", responseStatus: null });
    expect(session.abort("again")).toBeNull();
    expect(session.done).toBe(true);
  });

  it("keeps TokenRequest responses out of the record (masked for the client anyway)", () => {
    const session = new ExchangeSession(config, clock);
    const path: Array<[string, string]> = [[":method", "POST"], [":path", "/api/v1/namespaces/prod/serviceaccounts/ci/token"], ["content-type", "application/json"]];
    const token = fixture("token-request.json");
    const { replies, records } = drive(session, [headers("request_headers", path, true, null), headers("response_headers", JSON_200, false, null), body("response_body", token, true, null)]);
    expectNoPlantedSecret(forwardedBody([token], replies.slice(2)));
    expect(records[0]!.responseBody).toMatchObject({ text: null, omitted: "credential_response" });
  });

  it("truncates the recorded response body at the configured limit", () => {
    const session = new ExchangeSession(loadExtProcConfig({ recordBodyMaxBytes: 64 }), clock);
    const { records } = drive(session, [headers("request_headers", GET_SECRET, true), headers("response_headers", JSON_200), body("response_body", fixture("secret-list.json"), true)]);
    expect(records[0]!.responseBody.truncated).toBe(true);
    expect(Buffer.byteLength(records[0]!.responseBody.text!)).toBeLessThanOrEqual(64);
  });

  it("works without ext_authz metadata (fields null, masking by path)", () => {
    const session = new ExchangeSession(config, clock);
    const { records } = drive(session, [headers("request_headers", GET_SECRET, true, null), headers("response_headers", JSON_200, false, null), body("response_body", fixture("secret.json"), true, null)]);
    expect(records[0]).toMatchObject({ decisionId: null, subject: null, kube: null, groups: [], outcome: "complete" });
    expectNoPlantedSecret(JSON.stringify(records[0]));
  });
});
