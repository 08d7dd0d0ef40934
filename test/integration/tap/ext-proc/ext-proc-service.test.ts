/**
 * @module test/integration/tap/ext-proc/ext-proc-service.test
 * A real grpc-js server with the ext_proc handlers on 127.0.0.1:0, driven by a real grpc-js client
 * exactly as Envoy drives it: one Process stream per HTTP request, headers, chunked bodies with
 * end_of_stream, trailers skipped, ext_authz metadata in metadata_context; watch streams cut at
 * random offsets; immediate 502s; client cancellation.
 */
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEnvoyServices } from "../../../../protos/load.js";
import type { ExternalProcessorClient } from "../../../../protos/generated/envoy/service/ext_proc/v3/ExternalProcessor.js";
import type { ProcessingRequest } from "../../../../protos/generated/envoy/service/ext_proc/v3/ProcessingRequest.js";
import type { ProcessingResponse__Output } from "../../../../protos/generated/envoy/service/ext_proc/v3/ProcessingResponse.js";
import { toProtoStruct } from "../../../../protos/struct-value.js";
import { loadExtProcConfig } from "../../../../tap/ext-proc/ext-proc-config.js";
import type { ExchangeRecord } from "../../../../tap/ext-proc/exchange-record.js";
import { createExternalProcessorHandlers } from "../../../../tap/ext-proc/ext-proc-service.js";
import { defaultMaskConfig } from "../../../../tap/mask/mask-config.js";
import { maskResponseBody } from "../../../../tap/mask/mask-response.js";
import { expectNoPlantedSecret, fixture } from "../../../unit/tap/planted-secrets.js";

const records: ExchangeRecord[] = [];
let server: grpc.Server;
let client: ExternalProcessorClient;

beforeAll(async () => {
  server = new grpc.Server();
  server.addService(
    loadEnvoyServices().externalProcessor.service,
    createExternalProcessorHandlers({ config: loadExtProcConfig({}), onExchange: (r) => records.push(r) }),
  );
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => {
      if (err) reject(err);
      else resolve(p);
    });
  });
  const Client = loadEnvoyServices().externalProcessor;
  client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client.close();
  await new Promise<void>((resolve) => { server.tryShutdown(() => { resolve(); }); });
});

const authzMetadata = (kube: Record<string, string>): NonNullable<ProcessingRequest["metadata_context"]> => ({
  filter_metadata: {
    "envoy.filters.http.ext_authz": toProtoStruct({ decision_id: "dec-42", subject: "agent:ci", groups: ["agents"], session_id: "s-1", kube, rule_ids: ["r1"], policy_version: "3" }),
  },
});

function hdrs(pairs: Array<[string, string]>): { headers: Array<{ key: string; raw_value: Buffer }> } {
  return { headers: pairs.map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) };
}

/**
 * Plays one HTTP exchange like Envoy: sends each message and waits for its reply before the next
 * (the order guarantee Envoy relies on), stops at an immediate_response, then half-closes.
 */
async function exchange(messages: ProcessingRequest[]): Promise<ProcessingResponse__Output[]> {
  const call = client.Process();
  const replies: ProcessingResponse__Output[] = [];
  const queue: Array<(r: ProcessingResponse__Output) => void> = [];
  call.on("data", (r: ProcessingResponse__Output) => {
    replies.push(r);
    queue.shift()?.(r);
  });
  const ended = new Promise<void>((resolve, reject) => {
    call.on("end", () => { resolve(); });
    call.on("error", reject);
  });
  for (const message of messages) {
    const reply = new Promise<ProcessingResponse__Output>((resolve) => queue.push(resolve));
    call.write(message);
    const r = await reply;
    if (r.response === "immediate_response") break;
  }
  call.end();
  await ended;
  return replies;
}

function forwarded(chunks: Buffer[], replies: ProcessingResponse__Output[]): Buffer {
  return Buffer.concat(
    replies.map((reply, i) => {
      const mutation = reply.response_body?.response?.body_mutation;
      if (!mutation || mutation.mutation === undefined) return chunks[i]!;
      return mutation.mutation === "clear_body" ? Buffer.alloc(0) : mutation.body!;
    }),
  );
}

