/**
 * @module test/gateway/gateway-settings
 * Reads an Envoy Bootstrap (YAML/JSON) into the settings the Envoy-faithful test gateway honours, and matches routes.
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import type { HeaderList } from "./header-list.js";

// Only the parts of the Bootstrap the gateway reproduces are read here. Strict decoding of the whole file
// against Envoy's protos is test/helpers/envoy-bootstrap.ts's job; this reader instead refuses (throws on)
// the features it would otherwise silently ignore, so a config the gateway cannot reproduce fails loudly.

export type GatewaySettingsErrorCode = "bad_bootstrap" | "unsupported_feature";

export class GatewaySettingsError extends Error {
  constructor(
    readonly code: GatewaySettingsErrorCode,
    readonly path: string,
    detail: string,
  ) {
    super(`${code} at ${path}: ${detail}`);
    this.name = "GatewaySettingsError";
  }
}

export type BodySendMode = "NONE" | "STREAMED" | "BUFFERED" | "BUFFERED_PARTIAL";
export type HeaderSendMode = "SEND" | "SKIP";

export interface ProcessingModeSettings {
  readonly requestHeaderMode: HeaderSendMode;
  readonly responseHeaderMode: HeaderSendMode;
  readonly requestBodyMode: BodySendMode;
  readonly responseBodyMode: BodySendMode;
  readonly requestTrailerMode: HeaderSendMode;
  readonly responseTrailerMode: HeaderSendMode;
}

export interface BufferSettings {
  readonly maxRequestBytes: number;
  readonly allowPartialMessage: boolean;
  readonly packAsBytes: boolean;
}

export interface StringMatch {
  readonly kind: "exact" | "prefix" | "suffix" | "contains" | "regex";
  readonly value: string;
  readonly ignoreCase: boolean;
}

/** envoy.config.common.mutation_rules.v3.HeaderMutationRules (mutation_rules.proto). */
export interface HeaderMutationRulesSettings {
  readonly allowAllRouting: boolean;
  readonly allowEnvoy: boolean;
  readonly disallowSystem: boolean;
  readonly disallowAll: boolean;
  readonly allowExpression: string | null;
  readonly disallowExpression: string | null;
  readonly disallowIsError: boolean;
}

export interface ExtAuthzSettings {
  readonly filterName: string;
  readonly timeoutMs: number;
  readonly failureModeAllow: boolean;
  readonly failureModeAllowHeaderAdd: boolean;
  readonly statusOnError: number;
  readonly withRequestBody: BufferSettings | null;
  readonly clearRouteCache: boolean;
  readonly encodeRawHeaders: boolean;
  readonly validateMutations: boolean;
  readonly allowedHeaders: readonly StringMatch[] | null;
  readonly disallowedHeaders: readonly StringMatch[] | null;
  readonly decoderHeaderMutationRules: HeaderMutationRulesSettings | null;
}

export interface ExtProcSettings {
  readonly filterName: string;
  readonly failureModeAllow: boolean;
  readonly processingMode: ProcessingModeSettings;
  readonly messageTimeoutMs: number;
  readonly maxMessageTimeoutMs: number;
  readonly allowModeOverride: boolean;
  readonly disableImmediateResponse: boolean;
  readonly mutationRules: HeaderMutationRulesSettings | null;
  readonly forwardingNamespacesUntyped: readonly string[];
  readonly forwardingNamespacesTyped: readonly string[];
  readonly allowedHeaders: readonly StringMatch[];
  readonly disallowedHeaders: readonly StringMatch[];
}

export interface HeaderMatcherSettings {
  readonly name: string;
  readonly kind: "exact" | "prefix" | "suffix" | "contains" | "regex" | "present";
  readonly value: string;
  readonly present: boolean;
  readonly ignoreCase: boolean;
  readonly invert: boolean;
  readonly treatMissingAsEmpty: boolean;
}

export interface QueryMatcherSettings {
  readonly name: string;
  /** null: present_match. */
  readonly match: StringMatch | null;
}

export interface RouteSettings {
  readonly path: string;
  readonly name: string;
  readonly match: {
    readonly kind: "prefix" | "path" | "regex" | "path_separated_prefix";
    readonly value: string;
    readonly caseSensitive: boolean;
    readonly headers: readonly HeaderMatcherSettings[];
    readonly queryParameters: readonly QueryMatcherSettings[];
  };
  /** RouteAction.max_stream_duration.max_stream_duration; 0 = none. */
  readonly maxStreamDurationMs: number;
  /** Route timeout (route_components.proto: default 15 s; 0 disables it). */
  readonly timeoutMs: number;
  /** Route idle_timeout; null falls back to the HCM stream_idle_timeout; 0 disables it. */
  readonly idleTimeoutMs: number | null;
  /** Route-level upgrade_configs: upgrade type (lower-case) → enabled. */
  readonly upgradeConfigs: ReadonlyMap<string, boolean>;
  readonly hostRewriteLiteral: string | null;
  readonly prefixRewrite: string | null;
  readonly extAuthz: {
    readonly disabled: boolean;
    readonly contextExtensions: Readonly<Record<string, string>>;
    readonly disableRequestBodyBuffering: boolean;
    readonly withRequestBody: BufferSettings | null;
  };
  readonly extProc: {
    readonly disabled: boolean;
    readonly processingMode: ProcessingModeSettings | null;
    readonly forwardingNamespacesUntyped: readonly string[] | null;
    readonly forwardingNamespacesTyped: readonly string[] | null;
  };
}

export interface VirtualHostSettings {
  readonly name: string;
  readonly domains: readonly string[];
  readonly routes: readonly RouteSettings[];
}

/** TlsParameters.TlsProtocol; TLS_AUTO is resolved to Envoy's server defaults when read. */
export type TlsProtocolVersion = "TLSv1_0" | "TLSv1_1" | "TLSv1_2" | "TLSv1_3";

/**
 * The listener's DownstreamTlsContext, as far as the gateway reproduces it. The certificate and key files name
 * paths inside the Envoy container; the gateway takes their contents from its options instead.
 */
export interface DownstreamTlsSettings {
  /** common_tls_context.alpn_protocols in server preference order; empty: Envoy exposes no ALPN. */
  readonly alpnProtocols: readonly string[];
  readonly minimumProtocolVersion: TlsProtocolVersion;
  readonly maximumProtocolVersion: TlsProtocolVersion;
  /** tls_certificates[0] DataSource file names (null when inline). */
  readonly certificateChainFile: string | null;
  readonly privateKeyFile: string | null;
}

