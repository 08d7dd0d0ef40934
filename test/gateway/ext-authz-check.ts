/**
 * @module test/gateway/ext-authz-check
 * Pure core of the ext_authz reproduction: builds CheckRequests and applies CheckResponses as Envoy does.
 */
import { loadEnvoyConfigRoot } from "../../protos/load.js";
import type { CheckRequest } from "../../protos/generated/envoy/service/auth/v3/CheckRequest.js";
import type { CheckResponse__Output } from "../../protos/generated/envoy/service/auth/v3/CheckResponse.js";
import type { HeaderValueOption__Output } from "../../protos/generated/envoy/config/core/v3/HeaderValueOption.js";
import type { Struct__Output } from "../../protos/generated/google/protobuf/Struct.js";
import type { ExtAuthzSettings } from "./gateway-settings.js";
import { anyStringMatch } from "./gateway-settings.js";
import { HeaderList } from "./header-list.js";
import { checkHeaderMutation, headerNameIsValid, headerValueIsValid } from "./header-mutation-check.js";

/** check_request_utils.cc / ext_authz.h: the header Envoy adds to say whether the body was cut. */
export const PARTIAL_BODY_HEADER = "x-envoy-auth-partial-body";

/** MessageUtil::sanitizeUtf8String: every byte that is not part of valid UTF-8 becomes "!". */
export function sanitizeUtf8(bytes: Buffer): string {
  let out = "";
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i] ?? 0;
    let len = 0;
    if (b < 0x80) len = 1;
    else if (b >= 0xc2 && b <= 0xdf) len = 2;
    else if (b >= 0xe0 && b <= 0xef) len = 3;
    else if (b >= 0xf0 && b <= 0xf4) len = 4;
    let ok = len > 0 && i + len <= bytes.length;
    for (let k = 1; ok && k < len; k++) ok = ((bytes[i + k] ?? 0) & 0xc0) === 0x80;
    if (ok && len > 1) {
      const s = bytes.subarray(i, i + len).toString("utf8");
      ok = !s.includes("\uFFFD");
    }
    if (ok) {
      out += bytes.subarray(i, i + len).toString("utf8");
      i += len;
    } else {
      out += "!";
      i += 1;
    }
  }
  return out;
}

/** Header values arrive from Node as latin1 strings (one char per wire byte). */
function sanitizeHeaderValue(value: string): string {
  return sanitizeUtf8(Buffer.from(value, "latin1"));
}

export interface Peer {
  readonly address: string;
  readonly port: number;
  /**
   * On a TLS connection, the principal from the certificate on that side (check_request_utils.cc
   * setAttrContextPeer: URI SAN, else DNS SAN, else subject); absent on plaintext connections.
   */
  readonly principal?: string;
}

function peerAttributes(peer: Peer): { address: { socket_address: { address: string; port_value: number } }; principal?: string } {
  const address = { socket_address: { address: peer.address, port_value: peer.port } };
  return peer.principal === undefined ? { address } : { address, principal: sanitizeUtf8(Buffer.from(peer.principal, "utf8")) };
}

export interface CheckInput {
  readonly settings: ExtAuthzSettings;
  /** StreamInfo stream id, sent as attributes.request.http.id (check_request_utils.cc `set_id(std::to_string(stream_id))`). */
  readonly streamId: string;
  readonly headers: HeaderList;
  readonly protocol: "HTTP/1.1" | "HTTP/2";
  /** Body bytes received so far (StreamInfo bytesReceived → http.size). */
  readonly bytesReceived: number;
  /** The buffered body, or null when the filter did not buffer (decoding buffer absent). */
  readonly bufferedBody: Buffer | null;
  readonly maxRequestBytes: number;
  readonly packAsBytes: boolean;
  readonly source: Peer;
  readonly destination: Peer;
  readonly contextExtensions: Readonly<Record<string, string>>;
  readonly requestStartMs: number;
}

