// Generates TypeScript types for the Envoy protos Airlock uses, at build time, into protos/generated/.
// The .proto sources come from the pinned @grpc/grpc-js-xds package; nothing is copied into the repo.
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const xdsDeps = join(dirname(require.resolve("@grpc/grpc-js-xds/package.json")), "deps");
const healthRoot = join(dirname(require.resolve("grpc-health-check/package.json")), "proto");
const includeDirs = [
  join(xdsDeps, "envoy-api"),
  join(xdsDeps, "xds"),
  join(xdsDeps, "googleapis"),
  join(xdsDeps, "protoc-gen-validate"),
  healthRoot,
];
const files = JSON.parse(readFileSync(join(here, "proto-files.json"), "utf8"));
const outDir = join(here, "generated");
rmSync(outDir, { recursive: true, force: true });
const genTypes = require.resolve("@grpc/proto-loader/build/bin/proto-loader-gen-types.js");
execFileSync(process.execPath, [
  genTypes,
  // yargs treats --includeDirs as an array that would swallow positional file names: files first.
  ...files.services, ...files.configs,
  "--keepCase", "--longs=String", "--enums=String", "--defaults", "--oneofs", "--json",
  "--grpcLib=@grpc/grpc-js", "--importFileExtension=.js",
  "-O", outDir,
  ...includeDirs.map((dir) => `--includeDirs=${dir}`),
], { stdio: "inherit" });
