/**
 * @module test/gateway/ext-proc-stream
 * One ext_proc bidi gRPC stream per HTTP request, read as a FIFO of events with Envoy's message timer.
 */
import * as grpc from "@grpc/grpc-js";
import type { ExternalProcessorClient } from "../../protos/generated/envoy/service/ext_proc/v3/ExternalProcessor.js";
import type { ProcessingRequest } from "../../protos/generated/envoy/service/ext_proc/v3/ProcessingRequest.js";
import type { ProcessingResponse__Output } from "../../protos/generated/envoy/service/ext_proc/v3/ProcessingResponse.js";

/**
 * What the processor did: answered, closed the stream cleanly ("Envoy proceeds without consulting the
 * server"), failed the stream with a gRPC status ("Envoy returns a 500 error … unless the filter was
 * configured to ignore errors"), or let the message timer expire (external_processor.proto; ext_proc.cc
 * onGrpcClose / onGrpcError / onMessageTimeout).
 */
export type ExtProcEvent =
  | { readonly kind: "message"; readonly response: ProcessingResponse__Output }
  | { readonly kind: "closed" }
  | { readonly kind: "error"; readonly code: number }
  | { readonly kind: "timeout" };

export class ExtProcStream {
  private readonly call: grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse__Output>;
  private readonly queue: ExtProcEvent[] = [];
  private waiter: ((event: ExtProcEvent) => void) | null = null;
  private finished: ExtProcEvent | null = null;
  private timer: NodeJS.Timeout | null = null;
  private timerRestartedByServer = false;

  constructor(client: ExternalProcessorClient) {
    this.call = client.Process();
    this.call.on("data", (response: ProcessingResponse__Output) => {
      this.push({ kind: "message", response });
    });
    this.call.on("status", (status: grpc.StatusObject) => {
      this.finish(status.code === grpc.status.OK ? { kind: "closed" } : { kind: "error", code: status.code });
    });
    this.call.on("error", (err: grpc.ServiceError) => {
      this.finish({ kind: "error", code: err.code });
    });
  }

  private push(event: ExtProcEvent): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(event);
    } else {
      this.queue.push(event);
    }
  }

  private finish(event: ExtProcEvent): void {
    if (this.finished) return;
    this.finished = event;
    this.stopTimer();
    this.push(event);
  }

  send(request: ProcessingRequest): void {
    if (this.finished) return;
    this.call.write(request);
  }

  /** ProcessorState::onStartProcessorCall: (re)arms the per-message timer at every message sent. */
  startTimer(timeoutMs: number): void {
    this.stopTimer();
    this.timerRestartedByServer = false;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.push({ kind: "timeout" });
    }, timeoutMs);
  }

  /** ProcessorState::onFinishProcessorCall stops the timer at every reply. */
  stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * ProcessorState::restartMessageTimer: honoured only while the timer runs and only once per state; the new
   * value must be in [1 ms, max_message_timeout] (ext_proc.cc onNewTimeout). Returns whether it was honoured.
   */
  overrideTimer(timeoutMs: number, maxMessageTimeoutMs: number): boolean {
    if (this.timer === null || this.timerRestartedByServer || timeoutMs < 1 || timeoutMs > maxMessageTimeoutMs) return false;
    this.stopTimer();
    this.timer = setTimeout(() => {
      this.timer = null;
      this.push({ kind: "timeout" });
    }, timeoutMs);
    this.timerRestartedByServer = true;
    return true;
  }

  /** The next event in arrival order. After the stream finished, the finishing event repeats. */
  next(): Promise<ExtProcEvent> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.finished) return Promise.resolve(this.finished);
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  /** Filter::closeStream: half-close our side and stop listening. */
  close(): void {
    this.stopTimer();
    if (!this.finished) {
      this.finished = { kind: "closed" };
      this.call.end();
      this.call.cancel();
    }
  }
}