export type EscapedSlashesAction = "KEEP_UNCHANGED" | "REJECT_REQUEST" | "UNESCAPE_AND_REDIRECT" | "UNESCAPE_AND_FORWARD";

export interface GatewaySettings {
  /** HCM use_remote_address (with xff_num_trusted_hops 0 and no internal_address_config). */
  readonly useRemoteAddress: boolean;
  readonly preserveExternalRequestId: boolean;
  readonly serverHeaderTransformation: "OVERWRITE" | "APPEND_IF_ABSENT" | "PASS_THROUGH";
  readonly normalizePath: boolean;
  readonly mergeSlashes: boolean;
  readonly pathWithEscapedSlashesAction: EscapedSlashesAction;
  readonly headersWithUnderscoresAction: "ALLOW" | "REJECT_REQUEST" | "DROP_HEADER";
  /** Router suppress_envoy_headers (no x-envoy-upstream-service-time). */
  readonly suppressEnvoyHeaders: boolean;
  /** HCM stream_idle_timeout (default 5 min; 0 disables). */
  readonly streamIdleTimeoutMs: number;
  /** HCM request_timeout (default 0 = none). */
  readonly requestTimeoutMs: number;
  readonly generateRequestId: boolean;
  /** HCM-level upgrade_configs: upgrade type (lower-case) → enabled. */
  readonly upgradeConfigs: ReadonlyMap<string, boolean>;
  /** Listener per_connection_buffer_limit_bytes (default 1 MiB): the body buffer limit of every filter. */
  readonly bufferLimitBytes: number;
  /** The filter chain's DownstreamTlsContext; null for a plaintext listener. */
  readonly downstreamTls: DownstreamTlsSettings | null;
  readonly serverName: string;
  readonly extAuthz: ExtAuthzSettings | null;
  readonly extProc: ExtProcSettings | null;
  readonly virtualHosts: readonly VirtualHostSettings[];
}

const EXT_AUTHZ_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
const EXT_AUTHZ_PER_ROUTE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute";
const EXT_PROC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor";
const EXT_PROC_PER_ROUTE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute";
const ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const FILTER_CONFIG_TYPE = "type.googleapis.com/envoy.config.route.v3.FilterConfig";
const DOWNSTREAM_TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
const TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls";
const TLS_VERSIONS: readonly TlsProtocolVersion[] = ["TLSv1_0", "TLSv1_1", "TLSv1_2", "TLSv1_3"];

const DEFAULT_BUFFER_LIMIT_BYTES = 1024 * 1024;

const durationSchema = z.union([
  z.string(),
  z.object({ seconds: z.union([z.number(), z.string()]).optional(), nanos: z.number().optional() }),
]);
const boolValueSchema = z.union([z.boolean(), z.object({ value: z.boolean().optional() })]);
const anyRecord = z.record(z.string(), z.unknown());

/** google.protobuf.Duration in YAML: "1.5s" (proto JSON) or {seconds, nanos}. */
function durationMs(value: unknown, path: string): number {
  const parsed = durationSchema.safeParse(value);
  if (!parsed.success) throw new GatewaySettingsError("bad_bootstrap", path, "not a google.protobuf.Duration");
  const v = parsed.data;
  if (typeof v === "string") {
    const m = /^(-?\d+(?:\.\d+)?)s$/.exec(v.trim());
    if (!m?.[1]) throw new GatewaySettingsError("bad_bootstrap", path, `duration "${v}" must look like "1.5s"`);
    return Math.round(Number(m[1]) * 1000);
  }
  return Number(v.seconds ?? 0) * 1000 + Math.round((v.nanos ?? 0) / 1e6);
}

function optionalDurationMs(value: unknown, path: string, fallback: number): number {
  return value === undefined || value === null ? fallback : durationMs(value, path);
}

function boolValue(value: unknown, path: string, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  const parsed = boolValueSchema.safeParse(value);
  if (!parsed.success) throw new GatewaySettingsError("bad_bootstrap", path, "not a bool/BoolValue");
  return typeof parsed.data === "boolean" ? parsed.data : (parsed.data.value ?? false);
}

function record(value: unknown, path: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  const parsed = anyRecord.safeParse(value);
  if (!parsed.success) throw new GatewaySettingsError("bad_bootstrap", path, "expected a message (mapping)");
  return parsed.data;
}

function array(value: unknown, path: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new GatewaySettingsError("bad_bootstrap", path, "expected a list");
  return value as unknown[];
}

function str(value: unknown, path: string, fallback?: string): string {
  if ((value === undefined || value === null) && fallback !== undefined) return fallback;
  if (typeof value !== "string") throw new GatewaySettingsError("bad_bootstrap", path, "expected a string");
  return value;
}

function num(value: unknown, path: string, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  const n = typeof value === "string" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isFinite(n)) throw new GatewaySettingsError("bad_bootstrap", path, "expected a number");
  return n;
}

/** google.protobuf.UInt32Value: a bare number in YAML or {value}. */
function uint32Value(value: unknown, path: string, fallback: number): number {
  if (value !== null && typeof value === "object" && "value" in value) return num(value.value, path, fallback);
  return num(value, path, fallback);
}

function refuse(msg: Record<string, unknown>, keys: readonly string[], path: string): void {
  for (const key of keys) {
    const v = msg[key];
    const set = v !== undefined && v !== null && v !== false && !(Array.isArray(v) && v.length === 0);
    if (set) throw new GatewaySettingsError("unsupported_feature", `${path}.${key}`, "not reproduced by the test gateway");
  }
}

function headerSendMode(value: unknown, path: string, fallback: HeaderSendMode): HeaderSendMode {
  if (value === undefined || value === null || value === "DEFAULT" || value === 0) return fallback;
  if (value === "SEND" || value === 1) return "SEND";
  if (value === "SKIP" || value === 2) return "SKIP";
  throw new GatewaySettingsError("bad_bootstrap", path, `unknown HeaderSendMode ${JSON.stringify(value)}`);
}

function bodySendMode(value: unknown, path: string): BodySendMode {
  switch (value) {
    case undefined:
    case null:
    case "NONE":
    case 0:
      return "NONE";
    case "STREAMED":
    case 1:
      return "STREAMED";
    case "BUFFERED":
    case 2:
      return "BUFFERED";
    case "BUFFERED_PARTIAL":
    case 3:
      return "BUFFERED_PARTIAL";
    default:
      throw new GatewaySettingsError("unsupported_feature", path, `body mode ${JSON.stringify(value)}`);
  }
}

