/**
 * @module test/helpers/envoy-bootstrap
 * Strict decoder for Envoy YAML configs against Envoy's own protos (unknown fields, bad enums, unresolvable
 * `typed_config` are errors), plus read helpers so tests and the Envoy-faithful test gateway use the settings.
 */
import { readFileSync } from "node:fs";
import protobuf from "protobufjs";
import { parse as parseYaml } from "yaml";
import { loadEnvoyConfigRoot } from "../../protos/load.js";

export const BOOTSTRAP_TYPE = "envoy.config.bootstrap.v3.Bootstrap";
const TYPE_URL_PREFIX = "type.googleapis.com/";

/** The closed set of reasons a config is rejected. */
export type EnvoyConfigIssueCode =
  | "yaml_invalid"
  | "unknown_field"
  | "camel_case_field"
  | "wrong_type"
  | "null_value"
  | "unknown_enum"
  | "out_of_range"
  | "invalid_duration"
  | "invalid_timestamp"
  | "invalid_bytes"
  | "any_missing_type"
  | "unknown_type"
  | "oneof_conflict"
  | "deprecated"
  | "constraint_violated"
  | "encode_failed";

export interface EnvoyConfigIssue {
  readonly code: EnvoyConfigIssueCode;
  /** Where in the document, e.g. `static_resources.listeners[0].address`; Any payloads show `<TypeName>`. */
  readonly path: string;
  readonly message: string;
}

export class EnvoyConfigError extends Error {
  readonly issues: readonly EnvoyConfigIssue[];
  constructor(source: string, issues: readonly EnvoyConfigIssue[]) {
    super(`${source}: ${issues.length} config issue(s):\n${issues.map((i) => `  ${i.path || "<root>"}: [${i.code}] ${i.message}`).join("\n")}`);
    this.name = "EnvoyConfigError";
    this.issues = issues;
  }
}

export type JsonValue = null | boolean | number | string | readonly JsonValue[] | JsonObject;
export interface JsonObject {
  readonly [key: string]: JsonValue;
}

export interface EnvoyValidationOptions {
  /**
   * Deprecated fields and enum values are rejected by default: Envoy turns many of them into hard errors
   * release by release, and a security-relevant config should not lean on them.
   */
  readonly allowDeprecated?: boolean;
}

export interface DecodedEnvoyConfig {
  /** The document as written (YAML → JSON), validated: navigate it with `pick` and the finders below. */
  readonly json: JsonObject;
  /** The same document decoded from its binary protobuf encoding (Any payloads packed as bytes). */
  readonly message: protobuf.Message;
  readonly encodedBytes: number;
}

// ---------------------------------------------------------------------------------------------------------
// Strict proto3-JSON walk: validates and converts to protobufjs object form in one pass.
// ---------------------------------------------------------------------------------------------------------

interface WalkContext {
  readonly root: protobuf.Root;
  readonly issues: EnvoyConfigIssue[];
  readonly allowDeprecated: boolean;
}

type ProtoObject = Record<string, unknown>;

const INT32_TYPES = new Set(["int32", "sint32", "sfixed32"]);
const UINT32_TYPES = new Set(["uint32", "fixed32"]);
const INT64_TYPES = new Set(["int64", "sint64", "sfixed64"]);
const UINT64_TYPES = new Set(["uint64", "fixed64"]);
const FLOAT_TYPES = new Set(["double", "float"]);
const MAX_DURATION_SECONDS = 315_576_000_000n;

const WRAPPER_SCALARS: ReadonlyMap<string, string> = new Map([
  [".google.protobuf.DoubleValue", "double"],
  [".google.protobuf.FloatValue", "float"],
  [".google.protobuf.Int64Value", "int64"],
  [".google.protobuf.UInt64Value", "uint64"],
  [".google.protobuf.Int32Value", "int32"],
  [".google.protobuf.UInt32Value", "uint32"],
  [".google.protobuf.BoolValue", "bool"],
  [".google.protobuf.StringValue", "string"],
  [".google.protobuf.BytesValue", "bytes"],
]);