/** CheckRequestUtils::createHttpCheck (no tls_session: include_tls_session is refused by the settings reader). */
export function buildCheckRequest(input: CheckInput): CheckRequest {
  const { settings, headers } = input;
  const map: Record<string, string> = {};
  const raw: { key: string; raw_value: Buffer }[] = [];
  for (const [key, value] of headers.list()) {
    // "Skip any client EnvoyAuthPartialBody header, which could interfere with internal use."
    if (key === PARTIAL_BODY_HEADER) continue;
    if (settings.disallowedHeaders !== null && anyStringMatch(settings.disallowedHeaders, key)) continue;
    if (settings.allowedHeaders !== null && !anyStringMatch(settings.allowedHeaders, key)) continue;
    if (settings.encodeRawHeaders) {
      raw.push({ key, raw_value: Buffer.from(value, "latin1") });
    } else {
      const sanitized = sanitizeHeaderValue(value);
      // "Merge duplicate headers." — joined with ",".
      map[key] = key in map ? `${map[key] ?? ""},${sanitized}` : sanitized;
    }
  }
  let body: string | undefined;
  let rawBody: Buffer | undefined;
  if (input.maxRequestBytes > 0 && input.bufferedBody !== null) {
    const length = Math.min(input.bufferedBody.length, input.maxRequestBytes);
    const data = input.bufferedBody.subarray(0, length);
    if (input.packAsBytes) rawBody = Buffer.from(data);
    else body = sanitizeUtf8(data);
    const partial = length !== input.bufferedBody.length ? "true" : "false";
    if (settings.encodeRawHeaders) raw.push({ key: PARTIAL_BODY_HEADER, raw_value: Buffer.from(partial) });
    else map[PARTIAL_BODY_HEADER] = partial;
  }
  const seconds = Math.floor(input.requestStartMs / 1000);
  const sanitizedOrEmpty = (name: string): string => sanitizeHeaderValue(headers.get(name) ?? "");
  return {
    attributes: {
      source: peerAttributes(input.source),
      destination: peerAttributes(input.destination),
      request: {
        time: { seconds: String(seconds), nanos: Math.round((input.requestStartMs - seconds * 1000) * 1e6) },
        http: {
          id: input.streamId,
          method: sanitizedOrEmpty(":method"),
          path: sanitizedOrEmpty(":path"),
          host: sanitizedOrEmpty(":authority"),
          scheme: sanitizedOrEmpty(":scheme"),
          size: String(input.bytesReceived),
          protocol: input.protocol,
          ...(settings.encodeRawHeaders ? { header_map: { headers: raw } } : { headers: map }),
          ...(body !== undefined ? { body } : {}),
          ...(rawBody !== undefined ? { raw_body: rawBody } : {}),
        },
      },
      context_extensions: { ...input.contextExtensions },
      metadata_context: { filter_metadata: {} },
    },
  };
}

/** Internal header actions (ext_authz_grpc_impl.cc toHeaderMutationAction). */
export type HeaderAction = "set" | "add" | "append" | "add_if_absent" | "overwrite_if_exists";

export interface HeaderMutation {
  readonly key: string;
  readonly value: string;
  readonly action: HeaderAction;
}

export type AuthzDecision =
  | {
      readonly kind: "ok";
      readonly requestMutations: readonly HeaderMutation[];
      readonly headersToRemove: readonly string[];
      readonly responseMutations: readonly HeaderMutation[];
      readonly queryToSet: readonly (readonly [string, string])[];
      readonly queryToRemove: readonly string[];
      readonly dynamicMetadata: Struct__Output | null;
    }
  | {
      readonly kind: "denied";
      readonly status: number;
      readonly headers: readonly HeaderMutation[];
      readonly body: string;
      readonly dynamicMetadata: Struct__Output | null;
    }
  | { readonly kind: "error" };

function toAction(option: HeaderValueOption__Output, isResponseHeader: boolean): HeaderAction {
  // Deprecated `append` (a BoolValue) wins when present; for response headers append=true meant "add".
  if (option.append !== null) {
    if (isResponseHeader && option.append.value) return "add";
    return option.append.value ? "append" : "set";
  }
  switch (option.append_action) {
    case "APPEND_IF_EXISTS_OR_ADD":
      return "add";
    case "ADD_IF_ABSENT":
      return "add_if_absent";
    case "OVERWRITE_IF_EXISTS":
      return "overwrite_if_exists";
    case "OVERWRITE_IF_EXISTS_OR_ADD":
      return "set";
  }
}

function mutations(options: readonly HeaderValueOption__Output[], isResponseHeader: boolean): HeaderMutation[] {
  return options
    .filter((o) => o.header !== null)
    .map((o) => ({ key: (o.header?.key ?? "").toLowerCase(), value: o.header?.value ?? "", action: toAction(o, isResponseHeader) }));
}

let statusCodeValues: Readonly<Record<string, number>> | undefined;

/** envoy.type.v3.StatusCode arrives as an enum name (proto-loader enums: String); its number is the HTTP code. */
export function httpStatusFromEnum(code: string | number): number {
  if (typeof code === "number") return code;
  if (/^\d+$/.test(code)) return Number(code);
  statusCodeValues ??= loadEnvoyConfigRoot().lookupEnum("envoy.type.v3.StatusCode").values;
  return statusCodeValues[code] ?? 0;
}

/** GrpcClientImpl::onSuccess: status OK → OK; any other status → Denied (403 unless denied_response.status). */
export function decideCheckResponse(response: CheckResponse__Output): AuthzDecision {
  // OkHttpResponse.dynamic_metadata (deprecated) overrides CheckResponse.dynamic_metadata when present.
  const ok = response.ok_response ?? null;
  const dynamicMetadata = ok?.dynamic_metadata ?? response.dynamic_metadata ?? null;
  if ((response.status?.code ?? 0) === 0) {
    return {
      kind: "ok",
      requestMutations: mutations(ok?.headers ?? [], false),
      headersToRemove: ok?.headers_to_remove ?? [],
      responseMutations: mutations(ok?.response_headers_to_add ?? [], true),
      queryToSet: (ok?.query_parameters_to_set ?? []).map((q) => [q.key, q.value] as const),
      queryToRemove: ok?.query_parameters_to_remove ?? [],
      dynamicMetadata,
    };
  }
  const denied = response.denied_response ?? null;
  const code = denied?.status ? httpStatusFromEnum(denied.status.code) : 0;
  return {
    kind: "denied",
    status: code > 0 ? code : 403,
    headers: mutations(denied?.headers ?? [], true),
    body: denied?.body ?? "",
    dynamicMetadata,
  };
}