/** processing_mode.proto defaults: headers SEND, bodies NONE, trailers SKIP. */
function processingMode(value: unknown, path: string): ProcessingModeSettings {
  const m = record(value, path);
  return Object.freeze({
    requestHeaderMode: headerSendMode(m["request_header_mode"], `${path}.request_header_mode`, "SEND"),
    responseHeaderMode: headerSendMode(m["response_header_mode"], `${path}.response_header_mode`, "SEND"),
    requestBodyMode: bodySendMode(m["request_body_mode"], `${path}.request_body_mode`),
    responseBodyMode: bodySendMode(m["response_body_mode"], `${path}.response_body_mode`),
    requestTrailerMode: headerSendMode(m["request_trailer_mode"], `${path}.request_trailer_mode`, "SKIP"),
    responseTrailerMode: headerSendMode(m["response_trailer_mode"], `${path}.response_trailer_mode`, "SKIP"),
  });
}

function bufferSettings(value: unknown, path: string): BufferSettings | null {
  if (value === undefined || value === null) return null;
  const m = record(value, path);
  const maxRequestBytes = num(m["max_request_bytes"], `${path}.max_request_bytes`, 0);
  // ext_authz.proto: max_request_bytes is required and must be > 0.
  if (maxRequestBytes <= 0) throw new GatewaySettingsError("bad_bootstrap", `${path}.max_request_bytes`, "must be > 0");
  return Object.freeze({
    maxRequestBytes,
    allowPartialMessage: boolValue(m["allow_partial_message"], `${path}.allow_partial_message`, false),
    packAsBytes: boolValue(m["pack_as_bytes"], `${path}.pack_as_bytes`, false),
  });
}

function stringMatch(value: unknown, path: string): StringMatch {
  const m = record(value, path);
  const ignoreCase = boolValue(m["ignore_case"], `${path}.ignore_case`, false);
  for (const kind of ["exact", "prefix", "suffix", "contains"] as const) {
    if (typeof m[kind] === "string") return { kind, value: m[kind], ignoreCase };
  }
  if (m["safe_regex"] !== undefined) {
    return { kind: "regex", value: str(record(m["safe_regex"], `${path}.safe_regex`)["regex"], `${path}.safe_regex.regex`), ignoreCase };
  }
  throw new GatewaySettingsError("unsupported_feature", path, "string matcher kind");
}

function stringMatchList(value: unknown, path: string): StringMatch[] | null {
  if (value === undefined || value === null) return null;
  const m = record(value, path);
  return array(m["patterns"], `${path}.patterns`).map((p, i) => stringMatch(p, `${path}.patterns[${i}]`));
}

function mutationRules(value: unknown, path: string): HeaderMutationRulesSettings | null {
  if (value === undefined || value === null) return null;
  const m = record(value, path);
  const regex = (v: unknown, p: string): string | null =>
    v === undefined || v === null ? null : str(record(v, p)["regex"], `${p}.regex`);
  return Object.freeze({
    allowAllRouting: boolValue(m["allow_all_routing"], `${path}.allow_all_routing`, false),
    allowEnvoy: boolValue(m["allow_envoy"], `${path}.allow_envoy`, false),
    disallowSystem: boolValue(m["disallow_system"], `${path}.disallow_system`, false),
    disallowAll: boolValue(m["disallow_all"], `${path}.disallow_all`, false),
    allowExpression: regex(m["allow_expression"], `${path}.allow_expression`),
    disallowExpression: regex(m["disallow_expression"], `${path}.disallow_expression`),
    disallowIsError: boolValue(m["disallow_is_error"], `${path}.disallow_is_error`, false),
  });
}

function grpcTimeoutMs(grpcService: unknown, path: string): number {
  const m = record(grpcService, path);
  // ext_authz_filter.rst sample config: "# Default is 200ms; override if your server needs e.g. warmup time."
  return optionalDurationMs(m["timeout"], `${path}.timeout`, 200);
}

function extAuthzSettings(name: string, cfg: Record<string, unknown>, path: string): ExtAuthzSettings {
  refuse(cfg, ["http_service", "filter_enabled", "filter_enabled_metadata", "deny_at_disable", "metadata_context_namespaces",
    "typed_metadata_context_namespaces", "route_metadata_context_namespaces", "route_typed_metadata_context_namespaces", "include_tls_session"], path);
  if (cfg["grpc_service"] === undefined) throw new GatewaySettingsError("bad_bootstrap", `${path}.grpc_service`, "required");
  const statusOnError = record(cfg["status_on_error"], `${path}.status_on_error`);
  return Object.freeze({
    filterName: name,
    timeoutMs: grpcTimeoutMs(cfg["grpc_service"], `${path}.grpc_service`),
    failureModeAllow: boolValue(cfg["failure_mode_allow"], `${path}.failure_mode_allow`, false),
    failureModeAllowHeaderAdd: boolValue(cfg["failure_mode_allow_header_add"], `${path}.failure_mode_allow_header_add`, false),
    // ext_authz.proto status_on_error: "defaults to Forbidden (403)"; an unset/zero code means the default.
    statusOnError: statusCode(statusOnError["code"], `${path}.status_on_error.code`, 403),
    withRequestBody: bufferSettings(cfg["with_request_body"], `${path}.with_request_body`),
    clearRouteCache: boolValue(cfg["clear_route_cache"], `${path}.clear_route_cache`, false),
    encodeRawHeaders: boolValue(cfg["encode_raw_headers"], `${path}.encode_raw_headers`, false),
    validateMutations: boolValue(cfg["validate_mutations"], `${path}.validate_mutations`, false),
    allowedHeaders: stringMatchList(cfg["allowed_headers"], `${path}.allowed_headers`),
    disallowedHeaders: stringMatchList(cfg["disallowed_headers"], `${path}.disallowed_headers`),
    decoderHeaderMutationRules: mutationRules(cfg["decoder_header_mutation_rules"], `${path}.decoder_header_mutation_rules`),
  });
}

const STATUS_NAMES: Readonly<Record<string, number>> = {
  OK: 200, BadRequest: 400, Unauthorized: 401, Forbidden: 403, NotFound: 404, PayloadTooLarge: 413, TooManyRequests: 429,
  InternalServerError: 500, BadGateway: 502, ServiceUnavailable: 503, GatewayTimeout: 504,
};

