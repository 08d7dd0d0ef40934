/**
 * @module authz/approvals/approval-preview
 * Builds the masked request preview approvers see; Secret/ConfigMap bodies and secret-looking values never appear.
 */
import type { ApprovalPreview, ApprovalPreviewBody, ApprovalRequestAttributes } from "./approval-record.js";

/**
 * The response masker from the ext_proc side, when the composition root wires it in. Returning `ok: false`
 * (or throwing) withholds the body. authz never imports tap internals, so it arrives as a function.
 */
export type ApprovalBodyMasker = (
  body: string,
  attributes: ApprovalRequestAttributes,
) => { readonly ok: true; readonly text: string } | { readonly ok: false };

export interface ApprovalPreviewInput {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly attributes: ApprovalRequestAttributes;
  readonly body: Uint8Array | string | undefined;
  readonly maskBody?: ApprovalBodyMasker;
  /** Upper bound on the preview text kept in the store and shown to approvers. */
  readonly maxBytes: number;
}

export const MASKED_VALUE = "<masked>";

/** Without a real masker these resources' bodies are values in themselves, so they are never shown. */
const WITHHELD_RESOURCES: ReadonlySet<string> = new Set(["secrets", "configmaps"]);
const SECRET_KINDS: ReadonlySet<string> = new Set(["Secret", "ConfigMap"]);
const SECRET_DATA_FIELDS: ReadonlySet<string> = new Set(["data", "stringData", "binaryData"]);
/** Field names whose values are credentials wherever they appear. */
const SECRET_KEY = /(password|passwd|secret|token|credential|private[-_]?key|api[-_]?key)/i;
/** References name a Secret or key without holding its value (`secretKeyRef`, `secretName`, `tokenSecretRef`). */
const REFERENCE_KEY = /(Ref|Name|Names)$/;
/** Annotations that embed whole objects (and so possibly Secret data) as text. */
const EMBEDDING_ANNOTATION = /last-applied-configuration/i;

function maskValue(value: unknown, key: string | null, parentIsSecretKind: boolean): unknown {
  if (key !== null && parentIsSecretKind && SECRET_DATA_FIELDS.has(key)) {
    return maskLeaves(value);
  }
  if (key !== null && ((SECRET_KEY.test(key) && !REFERENCE_KEY.test(key)) || EMBEDDING_ANNOTATION.test(key))) {
    return maskLeaves(value);
  }
  if (Array.isArray(value)) return value.map((v) => maskValue(v, null, false));
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    const isSecretKind = typeof obj["kind"] === "string" && SECRET_KINDS.has(obj["kind"]);
    // Container env: {name, value}: the value is shown masked unless it is a reference (valueFrom).
    const isEnvVar = typeof obj["name"] === "string" && "value" in obj && Object.keys(obj).length <= 3;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) {
      out[k] = isEnvVar && k === "value" ? maskLeaves(v) : maskValue(v, k, isSecretKind);
    }
    return out;
  }
  return value;
}

function maskLeaves(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(maskLeaves);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).map((k) => [k, MASKED_VALUE]));
  }
  return MASKED_VALUE;
}

function truncate(text: string, maxBytes: number): ApprovalPreviewBody {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= maxBytes) return { kind: "masked", text, truncated: false };
  // Cut on a character boundary: decoding a cut multi-byte sequence would leave U+FFFD.
  let cut = bytes.subarray(0, maxBytes).toString("utf8");
  if (cut.endsWith("\uFFFD")) cut = cut.slice(0, -1);
  return { kind: "masked", text: cut, truncated: true };
}

function previewBody(input: ApprovalPreviewInput): ApprovalPreviewBody {
  if (input.body === undefined || input.body.length === 0) return { kind: "none" };
  const text = typeof input.body === "string" ? input.body : Buffer.from(input.body).toString("utf8");
  if (input.maskBody !== undefined) {
    try {
      const masked = input.maskBody(text, input.attributes);
      return masked.ok ? truncate(masked.text, input.maxBytes) : { kind: "withheld", reason: "the body could not be masked" };
    } catch {
      return { kind: "withheld", reason: "the body could not be masked" };
    }
  }
  if (WITHHELD_RESOURCES.has(input.attributes.resource)) {
    return { kind: "withheld", reason: `${input.attributes.resource} bodies are never shown` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { kind: "withheld", reason: "the body is not JSON and cannot be masked" };
  }
  return truncate(JSON.stringify(maskValue(parsed, null, false), null, 2), input.maxBytes);
}

/** Pure: the same input always yields the same preview. */
export function buildApprovalPreview(input: ApprovalPreviewInput): ApprovalPreview {
  return {
    method: input.method.toUpperCase(),
    path: input.path,
    query: input.query.startsWith("?") ? input.query.slice(1) : input.query,
    // Only the fields below: callers may pass a richer attributes object (query maps, parts) that is not stored.
    attributes: {
      verb: input.attributes.verb,
      apiGroup: input.attributes.apiGroup,
      apiVersion: input.attributes.apiVersion,
      resource: input.attributes.resource,
      subresource: input.attributes.subresource,
      namespace: input.attributes.namespace,
      name: input.attributes.name,
      resourceRequest: input.attributes.resourceRequest,
    },
    body: previewBody(input),
  };
}
