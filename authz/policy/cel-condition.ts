/**
 * @module authz/policy/cel-condition
 * Compiles a rule's `when` CEL expression once (parse, static type check, plan) and evaluates it per request.
 */
import { celEnv, celFunc, CelScalar, isCelError, isCelList, isCelMap, listType, parse, plan } from "@bufbuild/cel";
import type { CelFunc, CelInput, CelType, CelValue } from "@bufbuild/cel";

/**
 * Airlock helpers available in `when` expressions, in addition to the CEL standard library:
 *
 * - `podSpecs(object)`: every pod spec the object carries: a Pod's `spec`, a PodTemplate's
 *   `template.spec`, a workload's `spec.template.spec` (Deployment, StatefulSet, DaemonSet, ReplicaSet,
 *   Job, ReplicationController, template-bearing CRs) and a CronJob's `spec.jobTemplate.spec.template.spec`.
 *   Missing levels are skipped, so the same rule inspects full objects and merge patches alike.
 * - `podContainers(object)`: the containers, initContainers and ephemeralContainers of all of those.
 *
 * They exist because CEL has no optional chaining here and a guardrail written out per kind with `has()`
 * at every level is long enough to hide a mistake.
 */
const SPEC_PATHS: readonly (readonly string[])[] = [
  ["spec"],
  ["template", "spec"],
  ["spec", "template", "spec"],
  ["spec", "jobTemplate", "spec", "template", "spec"],
];
const CONTAINER_KEYS = ["containers", "initContainers", "ephemeralContainers"] as const;

function walk(value: CelValue, path: readonly string[]): CelValue | undefined {
  let current: CelValue | undefined = value;
  for (const key of path) {
    if (current === undefined || !isCelMap(current)) return undefined;
    current = current.get(key);
  }
  return current;
}

function podSpecsOf(value: CelValue): CelValue[] {
  const specs: CelValue[] = [];
  for (const path of SPEC_PATHS) {
    const spec = walk(value, path);
    if (spec === undefined || !isCelMap(spec)) continue;
    // A workload's own `spec` (the one holding `template` / `jobTemplate`) is not a pod spec.
    if (path.length === 1 && (spec.has("template") || spec.has("jobTemplate"))) continue;
    specs.push(spec);
  }
  return specs;
}

function podContainersOf(value: CelValue): CelValue[] {
  const containers: CelValue[] = [];
  for (const spec of podSpecsOf(value)) {
    if (!isCelMap(spec)) continue;
    for (const key of CONTAINER_KEYS) {
      const list = spec.get(key);
      if (list !== undefined && isCelList(list)) for (const container of list) containers.push(container);
    }
  }
  return containers;
}

const AIRLOCK_FUNCS: CelFunc[] = [
  celFunc("podSpecs", [CelScalar.DYN], listType(CelScalar.DYN), (value) => podSpecsOf(value)),
  celFunc("podContainers", [CelScalar.DYN], listType(CelScalar.DYN), (value) => podContainersOf(value)),
];

const env = celEnv({ funcs: AIRLOCK_FUNCS });

// ---------------------------------------------------------------------------------------------------
// Static checking. @bufbuild/cel 0.6 does not export its checker, and its planner accepts unknown
// identifiers and misspelt fields (they only fail at evaluation, which for an Allow rule means "never
// matches" and for a Deny rule "always matches"). So we infer types over the parsed AST ourselves:
// declared variables, the known fields of `request` and `user`, function existence and overloads,
// and a boolean result. `object` is dynamic (any Kubernetes kind), so checks below it are runtime.
// ---------------------------------------------------------------------------------------------------

type StaticType =
  | { readonly k: "dyn" }
  | { readonly k: "scalar"; readonly s: string }
  | { readonly k: "list"; readonly e: StaticType }
  | { readonly k: "map"; readonly v: StaticType }
  | { readonly k: "record"; readonly name: string; readonly fields: Readonly<Record<string, StaticType>> }
  | { readonly k: "opaque"; readonly name: string };

const DYN: StaticType = { k: "dyn" };
const scalar = (s: string): StaticType => ({ k: "scalar", s });
const STRING = scalar("string");
const BOOL = scalar("bool");
const STRINGS: StaticType = { k: "list", e: STRING };