function statusCode(value: unknown, path: string, fallback: number): number {
  if (value === undefined || value === null || value === 0 || value === "Empty") return fallback;
  if (typeof value === "string" && value in STATUS_NAMES) return STATUS_NAMES[value] ?? fallback;
  return num(value, path, fallback);
}

function namespaces(value: unknown, path: string): string[] {
  return array(value, path).map((v, i) => str(v, `${path}[${i}]`));
}

function extProcSettings(name: string, cfg: Record<string, unknown>, path: string): ExtProcSettings {
  refuse(cfg, ["observability_mode", "request_attributes", "response_attributes"], path);
  if (cfg["grpc_service"] === undefined) throw new GatewaySettingsError("bad_bootstrap", `${path}.grpc_service`, "required");
  const metadataOptions = record(cfg["metadata_options"], `${path}.metadata_options`);
  const forwarding = record(metadataOptions["forwarding_namespaces"], `${path}.metadata_options.forwarding_namespaces`);
  const forwardRules = record(cfg["forward_rules"], `${path}.forward_rules`);
  return Object.freeze({
    filterName: name,
    failureModeAllow: boolValue(cfg["failure_mode_allow"], `${path}.failure_mode_allow`, false),
    processingMode: processingMode(cfg["processing_mode"], `${path}.processing_mode`),
    // ext_proc.proto message_timeout: "If not specified, the default is 200 milliseconds."
    messageTimeoutMs: optionalDurationMs(cfg["message_timeout"], `${path}.message_timeout`, 200),
    maxMessageTimeoutMs: optionalDurationMs(cfg["max_message_timeout"], `${path}.max_message_timeout`, 0),
    allowModeOverride: boolValue(cfg["allow_mode_override"], `${path}.allow_mode_override`, false),
    disableImmediateResponse: boolValue(cfg["disable_immediate_response"], `${path}.disable_immediate_response`, false),
    mutationRules: mutationRules(cfg["mutation_rules"], `${path}.mutation_rules`),
    forwardingNamespacesUntyped: namespaces(forwarding["untyped"], `${path}.metadata_options.forwarding_namespaces.untyped`),
    forwardingNamespacesTyped: namespaces(forwarding["typed"], `${path}.metadata_options.forwarding_namespaces.typed`),
    allowedHeaders: stringMatchList(forwardRules["allowed_headers"], `${path}.forward_rules.allowed_headers`) ?? [],
    disallowedHeaders: stringMatchList(forwardRules["disallowed_headers"], `${path}.forward_rules.disallowed_headers`) ?? [],
  });
}

function upgradeConfigs(value: unknown, path: string): Map<string, boolean> {
  const out = new Map<string, boolean>();
  array(value, path).forEach((u, i) => {
    const m = record(u, `${path}[${i}]`);
    refuse(m, ["filters", "connect_config"], `${path}[${i}]`);
    out.set(str(m["upgrade_type"], `${path}[${i}].upgrade_type`).toLowerCase(), boolValue(m["enabled"], `${path}[${i}].enabled`, true));
  });
  return out;
}

function headerMatcher(value: unknown, path: string): HeaderMatcherSettings {
  const m = record(value, path);
  refuse(m, ["range_match"], path);
  const base = {
    name: str(m["name"], `${path}.name`).toLowerCase(),
    invert: boolValue(m["invert_match"], `${path}.invert_match`, false),
    treatMissingAsEmpty: boolValue(m["treat_missing_header_as_empty"], `${path}.treat_missing_header_as_empty`, false),
  };
  if (m["present_match"] !== undefined) {
    return { ...base, kind: "present", value: "", present: boolValue(m["present_match"], `${path}.present_match`, true), ignoreCase: false };
  }
  const legacy: [string, HeaderMatcherSettings["kind"]][] = [["exact_match", "exact"], ["prefix_match", "prefix"], ["suffix_match", "suffix"], ["contains_match", "contains"]];
  for (const [key, kind] of legacy) {
    if (typeof m[key] === "string") return { ...base, kind, value: m[key], present: true, ignoreCase: false };
  }
  if (m["safe_regex_match"] !== undefined) {
    const regex = str(record(m["safe_regex_match"], `${path}.safe_regex_match`)["regex"], `${path}.safe_regex_match.regex`);
    return { ...base, kind: "regex", value: regex, present: true, ignoreCase: false };
  }
  if (m["string_match"] !== undefined) {
    const sm = stringMatch(m["string_match"], `${path}.string_match`);
    return { ...base, kind: sm.kind, value: sm.value, present: true, ignoreCase: sm.ignoreCase };
  }
  // No specifier: RouteMatch headers with only a name match when the header is present.
  return { ...base, kind: "present", value: "", present: true, ignoreCase: false };
}

function queryMatcher(value: unknown, path: string): QueryMatcherSettings {
  const m = record(value, path);
  const name = str(m["name"], `${path}.name`);
  if (m["string_match"] !== undefined) return { name, match: stringMatch(m["string_match"], `${path}.string_match`) };
  if (m["present_match"] === true) return { name, match: null };
  throw new GatewaySettingsError("bad_bootstrap", path, "query parameter matcher needs string_match or present_match: true");
}

interface PerFilterConfigs {
  readonly extAuthz: Record<string, unknown> | null;
  readonly extProc: Record<string, unknown> | null;
  readonly extAuthzDisabledByWrapper: boolean;
  readonly extProcDisabledByWrapper: boolean;
}

/** typed_per_filter_config is keyed by the http_filters[].name (route_components.proto). */
function perFilterConfigs(value: unknown, path: string, authzName: string | null, procName: string | null): PerFilterConfigs {
  const m = record(value, path);
  const read = (name: string | null, type: string): { cfg: Record<string, unknown> | null; disabled: boolean } => {
    if (name === null || m[name] === undefined) return { cfg: null, disabled: false };
    let cfg = record(m[name], `${path}.${name}`);
    let disabled = false;
    if (cfg["@type"] === FILTER_CONFIG_TYPE) {
      disabled = boolValue(cfg["disabled"], `${path}.${name}.disabled`, false);
      cfg = record(cfg["config"], `${path}.${name}.config`);
      if (Object.keys(cfg).length === 0) return { cfg: null, disabled };
    }
    if (cfg["@type"] !== type) throw new GatewaySettingsError("bad_bootstrap", `${path}.${name}`, `expected @type ${type}`);
    return { cfg, disabled };
  };
  const a = read(authzName, EXT_AUTHZ_PER_ROUTE_TYPE);
  const p = read(procName, EXT_PROC_PER_ROUTE_TYPE);
  return { extAuthz: a.cfg, extProc: p.cfg, extAuthzDisabledByWrapper: a.disabled, extProcDisabledByWrapper: p.disabled };
}

