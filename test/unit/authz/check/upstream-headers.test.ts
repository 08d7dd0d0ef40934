/**
 * @module test/unit/authz/check/upstream-headers
 * Which client headers never reach the API server, and how Accept is narrowed to maskable JSON.
 */
import { describe, expect, it } from "vitest";
import { headersToRemove, isForbiddenClientHeader, maskableAccept } from "../../../../authz/check/upstream-headers.js";

describe("headersToRemove", () => {
  it("removes the agent credential and every spoofable identity header that was sent", () => {
    const removed = headersToRemove({
      ":method": "GET",
      ":path": "/api/v1/pods",
      host: "kubernetes",
      authorization: "Bearer agent",
      "impersonate-user": "system:admin",
      "impersonate-group": "system:masters",
      "impersonate-uid": "0",
      "impersonate-extra-scopes": "x",
      "x-remote-user": "admin",
      "x-remote-group": "system:masters",
      "x-remote-extra-foo": "bar",
      "x-forwarded-for": "10.0.0.1",
      "x-forwarded-proto": "https",
      "proxy-authorization": "Basic x",
      "accept-encoding": "gzip",
      "user-agent": "kubectl",
    });
    expect(new Set(removed)).toEqual(
      new Set([
        "authorization",
        "impersonate-user",
        "impersonate-group",
        "impersonate-uid",
        "impersonate-extra-scopes",
        "x-remote-user",
        "x-remote-group",
        "x-remote-extra-foo",
        "x-forwarded-for",
        "x-forwarded-proto",
        "proxy-authorization",
        "accept-encoding",
      ]),
    );
  });

  it("never lists pseudo-headers or Host (Envoy ignores their removal)", () => {
    const removed = headersToRemove({ ":authority": "x", host: "x", ":path": "/" });
    expect(removed.some((name) => name.startsWith(":") || name === "host")).toBe(false);
  });

  it("always removes authorization and accept-encoding even when absent", () => {
    expect(headersToRemove({})).toEqual(["authorization", "accept-encoding"]);
  });

  it.each([
    ["content-type", false],
    ["accept", false],
    ["impersonate-user", true],
    ["x-remote-user", true],
    ["x-forwarded-host", true],
    ["cookie", true],
  ])("isForbiddenClientHeader(%s) = %s", (name, expected) => {
    expect(isForbiddenClientHeader(name)).toBe(expected);
  });
});

describe("maskableAccept", () => {
  const kubectlTable =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

  it("keeps kubectl's Table negotiation as sent", () => {
    expect(maskableAccept(kubectlTable)).toBe(kubectlTable);
  });

  it("drops protobuf, CBOR and YAML ranges", () => {
    expect(maskableAccept("application/vnd.kubernetes.protobuf,application/json")).toBe("application/json");
    expect(maskableAccept("application/cbor")).toBe("application/json");
    expect(maskableAccept("application/yaml")).toBe("application/json");
    expect(maskableAccept("application/vnd.kubernetes.protobuf;stream=watch")).toBe("application/json");
  });

  it("replaces wildcards and empty values with JSON", () => {
    expect(maskableAccept("*/*")).toBe("application/json");
    expect(maskableAccept(undefined)).toBe("application/json");
    expect(maskableAccept("  ")).toBe("application/json");
  });

  it("adds a plain JSON fallback after Table-only negotiation", () => {
    expect(maskableAccept("application/json;as=Table;v=v1;g=meta.k8s.io")).toBe(
      "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    );
  });
});