/** Marks a value that failed validation (its issue is already recorded); distinct from any JSON value. */
const INVALID: unique symbol = Symbol("invalid");
type Invalid = typeof INVALID;

function issue(ctx: WalkContext, code: EnvoyConfigIssueCode, path: string, message: string): Invalid {
  ctx.issues.push({ code, path, message });
  return INVALID;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  return typeof value === "object" ? "a mapping" : `${typeof value} ${JSON.stringify(value)}`;
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function toLowerCamel(snake: string): string {
  return snake.replace(/_([a-z0-9])/g, (_m: string, c: string) => c.toUpperCase());
}

/** Integer from a JSON number or a decimal string (proto3 JSON allows both), as a bigint for range checks. */
function integerOf(value: unknown): bigint | undefined {
  if (typeof value === "number") return Number.isInteger(value) ? BigInt(value) : undefined;
  if (typeof value === "string" && /^-?\d+$/.test(value)) return BigInt(value);
  return undefined;
}

function integerRange(type: string): readonly [bigint, bigint] | undefined {
  if (INT32_TYPES.has(type)) return [-(2n ** 31n), 2n ** 31n - 1n];
  if (UINT32_TYPES.has(type)) return [0n, 2n ** 32n - 1n];
  if (INT64_TYPES.has(type)) return [-(2n ** 63n), 2n ** 63n - 1n];
  if (UINT64_TYPES.has(type)) return [0n, 2n ** 64n - 1n];
  return undefined;
}

function convertScalar(ctx: WalkContext, type: string, value: unknown, path: string): unknown {
  if (type === "string") {
    return typeof value === "string" ? value : issue(ctx, "wrong_type", path, `expected a string, got ${describe(value)}`);
  }
  if (type === "bool") {
    return typeof value === "boolean" ? value : issue(ctx, "wrong_type", path, `expected true/false, got ${describe(value)}`);
  }
  if (type === "bytes") {
    if (typeof value !== "string" || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(value)) {
      return issue(ctx, "invalid_bytes", path, "expected base64 bytes");
    }
    return Buffer.from(value, "base64");
  }
  if (FLOAT_TYPES.has(type)) {
    if (typeof value === "number") return value;
    if (value === "NaN" || value === "Infinity" || value === "-Infinity") return Number(value);
    if (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value))) return Number(value);
    return issue(ctx, "wrong_type", path, `expected a number, got ${describe(value)}`);
  }
  const n = integerOf(value);
  if (n === undefined) return issue(ctx, "wrong_type", path, `expected an integer (${type}), got ${describe(value)}`);
  const range = integerRange(type);
  if (!range) return issue(ctx, "wrong_type", path, `unsupported scalar type ${type}`);
  const [min, max] = range;
  if (n < min || n > max) return issue(ctx, "out_of_range", path, `${n} is out of range for ${type}`);
  return INT64_TYPES.has(type) || UINT64_TYPES.has(type) ? n.toString() : Number(n);
}

function convertEnum(ctx: WalkContext, enumType: protobuf.Enum, value: unknown, path: string): unknown {
  const name = enumType.fullName.replace(/^\./, "");
  if (typeof value === "string") {
    if (!(value in enumType.values)) {
      return issue(ctx, "unknown_enum", path, `"${value}" is not a value of ${name} (${Object.keys(enumType.values).join(", ")})`);
    }
    const valueOptions: unknown = enumType.valuesOptions?.[value];
    if (!ctx.allowDeprecated && isPlainObject(valueOptions) && valueOptions.deprecated === true) {
      return issue(ctx, "deprecated", path, `enum value ${value} of ${name} is deprecated`);
    }
    return value;
  }
  if (typeof value === "number" && Number.isInteger(value) && Object.values(enumType.values).includes(value)) return value;
  return issue(ctx, "unknown_enum", path, `expected a value name of ${name}, got ${describe(value)}`);
}