/** Fields of `request`: exactly the KubeRequestAttributes interface (authz/kube/request-attributes). */
const REQUEST_FIELDS: Readonly<Record<string, StaticType>> = {
  verb: STRING,
  kubeVerb: STRING,
  resourceRequest: BOOL,
  apiPrefix: STRING,
  apiGroup: STRING,
  apiVersion: STRING,
  namespace: STRING,
  resource: STRING,
  subresource: STRING,
  name: STRING,
  parts: STRINGS,
  path: STRING,
  rawPath: STRING,
  query: { k: "map", v: STRINGS },
  fieldSelector: STRING,
  labelSelector: STRING,
  longRunning: BOOL,
  upgrade: BOOL,
};
const USER_FIELDS: Readonly<Record<string, StaticType>> = {
  subject: STRING,
  groups: STRINGS,
  claims: { k: "map", v: DYN },
};
const VARIABLES: ReadonlyMap<string, StaticType> = new Map<string, StaticType>([
  ["request", { k: "record", name: "request", fields: REQUEST_FIELDS }],
  ["user", { k: "record", name: "user", fields: USER_FIELDS }],
  ["object", DYN],
]);
const TYPE_IDENTS = new Set(["int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "dyn"]);
const NUMERIC = new Set(["int", "uint", "double"]);

function typeName(t: StaticType): string {
  switch (t.k) {
    case "dyn":
      return "dyn";
    case "scalar":
      return t.s;
    case "list":
      return `list(${typeName(t.e)})`;
    case "map":
    case "record":
      return "map";
    case "opaque":
      return t.name;
  }
}

function fromCelType(t: CelType): StaticType {
  switch (t.kind) {
    case "scalar":
      return t.scalar === "dyn" ? DYN : scalar(t.scalar);
    case "list":
      return { k: "list", e: fromCelType(t.element) };
    case "map":
      return { k: "map", v: fromCelType(t.value) };
    case "object":
      return { k: "opaque", name: t.name };
  }
}

function assignable(actual: StaticType, param: StaticType): boolean {
  if (actual.k === "dyn" || param.k === "dyn") return true;
  switch (param.k) {
    case "scalar":
      return actual.k === "scalar" && actual.s === param.s;
    case "list":
      return actual.k === "list";
    case "map":
    case "record":
      return actual.k === "map" || actual.k === "record";
    case "opaque":
      return actual.k === "opaque" && actual.name === param.name;
  }
}

function unify(types: readonly StaticType[]): StaticType {
  const [first, ...rest] = types;
  if (first === undefined) return DYN;
  return rest.every((t) => typeName(t) === typeName(first)) ? first : DYN;
}

class CelCheckError extends Error {}

// The AST is a protobuf-es message; we only read the shape we need.
interface ExprNode {
  readonly exprKind:
    | { readonly case: "constExpr"; readonly value: { readonly constantKind: { readonly case: string | undefined } } }
    | { readonly case: "identExpr"; readonly value: { readonly name: string } }
    | {
        readonly case: "selectExpr";
        readonly value: { readonly operand?: ExprNode | undefined; readonly field: string; readonly testOnly: boolean };
      }
    | {
        readonly case: "callExpr";
        readonly value: { readonly target?: ExprNode | undefined; readonly function: string; readonly args: readonly ExprNode[] };
      }
    | { readonly case: "listExpr"; readonly value: { readonly elements: readonly ExprNode[] } }
    | {
        readonly case: "structExpr";
        readonly value: {
          readonly messageName: string;
          readonly entries: readonly { readonly value?: ExprNode | undefined; readonly keyKind: { readonly case: string | undefined; readonly value?: unknown } }[];
        };
      }
    | {
        readonly case: "comprehensionExpr";
        readonly value: {
          readonly iterVar: string;
          readonly iterVar2: string;
          readonly iterRange?: ExprNode | undefined;
          readonly accuVar: string;
          readonly accuInit?: ExprNode | undefined;
          readonly loopCondition?: ExprNode | undefined;
          readonly loopStep?: ExprNode | undefined;
          readonly result?: ExprNode | undefined;
        };
      }
    | { readonly case: undefined; readonly value?: undefined };
}

const CONSTANT_TYPES: Readonly<Record<string, StaticType>> = {
  nullValue: scalar("null_type"),
  boolValue: BOOL,
  int64Value: scalar("int"),
  uint64Value: scalar("uint"),
  doubleValue: scalar("double"),
  stringValue: STRING,
  bytesValue: scalar("bytes"),
};

interface CheckState {
  referencesObject: boolean;
}

function required(node: ExprNode | undefined): ExprNode {
  if (node === undefined) throw new CelCheckError("malformed expression");
  return node;
}

function infer(node: ExprNode, scope: ReadonlyMap<string, StaticType>, state: CheckState): StaticType {
  const kind = node.exprKind;
  switch (kind.case) {
    case "constExpr":
      return CONSTANT_TYPES[kind.value.constantKind.case ?? ""] ?? DYN;
    case "identExpr": {
      const name = kind.value.name;
      const local = scope.get(name);
      if (local !== undefined) {
        if (name === "object" && !scope.has("@shadow:object")) state.referencesObject = true;
        return local;
      }
      if (TYPE_IDENTS.has(name)) return scalar("type");
      throw new CelCheckError(`undeclared reference to '${name}' (variables are request, object, user)`);
    }
    case "selectExpr": {
      const operand = infer(required(kind.value.operand), scope, state);
      const field = kind.value.field;
      let fieldType: StaticType;
      if (operand.k === "record") {
        const known = operand.fields[field];
        if (known === undefined) {
          throw new CelCheckError(
            `${operand.name} has no field '${field}' (fields: ${Object.keys(operand.fields).join(", ")})`,
          );
        }
        fieldType = known;
      } else if (operand.k === "map") fieldType = operand.v;
      else if (operand.k === "dyn") fieldType = DYN;
      else throw new CelCheckError(`type '${typeName(operand)}' does not support field selection ('.${field}')`);
      return kind.value.testOnly ? BOOL : fieldType;
    }
    case "callExpr":
      return inferCall(kind.value.function, kind.value.target, kind.value.args, scope, state);
    case "listExpr":
      return { k: "list", e: unify(kind.value.elements.map((e) => infer(e, scope, state))) };
    case "structExpr": {
      if (kind.value.messageName !== "") {
        throw new CelCheckError(`message construction '${kind.value.messageName}{...}' is not supported`);
      }
      for (const entry of kind.value.entries) {
        const key = entry.keyKind.value;
        if (entry.keyKind.case === "mapKey" && key !== undefined) infer(key as ExprNode, scope, state);
        infer(required(entry.value), scope, state);
      }
      return { k: "map", v: DYN };
    }
    case "comprehensionExpr": {
      const c = kind.value;
      const range = infer(required(c.iterRange), scope, state);
      let iterType: StaticType;
      if (range.k === "list") iterType = range.e;
      else if (range.k === "map" || range.k === "record") iterType = STRING;
      else if (range.k === "dyn") iterType = DYN;
      else throw new CelCheckError(`cannot iterate over '${typeName(range)}'`);
      const accuInit = infer(required(c.accuInit), scope, state);
      const inner = new Map(scope);
      const bind = (name: string, t: StaticType): void => {
        if (name === "") return;
        inner.set(name, t);
        if (name === "object") inner.set("@shadow:object", DYN);
      };
      bind(c.iterVar, c.iterVar2 === "" ? iterType : range.k === "list" ? scalar("int") : DYN);
      bind(c.iterVar2, c.iterVar2 === "" ? DYN : range.k === "list" ? iterType : DYN);
      bind(c.accuVar, accuInit.k === "list" ? { k: "list", e: DYN } : accuInit);
      infer(required(c.loopCondition), inner, state);
      infer(required(c.loopStep), inner, state);
      return infer(required(c.result), inner, state);
    }
    case undefined:
      throw new CelCheckError("malformed expression");
  }
}

function inferCall(
  name: string,
  targetNode: ExprNode | undefined,
  argNodes: readonly ExprNode[],
  scope: ReadonlyMap<string, StaticType>,
  state: CheckState,
): StaticType {
  const target = targetNode === undefined ? undefined : infer(targetNode, scope, state);
  const args = argNodes.map((a) => infer(a, scope, state));
  const display = (): string =>
    `'${name.replace(/^_|_$/g, "").replace(/^@/, "")}' applied to (${[...(target ? [target] : []), ...args].map(typeName).join(", ")})`;
  // Operators the planner implements itself rather than through the function registry.
  switch (name) {
    case "_&&_":
    case "_||_":
    case "!_":
    case "@not_strictly_false":
      for (const arg of args) if (!assignable(arg, BOOL)) throw new CelCheckError(`no matching overload for ${display()}`);
      return BOOL;
    case "_?_:_": {
      const [cond, whenTrue, whenFalse] = args;
      if (cond === undefined || whenTrue === undefined || whenFalse === undefined || !assignable(cond, BOOL)) {
        throw new CelCheckError(`no matching overload for ${display()}`);
      }
      return unify([whenTrue, whenFalse]);
    }
    case "_[_]":
    case "_[?_]": {
      const [container, index] = args;
      if (container === undefined || index === undefined) throw new CelCheckError(`no matching overload for ${display()}`);
      if (container.k === "list") {
        if (!assignable(index, scalar("int")) && !assignable(index, scalar("uint"))) {
          throw new CelCheckError(`no matching overload for ${display()}`);
        }
        return container.e;
      }
      if (container.k === "map") return container.v;
      if (container.k === "record") return DYN;
      if (container.k === "dyn") return DYN;
      throw new CelCheckError(`no matching overload for ${display()}`);
    }
    case "_==_":
    case "_!=_": {
      const [left, right] = args;
      if (
        left?.k === "scalar" &&
        right?.k === "scalar" &&
        left.s !== right.s &&
        !(NUMERIC.has(left.s) && NUMERIC.has(right.s)) &&
        left.s !== "null_type" &&
        right.s !== "null_type"
      ) {
        throw new CelCheckError(`no matching overload for ${display()}`);
      }
      return BOOL;
    }
    default:
      break;
  }
  const group = env.funcs.find(name);
  if (group === undefined) throw new CelCheckError(`undeclared function '${name}'`);
  const results: StaticType[] = [];
  for (const overload of group) {
    if ((overload.target === undefined) !== (target === undefined)) continue;
    if (overload.arguments.length !== args.length) continue;
    if (target !== undefined && overload.target !== undefined && !assignable(target, fromCelType(overload.target))) continue;
    if (!overload.arguments.every((param, i) => assignable(args[i] ?? DYN, fromCelType(param)))) continue;
    results.push(fromCelType(overload.result));
  }
  if (results.length === 0) throw new CelCheckError(`no matching overload for ${display()}`);
  return unify(results);
}

// ---------------------------------------------------------------------------------------------------

/** Values bound for one evaluation. */
export interface CelConditionInput {
  readonly request: object;
  readonly object: unknown;
  readonly user: object;
}

export type CelConditionResult = { readonly ok: true; readonly value: boolean } | { readonly ok: false; readonly error: string };

export interface CelCondition {
  readonly source: string;
  /** True when the expression reads `object` (the request body): such a rule never allows on a partial body. */
  readonly referencesObject: boolean;
  evaluate(input: CelConditionInput): CelConditionResult;
}

const MAX_ERROR_CHARS = 200;

/**
 * Request attributes, the user and JSON-parsed bodies are plain objects, arrays and scalars, which the
 * evaluator accepts as CEL maps, lists and values; anything else surfaces as an evaluation error.
 */
function asCelInput(value: unknown): CelInput {
  return value as CelInput;
}

function shortError(message: string): string {
  return message.length > MAX_ERROR_CHARS ? `${message.slice(0, MAX_ERROR_CHARS)}…` : message;
}

/** Parses, type-checks and plans `source`. Errors are plain messages; the caller adds the rule path. */
export function compileCelCondition(source: string): { ok: true; condition: CelCondition } | { ok: false; error: string } {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(source);
  } catch (error) {
    return { ok: false, error: `syntax error: ${error instanceof Error ? error.message : String(error)}` };
  }
  const state: CheckState = { referencesObject: false };
  try {
    const resultType = infer(parsed.expr, VARIABLES, state);
    if (resultType.k !== "dyn" && !(resultType.k === "scalar" && resultType.s === "bool")) {
      return { ok: false, error: `type error: must evaluate to bool, not ${typeName(resultType)}` };
    }
  } catch (error) {
    if (error instanceof CelCheckError) return { ok: false, error: `type error: ${error.message}` };
    throw error;
  }
  let program: (bindings: Record<string, CelInput>) => unknown;
  try {
    program = plan(env, parsed);
  } catch (error) {
    return { ok: false, error: `cannot plan: ${error instanceof Error ? error.message : String(error)}` };
  }
  const referencesObject = state.referencesObject;
  return {
    ok: true,
    condition: Object.freeze({
      source,
      referencesObject,
      evaluate(input: CelConditionInput): CelConditionResult {
        let value: unknown;
        try {
          value = program({
            request: asCelInput(input.request),
            object: asCelInput(input.object ?? null),
            user: asCelInput(input.user),
          });
        } catch (error) {
          // The evaluator converts arbitrary JS values; anything it throws on is an evaluation error.
          return { ok: false, error: shortError(error instanceof Error ? error.message : "evaluation failed") };
        }
        if (isCelError(value)) return { ok: false, error: shortError(value.message) };
        if (typeof value !== "boolean") return { ok: false, error: "did not evaluate to a bool" };
        return { ok: true, value };
      },
    }),
  };
}
