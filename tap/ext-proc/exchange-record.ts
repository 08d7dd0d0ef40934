/**
 * @module tap/ext-proc/exchange-record
 * What the ext_proc service hands the audit sink for each HTTP exchange: identity and decision from
 * ext_authz metadata, the masked request and response, sizes, timings and how the exchange ended.
 */
import type { KubeRequestAttributes } from "../mask/response-plan.js";

/** Why a body has no recorded text, when it has none. */
export type BodyOmission =
  | "none" // there was no body
  | "skipped" // processing skipped by explicit config (mask.skipBodyFor)
  | "blocked" // the response was blocked; nothing of it is kept
  | "credential_response" // TokenRequest / CSR responses are never stored, even masked
  | "uninspectable" // request body the masker cannot parse (e.g. protobuf): not stored
  | "too_large"; // request body above the capture limit: not stored

export interface RecordedBody {
  /** Masked body text (possibly cut at `recordBodyMaxBytes`), or null when omitted. */
  readonly text: string | null;
  /** Bytes as received from Envoy (before masking). */
  readonly bytes: number;
  /** The text was cut at the record limit. */
  readonly truncated: boolean;
  readonly omitted: BodyOmission | null;
}

export type ExchangeOutcome = "complete" | "blocked" | "aborted";

export interface ExchangeRecord {
  /** `x-request-id` (Envoy's request id), the key that joins ext_authz and ext_proc records. */
  readonly requestId: string | null;
  readonly decisionId: string | null;
  readonly subject: string | null;
  readonly groups: readonly string[];
  readonly sessionId: string | null;
  readonly ruleIds: readonly string[];
  readonly policyVersion: string | null;
  readonly kube: KubeRequestAttributes | null;
  readonly method: string | null;
  /** Request path with query, with detector matches (e.g. `?access_token=`) masked. */
  readonly path: string | null;
  readonly authority: string | null;
  /** Request headers minus credentials and token-like headers (names listed in redactedHeaders). */
  readonly requestHeaders: Readonly<Record<string, string>>;
  readonly responseHeaders: Readonly<Record<string, string>>;
  readonly redactedHeaders: readonly string[];
  readonly requestBody: RecordedBody;
  readonly responseStatus: number | null;
  readonly responseBody: RecordedBody;
  /** Values masked in the response (0 for skipped/blocked). */
  readonly maskedCount: number;
  /** Epoch milliseconds. */
  readonly timings: { readonly startMs: number; readonly firstByteMs: number | null; readonly endMs: number };
  readonly outcome: ExchangeOutcome;
  /** For blocked: the mask error code and message; for aborted: what ended the stream. */
  readonly reason: string | null;
}