/** "1.5s", "0s", "-2s", up to nanosecond precision, as in protobuf's JSON mapping (Envoy's YAML too). */
export function parseDuration(text: string): { seconds: bigint; nanos: number } | undefined {
  const m = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(text);
  if (!m) return undefined;
  const sign = m[1] === "-" ? -1n : 1n;
  const seconds = BigInt(m[2] ?? "0");
  const nanos = Number((m[3] ?? "").padEnd(9, "0"));
  if (seconds > MAX_DURATION_SECONDS) return undefined;
  return { seconds: sign * seconds, nanos: sign === -1n ? -nanos : nanos };
}

/** Milliseconds in a protobuf-JSON duration string; throws on an invalid one (for reading validated configs). */
export function durationToMs(text: string): number {
  const d = parseDuration(text);
  if (!d) throw new Error(`invalid duration "${text}"`);
  return Number(d.seconds) * 1000 + d.nanos / 1e6;
}

function convertStructValue(value: unknown): unknown {
  if (value === null) return { null_value: 0 };
  if (typeof value === "number") return { number_value: value };
  if (typeof value === "string") return { string_value: value };
  if (typeof value === "boolean") return { bool_value: value };
  if (Array.isArray(value)) return { list_value: { values: value.map(convertStructValue) } };
  if (isPlainObject(value)) return { struct_value: convertStruct(value) };
  return { null_value: 0 };
}

function convertStruct(value: Record<string, unknown>): ProtoObject {
  const fields: ProtoObject = {};
  for (const [k, v] of Object.entries(value)) fields[k] = convertStructValue(v);
  return { fields };
}

/** Messages whose proto3-JSON form is not an object of fields. Returns `undefined` when `type` is not one. */
function convertWellKnown(ctx: WalkContext, type: protobuf.Type, value: unknown, path: string): { converted: unknown } | undefined {
  const name = type.fullName;
  const wrapped = WRAPPER_SCALARS.get(name);
  if (wrapped !== undefined) return { converted: wrapValue(convertScalar(ctx, wrapped, value, path)) };
  switch (name) {
    case ".google.protobuf.Duration": {
      const d = typeof value === "string" ? parseDuration(value) : undefined;
      if (!d) return { converted: issue(ctx, "invalid_duration", path, `expected a duration like "1.5s" or "0s", got ${describe(value)}`) };
      return { converted: { seconds: d.seconds.toString(), nanos: d.nanos } };
    }
    case ".google.protobuf.Timestamp": {
      const ms = typeof value === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/.test(value) ? Date.parse(value) : NaN;
      if (Number.isNaN(ms)) return { converted: issue(ctx, "invalid_timestamp", path, `expected an RFC 3339 timestamp, got ${describe(value)}`) };
      return { converted: { seconds: Math.floor(ms / 1000).toString(), nanos: (ms % 1000) * 1e6 } };
    }
    case ".google.protobuf.Struct":
      return { converted: isPlainObject(value) ? convertStruct(value) : issue(ctx, "wrong_type", path, `expected a mapping, got ${describe(value)}`) };
    case ".google.protobuf.Value":
      return { converted: convertStructValue(value) };
    case ".google.protobuf.ListValue":
      return { converted: Array.isArray(value) ? { values: value.map(convertStructValue) } : issue(ctx, "wrong_type", path, `expected a list, got ${describe(value)}`) };
    case ".google.protobuf.FieldMask":
      return { converted: typeof value === "string" ? { paths: value === "" ? [] : value.split(",") } : issue(ctx, "wrong_type", path, "expected a comma-separated field mask") };
    case ".google.protobuf.Any":
      return { converted: convertAny(ctx, value, path) };
    default:
      return undefined;
  }
}

function wrapValue(inner: unknown): unknown {
  return inner === INVALID ? INVALID : { value: inner };
}

