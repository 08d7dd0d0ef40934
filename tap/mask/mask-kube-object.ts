/**
 * @module tap/mask/mask-kube-object
 * The in-place walk over a parsed Kubernetes JSON document that masks secret-bearing spots only:
 * Secret data, Helm release storage, ConfigMap values, env literals, last-applied annotations, tokens.
 */
import type { MaskConfig } from "./mask-config.js";
import { isMaskedPlaceholder, maskBase64Value, maskedPlaceholder } from "./masked-value.js";
import { maskText } from "./text-detectors.js";

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

/** Mutable per-document state: settings and the number of values replaced so far. */
export interface MaskWalk {
  readonly config: MaskConfig;
  maskedCount: number;
}

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Kind implied by a resource name, for objects that arrive without `kind` (e.g. partial request bodies). */
const KIND_BY_RESOURCE: Readonly<Record<string, string>> = {
  secrets: "Secret",
  configmaps: "ConfigMap",
  "serviceaccounts/token": "TokenRequest",
  certificatesigningrequests: "CertificateSigningRequest",
  events: "Event",
};

/** The kind to assume for a kind-less top-level object under this resource (or undefined). */
export function kindForResource(resource: string | undefined, subresource?: string): string | undefined {
  if (resource === undefined) return undefined;
  if (subresource) return KIND_BY_RESOURCE[`${resource}/${subresource}`];
  return KIND_BY_RESOURCE[resource];
}

/**
 * Masks one document: a single object, a typed list (`SecretList`), a `v1 List` of mixed kinds, a
 * `Table` (row objects with includeObject=Object; string cells through the text detectors), or a Status.
 * `fallbackKind` applies only when the document has no `kind` of its own.
 */
export function maskKubeDocument(doc: unknown, fallbackKind: string | undefined, walk: MaskWalk): void {
  if (Array.isArray(doc)) {
    for (const element of doc) maskKubeDocument(element, fallbackKind, walk);
    return;
  }
  if (!isObject(doc)) return;
  const kind = typeof doc.kind === "string" && doc.kind !== "" ? doc.kind : fallbackKind;
  if (kind === "Table" && Array.isArray(doc.rows)) {
    maskTable(doc, fallbackKind, walk);
    return;
  }
  if (Array.isArray(doc.items) && (kind === undefined || kind.endsWith("List"))) {
    maskMetadata(doc, walk);
    // Items of a typed list carry no kind of their own: SecretList → Secret. `List` items carry theirs.
    const itemKind = kind !== undefined && kind !== "List" ? kind.slice(0, -"List".length) : fallbackKind;
    for (const item of doc.items) maskKubeDocument(item, itemKind, walk);
    return;
  }
  maskKubeObject(doc, kind, walk);
}

function maskTable(table: JsonObject, fallbackKind: string | undefined, walk: MaskWalk): void {
  for (const row of table.rows as unknown[]) {
    if (!isObject(row)) continue;
    // Server-side printer columns of CRDs may point at any field, so string cells get the detectors.
    if (Array.isArray(row.cells) && walk.config.maskLogs) {
      const cells: unknown[] = row.cells;
      for (let i = 0; i < cells.length; i++) {
        const cell = cells[i];
        if (typeof cell === "string") cells[i] = detectInText(cell, walk);
      }
    }
    if (row.object !== undefined) maskKubeDocument(row.object, fallbackKind, walk);
  }
}

