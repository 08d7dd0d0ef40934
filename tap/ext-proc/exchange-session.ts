/**
 * @module tap/ext-proc/exchange-session
 * The pure ext_proc state machine for one HTTP exchange (one gRPC stream): takes each ProcessingRequest
 * as Envoy sends it, returns exactly one ProcessingResponse for it (none in observability mode), masks
 * the response body, fails closed with an immediate 502, and produces the ExchangeRecord once.
 */
import type { ProcessingRequest__Output } from "../../protos/generated/envoy/service/ext_proc/v3/ProcessingRequest.js";
import type { ProcessingResponse } from "../../protos/generated/envoy/service/ext_proc/v3/ProcessingResponse.js";
import type { CommonResponse } from "../../protos/generated/envoy/service/ext_proc/v3/CommonResponse.js";
import { buildBlockedStatusBody, BLOCKED_STATUS_CODE } from "../mask/kube-status-body.js";
import { kubePathHints } from "../mask/kube-path-hints.js";
import { maskRequestBody } from "../mask/mask-request-body.js";
import type { MaskErrorCode } from "../mask/mask-result.js";
import { planResponseMasking, type KubeRequestAttributes, type ResponsePlan } from "../mask/response-plan.js";
import { maskText } from "../mask/text-detectors.js";
import { EMPTY_EXT_AUTHZ_METADATA, readExtAuthzMetadata, type ExtAuthzMetadata } from "./ext-authz-metadata.js";
import type { ExtProcConfig } from "./ext-proc-config.js";
import type { BodyOmission, ExchangeOutcome, ExchangeRecord, RecordedBody } from "./exchange-record.js";
import { firstHeader, headerMapToEntries, recordableHeaders } from "./record-headers.js";

/** What the transport does for one incoming message: write `reply` (if any), hand `record` to the sink. */
export interface SessionStep {
  readonly reply: ProcessingResponse | null;
  readonly record: ExchangeRecord | null;
}

/** Session-level failure codes: the mask codes plus protocol violations by the peer. */
export type SessionBlockCode = MaskErrorCode | "protocol_error";

/** Responses whose bodies are credentials: masked for the client, never stored (even masked). */
const CREDENTIAL_RESOURCES = new Set(["serviceaccounts/token", "certificatesigningrequests"]);

const CONTINUE: CommonResponse = { status: "CONTINUE" };

/** Collects up to `limit` bytes of masked output for the record, counting what it drops. */
class BoundedCapture {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  truncated = false;

  constructor(private readonly limit: number) {}

  add(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const room = this.limit - this.kept;
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    const piece = chunk.length <= room ? chunk : chunk.subarray(0, room);
    // Copy: the record outlives the gRPC message buffers.
    this.chunks.push(Buffer.from(piece));
    this.kept += piece.length;
    if (piece.length < chunk.length) this.truncated = true;
  }

  text(): string {
    return Buffer.concat(this.chunks, this.kept).toString("utf8");
  }
}

export class ExchangeSession {
  private metadata: ExtAuthzMetadata = EMPTY_EXT_AUTHZ_METADATA;
  private metadataSeen = false;
  private startMs: number | null = null;
  private firstByteMs: number | null = null;
  private requestId: string | null = null;
  private method: string | null = null;
  private path: string | null = null;
  private authority: string | null = null;
  private requestContentType: string | undefined;
  private requestHeaders: Record<string, string> = {};
  private responseHeaders: Record<string, string> = {};
  private redacted: string[] = [];
  private requestBytes = 0;
  private readonly requestCapture: Buffer[] = [];
  private requestCaptured = 0;
  private requestOverflow = false;
  private responseStatus: number | null = null;
  private responseBytes = 0;
  private plan: ResponsePlan | null = null;
  private responseCapture: BoundedCapture;
  private maskedCount = 0;
  private blocked: { code: SessionBlockCode; message: string } | null = null;
  private recorded = false;

