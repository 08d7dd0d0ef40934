/**
 * @module authz/check/check-response
 * Translates a CheckOutcome into Envoy's envoy.service.auth.v3.CheckResponse: OkHttpResponse header mutations on
 * allow, a DeniedHttpResponse carrying a Kubernetes Status JSON body otherwise, dynamic metadata on both.
 */
import { status as GrpcStatus } from "@grpc/grpc-js";
import type { CheckResponse } from "../../protos/generated/envoy/service/auth/v3/CheckResponse.js";
import type { HeaderValueOption } from "../../protos/generated/envoy/config/core/v3/HeaderValueOption.js";
import type { StatusCode } from "../../protos/generated/envoy/type/v3/StatusCode.js";
import { toProtoStruct } from "../../protos/struct-value.js";
import type { CheckOutcome, DenyOutcome } from "./check-outcome.js";

/** Envoy's envoy.type.v3.StatusCode names for the statuses Airlock answers with. */
const ENVOY_STATUS_CODE: Readonly<Partial<Record<number, StatusCode>>> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  429: "TooManyRequests",
  503: "ServiceUnavailable",
};

function grpcCodeFor(outcome: DenyOutcome): number {
  return outcome.code === "UNAUTHENTICATED" ? GrpcStatus.UNAUTHENTICATED : GrpcStatus.PERMISSION_DENIED;
}

/**
 * Builds the header mutations. The first value of a name overwrites whatever the client sent; later values of the
 * same name are appended, which is how several Impersonate-Group headers reach the API server.
 */
function headerOptions(headers: readonly (readonly [string, string])[]): HeaderValueOption[] {
  const seen = new Set<string>();
  return headers.map(([key, value]) => {
    const first = !seen.has(key);
    seen.add(key);
    return {
      header: { key, value },
      append_action: first ? "OVERWRITE_IF_EXISTS_OR_ADD" : "APPEND_IF_EXISTS_OR_ADD",
    };
  });
}

export function toCheckResponse(outcome: CheckOutcome): CheckResponse {
  const dynamicMetadata = toProtoStruct(outcome.metadata);
  if (outcome.code === "ALLOWED") {
    return {
      status: { code: GrpcStatus.OK, message: "" },
      ok_response: {
        headers: headerOptions(outcome.setHeaders),
        headers_to_remove: [...outcome.removeHeaders],
      },
      dynamic_metadata: dynamicMetadata,
    };
  }
  const statusCodeName = ENVOY_STATUS_CODE[outcome.httpStatus];
  if (statusCodeName === undefined) throw new Error(`no Envoy StatusCode for HTTP ${outcome.httpStatus}`);
  return {
    status: { code: grpcCodeFor(outcome), message: outcome.status.reason },
    denied_response: {
      status: { code: statusCodeName },
      headers: headerOptions([
        ["content-type", "application/json"],
        ["cache-control", "no-store"],
        ["x-airlock-decision-id", outcome.decisionId],
        ...outcome.responseHeaders,
      ]),
      body: JSON.stringify(outcome.status),
    },
    dynamic_metadata: dynamicMetadata,
  };
}