/** Masks one object of a known (or unknown) kind, in place. */
export function maskKubeObject(obj: JsonObject, kind: string | undefined, walk: MaskWalk): void {
  maskMetadata(obj, walk);
  switch (kind) {
    case "Secret":
      maskSecret(obj, walk);
      return;
    case "ConfigMap":
      maskConfigMap(obj, walk);
      return;
    case "TokenRequest":
      maskStatusField(obj, "token", false, walk);
      return;
    case "CertificateSigningRequest":
      maskStatusField(obj, "certificate", true, walk);
      return;
    case "Event":
      if (walk.config.maskLogs) {
        if (typeof obj.message === "string") obj.message = detectInText(obj.message, walk);
        if (typeof obj.note === "string") obj.note = detectInText(obj.note, walk);
      }
      return;
    case "Status":
      // metav1.Status has no embedded object (details hold name/kind/causes only), but admission
      // webhooks write free text into message and causes: run the detectors there.
      maskStatusText(obj, walk);
      return;
    case undefined:
    default:
      if (walk.config.maskEnvValues) maskPodTemplatesDeep(obj, walk, 0);
  }
}

function maskSecret(secret: JsonObject, walk: MaskWalk): void {
  const data = secret.data;
  if (isObject(data)) {
    // for...in: no key array per Secret (JSON.parse objects have only own, enumerable keys).
    for (const key in data) {
      const value = data[key];
      if (typeof value === "string" && !isMaskedPlaceholder(value)) {
        data[key] = maskBase64Value(value, walk.config);
        walk.maskedCount++;
      } else if (value !== null && typeof value !== "string") {
        // Not the shape Kubernetes writes: replace rather than guess what it holds.
        data[key] = maskBase64Value(JSON.stringify(value), walk.config);
        walk.maskedCount++;
      }
    }
  } else if (data !== undefined && data !== null) {
    secret.data = maskedPlaceholder(JSON.stringify(data), walk.config);
    walk.maskedCount++;
  }
  const stringData = secret.stringData;
  if (isObject(stringData)) {
    for (const key of Object.keys(stringData)) {
      const value = stringData[key];
      if (typeof value === "string" && isMaskedPlaceholder(value)) continue;
      if (value === null || value === undefined) continue;
      stringData[key] = maskedPlaceholder(typeof value === "string" ? value : JSON.stringify(value), walk.config);
      walk.maskedCount++;
    }
  } else if (stringData !== undefined && stringData !== null) {
    secret.stringData = maskedPlaceholder(JSON.stringify(stringData), walk.config);
    walk.maskedCount++;
  }
}

function isHelmOwned(obj: JsonObject): boolean {
  const metadata = obj.metadata;
  if (!isObject(metadata) || !isObject(metadata.labels)) return false;
  const owner = metadata.labels.owner;
  return typeof owner === "string" && owner.toLowerCase() === "helm";
}

function maskConfigMap(configMap: JsonObject, walk: MaskWalk): void {
  // Helm's configmap storage driver keeps the whole release (user values and rendered Secret
  // manifests) in data.release: mask every value of such a ConfigMap, like a Secret.
  const helm = isHelmOwned(configMap);
  if (!helm && !walk.config.maskConfigMaps) return;
  const data = configMap.data;
  if (isObject(data)) {
    for (const key of Object.keys(data)) {
      const value = data[key];
      if (typeof value !== "string" || isMaskedPlaceholder(value)) continue;
      if (helm || walk.config.sensitiveKey.test(key)) {
        data[key] = maskedPlaceholder(value, walk.config);
        walk.maskedCount++;
      } else {
        data[key] = detectInText(value, walk);
      }
    }
  }
  const binaryData = configMap.binaryData;
  if (isObject(binaryData)) {
    for (const key of Object.keys(binaryData)) {
      const value = binaryData[key];
      if (typeof value !== "string" || isMaskedPlaceholder(value)) continue;
      if (helm || walk.config.sensitiveKey.test(key)) {
        binaryData[key] = maskBase64Value(value, walk.config);
        walk.maskedCount++;
      }
    }
  }
}

function maskStatusField(obj: JsonObject, field: string, base64: boolean, walk: MaskWalk): void {
  const status = obj.status;
  if (!isObject(status)) return;
  const value = status[field];
  if (typeof value !== "string" || value === "" || isMaskedPlaceholder(value)) return;
  status[field] = base64 ? maskBase64Value(value, walk.config) : maskedPlaceholder(value, walk.config);
  walk.maskedCount++;
}

