/**
 * @module protos/load
 * The one place that loads Envoy API protos (from the pinned @grpc/grpc-js-xds package) for gRPC services
 * and for config validation; every other module imports typed definitions from here.
 */
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";
import type { ProtoGrpcType as ExternalAuthGrpc } from "./generated/external_auth.js";
import type { ProtoGrpcType as ExternalProcessorGrpc } from "./generated/external_processor.js";
import type { ProtoGrpcType as HealthGrpc } from "./generated/health.js";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));

interface ProtoFileList {
  readonly services: readonly string[];
  readonly configs: readonly string[];
}

/** Locates proto-files.json whether running from source (protos/) or from the build (dist/protos/). */
function readProtoFileList(): ProtoFileList {
  for (const candidate of [join(here, "proto-files.json"), join(here, "..", "..", "protos", "proto-files.json")]) {
    try {
      return JSON.parse(readFileSync(candidate, "utf8")) as ProtoFileList;
    } catch {
      // try the next location
    }
  }
  throw new Error("protos/proto-files.json not found next to the proto loader");
}

/** Include roots, in the order protoc would search them. */
export function protoIncludeDirs(): string[] {
  const xdsDeps = join(dirname(require.resolve("@grpc/grpc-js-xds/package.json")), "deps");
  const healthRoot = join(dirname(require.resolve("grpc-health-check/package.json")), "proto");
  return [
    join(xdsDeps, "envoy-api"),
    join(xdsDeps, "xds"),
    join(xdsDeps, "googleapis"),
    join(xdsDeps, "protoc-gen-validate"),
    healthRoot,
  ];
}

/**
 * Options shared by the loader and the type generator (protos/generate.mjs): snake_case field names as in
 * Envoy's docs and YAML, 64-bit integers as strings, enums as names, defaults filled, oneof names exposed.
 */
export const protoLoaderOptions: protoLoader.Options = Object.freeze({
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  json: true,
  includeDirs: protoIncludeDirs(),
});

export interface EnvoyServiceDefinitions {
  readonly authorization: ExternalAuthGrpc["envoy"]["service"]["auth"]["v3"]["Authorization"];
  readonly externalProcessor: ExternalProcessorGrpc["envoy"]["service"]["ext_proc"]["v3"]["ExternalProcessor"];
  readonly health: HealthGrpc["grpc"]["health"]["v1"]["Health"];
}

let cachedServices: EnvoyServiceDefinitions | undefined;

/** Loads the ext_authz, ext_proc and health service definitions once per process. */
export function loadEnvoyServices(): EnvoyServiceDefinitions {
  if (cachedServices) return cachedServices;
  const definition = protoLoader.loadSync([...readProtoFileList().services], protoLoaderOptions);
  const loaded = grpc.loadPackageDefinition(definition) as unknown as ExternalAuthGrpc &
    ExternalProcessorGrpc &
    HealthGrpc;
  cachedServices = Object.freeze({
    authorization: loaded.envoy.service.auth.v3.Authorization,
    externalProcessor: loaded.envoy.service.ext_proc.v3.ExternalProcessor,
    health: loaded.grpc.health.v1.Health,
  });
  return cachedServices;
}

let cachedConfigRoot: protobuf.Root | undefined;

/**
 * A protobufjs Root with Envoy's bootstrap and the extension configs envoy/ uses, for decoding and
 * validating configuration files (google.protobuf.Any `typed_config` resolves against this root).
 */
export function loadEnvoyConfigRoot(): protobuf.Root {
  if (cachedConfigRoot) return cachedConfigRoot;
  const includeDirs = protoIncludeDirs();
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string => {
    for (const dir of includeDirs) {
      const candidate = join(dir, target);
      try {
        readFileSync(candidate);
        return candidate;
      } catch {
        // not under this include root
      }
    }
    return target;
  };
  const files = readProtoFileList();
  root.loadSync([...files.configs, ...files.services], { keepCase: true });
  root.resolveAll();
  cachedConfigRoot = root;
  return root;
}
