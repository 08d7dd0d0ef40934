/**
 * @module tap/ext-proc/ext-proc-service
 * grpc-js handlers for envoy.service.ext_proc.v3.ExternalProcessor/Process: a thin transport that runs
 * one ExchangeSession per stream, writes its replies in order and hands each ExchangeRecord to the sink.
 */
import type * as grpc from "@grpc/grpc-js";
import type { ExternalProcessorHandlers } from "../../protos/generated/envoy/service/ext_proc/v3/ExternalProcessor.js";
import type { ProcessingRequest__Output } from "../../protos/generated/envoy/service/ext_proc/v3/ProcessingRequest.js";
import type { ProcessingResponse } from "../../protos/generated/envoy/service/ext_proc/v3/ProcessingResponse.js";
import type { ExtProcConfig } from "./ext-proc-config.js";
import type { ExchangeRecord } from "./exchange-record.js";
import { ExchangeSession } from "./exchange-session.js";

/** The subset of a pino-style logger this service uses. Never given body bytes or header values. */
export interface ExtProcLogger {
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export interface ExtProcDeps {
  readonly config: ExtProcConfig;
  /** Called exactly once per stream. Must not block; exceptions are logged and swallowed. */
  onExchange(record: ExchangeRecord): void;
  readonly logger?: ExtProcLogger;
  readonly clock?: () => number;
}

/**
 * Handlers for `server.addService(loadEnvoyServices().externalProcessor.service, handlers)`.
 * Each reply is computed synchronously in the 'data' handler, so replies leave in message order.
 */
export function createExternalProcessorHandlers(deps: ExtProcDeps): ExternalProcessorHandlers {
  return {
    Process(call: grpc.ServerDuplexStream<ProcessingRequest__Output, ProcessingResponse>): void {
      const session = new ExchangeSession(deps.config, deps.clock);
      let closed = false;

      const emit = (record: ExchangeRecord | null): void => {
        if (record === null) return;
        try {
          deps.onExchange(record);
        } catch (err) {
          deps.logger?.error({ err: err instanceof Error ? err.message : "error", requestId: record.requestId }, "audit sink rejected an exchange record");
        }
      };

      const abort = (reason: string): void => {
        if (closed) return;
        closed = true;
        emit(session.abort(reason));
      };

      call.on("data", (message: ProcessingRequest__Output) => {
        if (closed) return;
        const step = session.handle(message);
        if (step.reply !== null) call.write(step.reply);
        emit(step.record);
      });
      call.on("end", () => {
        // Envoy half-closes when the HTTP stream is done; an unfinished exchange is recorded as aborted.
        abort("ext_proc stream closed before the response completed");
        call.end();
      });
      call.on("cancelled", () => {
        abort("ext_proc stream cancelled by the client");
      });
      call.on("error", (err: Error) => {
        deps.logger?.warn({ err: err.message }, "ext_proc stream error");
        abort("ext_proc stream error");
      });
    },
  };
}