/** Resolves `@type` against the root (an unknown type is an error), validates the payload, packs it as bytes. */
function convertAny(ctx: WalkContext, value: unknown, path: string): unknown {
  if (!isPlainObject(value)) return issue(ctx, "wrong_type", path, `expected a mapping with "@type", got ${describe(value)}`);
  const typeUrl = value["@type"];
  if (typeof typeUrl !== "string") return issue(ctx, "any_missing_type", path, `google.protobuf.Any needs "@type: ${TYPE_URL_PREFIX}<message>"`);
  if (!typeUrl.startsWith(TYPE_URL_PREFIX)) return issue(ctx, "unknown_type", path, `"@type" must start with ${TYPE_URL_PREFIX}, got "${typeUrl}"`);
  const typeName = typeUrl.slice(TYPE_URL_PREFIX.length);
  const inner = lookupMessageType(ctx.root, typeName);
  if (!inner) return issue(ctx, "unknown_type", path, `"@type" ${typeName} is not a message type in the loaded Envoy protos`);
  const innerPath = `${path}<${typeName}>`;
  const rest: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (k !== "@type") rest[k] = v;
  // Well-known payloads keep their JSON form under "value" (proto3 JSON mapping for Any).
  const payload = WRAPPER_SCALARS.has(inner.fullName) || inner.fullName.startsWith(".google.protobuf.") ? rest.value : rest;
  const converted = convertMessage(ctx, inner, payload, innerPath);
  if (converted === INVALID) return INVALID;
  try {
    const bytes = inner.encode(inner.fromObject(converted as ProtoObject)).finish();
    return { type_url: typeUrl, value: bytes };
  } catch (error) {
    return issue(ctx, "encode_failed", innerPath, `cannot encode ${typeName}: ${(error as Error).message}`);
  }
}

function lookupMessageType(root: protobuf.Root, name: string): protobuf.Type | undefined {
  try {
    const found = root.lookup(name.startsWith(".") ? name : `.${name}`);
    return found instanceof protobuf.Type ? found : undefined;
  } catch {
    return undefined;
  }
}

function convertMessage(ctx: WalkContext, type: protobuf.Type, value: unknown, path: string): unknown {
  const wellKnown = convertWellKnown(ctx, type, value, path);
  if (wellKnown) return wellKnown.converted;
  if (!isPlainObject(value)) return issue(ctx, "wrong_type", path, `expected a mapping for ${type.fullName.slice(1)}, got ${describe(value)}`);
  const out: ProtoObject = {};
  const fields = type.fields;
  const camelToSnake = new Map(type.fieldsArray.map((f) => [toLowerCamel(f.name), f.name]));
  for (const [key, raw] of Object.entries(value)) {
    const fieldPath = join(path, key);
    const field = fields[key];
    if (!field) {
      const snake = camelToSnake.get(key);
      if (snake !== undefined && snake !== key) issue(ctx, "camel_case_field", fieldPath, `write the field as snake_case "${snake}"`);
      else issue(ctx, "unknown_field", fieldPath, `${type.fullName.slice(1)} has no field "${key}"`);
      continue;
    }
    if (raw === null && field.resolvedType?.fullName !== ".google.protobuf.Value") {
      issue(ctx, "null_value", fieldPath, "null (an empty YAML value?) is not a valid setting; remove the key or give a value");
      continue;
    }
    if (!ctx.allowDeprecated && isPlainObject(field.options) && field.options.deprecated === true) {
      issue(ctx, "deprecated", fieldPath, `${type.fullName.slice(1)}.${key} is deprecated`);
      continue;
    }
    const converted = convertField(ctx, field, raw, fieldPath);
    if (converted !== INVALID) out[key] = converted;
    checkFieldRules(ctx, field, raw, fieldPath);
  }
  for (const oneof of type.oneofsArray) {
    const set = oneof.oneof.filter((name) => name in value);
    if (set.length > 1) issue(ctx, "oneof_conflict", path, `only one of ${oneof.oneof.join(" | ")} may be set, got ${set.join(" and ")}`);
    if (set.length === 0 && hasOption(oneof.options, "(validate.required)")) {
      issue(ctx, "constraint_violated", path, `one of ${oneof.oneof.join(" | ")} is required`);
    }
  }
  for (const field of type.fieldsArray) {
    // A rule on a oneof member applies only when that member is the one chosen.
    if (field.partOf === null && !(field.name in value) && requiredByRules(field)) {
      issue(ctx, "constraint_violated", join(path, field.name), `${type.fullName.slice(1)}.${field.name} is required`);
    }
  }
  return out;
}