function maskStatusText(status: JsonObject, walk: MaskWalk): void {
  if (!walk.config.maskLogs) return;
  if (typeof status.message === "string") status.message = detectInText(status.message, walk);
  const details = status.details;
  if (isObject(details) && Array.isArray(details.causes)) {
    for (const cause of details.causes) {
      if (isObject(cause) && typeof cause.message === "string") cause.message = detectInText(cause.message, walk);
    }
  }
}

/** The last-applied annotation is masked inside: parse, mask as a document, re-serialise. */
function maskMetadata(obj: JsonObject, walk: MaskWalk): void {
  const metadata = obj.metadata;
  if (!isObject(metadata)) return;
  const annotations = metadata.annotations;
  if (!isObject(annotations)) return;
  const lastApplied = annotations[LAST_APPLIED];
  if (typeof lastApplied !== "string" || lastApplied === "") return;
  annotations[LAST_APPLIED] = maskEmbeddedJson(lastApplied, walk);
}

/** Masks a JSON document embedded in a string; an unparseable one is replaced whole (fail closed). */
export function maskEmbeddedJson(text: string, walk: MaskWalk): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    walk.maskedCount++;
    return maskedPlaceholder(text, walk.config);
  }
  const before = walk.maskedCount;
  maskKubeDocument(parsed, undefined, walk);
  if (walk.maskedCount === before) return text;
  // kubectl writes the annotation with a trailing newline; keep the shape.
  return JSON.stringify(parsed) + (text.endsWith("\n") ? "\n" : "");
}

/**
 * Finds pod specs anywhere in an object (Pod.spec, *.spec.template.spec, CronJob jobTemplate,
 * ControllerRevision data, PodTemplate.template, template-bearing custom resources) by their
 * container lists, and masks literal env values and inline args.
 * Visits every object, so it is kept cheap: `for...in` (no key array per object; JSON.parse objects
 * have only own enumerable keys) and named loads of the three list names instead of a keyed loop.
 */
function maskPodTemplatesDeep(value: unknown, walk: MaskWalk, depth: number): void {
  if (depth > 100) throw new RangeError("object nesting too deep to inspect");
  if (Array.isArray(value)) {
    for (const element of value) if (typeof element === "object" && element !== null) maskPodTemplatesDeep(element, walk, depth + 1);
    return;
  }
  if (!isObject(value)) return;
  maskContainerList(value.containers, walk);
  maskContainerList(value.initContainers, walk);
  maskContainerList(value.ephemeralContainers, walk);
  for (const key in value) {
    const child = value[key];
    if (typeof child === "object" && child !== null) maskPodTemplatesDeep(child, walk, depth + 1);
  }
}

function maskContainerList(containers: unknown, walk: MaskWalk): void {
  if (!Array.isArray(containers)) return;
  for (const container of containers) if (isObject(container)) maskContainer(container, walk);
}

function maskContainer(container: JsonObject, walk: MaskWalk): void {
  const env = container.env;
  if (Array.isArray(env)) {
    for (const entry of env) {
      if (!isObject(entry) || typeof entry.value !== "string" || entry.value === "") continue;
      if (isMaskedPlaceholder(entry.value)) continue;
      if (typeof entry.name === "string" && walk.config.sensitiveKey.test(entry.name)) {
        entry.value = maskedPlaceholder(entry.value, walk.config);
        walk.maskedCount++;
      } else {
        entry.value = detectInText(entry.value, walk);
      }
    }
  }
  for (const field of ["command", "args"] as const) {
    const list = container[field];
    if (!Array.isArray(list)) continue;
    for (let i = 0; i < list.length; i++) {
      const item: unknown = list[i];
      if (typeof item === "string") list[i] = detectInText(item, walk);
    }
  }
}

function detectInText(text: string, walk: MaskWalk): string {
  const result = maskText(text, walk.config);
  walk.maskedCount += result.maskedCount;
  return result.text;
}
