/**
 * @module tap/mask/mask-response
 * One-shot masking of a complete response body (for the CLI, tests and buffered callers): the same
 * policy and maskers the ext_proc stream uses, applied to a single Buffer.
 */
import type { MaskConfig } from "./mask-config.js";
import type { MaskErrorCode } from "./mask-result.js";
import { planResponseMasking, type KubeRequestAttributes, type ResponsePlan } from "./response-plan.js";

export interface ResponseBodyInput {
  readonly contentType: string | undefined;
  readonly contentEncoding?: string | undefined;
  /** Request path with query, e.g. `/api/v1/namespaces/prod/secrets?watch=1`. */
  readonly path?: string | undefined;
  readonly kube?: KubeRequestAttributes | undefined;
  readonly body: Buffer;
}

export type MaskResponseResult =
  | { readonly ok: true; readonly body: Buffer; readonly maskedCount: number; readonly skipped: boolean }
  | { readonly ok: false; readonly code: MaskErrorCode; readonly message: string };

/** Masks a whole response body, or says why it must be blocked. Never returns unmasked secret bytes. */
export function maskResponseBody(input: ResponseBodyInput, config: MaskConfig): MaskResponseResult {
  let plan: ResponsePlan;
  try {
    plan = planResponseMasking(
      { contentType: input.contentType, contentEncoding: input.contentEncoding, path: input.path, kube: input.kube },
      config,
    );
    if (plan.action === "skip") return { ok: true, body: input.body, maskedCount: 0, skipped: true };
    if (plan.action === "block") return { ok: false, code: plan.code, message: plan.message };
    if (input.body.length > config.maxBodyBytes && plan.framing !== "watch" && plan.framing !== "text") {
      return { ok: false, code: "body_too_large", message: `the response body exceeds the ${config.maxBodyBytes}-byte masking limit` };
    }
    const pushed = plan.masker.push(input.body);
    if (!pushed.ok) return pushed;
    const ended = plan.masker.end();
    if (!ended.ok) return ended;
    const body = pushed.out.length === 0 ? ended.out : ended.out.length === 0 ? pushed.out : Buffer.concat([pushed.out, ended.out]);
    return { ok: true, body, maskedCount: pushed.maskedCount + ended.maskedCount, skipped: false };
  } catch (err) {
    // e.g. a stack overflow on absurdly nested JSON: block, and say nothing about the body.
    return { ok: false, code: "internal_error", message: `masking failed: ${err instanceof Error ? err.name : "error"}` };
  }
}