function mergedRouteFilterSettings(
  levels: readonly PerFilterConfigs[],
  path: string,
): { extAuthz: RouteSettings["extAuthz"]; extProc: RouteSettings["extProc"] } {
  // Envoy merges per-filter configs from virtual host to route: context_extensions merge (more specific wins,
  // ext_authz.cc FilterConfigPerRoute::merge); other flags come from the most specific config
  // (resolveMostSpecificPerFilterConfig); ext_proc merges processing mode / namespaces with more specific
  // winning (ext_proc.cc FilterConfigPerRoute(less_specific, more_specific)).
  let authzDisabled = false;
  let disableBuffering = false;
  let withRequestBody: BufferSettings | null = null;
  const contextExtensions: Record<string, string> = {};
  let procDisabled = false;
  let procMode: ProcessingModeSettings | null = null;
  let fwdUntyped: string[] | null = null;
  let fwdTyped: string[] | null = null;
  levels.forEach((level, i) => {
    const p = `${path}[level ${i}]`;
    if (level.extAuthz !== null || level.extAuthzDisabledByWrapper) {
      const cfg = level.extAuthz ?? {};
      authzDisabled = level.extAuthzDisabledByWrapper || boolValue(cfg["disabled"], `${p}.disabled`, false);
      const cs = record(cfg["check_settings"], `${p}.check_settings`);
      refuse(cs, ["service_override", "grpc_service", "http_service"], `${p}.check_settings`);
      disableBuffering = boolValue(cs["disable_request_body_buffering"], `${p}.check_settings.disable_request_body_buffering`, false);
      withRequestBody = bufferSettings(cs["with_request_body"], `${p}.check_settings.with_request_body`);
      const ext = record(cs["context_extensions"], `${p}.check_settings.context_extensions`);
      for (const [k, v] of Object.entries(ext)) contextExtensions[k] = str(v, `${p}.check_settings.context_extensions.${k}`);
    }
    if (level.extProc !== null || level.extProcDisabledByWrapper) {
      const cfg = level.extProc ?? {};
      procDisabled = level.extProcDisabledByWrapper || boolValue(cfg["disabled"], `${p}.disabled`, false);
      const ov = record(cfg["overrides"], `${p}.overrides`);
      refuse(ov, ["grpc_service", "async_mode", "request_attributes", "response_attributes", "grpc_initial_metadata"], `${p}.overrides`);
      if (procDisabled) procMode = null;
      else if (ov["processing_mode"] !== undefined) procMode = processingMode(ov["processing_mode"], `${p}.overrides.processing_mode`);
      const mo = record(ov["metadata_options"], `${p}.overrides.metadata_options`);
      if (mo["forwarding_namespaces"] !== undefined) {
        const fw = record(mo["forwarding_namespaces"], `${p}.overrides.metadata_options.forwarding_namespaces`);
        fwdUntyped = namespaces(fw["untyped"], `${p}.overrides.metadata_options.forwarding_namespaces.untyped`);
        fwdTyped = namespaces(fw["typed"], `${p}.overrides.metadata_options.forwarding_namespaces.typed`);
      }
    }
  });
  return {
    extAuthz: Object.freeze({ disabled: authzDisabled, contextExtensions: Object.freeze(contextExtensions), disableRequestBodyBuffering: disableBuffering, withRequestBody }),
    extProc: Object.freeze({ disabled: procDisabled, processingMode: procMode, forwardingNamespacesUntyped: fwdUntyped, forwardingNamespacesTyped: fwdTyped }),
  };
}

function routeSettings(value: unknown, path: string, vhostLevel: PerFilterConfigs, names: { authz: string | null; proc: string | null }): RouteSettings {
  const r = record(value, path);
  refuse(r, ["redirect", "direct_response", "filter_action", "non_forwarding_action", "request_headers_to_add", "request_headers_to_remove",
    "response_headers_to_add", "response_headers_to_remove"], path);
  const match = record(r["match"], `${path}.match`);
  refuse(match, ["grpc", "runtime_fraction", "tls_context", "connect_matcher", "dynamic_metadata", "path_match_policy"], `${path}.match`);
  let kind: RouteSettings["match"]["kind"];
  let matchValue: string;
  if (typeof match["prefix"] === "string") [kind, matchValue] = ["prefix", match["prefix"]];
  else if (typeof match["path"] === "string") [kind, matchValue] = ["path", match["path"]];
  else if (typeof match["path_separated_prefix"] === "string") [kind, matchValue] = ["path_separated_prefix", match["path_separated_prefix"]];
  else if (match["safe_regex"] !== undefined) {
    kind = "regex";
    matchValue = str(record(match["safe_regex"], `${path}.match.safe_regex`)["regex"], `${path}.match.safe_regex.regex`);
  } else throw new GatewaySettingsError("bad_bootstrap", `${path}.match`, "no path specifier");
  const action = record(r["route"], `${path}.route`);
  if (r["route"] === undefined) throw new GatewaySettingsError("unsupported_feature", `${path}.route`, "only route actions are reproduced");
  refuse(action, ["weighted_clusters", "cluster_header", "regex_rewrite", "host_rewrite_header", "host_rewrite_path_regex", "retry_policy",
    "hedge_policy", "request_mirror_policies", "path_rewrite_policy"], `${path}.route`);
  const routeLevel = perFilterConfigs(r["typed_per_filter_config"], `${path}.typed_per_filter_config`, names.authz, names.proc);
  const merged = mergedRouteFilterSettings([vhostLevel, routeLevel], `${path}.typed_per_filter_config`);
  const maxStream = record(action["max_stream_duration"], `${path}.route.max_stream_duration`);
  refuse(maxStream, ["grpc_timeout_header_max", "grpc_timeout_header_offset"], `${path}.route.max_stream_duration`);
  return Object.freeze({
    path,
    name: str(r["name"], `${path}.name`, ""),
    maxStreamDurationMs: optionalDurationMs(maxStream["max_stream_duration"], `${path}.route.max_stream_duration.max_stream_duration`, 0),
    match: Object.freeze({
      kind,
      value: matchValue,
      caseSensitive: boolValue(match["case_sensitive"], `${path}.match.case_sensitive`, true),
      headers: array(match["headers"], `${path}.match.headers`).map((h, i) => headerMatcher(h, `${path}.match.headers[${i}]`)),
      queryParameters: array(match["query_parameters"], `${path}.match.query_parameters`).map((q, i) => queryMatcher(q, `${path}.match.query_parameters[${i}]`)),
    }),
    // route_components.proto RouteAction.timeout: "If not specified, the default is 15s"; 0 disables it.
    timeoutMs: optionalDurationMs(action["timeout"], `${path}.route.timeout`, 15_000),
    idleTimeoutMs: action["idle_timeout"] === undefined ? null : durationMs(action["idle_timeout"], `${path}.route.idle_timeout`),
    upgradeConfigs: upgradeConfigs(action["upgrade_configs"], `${path}.route.upgrade_configs`),
    hostRewriteLiteral: typeof action["host_rewrite_literal"] === "string" ? action["host_rewrite_literal"] : null,
    prefixRewrite: typeof action["prefix_rewrite"] === "string" && action["prefix_rewrite"] !== "" ? action["prefix_rewrite"] : null,
    extAuthz: merged.extAuthz,
    extProc: merged.extProc,
  });
}

