/**
 * @module tap/mask/kube-status-body
 * Builds the Kubernetes `Status` JSON body sent with a fail-closed 502, so kubectl prints why the
 * response was blocked ("Error from server (ResponseBlocked): …").
 */
import type { MaskErrorCode } from "./mask-result.js";

export const BLOCKED_STATUS_CODE = 502;

/** A `metav1.Status` (Failure, code 502) naming the masking failure; the message never holds body bytes. */
export function buildBlockedStatusBody(code: MaskErrorCode, message: string): Buffer {
  const status = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: `airlock blocked this response: ${message}`,
    reason: "ResponseBlocked",
    details: { causes: [{ reason: code, message }] },
    code: BLOCKED_STATUS_CODE,
  };
  return Buffer.from(JSON.stringify(status), "utf8");
}
