/**
 * @module authz/check/explain-request
 * The decision a policy gives one request, without tokens or transport: what `airlock policy explain` prints and
 * what policy test files assert. Uses the same parser, body decoding and evaluation as the live Check.
 */
import type { KubeRequestAttributes } from "../kube/request-attributes.js";
import { parseKubeRequest } from "../kube/request-attributes.js";
import type { CompiledPolicy } from "../policy/compile-policy.js";
import { evaluatePolicy, type PolicyDecision } from "../policy/evaluate-policy.js";
import { parseRequestBody, type RequestBodyState } from "./request-body.js";

export interface ExplainInput {
  readonly policy: CompiledPolicy;
  readonly subject: string;
  readonly groups: readonly string[];
  readonly claims?: Readonly<Record<string, unknown>>;
  readonly method: string;
  /** Raw path with query, as Envoy would send it. */
  readonly path: string;
  /** Extra request headers (lower-case names), e.g. upgrade headers for exec over WebSocket. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Buffer;
  /** Defaults to application/json when a body is given. */
  readonly contentType?: string;
}

export type ExplainResult =
  | {
      readonly ok: true;
      readonly effect: PolicyDecision["effect"];
      readonly rules: PolicyDecision["rules"];
      readonly defaulted: boolean;
      readonly reason: string;
      readonly approval: PolicyDecision["approval"];
      readonly serviceAccount: PolicyDecision["serviceAccount"];
      readonly policyVersion: string;
      readonly bodyState: RequestBodyState;
      readonly attributes: KubeRequestAttributes;
    }
  | { readonly ok: false; readonly code: string; readonly error: string };

/** Parses "METHOD PATH" as given on the command line or in a policy test file. */
export function parseRequestLine(line: string): { method: string; path: string } | undefined {
  const match = /^\s*([A-Za-z]+)\s+(\S+)\s*$/.exec(line);
  if (!match?.[1] || !match[2]) return undefined;
  return { method: match[1].toUpperCase(), path: match[2] };
}

export function explainRequest(input: ExplainInput): ExplainResult {
  const headers: Record<string, string> = { ...(input.headers ?? {}) };
  if (input.body !== undefined) {
    headers["content-type"] ??= input.contentType ?? "application/json";
    headers["content-length"] ??= String(input.body.length);
  }
  const parsed = parseKubeRequest(input.method, input.path, headers);
  if (!parsed.ok) return { ok: false, code: parsed.code, error: parsed.message };
  const body = parseRequestBody(headers, "", input.body);
  const decision = evaluatePolicy(input.policy, {
    attributes: parsed.attributes,
    user: { subject: input.subject, groups: input.groups, claims: input.claims ?? {} },
    body: { state: body.state, object: body.object },
  });
  return {
    ok: true,
    effect: decision.effect,
    rules: decision.rules,
    defaulted: decision.defaulted,
    reason: decision.reason,
    approval: decision.approval,
    serviceAccount: decision.serviceAccount,
    policyVersion: decision.policyVersion,
    bodyState: body.state,
    attributes: parsed.attributes,
  };
}
