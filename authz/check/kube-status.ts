/**
 * @module authz/check/kube-status
 * Builds Kubernetes `metav1.Status` bodies for the answers ext_authz gives in place of the API server, so kubectl
 * prints Airlock's message ("Error from server (Forbidden): ...") instead of a generic failure.
 */

/** Reasons Airlock uses; the standard ones are metav1.StatusReason values clients already understand. */
export type KubeStatusReason =
  | "Unauthorized"
  | "Forbidden"
  | "BadRequest"
  | "TooManyRequests"
  | "ServiceUnavailable"
  | "PendingApproval";

export interface KubeStatusDetails {
  readonly name?: string;
  readonly group?: string;
  readonly kind?: string;
  readonly retryAfterSeconds?: number;
  readonly causes?: readonly { readonly reason: string; readonly message: string; readonly field?: string }[];
}

export interface KubeStatus {
  readonly kind: "Status";
  readonly apiVersion: "v1";
  readonly metadata: Record<string, never>;
  readonly status: "Failure";
  readonly message: string;
  readonly reason: KubeStatusReason;
  readonly code: number;
  readonly details?: KubeStatusDetails;
}

/** A failure Status whose `code` equals the HTTP status it is sent with, as client-go expects. */
export function kubeStatus(code: number, reason: KubeStatusReason, message: string, details?: KubeStatusDetails): KubeStatus {
  const base = { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code } as const;
  return details === undefined ? base : { ...base, details };
}