function tlsVersion(value: unknown, path: string, fallback: TlsProtocolVersion): TlsProtocolVersion {
  if (value === undefined || value === null || value === "TLS_AUTO" || value === 0) return fallback;
  const found = TLS_VERSIONS.find((v) => v === value);
  if (found === undefined) throw new GatewaySettingsError("bad_bootstrap", path, `unknown TlsProtocol ${JSON.stringify(value)}`);
  return found;
}

/** A DataSource's file name; null for inline_string / inline_bytes (the gateway's options carry the bytes either way). */
function dataSourceFile(value: unknown, path: string): string | null {
  const m = record(value, path);
  refuse(m, ["environment_variable", "watched_directory"], path);
  if (typeof m["filename"] === "string") return m["filename"];
  if (m["inline_string"] === undefined && m["inline_bytes"] === undefined) throw new GatewaySettingsError("bad_bootstrap", path, "required");
  return null;
}

/**
 * transport_socket envoy.transport_sockets.tls (tls.proto DownstreamTlsContext). Reproduced: one server
 * certificate, protocol versions and ALPN. Refused: client certificates, SDS/providers, cipher and curve lists,
 * session ticket settings, OCSP: a config using them would behave differently in Envoy.
 */
function downstreamTlsSettings(value: unknown, path: string): DownstreamTlsSettings | null {
  if (value === undefined || value === null) return null;
  const socket = record(value, path);
  if (socket["name"] !== TLS_TRANSPORT_SOCKET) {
    throw new GatewaySettingsError("unsupported_feature", `${path}.name`, `only ${TLS_TRANSPORT_SOCKET} is reproduced`);
  }
  const ctxPath = `${path}.typed_config`;
  const ctx = record(socket["typed_config"], ctxPath);
  if (ctx["@type"] !== DOWNSTREAM_TLS_TYPE) throw new GatewaySettingsError("unsupported_feature", ctxPath, "a DownstreamTlsContext is required");
  refuse(ctx, ["session_ticket_keys", "session_ticket_keys_sds_secret_config", "disable_stateless_session_resumption",
    "disable_stateful_session_resumption", "session_timeout", "ocsp_staple_policy", "full_scan_certs_on_sni_mismatch"], ctxPath);
  // require_client_certificate / require_sni are BoolValues: {value: false} is as good as unset.
  for (const key of ["require_client_certificate", "require_sni"]) {
    if (boolValue(ctx[key], `${ctxPath}.${key}`, false)) throw new GatewaySettingsError("unsupported_feature", `${ctxPath}.${key}`, "not reproduced by the test gateway");
  }
  const commonPath = `${ctxPath}.common_tls_context`;
  const common = record(ctx["common_tls_context"], commonPath);
  refuse(common, ["tls_certificate_sds_secret_configs", "tls_certificate_provider_instance", "tls_certificate_certificate_provider",
    "tls_certificate_certificate_provider_instance", "validation_context", "validation_context_sds_secret_config", "combined_validation_context",
    "validation_context_certificate_provider", "validation_context_certificate_provider_instance", "custom_handshaker", "key_log"],
    commonPath);
  const params = record(common["tls_params"], `${commonPath}.tls_params`);
  refuse(params, ["cipher_suites", "ecdh_curves", "signature_algorithms"], `${commonPath}.tls_params`);
  const certs = array(common["tls_certificates"], `${commonPath}.tls_certificates`);
  if (certs.length !== 1) throw new GatewaySettingsError("unsupported_feature", `${commonPath}.tls_certificates`, "exactly one certificate is reproduced");
  const certPath = `${commonPath}.tls_certificates[0]`;
  const cert = record(certs[0], certPath);
  refuse(cert, ["password", "pkcs12", "watched_directory", "private_key_provider", "ocsp_staple", "signed_certificate_timestamp"], certPath);
  // common.proto TlsParameters: minimum "TLSv1_2 for both clients and servers", maximum "TLSv1_3 for servers".
  const minimumProtocolVersion = tlsVersion(params["tls_minimum_protocol_version"], `${commonPath}.tls_params.tls_minimum_protocol_version`, "TLSv1_2");
  const maximumProtocolVersion = tlsVersion(params["tls_maximum_protocol_version"], `${commonPath}.tls_params.tls_maximum_protocol_version`, "TLSv1_3");
  if (TLS_VERSIONS.indexOf(maximumProtocolVersion) < TLS_VERSIONS.indexOf(minimumProtocolVersion)) {
    throw new GatewaySettingsError("bad_bootstrap", `${commonPath}.tls_params`, "maximum protocol version below the minimum");
  }
  return Object.freeze({
    alpnProtocols: Object.freeze(array(common["alpn_protocols"], `${commonPath}.alpn_protocols`).map((p, i) => str(p, `${commonPath}.alpn_protocols[${i}]`))),
    minimumProtocolVersion,
    maximumProtocolVersion,
    certificateChainFile: dataSourceFile(cert["certificate_chain"], `${certPath}.certificate_chain`),
    privateKeyFile: dataSourceFile(cert["private_key"], `${certPath}.private_key`),
  });
}