async function recordFor(requestId: string): Promise<ExchangeRecord> {
  for (let i = 0; i < 200; i++) {
    const found = records.find((r) => r.requestId === requestId);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no record for ${requestId}`);
}

function split(buffer: Buffer, offsets: number[]): Buffer[] {
  const sorted = [...new Set(offsets)].filter((o) => o > 0 && o < buffer.length).sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let last = 0;
  for (const o of [...sorted, buffer.length]) {
    parts.push(buffer.subarray(last, o));
    last = o;
  }
  return parts;
}

describe("ext_proc over real gRPC", () => {
  it("masks a chunked Secret GET and records it with the ext_authz metadata", async () => {
    const secret = fixture("secret-list.json");
    const chunks = split(secret, [100, 512, 1000]);
    const meta = authzMetadata({ verb: "list", api_group: "", resource: "secrets", namespace: "prod" });
    const replies = await exchange([
      { request_headers: { headers: hdrs([[":method", "GET"], [":path", "/api/v1/namespaces/prod/secrets"], ["x-request-id", "it-1"], ["authorization", "Bearer agent-jwt-value-LEAK"]]), end_of_stream: true }, metadata_context: meta },
      { response_headers: { headers: hdrs([[":status", "200"], ["content-type", "application/json"], ["content-length", String(secret.length)]]) }, metadata_context: meta },
      ...chunks.map((c, i) => ({ response_body: { body: c, end_of_stream: i === chunks.length - 1 }, metadata_context: meta })),
    ]);
    expect(replies.map((r) => r.response)).toEqual(["request_headers", "response_headers", ...chunks.map(() => "response_body")]);
    expect(replies[1]!.response_headers!.response!.header_mutation!.remove_headers).toEqual(["content-length"]);
    const out = forwarded(chunks, replies.slice(2));
    expectNoPlantedSecret(out);
    const expected = maskResponseBody({ contentType: "application/json", path: "/api/v1/namespaces/prod/secrets", body: secret }, defaultMaskConfig);
    expect(expected.ok && out.equals(expected.body)).toBe(true);
    const record = await recordFor("it-1");
    expect(record).toMatchObject({ decisionId: "dec-42", subject: "agent:ci", groups: ["agents"], sessionId: "s-1", ruleIds: ["r1"], policyVersion: "3", kube: { verb: "list", resource: "secrets" }, outcome: "complete", responseStatus: 200 });
    expect(record.redactedHeaders).toContain("authorization");
    expectNoPlantedSecret(JSON.stringify(record));
  });

  it("masks a watch stream cut at random offsets, every run (property over real streams)", async () => {
    const watch = fixture("watch-secrets.jsonl");
    const expected = maskResponseBody({ contentType: "application/json", path: "/api/v1/secrets?watch=1", body: watch }, defaultMaskConfig);
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: watch.length - 1 }), { maxLength: 20 }), async (offsets) => {
        const chunks = split(watch, offsets);
        const id = `watch-${run++}`;
        const replies = await exchange([
          { request_headers: { headers: hdrs([[":method", "GET"], [":path", "/api/v1/secrets?watch=1"], ["x-request-id", id]]), end_of_stream: true } },
          { response_headers: { headers: hdrs([[":status", "200"], ["content-type", "application/json"]]) } },
          ...chunks.map((c, i) => ({ response_body: { body: c, end_of_stream: i === chunks.length - 1 } })),
        ]);
        const out = forwarded(chunks, replies.slice(2));
        expectNoPlantedSecret(out);
        expect(expected.ok && out.equals(expected.body)).toBe(true);
        expect((await recordFor(id)).outcome).toBe("complete");
      }),
      { numRuns: 25 },
    );
  });

  it("keeps a long watch stream going (thousands of events) with bounded replies", async () => {
    const lines = fixture("watch-secrets.jsonl").toString().split("\n").filter((l) => l !== "");
    const body = Buffer.from(Array.from({ length: 3000 }, (_, i) => `${lines[i % lines.length]!}\n`).join(""));
    const chunks = split(body, Array.from({ length: 400 }, (_, i) => Math.floor((i * body.length) / 400) + 13));
    const replies = await exchange([
      { request_headers: { headers: hdrs([[":method", "GET"], [":path", "/api/v1/secrets?watch=1"], ["x-request-id", "long-watch"]]), end_of_stream: true } },
      { response_headers: { headers: hdrs([[":status", "200"], ["content-type", "application/json"]]) } },
      ...chunks.map((c, i) => ({ response_body: { body: c, end_of_stream: i === chunks.length - 1 } })),
    ]);
    expect(replies).toHaveLength(chunks.length + 2);
    expectNoPlantedSecret(forwarded(chunks, replies.slice(2)));
    const record = await recordFor("long-watch");
    expect(record.responseBody.truncated).toBe(true);
    expect(record.responseBody.bytes).toBe(body.length);
  });

  it("answers an uninspectable response with an immediate 502 Kubernetes Status", async () => {
    const replies = await exchange([
      { request_headers: { headers: hdrs([[":method", "GET"], [":path", "/api/v1/namespaces/prod/secrets/db"], ["x-request-id", "it-proto"]]), end_of_stream: true } },
      { response_headers: { headers: hdrs([[":status", "200"], ["content-type", "application/vnd.kubernetes.protobuf"]]) } },
      { response_body: { body: Buffer.from("k8s\0LEAK"), end_of_stream: true } },
    ]);
    expect(replies).toHaveLength(2);
    const immediate = replies[1]!.immediate_response!;
    expect(immediate.status!.code).toBe("BadGateway");
    expect(JSON.parse(immediate.body.toString())).toMatchObject({ kind: "Status", code: 502, reason: "ResponseBlocked" });
    expect(immediate.headers!.set_headers[0]!.header!.raw_value.toString()).toBe("application/json");
    expect((await recordFor("it-proto")).outcome).toBe("blocked");
  });

  it("records an aborted exchange when the client cancels mid-stream", async () => {
    const call = client.Process();
    const firstReply = new Promise<void>((resolve) => call.once("data", () => { resolve(); }));
    call.on("error", () => undefined);
    call.write({ request_headers: { headers: hdrs([[":method", "GET"], [":path", "/api/v1/secrets?watch=1"], ["x-request-id", "it-cancel"]]), end_of_stream: true } });
    await firstReply;
    call.cancel();
    const record = await recordFor("it-cancel");
    expect(record.outcome).toBe("aborted");
  });

  it("records an aborted exchange when Envoy half-closes before the response", async () => {
    const replies = await exchange([{ request_headers: { headers: hdrs([[":method", "GET"], [":path", "/version"], ["x-request-id", "it-halfclose"]]), end_of_stream: true } }]);
    expect(replies).toHaveLength(1);
    expect((await recordFor("it-halfclose")).outcome).toBe("aborted");
  });
});