function convertField(ctx: WalkContext, field: protobuf.FieldBase, raw: unknown, path: string): unknown {
  field.resolve();
  if (field instanceof protobuf.MapField) {
    if (!isPlainObject(raw)) return issue(ctx, "wrong_type", path, `expected a mapping, got ${describe(raw)}`);
    const out: ProtoObject = {};
    for (const [k, v] of Object.entries(raw)) {
      if (field.keyType !== "string") convertScalar(ctx, field.keyType, k, `${path}[${k}]`);
      const converted = convertSingle(ctx, field, v, `${path}.${k}`);
      if (converted !== INVALID) out[k] = converted;
    }
    return out;
  }
  if (field.repeated) {
    if (!Array.isArray(raw)) return issue(ctx, "wrong_type", path, `expected a list, got ${describe(raw)}`);
    const items: unknown[] = [];
    raw.forEach((item: unknown, i) => {
      const converted = convertSingle(ctx, field, item, `${path}[${i}]`);
      if (converted !== INVALID) items.push(converted);
    });
    return items;
  }
  return convertSingle(ctx, field, raw, path);
}

function convertSingle(ctx: WalkContext, field: protobuf.FieldBase, raw: unknown, path: string): unknown {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return convertMessage(ctx, resolved, raw, path);
  if (resolved instanceof protobuf.Enum) return convertEnum(ctx, resolved, raw, path);
  return convertScalar(ctx, field.type, raw, path);
}

// ---------------------------------------------------------------------------------------------------------
// A subset of protoc-gen-validate rules, which Envoy enforces after parsing (required messages, string and
// list lengths, numeric and duration bounds).
// ---------------------------------------------------------------------------------------------------------

function hasOption(options: unknown, key: string): boolean {
  return isPlainObject(options) && options[key] === true;
}

function validateRules(field: protobuf.FieldBase): Record<string, unknown> | undefined {
  const parsed: unknown = field.parsedOptions;
  if (!Array.isArray(parsed)) return undefined;
  for (const entry of parsed as unknown[]) {
    if (isPlainObject(entry) && isPlainObject(entry["(validate.rules)"])) return entry["(validate.rules)"];
  }
  return undefined;
}

function ruleGroup(rules: Record<string, unknown> | undefined, kind: string): Record<string, unknown> | undefined {
  const group = rules?.[kind];
  return isPlainObject(group) ? group : undefined;
}

function requiredByRules(field: protobuf.FieldBase): boolean {
  const rules = validateRules(field);
  return ["message", "duration", "timestamp", "any"].some((kind) => ruleGroup(rules, kind)?.required === true);
}

function numericOf(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  if (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value))) return Number(value);
  return undefined;
}

function durationRuleSeconds(bound: unknown): number | undefined {
  if (!isPlainObject(bound)) return undefined;
  return (numericOf(bound.seconds) ?? 0) + (numericOf(bound.nanos) ?? 0) / 1e9;
}

function checkBounds(ctx: WalkContext, group: Record<string, unknown>, actual: number, path: string, read: (b: unknown) => number | undefined): void {
  const bound = (op: string): number | undefined => (op in group ? read(group[op]) : undefined);
  const gt = bound("gt");
  const gte = bound("gte");
  const lt = bound("lt");
  const lte = bound("lte");
  if (gt !== undefined && !(actual > gt)) issue(ctx, "constraint_violated", path, `must be > ${gt}`);
  if (gte !== undefined && !(actual >= gte)) issue(ctx, "constraint_violated", path, `must be >= ${gte}`);
  if (lt !== undefined && !(actual < lt)) issue(ctx, "constraint_violated", path, `must be < ${lt}`);
  if (lte !== undefined && !(actual <= lte)) issue(ctx, "constraint_violated", path, `must be <= ${lte}`);
}