  constructor(
    private readonly config: ExtProcConfig,
    private readonly clock: () => number = Date.now,
  ) {
    this.responseCapture = new BoundedCapture(config.recordBodyMaxBytes);
  }

  /** Handles one message. Never throws: an internal error becomes an immediate 502 (fail closed). */
  handle(message: ProcessingRequest__Output): SessionStep {
    this.startMs ??= this.clock();
    let step: SessionStep;
    try {
      step = this.dispatch(message);
    } catch (err) {
      step = this.block("internal_error", `ext_proc failed while processing: ${err instanceof Error ? err.name : "error"}`);
    }
    // Observability mode: Envoy does not wait for replies and ignores them; sending one is a protocol error.
    return message.observability_mode ? { reply: null, record: step.record } : step;
  }

  /**
   * The stream ended (Envoy closed it, the client cancelled, or it failed) before the exchange
   * completed: returns the aborted record, or null when the record was already produced.
   */
  abort(reason: string): ExchangeRecord | null {
    if (this.recorded) return null;
    this.startMs ??= this.clock();
    return this.finish("aborted", reason);
  }

  /** True once the record has been produced (complete, blocked or aborted). */
  get done(): boolean {
    return this.recorded;
  }

  private dispatch(message: ProcessingRequest__Output): SessionStep {
    if (!this.metadataSeen && message.metadata_context) {
      const metadata = readExtAuthzMetadata(message.metadata_context);
      if (metadata !== EMPTY_EXT_AUTHZ_METADATA) {
        this.metadata = metadata;
        this.metadataSeen = true;
      }
    }
    if (this.blocked) return { reply: this.immediateReply(this.blocked.code, this.blocked.message), record: null };
    switch (message.request) {
      case "request_headers":
        return this.onRequestHeaders(message);
      case "request_body":
        return this.onRequestBody(message);
      case "request_trailers":
        return { reply: { request_trailers: {} }, record: null };
      case "response_headers":
        return this.onResponseHeaders(message);
      case "response_body":
        return this.onResponseBody(message);
      case "response_trailers":
        return this.onResponseTrailers();
      case undefined:
        break;
    }
    return this.block("protocol_error", "ext_proc message without a known request type");
  }

  private onRequestHeaders(message: ProcessingRequest__Output): SessionStep {
    const entries = headerMapToEntries(message.request_headers?.headers);
    this.method = firstHeader(entries, ":method") ?? null;
    const rawPath = firstHeader(entries, ":path");
    this.path = rawPath ?? null;
    this.authority = firstHeader(entries, ":authority") ?? null;
    this.requestId = firstHeader(entries, "x-request-id") ?? null;
    this.requestContentType = firstHeader(entries, "content-type");
    const recorded = recordableHeaders(entries, this.config.mask);
    this.requestHeaders = recorded.headers;
    this.redacted.push(...recorded.redacted);
    // The request is never altered upstream: authorization and header rewriting belong to ext_authz.
    return { reply: { request_headers: { response: CONTINUE } }, record: null };
  }

  private onRequestBody(message: ProcessingRequest__Output): SessionStep {
    const body = message.request_body?.body ?? Buffer.alloc(0);
    this.requestBytes += body.length;
    if (!this.requestOverflow) {
      if (this.requestCaptured + body.length > this.config.requestBodyCaptureMaxBytes) {
        this.requestOverflow = true;
        this.requestCapture.length = 0;
      } else if (body.length > 0) {
        this.requestCapture.push(Buffer.from(body));
        this.requestCaptured += body.length;
      }
    }
    // No body_mutation: the request body goes upstream exactly as sent.
    return { reply: { request_body: { response: CONTINUE } }, record: null };
  }

  private kubeAttributes(): KubeRequestAttributes | undefined {
    return this.metadata.kube ?? undefined;
  }

