/**
 * @module test/helpers/check-client
 * A real grpc-js Authorization client that sends CheckRequests shaped like Envoy's (lower-case header map with
 * pseudo-headers, raw path with query, raw_body with pack_as_bytes, the partial-body header).
 */
import * as grpc from "@grpc/grpc-js";
import { loadEnvoyServices } from "../../protos/load.js";
import type { AuthorizationClient } from "../../protos/generated/envoy/service/auth/v3/Authorization.js";
import type { CheckRequest } from "../../protos/generated/envoy/service/auth/v3/CheckRequest.js";
import type { CheckResponse__Output } from "../../protos/generated/envoy/service/auth/v3/CheckResponse.js";
import { fromProtoStruct, type StructJson } from "../../protos/struct-value.js";

export interface EnvoyLikeRequest {
  readonly method: string;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly token?: string;
  readonly body?: Buffer;
  readonly contentType?: string;
  readonly partial?: boolean;
  readonly id?: string;
}

export function envoyCheckRequest(req: EnvoyLikeRequest): CheckRequest {
  const headers: Record<string, string> = {
    ":method": req.method,
    ":path": req.path,
    ":authority": "127.0.0.1:16444",
    ":scheme": "http",
    "user-agent": "kubectl/v1.32.0 (linux/amd64) kubernetes/abc",
    accept: "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
    "accept-encoding": "gzip",
    "x-request-id": req.id ?? "11111111-2222-3333-4444-555555555555",
    ...(req.token === undefined ? {} : { authorization: `Bearer ${req.token}` }),
    ...(req.body === undefined
      ? {}
      : { "content-type": req.contentType ?? "application/json", "content-length": String(req.body.length), "x-envoy-auth-partial-body": req.partial === true ? "true" : "false" }),
    ...(req.headers ?? {}),
  };
  return {
    attributes: {
      source: { address: { socket_address: { address: "127.0.0.1", port_value: 40000 } } },
      destination: { address: { socket_address: { address: "127.0.0.1", port_value: 16444 } } },
      request: {
        http: {
          id: req.id ?? "11111111-2222-3333-4444-555555555555",
          method: req.method,
          headers,
          path: req.path,
          host: "127.0.0.1:16444",
          scheme: "http",
          protocol: "HTTP/1.1",
          size: String(req.body?.length ?? -1),
          ...(req.body === undefined ? {} : { raw_body: req.body }),
        },
      },
    },
  };
}

export interface CheckClient {
  check(request: CheckRequest, deadlineMs?: number): Promise<CheckResponse__Output>;
  readonly raw: AuthorizationClient;
  close(): void;
}

export function createCheckClient(address: string): CheckClient {
  const Authorization = loadEnvoyServices().authorization;
  const client = new Authorization(address, grpc.credentials.createInsecure());
  return {
    raw: client,
    check(request, deadlineMs = 5_000) {
      return new Promise((resolve, reject) => {
        client.Check(request, { deadline: Date.now() + deadlineMs }, (error, response) => {
          if (error) reject(error);
          else if (response) resolve(response);
          else reject(new Error("empty response"));
        });
      });
    },
    close() {
      client.close();
    },
  };
}

/** Header values set by an OkHttpResponse, by lower-case name (repeated names keep every value). */
export function setHeaders(response: CheckResponse__Output): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const option of response.ok_response?.headers ?? []) {
    const key = option.header?.key ?? "";
    out.set(key, [...(out.get(key) ?? []), option.header?.value ?? ""]);
  }
  return out;
}

export function dynamicMetadata(response: CheckResponse__Output): { [key: string]: StructJson } {
  return fromProtoStruct(response.dynamic_metadata);
}