/** PGV counts string length in code points, not UTF-16 units. */
function codePointLength(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0xdc00 || unit > 0xdfff) n++; // count everything except low surrogates
  }
  return n;
}

function checkFieldRules(ctx: WalkContext, field: protobuf.FieldBase, raw: unknown, path: string): void {
  const rules = validateRules(field);
  if (!rules) return;
  const str = ruleGroup(rules, "string");
  if (str && typeof raw === "string") {
    const minLen = numericOf(str.min_len);
    const maxLen = numericOf(str.max_len);
    const length = codePointLength(raw);
    if (minLen !== undefined && length < minLen) issue(ctx, "constraint_violated", path, `must be at least ${minLen} characters`);
    if (maxLen !== undefined && length > maxLen) issue(ctx, "constraint_violated", path, `must be at most ${maxLen} characters`);
  }
  const repeated = ruleGroup(rules, "repeated");
  if (repeated && Array.isArray(raw)) {
    const minItems = numericOf(repeated.min_items);
    if (minItems !== undefined && raw.length < minItems) issue(ctx, "constraint_violated", path, `needs at least ${minItems} item(s)`);
  }
  const map = ruleGroup(rules, "map");
  if (map && isPlainObject(raw)) {
    const minPairs = numericOf(map.min_pairs);
    if (minPairs !== undefined && Object.keys(raw).length < minPairs) issue(ctx, "constraint_violated", path, `needs at least ${minPairs} entr(ies)`);
  }
  for (const kind of ["int32", "uint32", "int64", "uint64", "sint32", "sint64", "fixed32", "fixed64", "double", "float"]) {
    const group = ruleGroup(rules, kind);
    const actual = numericOf(raw);
    if (group && actual !== undefined) checkBounds(ctx, group, actual, path, numericOf);
  }
  const duration = ruleGroup(rules, "duration");
  if (duration && typeof raw === "string") {
    const d = parseDuration(raw);
    if (d) checkBounds(ctx, duration, Number(d.seconds) + d.nanos / 1e9, path, durationRuleSeconds);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------------------------------------

/** Validates a proto3-JSON value against `typeName`; returns every issue found (empty means valid). */
export function validateEnvoyJson(
  value: unknown,
  typeName: string = BOOTSTRAP_TYPE,
  options: EnvoyValidationOptions = {},
  root: protobuf.Root = loadEnvoyConfigRoot(),
): EnvoyConfigIssue[] {
  const ctx: WalkContext = { root, issues: [], allowDeprecated: options.allowDeprecated ?? false };
  const type = lookupMessageType(root, typeName);
  if (!type) return [{ code: "unknown_type", path: "", message: `${typeName} is not a message type in the loaded Envoy protos` }];
  convertMessage(ctx, type, value, "");
  return ctx.issues;
}

/**
 * Parses YAML and decodes it as `typeName` (a Bootstrap by default) the strict way; throws EnvoyConfigError
 * listing every issue with its path. `source` names the input in the error message.
 */
export function decodeEnvoyYaml(
  text: string,
  source = "<yaml>",
  typeName: string = BOOTSTRAP_TYPE,
  options: EnvoyValidationOptions = {},
  root: protobuf.Root = loadEnvoyConfigRoot(),
): DecodedEnvoyConfig {
  let parsed: unknown;
  try {
    // Duplicate keys and YAML 1.1 surprises (yes/no booleans) are errors in the yaml package's defaults.
    parsed = parseYaml(text, { uniqueKeys: true, strict: true, prettyErrors: false });
  } catch (error) {
    throw new EnvoyConfigError(source, [{ code: "yaml_invalid", path: "", message: (error as Error).message }]);
  }
  const ctx: WalkContext = { root, issues: [], allowDeprecated: options.allowDeprecated ?? false };
  const type = lookupMessageType(root, typeName);
  if (!type) throw new EnvoyConfigError(source, [{ code: "unknown_type", path: "", message: `${typeName} is not a message type` }]);
  const converted = convertMessage(ctx, type, parsed, "");
  if (ctx.issues.length > 0 || converted === INVALID) throw new EnvoyConfigError(source, ctx.issues);
  let bytes: Uint8Array;
  try {
    bytes = type.encode(type.fromObject(converted as ProtoObject)).finish();
  } catch (error) {
    throw new EnvoyConfigError(source, [{ code: "encode_failed", path: "", message: (error as Error).message }]);
  }
  return Object.freeze({ json: parsed as JsonObject, message: type.decode(bytes), encodedBytes: bytes.length });
}

/** Reads and decodes an Envoy bootstrap YAML file (see decodeEnvoyYaml). */
export function loadEnvoyBootstrapFile(path: string, options: EnvoyValidationOptions = {}): DecodedEnvoyConfig {
  return decodeEnvoyYaml(readFileSync(path, "utf8"), path, BOOTSTRAP_TYPE, options);
}

// ---------------------------------------------------------------------------------------------------------
// Read helpers over a validated document
// ---------------------------------------------------------------------------------------------------------

/** Follows keys / list indexes; `undefined` as soon as one is missing. */
export function pick(value: JsonValue | undefined, ...keys: readonly (string | number)[]): JsonValue | undefined {
  let current: JsonValue | undefined = value;
  for (const key of keys) {
    if (current === undefined || current === null || typeof current !== "object") return undefined;
    if (Array.isArray(current)) {
      if (typeof key !== "number") return undefined;
      current = (current as readonly JsonValue[])[key];
    } else {
      if (typeof key !== "string") return undefined;
      current = (current as JsonObject)[key];
    }
  }
  return current;
}

export function asArray(value: JsonValue | undefined): readonly JsonValue[] {
  return Array.isArray(value) ? (value as readonly JsonValue[]) : [];
}

export function asObject(value: JsonValue | undefined): JsonObject | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as JsonObject) : undefined;
}

