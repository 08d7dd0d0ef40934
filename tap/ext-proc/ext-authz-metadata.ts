/**
 * @module tap/ext-proc/ext-authz-metadata
 * Reads what ext_authz put in dynamic metadata (forwarded to ext_proc in `metadata_context` under
 * `envoy.filters.http.ext_authz`): decision id, identity, Kubernetes attributes, rules, policy version.
 */
import type { Metadata__Output } from "../../protos/generated/envoy/config/core/v3/Metadata.js";
import { fromProtoStruct } from "../../protos/struct-value.js";
import type { KubeRequestAttributes } from "../mask/response-plan.js";

export const EXT_AUTHZ_NAMESPACE = "envoy.filters.http.ext_authz";

export interface ExtAuthzMetadata {
  readonly decisionId: string | null;
  readonly subject: string | null;
  readonly groups: readonly string[];
  readonly sessionId: string | null;
  readonly kube: KubeRequestAttributes | null;
  readonly ruleIds: readonly string[];
  readonly policyVersion: string | null;
}

export const EMPTY_EXT_AUTHZ_METADATA: ExtAuthzMetadata = Object.freeze({
  decisionId: null,
  subject: null,
  groups: [],
  sessionId: null,
  kube: null,
  ruleIds: [],
  policyVersion: null,
});

function str(value: unknown): string | null {
  return typeof value === "string" && value !== "" ? value : null;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

/** Extracts the ext_authz fields; absent or malformed fields become null/empty (never throws). */
export function readExtAuthzMetadata(metadata: Metadata__Output | null | undefined): ExtAuthzMetadata {
  const struct = metadata?.filter_metadata[EXT_AUTHZ_NAMESPACE];
  if (!struct) return EMPTY_EXT_AUTHZ_METADATA;
  const json: Record<string, unknown> = { ...fromProtoStruct(struct) };
  const kubeJson = json.kube;
  let kube: KubeRequestAttributes | null = null;
  if (typeof kubeJson === "object" && kubeJson !== null && !Array.isArray(kubeJson)) {
    const k = kubeJson as Record<string, unknown>;
    kube = {
      verb: str(k.verb) ?? undefined,
      apiGroup: typeof k.api_group === "string" ? k.api_group : undefined,
      resource: str(k.resource) ?? undefined,
      subresource: str(k.subresource) ?? undefined,
      namespace: str(k.namespace) ?? undefined,
      name: str(k.name) ?? undefined,
    };
  }
  return Object.freeze({
    decisionId: str(json.decision_id),
    subject: str(json.subject),
    groups: strings(json.groups),
    sessionId: str(json.session_id),
    kube,
    ruleIds: strings(json.rule_ids),
    policyVersion: str(json.policy_version) ?? (typeof json.policy_version === "number" ? String(json.policy_version) : null),
  });
}
