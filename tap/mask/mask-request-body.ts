/**
 * @module tap/mask/mask-request-body
 * A masked copy of a request body for the audit record and approval previews (never sent upstream):
 * JSON objects, merge and strategic-merge patches, YAML apply patches, and JSON patches.
 */
import { parse as parseYaml } from "yaml";
import type { MaskConfig } from "./mask-config.js";
import { kindForResource, maskKubeDocument, type MaskWalk } from "./mask-kube-object.js";
import { maskFailure, type MaskFailure } from "./mask-result.js";
import { kubePathHints } from "./kube-path-hints.js";
import { maskedPlaceholder } from "./masked-value.js";
import { parseMediaType, type KubeRequestAttributes } from "./response-plan.js";

export interface RequestBodyInput {
  readonly contentType: string | undefined;
  readonly path?: string | undefined;
  readonly kube?: KubeRequestAttributes | undefined;
  readonly body: Buffer;
}

/** `text` is JSON (YAML apply patches are converted), ready to store or show. */
export type MaskRequestResult = { readonly ok: true; readonly text: string; readonly maskedCount: number } | MaskFailure;

const JSON_OBJECT_TYPES = new Set(["application/json", "application/merge-patch+json", "application/strategic-merge-patch+json"]);

/** Masks a complete request body; anything it cannot parse is a failure (the caller records no body). */
export function maskRequestBody(input: RequestBodyInput, config: MaskConfig): MaskRequestResult {
  if (input.body.length === 0) return { ok: true, text: "", maskedCount: 0 };
  if (input.body.length > config.maxBodyBytes) return maskFailure("body_too_large", `the request body exceeds ${config.maxBodyBytes} bytes`);
  const media = parseMediaType(input.contentType);
  const hints = kubePathHints(input.path);
  const fallbackKind = kindForResource(input.kube?.resource ?? hints.resource, input.kube?.subresource ?? hints.subresource);
  const walk: MaskWalk = { config, maskedCount: 0 };
  try {
    if (media !== undefined && JSON_OBJECT_TYPES.has(media.type)) {
      const doc = parseJson(input.body);
      if (doc === PARSE_FAILED) return maskFailure("unparseable_json", "the request body is not valid JSON");
      maskKubeDocument(doc, fallbackKind, walk);
      return { ok: true, text: JSON.stringify(doc), maskedCount: walk.maskedCount };
    }
    if (media?.type === "application/apply-patch+yaml") {
      let doc: unknown;
      try {
        // maxAliasCount bounds alias expansion ("billion laughs").
        doc = parseYaml(input.body.toString("utf8"), { maxAliasCount: 100 });
      } catch {
        return maskFailure("unparseable_json", "the apply patch is not valid YAML");
      }
      maskKubeDocument(doc, fallbackKind, walk);
      return { ok: true, text: JSON.stringify(doc), maskedCount: walk.maskedCount };
    }
    if (media?.type === "application/json-patch+json") {
      const doc = parseJson(input.body);
      if (doc === PARSE_FAILED || !Array.isArray(doc)) return maskFailure("unparseable_json", "the JSON patch is not a JSON array");
      for (const op of doc) maskJsonPatchOperation(op, fallbackKind, walk);
      return { ok: true, text: JSON.stringify(doc), maskedCount: walk.maskedCount };
    }
  } catch (err) {
    return maskFailure("internal_error", `masking failed: ${err instanceof Error ? err.name : "error"}`);
  }
  return maskFailure("unsupported_content_type", `request content-type "${media?.type ?? "(none)"}" cannot be inspected`);
}

const PARSE_FAILED = Symbol("parse failed");

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    return PARSE_FAILED;
  }
}

function decodePointer(pointer: string): string[] {
  if (pointer === "") return [];
  return pointer
    .slice(1)
    .split("/")
    .map((segment) => segment.replace(/~1/g, "/").replace(/~0/g, "~"));
}

/**
 * Masks `value` of one JSON patch operation by re-creating the object around it from its path
 * (numeric and "-" segments become one-element arrays), masking that sparse object like a document,
 * and reading the value back. An env `value` replaced on its own has no visible name, so it is masked
 * whole (fail closed).
 */
function maskJsonPatchOperation(op: unknown, fallbackKind: string | undefined, walk: MaskWalk): void {
  if (typeof op !== "object" || op === null || Array.isArray(op)) return;
  const operation = op as Record<string, unknown>;
  if (!("value" in operation) || typeof operation.path !== "string") return;
  const segments = decodePointer(operation.path);
  const value = operation.value;
  const last = segments.length;
  if (last >= 3 && segments[last - 1] === "value" && segments[last - 3] === "env" && typeof value === "string") {
    operation.value = maskedPlaceholder(value, walk.config);
    walk.maskedCount++;
    return;
  }
  let wrapped: unknown = value;
  for (let i = segments.length - 1; i >= 0; i--) {
    const segment = segments[i] as string;
    wrapped = /^(\d+|-)$/.test(segment) ? [wrapped] : { [segment]: wrapped };
  }
  maskKubeDocument(wrapped, fallbackKind, walk);
  let cursor: unknown = wrapped;
  for (const segment of segments) {
    cursor = Array.isArray(cursor) ? cursor[0] : (cursor as Record<string, unknown>)[segment];
  }
  operation.value = cursor;
}
