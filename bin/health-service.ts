/**
 * @module bin/health-service
 * grpc.health.v1.Health for the gRPC port: Envoy's cluster health checks see SERVING while Airlock can decide and
 * NOT_SERVING once shutdown has begun, so traffic drains before the process exits.
 */
import { status as GrpcStatus, type ServerErrorResponse } from "@grpc/grpc-js";
import type { HealthHandlers } from "../protos/generated/grpc/health/v1/Health.js";
import type { HealthCheckResponse } from "../protos/generated/grpc/health/v1/HealthCheckResponse.js";

export type ServingStatus = "SERVING" | "NOT_SERVING";

export interface HealthState {
  set(status: ServingStatus): void;
  readonly handlers: HealthHandlers;
}

/** Service names answered: "" (the whole server) and the two Envoy services this process implements. */
export function createHealthState(serviceNames: readonly string[]): HealthState {
  let current: ServingStatus = "SERVING";
  const known = new Set(["", ...serviceNames]);
  const watchers = new Set<(status: ServingStatus) => void>();
  const handlers: HealthHandlers = {
    Check(call, callback) {
      if (!known.has(call.request.service)) {
        const error: ServerErrorResponse = Object.assign(new Error("unknown service"), { code: GrpcStatus.NOT_FOUND });
        callback(error);
        return;
      }
      const response: HealthCheckResponse = { status: current };
      callback(null, response);
    },
    List(_call, callback) {
      const statuses: Record<string, HealthCheckResponse> = {};
      for (const name of known) statuses[name] = { status: current };
      callback(null, { statuses });
    },
    Watch(call) {
      const send = (status: ServingStatus): void => {
        call.write({ status: known.has(call.request.service) ? status : "SERVICE_UNKNOWN" });
      };
      send(current);
      watchers.add(send);
      call.on("cancelled", () => watchers.delete(send));
    },
  };
  return {
    handlers,
    set(status) {
      current = status;
      for (const watcher of watchers) watcher(status);
    },
  };
}