  private onResponseHeaders(message: ProcessingRequest__Output): SessionStep {
    this.firstByteMs ??= this.clock();
    const entries = headerMapToEntries(message.response_headers?.headers);
    const status = Number(firstHeader(entries, ":status"));
    this.responseStatus = Number.isInteger(status) ? status : null;
    const recorded = recordableHeaders(entries, this.config.mask);
    this.responseHeaders = recorded.headers;
    for (const name of recorded.redacted) if (!this.redacted.includes(name)) this.redacted.push(name);
    const endOfStream = message.response_headers?.end_of_stream ?? false;
    const plan = planResponseMasking(
      {
        contentType: firstHeader(entries, "content-type"),
        contentEncoding: firstHeader(entries, "content-encoding"),
        path: this.path ?? undefined,
        kube: this.kubeAttributes(),
      },
      this.config.mask,
    );
    this.plan = plan;
    if (plan.action === "block") {
      // Nothing to leak when there is no body (HEAD, 204): let the headers through.
      if (endOfStream) return { reply: { response_headers: { response: CONTINUE } }, record: this.finish("complete", null) };
      return this.block(plan.code, plan.message);
    }
    if (plan.action === "skip") {
      const reply: ProcessingResponse = { response_headers: { response: CONTINUE } };
      if (this.config.allowModeOverride && !endOfStream) reply.mode_override = { response_body_mode: "NONE" };
      return { reply, record: endOfStream ? this.finish("complete", null) : null };
    }
    if (endOfStream) {
      const ended = plan.masker.end();
      if (!ended.ok) return this.block(ended.code, ended.message);
      return { reply: { response_headers: { response: CONTINUE } }, record: this.finish("complete", null) };
    }
    // The body will be replaced: drop content-length (Envoy also does this itself in STREAMED mode;
    // in BUFFERED mode a stale length would make Envoy reject the mutation).
    return {
      reply: { response_headers: { response: { status: "CONTINUE", header_mutation: { remove_headers: ["content-length"] } } } },
      record: null,
    };
  }

  private onResponseBody(message: ProcessingRequest__Output): SessionStep {
    const body = message.response_body?.body ?? Buffer.alloc(0);
    const endOfStream = message.response_body?.end_of_stream ?? false;
    this.responseBytes += body.length;
    const plan = this.plan;
    if (plan === null) return this.block("protocol_error", "response body before response headers");
    if (plan.action === "block") return this.block(plan.code, plan.message);
    if (plan.action === "skip") {
      return { reply: { response_body: { response: CONTINUE } }, record: endOfStream ? this.finish("complete", null) : null };
    }
    const pushed = plan.masker.push(body);
    if (!pushed.ok) return this.block(pushed.code, pushed.message);
    let out = pushed.out;
    this.maskedCount += pushed.maskedCount;
    if (endOfStream) {
      const ended = plan.masker.end();
      if (!ended.ok) return this.block(ended.code, ended.message);
      this.maskedCount += ended.maskedCount;
      if (ended.out.length > 0) out = out.length === 0 ? ended.out : Buffer.concat([out, ended.out]);
    }
    this.responseCapture.add(out);
    let response: CommonResponse;
    if (out.length === 0) response = body.length === 0 ? CONTINUE : { status: "CONTINUE", body_mutation: { clear_body: true } };
    else if (out.equals(body)) response = CONTINUE; // unchanged chunk: no need to send it back
    else response = { status: "CONTINUE", body_mutation: { body: out } };
    return { reply: { response_body: { response } }, record: endOfStream ? this.finish("complete", null) : null };
  }

  private onResponseTrailers(): SessionStep {
    const plan = this.plan;
    if (plan?.action === "mask") {
      // A trailers reply cannot carry body bytes: anything still held back cannot be delivered.
      const ended = plan.masker.end();
      if (!ended.ok) return this.block(ended.code, ended.message);
      if (ended.out.length > 0) {
        return this.block("protocol_error", "response trailers arrived while masked body bytes were held back (set response_trailer_mode SKIP)");
      }
      this.maskedCount += ended.maskedCount;
    }
    return { reply: { response_trailers: {} }, record: this.recorded ? null : this.finish("complete", null) };
  }

