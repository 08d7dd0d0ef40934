/**
 * @module authz/check/authorization-service
 * The grpc-js handler for envoy.service.auth.v3.Authorization/Check: translates CheckRequest → CheckEngine →
 * CheckResponse, honours the call deadline, and answers internal failures with a gRPC error so Envoy denies.
 */
import { status as GrpcStatus, type ServerErrorResponse, type handleUnaryCall } from "@grpc/grpc-js";
import type { CheckRequest__Output } from "../../protos/generated/envoy/service/auth/v3/CheckRequest.js";
import type { CheckResponse } from "../../protos/generated/envoy/service/auth/v3/CheckResponse.js";
import type { AuthorizationHandlers } from "../../protos/generated/envoy/service/auth/v3/Authorization.js";
import type { CheckOutcome } from "./check-outcome.js";
import type { CheckEngine, CheckHttpRequest } from "./check-engine.js";
import { toCheckResponse } from "./check-response.js";

export interface AuthorizationServiceOptions {
  /** Answer this long before Envoy's deadline so the reply still arrives in time (Envoy's default is 200 ms). */
  readonly deadlineMarginMs: number;
  /** Used when Envoy sends no deadline at all. */
  readonly defaultTimeoutMs: number;
  readonly onOutcome?: (outcome: CheckOutcome, latencyMs: number) => void;
  readonly onError?: (error: unknown) => void;
}

function grpcError(code: GrpcStatus, details: string): ServerErrorResponse {
  return Object.assign(new Error(details), { code, details });
}

/** Extracts the HTTP request view from a CheckRequest; undefined when Envoy sent no HTTP attributes. */
export function httpRequestOf(request: CheckRequest__Output): CheckHttpRequest | undefined {
  const http = request.attributes?.request?.http;
  if (!http || http.method === "" || http.path === "") return undefined;
  return {
    // Envoy's `id` is its internal stream number; x-request-id (which ext_proc also sees) is the join key.
    id: http.headers["x-request-id"] ?? http.id,
    method: http.method,
    headers: http.headers,
    path: http.path,
    body: http.body,
    rawBody: http.raw_body.length > 0 ? http.raw_body : undefined,
  };
}

export function createAuthorizationHandlers(engine: CheckEngine, options: AuthorizationServiceOptions): AuthorizationHandlers {
  const Check: handleUnaryCall<CheckRequest__Output, CheckResponse> = (call, callback) => {
    const started = performance.now();
    const http = httpRequestOf(call.request);
    if (!http) {
      callback(grpcError(GrpcStatus.INVALID_ARGUMENT, "CheckRequest carries no attributes.request.http"));
      return;
    }
    const deadline = call.getDeadline();
    const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
    const budgetMs = Number.isFinite(deadlineMs)
      ? Math.max(0, deadlineMs - Date.now() - options.deadlineMarginMs)
      : options.defaultTimeoutMs;
    // The deadline answer never allows: Envoy turns DEADLINE_EXCEEDED into a denial (failure_mode_allow: false).
    let answered = false;
    const timers: { soft?: NodeJS.Timeout; hard?: NodeJS.Timeout } = {};
    const answer = (error: ServerErrorResponse | null, response?: CheckResponse): void => {
      if (answered) return;
      answered = true;
      clearTimeout(timers.soft);
      clearTimeout(timers.hard);
      call.off("cancelled", onCancel);
      if (error) callback(error);
      else callback(null, response);
    };

    // Two clocks: the engine is asked to wrap up a little early (a held approval then answers "pending" in
    // time), and a hard timer answers DEADLINE_EXCEEDED if it still has not.
    const controller = new AbortController();
    const softMs = Math.max(0, budgetMs - Math.min(100, budgetMs / 4));
    timers.soft = setTimeout(() => { controller.abort(new Error("check deadline near")); }, softMs);
    timers.hard = setTimeout(() => {
      answer(grpcError(GrpcStatus.DEADLINE_EXCEEDED, "airlock could not decide before the deadline"));
    }, budgetMs);
    const onCancel = (): void => {
      controller.abort(new Error("cancelled by client"));
      answer(grpcError(GrpcStatus.CANCELLED, "cancelled by client"));
    };
    call.on("cancelled", onCancel);

    engine.check({ http, signal: controller.signal }).then(
      (outcome) => {
        if (answered) return;
        let response: CheckResponse;
        try {
          response = toCheckResponse(outcome);
        } catch (error) {
          options.onError?.(error);
          answer(grpcError(GrpcStatus.INTERNAL, "airlock failed to build its answer"));
          return;
        }
        options.onOutcome?.(outcome, performance.now() - started);
        answer(null, response);
      },
      (error: unknown) => {
        options.onError?.(error);
        // Internal details stay in the log; Envoy (and so the agent) only learns that the check failed.
        answer(grpcError(GrpcStatus.UNAVAILABLE, "airlock authorization failed internally"));
      },
    );
  };
  return { Check };
}
