/**
 * @module bin/airlock-config
 * The whole `airlock serve` configuration: one YAML file validated once with zod (strict keys, unit-named defaults,
 * path-qualified errors), then frozen; without a file, development defaults that need no cluster and no ClickHouse.
 */
import { readFile } from "node:fs/promises";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { z } from "zod";
import { freezeConfig } from "../authz/config/freeze-config.js";
import { credentialsConfigSchema } from "../authz/credentials/credentials-config.js";
import { identityConfigSchema } from "../authz/identity/identity-config.js";
import { approvalsConfigSchema } from "../authz/approvals/approvals-config.js";
import { tokenExchangeConfigSchema } from "../authz/exchange/exchange-config.js";
import { auditConfigSchema } from "../tap/audit/audit-config.js";
import { maskConfigSchema } from "../tap/mask/mask-config.js";

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, "must be host:port");

export const serverConfigSchema = z.strictObject({
  /** ext_authz, ext_proc and grpc.health.v1 share this listener (Envoy's `airlock` cluster). */
  grpcAddress: hostPort.default("127.0.0.1:16445"),
  /** Approval API, JWKS of the development issuer, /metrics, /healthz. */
  httpAddress: hostPort.default("127.0.0.1:8181"),
  /** Request bodies up to kube-apiserver's 3 MiB limit plus framing must fit (grpc-js defaults to 4 MiB). */
  grpcMaxReceiveMessageBytes: z.number().int().min(4 * 1024 * 1024).default(8 * 1024 * 1024),
  /** Answer this long before Envoy's Check deadline so the reply arrives in time. */
  checkDeadlineMarginMs: z.number().int().min(0).max(1_000).default(5),
  /** Upper bound for a Check when Envoy sends no deadline. */
  checkDefaultTimeoutMs: z.number().int().positive().max(600_000).default(10_000),
  shutdownGraceMs: z.number().int().min(0).max(120_000).default(10_000),
});

/** `development` = the built-in issuer whose tokens `airlock token` prints; otherwise real OIDC issuers. */
const identitySchema = z.union([z.literal("development"), identityConfigSchema]);

export const airlockConfigSchema = z.strictObject({
  /** Embedded stores (approvals database, audit spool and chDB data, development keys) live here. */
  stateDir: z.string().min(1).default(".airlock"),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** Name of this replica in audit rows and the hash chain; the host name when unset. */
  gatewayInstance: z.string().min(1).optional(),
  server: serverConfigSchema.prefault({}),
  /** Agents' tokens. */
  identity: identitySchema.default("development"),
  /** Approvers' tokens: a separate audience (and possibly issuer) that agents never hold. */
  approverIdentity: identitySchema.default("development"),
  policy: z
    .strictObject({
      /** The AccessPolicy YAML; the shipped policies/agent-baseline.yaml when unset. Reloaded on change. */
      file: z.string().min(1).optional(),
    })
    .prefault({}),
  credentials: credentialsConfigSchema.prefault({}),
  /** RFC 8693 token exchange: CI/workload OIDC tokens or client secrets → short-lived Airlock agent tokens. */
  tokenExchange: tokenExchangeConfigSchema.prefault({}),
  approvals: approvalsConfigSchema.prefault({}),
  audit: auditConfigSchema.prefault({}),
  mask: maskConfigSchema.prefault({}),
});

export type AirlockConfig = z.output<typeof airlockConfigSchema>;

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly problems: readonly string[];
  constructor(source: string, problems: readonly string[]) {
    super(`invalid configuration ${source}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.problems = problems;
  }
}

/** Paths in embedded stores follow `stateDir` unless the file sets them explicitly. */
function applyStateDir(input: Record<string, unknown>): Record<string, unknown> {
  const stateDir = typeof input.stateDir === "string" ? input.stateDir : ".airlock";
  const section = (name: string): Record<string, unknown> => {
    const value = input[name];
    return typeof value === "object" && value !== null ? { ...(value as Record<string, unknown>) } : {};
  };
  const audit = section("audit");
  audit.spoolDir ??= `${stateDir}/spool`;
  audit.store ??= { kind: "embedded", dataDir: `${stateDir}/audit` };
  const approvals = section("approvals");
  approvals.store ??= { kind: "sqlite", path: `${stateDir}/approvals.db` };
  // Agents are told where to approve; by default that is this process's own HTTP listener.
  const server = section("server");
  const httpAddress = typeof server.httpAddress === "string" ? server.httpAddress : "127.0.0.1:8181";
  approvals.publicUrl ??= `http://${httpAddress}`;
  return { ...input, audit, approvals };
}

/** Validates an already-parsed document; `source` names the file in every message. */
export function parseAirlockConfig(input: unknown, source: string): AirlockConfig {
  if (input !== undefined && input !== null && (typeof input !== "object" || Array.isArray(input))) {
    throw new ConfigError(source, ["(root): must be a mapping"]);
  }
  const prepared = applyStateDir((input ?? {}) as Record<string, unknown>);
  const result = airlockConfigSchema.safeParse(prepared);
  if (!result.success) {
    throw new ConfigError(
      source,
      result.error.issues.map((issue) => `${source}: ${issue.path.length > 0 ? issue.path.join(".") : "(root)"}: ${issue.message}`),
    );
  }
  return freezeConfig(result.data);
}

/** Reads and validates a YAML (or JSON) config file; YAML errors carry line and column. */
export async function loadAirlockConfig(path: string | undefined): Promise<AirlockConfig> {
  if (path === undefined) return parseAirlockConfig({}, "(development defaults)");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(path, [`${path}: cannot read: ${(error as NodeJS.ErrnoException).code ?? "error"}`]);
  }
  let document: unknown;
  try {
    document = parseYaml(text, { strict: true, maxAliasCount: 16 });
  } catch (error) {
    if (error instanceof YAMLParseError) {
      const where = error.linePos?.[0];
      throw new ConfigError(path, [`${path}:${where?.line ?? 0}:${where?.col ?? 0}: ${error.message.split("\n")[0] ?? "YAML error"}`]);
    }
    throw error;
  }
  return parseAirlockConfig(document, path);
}