/** Converts a Bootstrap object (the parsed YAML) into the settings the test gateway honours. */
export function gatewaySettingsFromBootstrap(bootstrap: unknown): GatewaySettings {
  const root = record(bootstrap, "bootstrap");
  const listeners = array(record(root["static_resources"], "bootstrap.static_resources")["listeners"], "bootstrap.static_resources.listeners");
  if (listeners.length !== 1) throw new GatewaySettingsError("unsupported_feature", "bootstrap.static_resources.listeners", "exactly one listener is reproduced");
  const listener = record(listeners[0], "listeners[0]");
  const chains = array(listener["filter_chains"], "listeners[0].filter_chains");
  if (chains.length !== 1) throw new GatewaySettingsError("unsupported_feature", "listeners[0].filter_chains", "exactly one filter chain is reproduced");
  const chain = record(chains[0], "listeners[0].filter_chains[0]");
  refuse(chain, ["filter_chain_match", "transport_socket_connect_timeout"], "listeners[0].filter_chains[0]");
  const downstreamTls = downstreamTlsSettings(chain["transport_socket"], "listeners[0].filter_chains[0].transport_socket");
  const netFilters = array(chain["filters"], "listeners[0].filter_chains[0].filters");
  const hcmPath = "listeners[0].filter_chains[0].filters[0].typed_config";
  const hcmFilter = record(netFilters[0], "listeners[0].filter_chains[0].filters[0]");
  const hcm = record(hcmFilter["typed_config"], hcmPath);
  if (netFilters.length !== 1 || hcm["@type"] !== HCM_TYPE) throw new GatewaySettingsError("unsupported_feature", hcmPath, "one HttpConnectionManager network filter is reproduced");
  if (num(hcm["xff_num_trusted_hops"], `${hcmPath}.xff_num_trusted_hops`, 0) !== 0) {
    throw new GatewaySettingsError("unsupported_feature", `${hcmPath}.xff_num_trusted_hops`, "only 0 is reproduced");
  }
  refuse(hcm, ["rds", "scoped_routes", "internal_address_config", "strip_matching_host_port",
    "local_reply_config", "early_header_mutation_extensions", "original_ip_detection_extensions", "skip_xff_append", "via",
    "forward_client_cert_details", "set_current_client_cert_details", "scheme_header_transformation"], hcmPath);
  const protocolOptions = record(hcm["common_http_protocol_options"], `${hcmPath}.common_http_protocol_options`);

  const filters = array(hcm["http_filters"], `${hcmPath}.http_filters`).map((f, i) => {
    const m = record(f, `${hcmPath}.http_filters[${i}]`);
    return { name: str(m["name"], `${hcmPath}.http_filters[${i}].name`), cfg: record(m["typed_config"], `${hcmPath}.http_filters[${i}].typed_config`), i };
  });
  const order = filters.map((f) => f.cfg["@type"]);
  const allowedOrders = [[EXT_AUTHZ_TYPE, EXT_PROC_TYPE, ROUTER_TYPE], [EXT_AUTHZ_TYPE, ROUTER_TYPE], [EXT_PROC_TYPE, ROUTER_TYPE], [ROUTER_TYPE]];
  if (!allowedOrders.some((o) => o.length === order.length && o.every((t, i) => order[i] === t))) {
    throw new GatewaySettingsError("unsupported_feature", `${hcmPath}.http_filters`, `filter chain must be [ext_authz] → [ext_proc] → router, got ${JSON.stringify(order)}`);
  }
  const authzFilter = filters.find((f) => f.cfg["@type"] === EXT_AUTHZ_TYPE);
  const procFilter = filters.find((f) => f.cfg["@type"] === EXT_PROC_TYPE);
  const extAuthz = authzFilter ? extAuthzSettings(authzFilter.name, authzFilter.cfg, `${hcmPath}.http_filters[${authzFilter.i}].typed_config`) : null;
  const extProc = procFilter ? extProcSettings(procFilter.name, procFilter.cfg, `${hcmPath}.http_filters[${procFilter.i}].typed_config`) : null;
  const names = { authz: authzFilter?.name ?? null, proc: procFilter?.name ?? null };

  const routeConfig = record(hcm["route_config"], `${hcmPath}.route_config`);
  if (hcm["route_config"] === undefined) throw new GatewaySettingsError("bad_bootstrap", `${hcmPath}.route_config`, "required (rds is not reproduced)");
  const virtualHosts = array(routeConfig["virtual_hosts"], `${hcmPath}.route_config.virtual_hosts`).map((v, i) => {
    const vp = `${hcmPath}.route_config.virtual_hosts[${i}]`;
    const vh = record(v, vp);
    refuse(vh, ["require_tls", "request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove"], vp);
    const vhostLevel = perFilterConfigs(vh["typed_per_filter_config"], `${vp}.typed_per_filter_config`, names.authz, names.proc);
    return Object.freeze({
      name: str(vh["name"], `${vp}.name`, ""),
      domains: array(vh["domains"], `${vp}.domains`).map((d, j) => str(d, `${vp}.domains[${j}]`).toLowerCase()),
      routes: array(vh["routes"], `${vp}.routes`).map((r, j) => routeSettings(r, `${vp}.routes[${j}]`, vhostLevel, names)),
    });
  });

  const router = filters.find((f) => f.cfg["@type"] === ROUTER_TYPE);
  const enumOf = <T extends string>(value: unknown, p: string, allowed: readonly T[], fallback: T): T => {
    if (value === undefined || value === null) return fallback;
    const found = allowed.find((a) => a === value);
    if (found === undefined) throw new GatewaySettingsError("unsupported_feature", p, `value ${JSON.stringify(value)}`);
    return found;
  };
  return Object.freeze({
    useRemoteAddress: boolValue(hcm["use_remote_address"], `${hcmPath}.use_remote_address`, false),
    preserveExternalRequestId: boolValue(hcm["preserve_external_request_id"], `${hcmPath}.preserve_external_request_id`, false),
    serverHeaderTransformation: enumOf(hcm["server_header_transformation"], `${hcmPath}.server_header_transformation`, ["OVERWRITE", "APPEND_IF_ABSENT", "PASS_THROUGH"] as const, "OVERWRITE"),
    normalizePath: boolValue(hcm["normalize_path"], `${hcmPath}.normalize_path`, false),
    mergeSlashes: boolValue(hcm["merge_slashes"], `${hcmPath}.merge_slashes`, false),
    // IMPLEMENTATION_SPECIFIC_DEFAULT is KEEP_UNCHANGED in Envoy (http_connection_manager.proto).
    pathWithEscapedSlashesAction: ((v) => (v === "IMPLEMENTATION_SPECIFIC_DEFAULT" ? "KEEP_UNCHANGED" : v))(
      enumOf(hcm["path_with_escaped_slashes_action"], `${hcmPath}.path_with_escaped_slashes_action`,
        ["IMPLEMENTATION_SPECIFIC_DEFAULT", "KEEP_UNCHANGED", "REJECT_REQUEST", "UNESCAPE_AND_REDIRECT", "UNESCAPE_AND_FORWARD"] as const, "KEEP_UNCHANGED"),
    ),
    headersWithUnderscoresAction: enumOf(protocolOptions["headers_with_underscores_action"], `${hcmPath}.common_http_protocol_options.headers_with_underscores_action`, ["ALLOW", "REJECT_REQUEST", "DROP_HEADER"] as const, "ALLOW"),
    suppressEnvoyHeaders: router === undefined ? false : boolValue(router.cfg["suppress_envoy_headers"], `${hcmPath}.http_filters[${router.i}].typed_config.suppress_envoy_headers`, false),
    // http_connection_manager.proto stream_idle_timeout: "If not specified, this defaults to 5 minutes."
    streamIdleTimeoutMs: optionalDurationMs(hcm["stream_idle_timeout"], `${hcmPath}.stream_idle_timeout`, 300_000),
    requestTimeoutMs: optionalDurationMs(hcm["request_timeout"], `${hcmPath}.request_timeout`, 0),
    generateRequestId: boolValue(hcm["generate_request_id"], `${hcmPath}.generate_request_id`, true),
    upgradeConfigs: upgradeConfigs(hcm["upgrade_configs"], `${hcmPath}.upgrade_configs`),
    bufferLimitBytes: uint32Value(listener["per_connection_buffer_limit_bytes"], "listeners[0].per_connection_buffer_limit_bytes", DEFAULT_BUFFER_LIMIT_BYTES),
    downstreamTls,
    serverName: str(hcm["server_name"], `${hcmPath}.server_name`, "envoy"),
    extAuthz,
    extProc,
    virtualHosts,
  });
}