/** Applies one header mutation to a header map (ext_authz.cc onComplete / encodeHeaders). */
export function applyHeaderMutation(headers: HeaderList, m: HeaderMutation): void {
  switch (m.action) {
    case "set":
      headers.set(m.key, m.value);
      return;
    case "add":
      headers.add(m.key, m.value);
      return;
    case "append":
      // headers_to_append: "appending is by combining entries with the same key, into one entry", and only
      // when the header already exists.
      if (headers.has(m.key)) headers.append(m.key, m.value);
      return;
    case "add_if_absent":
      if (!headers.has(m.key)) headers.add(m.key, m.value);
      return;
    case "overwrite_if_exists":
      if (headers.has(m.key)) headers.set(m.key, m.value);
      return;
  }
}

/** Envoy's QueryParamsMulti: an ordered-by-key map of raw (undecoded) keys to values. */
function rewriteQuery(path: string, toSet: readonly (readonly [string, string])[], toRemove: readonly string[]): string {
  const q = path.indexOf("?");
  const base = q >= 0 ? path.slice(0, q) : path;
  const params = new Map<string, string[]>();
  if (q >= 0) {
    for (const part of path.slice(q + 1).split("&")) {
      if (part === "") continue;
      const eq = part.indexOf("=");
      const k = eq >= 0 ? part.slice(0, eq) : part;
      const v = eq >= 0 ? part.slice(eq + 1) : "";
      params.set(k, [...(params.get(k) ?? []), v]);
    }
  }
  for (const [k, v] of toSet) params.set(k, [v]);
  for (const k of toRemove) params.delete(k);
  const keys = [...params.keys()].sort();
  const query = keys.flatMap((k) => (params.get(k) ?? []).map((v) => `${k}=${v}`)).join("&");
  return query.length > 0 ? `${base}?${query}` : base;
}

export type OkApplyResult = "continue" | "invalid";

/**
 * ext_authz.cc onComplete, CheckStatus::OK: request header set/add/append, then headers_to_remove (never
 * `:`-prefixed headers nor Host: "removing them would make the request malformed"), then query parameters.
 * Returns "invalid" when validate_mutations or decoder_header_mutation_rules reject the response (→ 500).
 */
export function applyOkDecision(
  settings: ExtAuthzSettings,
  headers: HeaderList,
  decision: Extract<AuthzDecision, { kind: "ok" }>,
): OkApplyResult {
  const rules = settings.decoderHeaderMutationRules;
  for (const m of decision.requestMutations) {
    if (settings.validateMutations && (!headerNameIsValid(m.key) || !headerValueIsValid(m.value))) return "invalid";
    if (rules !== null) {
      const verdict = checkHeaderMutation(rules, m.action === "append" ? "append" : "set", m.key, m.value);
      if (verdict === "fail") return "invalid";
      if (verdict === "ignore") continue;
    }
    applyHeaderMutation(headers, m);
  }
  for (const name of decision.headersToRemove) {
    const key = name.toLowerCase();
    if (settings.validateMutations && !headerNameIsValid(key)) continue;
    if (rules === null) {
      if (key.startsWith(":") || key === "host") continue;
    } else {
      const verdict = checkHeaderMutation(rules, "remove", key, "");
      if (verdict === "fail") return "invalid";
      if (verdict === "ignore") continue;
    }
    headers.remove(key);
  }
  if (settings.validateMutations) {
    for (const m of decision.responseMutations) {
      if (!headerNameIsValid(m.key) || !headerValueIsValid(m.value)) return "invalid";
    }
  }
  if (decision.queryToSet.length > 0 || decision.queryToRemove.length > 0) {
    headers.set(":path", rewriteQuery(headers.get(":path") ?? "/", decision.queryToSet, decision.queryToRemove));
  }
  return "continue";
}

/** ext_authz.cc encodeHeaders order: add, then set, then add-if-absent, then overwrite-if-exists. */
export function applyOkResponseMutations(headers: HeaderList, responseMutations: readonly HeaderMutation[]): void {
  const order: HeaderAction[][] = [["add"], ["set", "append"], ["add_if_absent"], ["overwrite_if_exists"]];
  for (const actions of order) {
    for (const m of responseMutations) {
      if (!actions.includes(m.action)) continue;
      applyHeaderMutation(headers, { ...m, action: m.action === "append" ? "add" : m.action });
    }
  }
}

/** Local-reply headers of a denial: remove every key that is set, then add each (several Set-Cookie work). */
export function deniedReplyHeaders(base: HeaderList, denied: readonly HeaderMutation[]): HeaderList {
  const out = base.clone();
  for (const m of denied) if (m.action === "set") out.remove(m.key);
  for (const m of denied) {
    if (m.action === "set" || m.action === "append") out.add(m.key, m.value);
    else applyHeaderMutation(out, m);
  }
  return out;
}