/** The `@type` message name of an Any (without the type.googleapis.com/ prefix). */
export function anyTypeName(value: JsonValue | undefined): string | undefined {
  const url = pick(value, "@type");
  return typeof url === "string" && url.startsWith(TYPE_URL_PREFIX) ? url.slice(TYPE_URL_PREFIX.length) : undefined;
}

export interface HttpConnectionManagerRef {
  readonly listener: string;
  readonly hcm: JsonObject;
}

const HCM_TYPE = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/** Every HttpConnectionManager in the static listeners, with its listener's name. */
export function findHttpConnectionManagers(bootstrap: JsonObject): HttpConnectionManagerRef[] {
  const found: HttpConnectionManagerRef[] = [];
  for (const listener of asArray(pick(bootstrap, "static_resources", "listeners"))) {
    const name = pick(listener, "name");
    for (const chain of asArray(pick(listener, "filter_chains"))) {
      for (const filter of asArray(pick(chain, "filters"))) {
        const config = asObject(pick(filter, "typed_config"));
        if (config && anyTypeName(config) === HCM_TYPE) found.push({ listener: typeof name === "string" ? name : "", hcm: config });
      }
    }
  }
  return found;
}

/** The typed_config of the HTTP filter whose `@type` is `typeName`, with its filter name and position. */
export function findHttpFilter(hcm: JsonObject, typeName: string): { name: string; index: number; config: JsonObject } | undefined {
  const filters = asArray(pick(hcm, "http_filters"));
  for (const [index, filter] of filters.entries()) {
    const config = asObject(pick(filter, "typed_config"));
    const name = pick(filter, "name");
    if (config && anyTypeName(config) === typeName) return { name: typeof name === "string" ? name : "", index, config };
  }
  return undefined;
}