/** Reads a Bootstrap YAML file (e.g. envoy/sidecar.yaml) into gateway settings. */
export function loadGatewaySettings(yamlPath: string): GatewaySettings {
  return gatewaySettingsFromBootstrap(parseYaml(readFileSync(yamlPath, "utf8")) as unknown);
}

/** Envoy's virtual host selection: exact domain, then longest suffix wildcard, then prefix wildcard, then "*". */
export function selectVirtualHost(settings: GatewaySettings, authority: string): VirtualHostSettings | null {
  const host = authority.toLowerCase();
  const exact = settings.virtualHosts.find((v) => v.domains.includes(host));
  if (exact) return exact;
  let best: { vh: VirtualHostSettings; len: number } | null = null;
  for (const vh of settings.virtualHosts) {
    for (const d of vh.domains) {
      if (d.startsWith("*") && d.length > 1 && host.endsWith(d.slice(1)) && (best === null || d.length > best.len)) best = { vh, len: d.length };
    }
  }
  if (best) return best.vh;
  for (const vh of settings.virtualHosts) {
    for (const d of vh.domains) {
      if (d.endsWith("*") && d.length > 1 && host.startsWith(d.slice(0, -1))) return vh;
    }
  }
  return settings.virtualHosts.find((v) => v.domains.includes("*")) ?? null;
}

function stringMatches(kind: StringMatch["kind"], pattern: string, value: string, ignoreCase: boolean): boolean {
  const v = ignoreCase ? value.toLowerCase() : value;
  const p = ignoreCase && kind !== "regex" ? pattern.toLowerCase() : pattern;
  switch (kind) {
    case "exact":
      return v === p;
    case "prefix":
      return v.startsWith(p);
    case "suffix":
      return v.endsWith(p);
    case "contains":
      return v.includes(p);
    case "regex":
      // RE2 safe_regex is a full match (regex.proto); the JS dialect covers the patterns used in routes.
      return new RegExp(`^(?:${pattern})$`, ignoreCase ? "i" : "").test(value);
  }
}

/** Matches a StringMatcher list (ListStringMatcher semantics: any pattern matches). */
export function anyStringMatch(list: readonly StringMatch[], value: string): boolean {
  return list.some((m) => stringMatches(m.kind, m.value, value, m.ignoreCase));
}

function headerMatches(m: HeaderMatcherSettings, headers: HeaderList): boolean {
  const values = headers.getAll(m.name);
  // HeaderUtility::matchHeaders: multiple values are joined with "," before matching.
  let value: string | null = values.length > 0 ? values.join(",") : null;
  if (value === null && m.treatMissingAsEmpty) value = "";
  let result: boolean;
  if (m.kind === "present") result = (value !== null) === m.present;
  else result = value !== null && stringMatches(m.kind, m.value, value, m.ignoreCase);
  return m.invert ? !result : result;
}

/** QueryParameterMatcher on the first value of the parameter (Http::Utility::QueryParamsMulti::getFirstValue). */
function queryMatches(m: QueryMatcherSettings, path: string): boolean {
  const q = path.indexOf("?");
  if (q < 0) return false;
  for (const part of path.slice(q + 1).split("&")) {
    const eq = part.indexOf("=");
    const key = eq >= 0 ? part.slice(0, eq) : part;
    if (key !== m.name) continue;
    const value = eq >= 0 ? part.slice(eq + 1) : "";
    return m.match === null || stringMatches(m.match.kind, m.match.value, value, m.match.ignoreCase);
  }
  return false;
}

/** Route selection in order (first match wins), on the :path without its query string. */
export function selectRoute(vhost: VirtualHostSettings, path: string, headers: HeaderList): RouteSettings | null {
  const q = path.indexOf("?");
  const bare = q >= 0 ? path.slice(0, q) : path;
  for (const route of vhost.routes) {
    const { kind, value, caseSensitive } = route.match;
    const p = caseSensitive ? bare : bare.toLowerCase();
    const v = caseSensitive ? value : value.toLowerCase();
    let ok: boolean;
    switch (kind) {
      case "prefix":
        ok = p.startsWith(v);
        break;
      case "path":
        ok = p === v;
        break;
      case "path_separated_prefix":
        ok = p === v || p.startsWith(`${v}/`);
        break;
      case "regex":
        ok = new RegExp(`^(?:${value})$`).test(bare);
        break;
    }
    if (ok && route.match.headers.every((h) => headerMatches(h, headers)) && route.match.queryParameters.every((m) => queryMatches(m, path))) return route;
  }
  return null;
}
