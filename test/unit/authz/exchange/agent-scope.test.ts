/**
 * @module test/unit/authz/exchange/agent-scope.test
 * The scope claim: strict parsing, the ext_authz check, narrowing on request, and the OAuth scope parameter.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  formatScopeParameter,
  narrowScope,
  parseScopeParameter,
  readAgentScope,
  scopeAllows,
} from "../../../../authz/exchange/agent-scope.js";
import type { AgentScope } from "../../../../authz/exchange/agent-scope.js";

const resource = (verb: string, namespace = "dev") => ({ verb, namespace, resourceRequest: true });
const nonResource = (verb: string) => ({ verb, namespace: "", resourceRequest: false });

describe("scopeAllows", () => {
  it("allows everything without a scope", () => {
    expect(scopeAllows(undefined, resource("delete", ""))).toEqual({ ok: true });
    expect(scopeAllows({}, resource("delete", ""))).toEqual({ ok: true });
  });

  it.each([
    ["get", true],
    ["list", true],
    ["watch", true],
    ["create", false],
    ["update", false],
    ["patch", false],
    ["delete", false],
    ["deletecollection", false],
    ["impersonate", false],
  ])("read-only resource verb %s → %s", (verb, ok) => {
    expect(scopeAllows({ readOnly: true }, resource(verb)).ok).toBe(ok);
  });

  it.each([
    ["get", true],
    ["head", true],
    ["post", false],
    ["put", false],
    ["delete", false],
  ])("read-only non-resource verb %s → %s", (verb, ok) => {
    expect(scopeAllows({ readOnly: true }, nonResource(verb)).ok).toBe(ok);
  });

  it("limits namespaced requests to listed namespaces and globs", () => {
    const scope: AgentScope = { namespaces: ["dev", "team-*"] };
    expect(scopeAllows(scope, resource("delete", "dev")).ok).toBe(true);
    expect(scopeAllows(scope, resource("get", "team-a")).ok).toBe(true);
    expect(scopeAllows(scope, resource("get", "prod"))).toEqual({ ok: false, reason: 'namespace "prod" is outside the token\'s scope' });
    expect(scopeAllows(scope, resource("get", "devx")).ok).toBe(false);
  });

  it("puts cluster-scoped and all-namespace resource requests outside a namespace scope, not discovery", () => {
    const scope: AgentScope = { namespaces: ["*"] };
    expect(scopeAllows(scope, resource("list", "")).ok).toBe(false);
    expect(scopeAllows(scope, nonResource("get")).ok).toBe(true);
  });
});

describe("readAgentScope", () => {
  it("reads no claim as no scope and a well-formed claim as a frozen scope", () => {
    expect(readAgentScope({ sub: "x" })).toEqual({ ok: true, scope: undefined });
    const result = readAgentScope(Object.freeze({ airlock_scope: { namespaces: ["dev"], readOnly: true } }));
    expect(result).toEqual({ ok: true, scope: { namespaces: ["dev"], readOnly: true } });
    expect(result.ok && Object.isFrozen(result.scope)).toBe(true);
  });

  it.each([
    ["a string", "dev"],
    ["null", null],
    ["an array", ["dev"]],
    ["an unknown member", { namespaces: ["dev"], admin: true }],
    ["readOnly as a string", { readOnly: "true" }],
    ["namespaces as a string", { namespaces: "dev" }],
    ["an empty namespace list", { namespaces: [] }],
    ["a non-string namespace", { namespaces: [1] }],
    ["an invalid namespace", { namespaces: ["Dev"] }],
    ["too many namespaces", { namespaces: Array.from({ length: 65 }, (_, i) => `n${i}`) }],
  ])("refuses %s (must deny)", (_name, value) => {
    expect(readAgentScope({ airlock_scope: value }).ok).toBe(false);
  });

  it("does not read inherited properties", () => {
    const claims = Object.create({ airlock_scope: { readOnly: true } }) as Record<string, unknown>;
    expect(readAgentScope(claims)).toEqual({ ok: true, scope: undefined });
  });
});

describe("narrowScope", () => {
  it("inherits the grant when nothing is requested", () => {
    expect(narrowScope({ namespaces: ["dev"], readOnly: false }, undefined)).toEqual({ ok: true, scope: { namespaces: ["dev"] } });
  });

  it("adds read-only but never removes it", () => {
    expect(narrowScope({}, { readOnly: true })).toEqual({ ok: true, scope: { readOnly: true } });
    expect(narrowScope({ readOnly: true }, { namespaces: ["dev"] })).toEqual({ ok: true, scope: { namespaces: ["dev"], readOnly: true } });
  });

  it("accepts namespaces covered by the grant, globs included, and refuses wider ones", () => {
    expect(narrowScope({ namespaces: ["team-*"] }, { namespaces: ["team-a", "team-b-*"] }).ok).toBe(true);
    expect(narrowScope({}, { namespaces: ["anything"] }).ok).toBe(true);
    expect(narrowScope({ namespaces: ["team-*"] }, { namespaces: ["team*"] }).ok).toBe(false);
    expect(narrowScope({ namespaces: ["dev"] }, { namespaces: ["*"] }).ok).toBe(false);
    expect(narrowScope({ namespaces: ["dev"] }, { namespaces: ["dev", "prod"] })).toEqual({ ok: false, reason: "requested namespaces are not granted: prod" });
  });

  it("never allows a request the grant does not allow (property)", () => {
    const name = fc.constantFrom("dev", "prod", "team-a", "team-b", "kube-system", "a", "ab");
    const pattern = fc.constantFrom("dev", "team-*", "*", "a*", "*b", "prod", "t*-*");
    const verb = fc.constantFrom("get", "list", "watch", "create", "delete", "patch");
    const grant = fc.record({ namespaces: fc.option(fc.array(pattern, { minLength: 1, maxLength: 3 }), { nil: undefined }), readOnly: fc.boolean() });
    const request = fc.record({ namespaces: fc.option(fc.array(pattern, { minLength: 1, maxLength: 3 }), { nil: undefined }), readOnly: fc.boolean() });
    fc.assert(
      fc.property(grant, request, verb, fc.option(name, { nil: "" }), (granted, requested, v, namespace) => {
        const g: AgentScope = { ...(granted.namespaces === undefined ? {} : { namespaces: granted.namespaces }), readOnly: granted.readOnly };
        const r = { ...(requested.namespaces === undefined ? {} : { namespaces: requested.namespaces }), readOnly: requested.readOnly };
        const narrowed = narrowScope(g, r);
        if (!narrowed.ok) return;
        const attributes = { verb: v, namespace, resourceRequest: true };
        if (scopeAllows(narrowed.scope, attributes).ok) expect(scopeAllows(g, attributes).ok).toBe(true);
      }),
    );
  });
});

describe("scope parameter", () => {
  it("parses and formats read-only and namespace entries", () => {
    const parsed = parseScopeParameter("namespace:dev  read-only namespace:team-* namespace:dev");
    expect(parsed).toEqual({ ok: true, scope: { namespaces: ["dev", "team-*"], readOnly: true } });
    expect(formatScopeParameter({ namespaces: ["dev"], readOnly: true })).toBe("read-only namespace:dev");
    expect(formatScopeParameter({})).toBe("");
  });

  it.each(["", "   ", "admin", "namespace:", "namespace:UPPER", "namespace:a/b", "read-write"])("refuses %j", (text) => {
    expect(parseScopeParameter(text).ok).toBe(false);
  });
});