/** Routes of the inline route_config, across virtual hosts, in match order. */
export function routesOf(hcm: JsonObject): JsonObject[] {
  const routes: JsonObject[] = [];
  for (const vhost of asArray(pick(hcm, "route_config", "virtual_hosts"))) {
    for (const route of asArray(pick(vhost, "routes"))) {
      const obj = asObject(route);
      if (obj) routes.push(obj);
    }
  }
  return routes;
}

/** A route's typed_per_filter_config entry for `filterName`, if any. */
export function perRouteConfig(route: JsonObject, filterName: string): JsonObject | undefined {
  return asObject(pick(route, "typed_per_filter_config", filterName));
}

export function findCluster(bootstrap: JsonObject, name: string): JsonObject | undefined {
  return asArray(pick(bootstrap, "static_resources", "clusters"))
    .map(asObject)
    .find((c) => c !== undefined && pick(c, "name") === name);
}

/** Full-match test of an RE2-style pattern (the subset Envoy configs here use is also valid JS syntax). */
function fullMatch(regex: string, text: string): boolean {
  return new RegExp(`^(?:${regex})$`, "u").test(text);
}

function stringMatcherMatches(matcher: JsonValue | undefined, text: string): boolean {
  const exact = pick(matcher, "exact");
  const prefix = pick(matcher, "prefix");
  const suffix = pick(matcher, "suffix");
  const contains = pick(matcher, "contains");
  const regex = pick(matcher, "safe_regex", "regex");
  if (typeof exact === "string") return text === exact;
  if (typeof prefix === "string") return text.startsWith(prefix);
  if (typeof suffix === "string") return text.endsWith(suffix);
  if (typeof contains === "string") return text.includes(contains);
  if (typeof regex === "string") return fullMatch(regex, text);
  throw new Error(`unsupported string matcher ${JSON.stringify(matcher)}`);
}

/**
 * Envoy's first-match route selection for a request target (path + query), for the match kinds these
 * configs use: prefix, path, path_separated_prefix, safe_regex (against the path without query) and
 * query_parameters. Anything else (header matchers, runtime fractions, …) throws rather than guessing.
 */
export function matchRoute(routes: readonly JsonObject[], target: string): JsonObject | undefined {
  const queryStart = target.indexOf("?");
  const path = queryStart === -1 ? target : target.slice(0, queryStart);
  const query = new URLSearchParams(queryStart === -1 ? "" : target.slice(queryStart + 1));
  for (const route of routes) {
    const match = asObject(pick(route, "match")) ?? {};
    for (const key of Object.keys(match)) {
      if (!["prefix", "path", "path_separated_prefix", "safe_regex", "query_parameters"].includes(key)) {
        throw new Error(`matchRoute: unsupported match field "${key}" in route ${JSON.stringify(pick(route, "name"))}`);
      }
    }
    const prefix = pick(match, "prefix");
    const exactPath = pick(match, "path");
    const separated = pick(match, "path_separated_prefix");
    const regex = pick(match, "safe_regex", "regex");
    const pathOk =
      typeof prefix === "string"
        ? path.startsWith(prefix)
        : typeof exactPath === "string"
          ? path === exactPath
          : typeof separated === "string"
            ? path === separated || path.startsWith(`${separated}/`)
            : typeof regex === "string"
              ? fullMatch(regex, path)
              : false;
    if (!pathOk) continue;
    const queryOk = asArray(pick(match, "query_parameters")).every((qp) => {
      const name = pick(qp, "name");
      if (typeof name !== "string") return false;
      const value = query.get(name);
      if (pick(qp, "present_match") === true) return value !== null;
      return value !== null && stringMatcherMatches(pick(qp, "string_match"), value);
    });
    if (queryOk) return route;
  }
  return undefined;
}
