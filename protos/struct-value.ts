/**
 * @module protos/struct-value
 * Converts between plain JSON values and google.protobuf.Struct as grpc-js/proto-loader represent it; used for
 * ext_authz dynamic_metadata (authz/) and ext_proc metadata_context (tap/).
 */
import type { Struct, Struct__Output } from "./generated/google/protobuf/Struct.js";
import type { Value, Value__Output } from "./generated/google/protobuf/Value.js";

/** A JSON value as it can travel in a Struct (numbers are doubles, no undefined). */
export type StructJson = null | boolean | number | string | readonly StructJson[] | { readonly [key: string]: StructJson };

function toProtoValue(value: StructJson): Value {
  if (value === null) return { nullValue: "NULL_VALUE" };
  if (typeof value === "boolean") return { boolValue: value };
  if (typeof value === "number") return { numberValue: value };
  if (typeof value === "string") return { stringValue: value };
  if (Array.isArray(value)) {
    return { listValue: { values: (value as readonly StructJson[]).map(toProtoValue) } };
  }
  return { structValue: toProtoStruct(value as { readonly [key: string]: StructJson }) };
}

/** Plain object → Struct. */
export function toProtoStruct(object: { readonly [key: string]: StructJson }): Struct {
  const fields: Record<string, Value> = {};
  for (const [key, value] of Object.entries(object)) fields[key] = toProtoValue(value);
  return { fields };
}

function fromProtoValue(value: Value__Output): StructJson {
  switch (value.kind) {
    case "boolValue":
      return value.boolValue === true;
    case "numberValue":
      return Number(value.numberValue);
    case "stringValue":
      return value.stringValue ?? "";
    case "structValue":
      return value.structValue ? fromProtoStruct(value.structValue) : {};
    case "listValue":
      return (value.listValue?.values ?? []).map(fromProtoValue);
    case "nullValue":
    case undefined:
      return null;
  }
  return null;
}

/** Struct → plain object (missing or null struct → empty object). */
export function fromProtoStruct(struct: Struct__Output | null | undefined): { [key: string]: StructJson } {
  const out: { [key: string]: StructJson } = {};
  if (!struct) return out;
  for (const [key, value] of Object.entries(struct.fields)) out[key] = fromProtoValue(value);
  return out;
}