  private block(code: SessionBlockCode, message: string): SessionStep {
    this.blocked = { code, message };
    const record = this.recorded ? null : this.finish("blocked", `${code}: ${message}`);
    return { reply: this.immediateReply(code, message), record };
  }

  private immediateReply(code: SessionBlockCode, message: string): ProcessingResponse {
    const statusCode: MaskErrorCode = code === "protocol_error" ? "internal_error" : code;
    return {
      immediate_response: {
        status: { code: BLOCKED_STATUS_CODE },
        headers: {
          set_headers: [
            { header: { key: "content-type", raw_value: Buffer.from("application/json") }, append_action: "OVERWRITE_IF_EXISTS_OR_ADD" },
          ],
        },
        body: buildBlockedStatusBody(statusCode, message),
        details: `airlock_ext_proc_${code}`,
      },
    };
  }

  private finish(outcome: ExchangeOutcome, reason: string | null): ExchangeRecord {
    this.recorded = true;
    const resource = this.metadata.kube?.resource ?? kubePathHints(this.path ?? undefined).resource;
    const sub = this.metadata.kube?.subresource ?? kubePathHints(this.path ?? undefined).subresource;
    const key = resource === undefined ? undefined : sub ? `${resource}/${sub}` : resource;
    const credential = (key !== undefined && CREDENTIAL_RESOURCES.has(key)) || (resource !== undefined && CREDENTIAL_RESOURCES.has(resource));
    return Object.freeze({
      requestId: this.requestId,
      decisionId: this.metadata.decisionId,
      subject: this.metadata.subject,
      groups: this.metadata.groups,
      sessionId: this.metadata.sessionId,
      ruleIds: this.metadata.ruleIds,
      policyVersion: this.metadata.policyVersion,
      kube: this.metadata.kube,
      method: this.method,
      path: this.path === null ? null : maskText(this.path, this.config.mask).text,
      authority: this.authority,
      requestHeaders: this.requestHeaders,
      responseHeaders: this.responseHeaders,
      redactedHeaders: [...this.redacted],
      requestBody: this.recordRequestBody(),
      responseStatus: this.responseStatus,
      responseBody: this.recordResponseBody(outcome, credential),
      maskedCount: outcome === "blocked" ? 0 : this.maskedCount,
      timings: { startMs: this.startMs ?? this.clock(), firstByteMs: this.firstByteMs, endMs: this.clock() },
      outcome,
      reason,
    });
  }

  private recordRequestBody(): RecordedBody {
    const omitted = (why: BodyOmission): RecordedBody => ({ text: null, bytes: this.requestBytes, truncated: false, omitted: why });
    if (this.requestBytes === 0) return omitted("none");
    if (this.requestOverflow) return omitted("too_large");
    const masked = maskRequestBody(
      {
        contentType: this.requestContentType,
        path: this.path ?? undefined,
        kube: this.kubeAttributes(),
        body: Buffer.concat(this.requestCapture, this.requestCaptured),
      },
      this.config.mask,
    );
    this.requestCapture.length = 0;
    if (!masked.ok) return omitted("uninspectable");
    const limit = this.config.recordBodyMaxBytes;
    const bytes = Buffer.from(masked.text, "utf8");
    if (bytes.length <= limit) return { text: masked.text, bytes: this.requestBytes, truncated: false, omitted: null };
    return { text: bytes.subarray(0, limit).toString("utf8"), bytes: this.requestBytes, truncated: true, omitted: null };
  }

  private recordResponseBody(outcome: ExchangeOutcome, credential: boolean): RecordedBody {
    const omitted = (why: BodyOmission): RecordedBody => ({ text: null, bytes: this.responseBytes, truncated: false, omitted: why });
    if (outcome === "blocked") return omitted("blocked");
    if (this.plan?.action === "skip") return omitted("skipped");
    if (credential && this.responseBytes > 0) return omitted("credential_response");
    if (this.responseBytes === 0) return omitted("none");
    return { text: this.responseCapture.text(), bytes: this.responseBytes, truncated: this.responseCapture.truncated, omitted: null };
  }
}
