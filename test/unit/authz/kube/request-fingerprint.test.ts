/**
 * @module test/unit/authz/kube/request-fingerprint
 * Properties of the request fingerprint approvals are bound to: stable for the same request (and for JSON differing
 * only in whitespace or key order), different for any semantic change.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalJson, normalisedPathAndQuery, requestFingerprint } from "../../../../authz/kube/request-fingerprint.js";
import type { RequestFingerprintInput } from "../../../../authz/kube/request-fingerprint.js";

const enc = new TextEncoder();

const BASE: RequestFingerprintInput = {
  subject: "system:serviceaccount:agents:claude",
  verb: "patch",
  rawPath: "/apis/apps/v1/namespaces/prod/deployments/web?fieldManager=kubectl&dryRun=All",
  contentType: "application/merge-patch+json",
  body: enc.encode('{"spec":{"replicas":3,"template":{"metadata":{"labels":{"app":"web"}}}}}'),
};

function fp(overrides: Partial<RequestFingerprintInput> = {}): string {
  return requestFingerprint({ ...BASE, ...overrides });
}

function json(text: string, contentType = "application/json"): string {
  return fp({ contentType, body: enc.encode(text) });
}

function yaml(text: string, contentType = "application/apply-patch+yaml"): string {
  return fp({ contentType, body: enc.encode(text) });
}

/** Serialises a JSON value with shuffled keys and random whitespace, as a differently-written client would. */
function scrambledStringify(value: unknown, rand: () => number): string {
  const ws = (): string => [" ", "\n", "\t", "\r\n  ", ""][Math.floor(rand() * 5)] ?? "";
  if (value === null || typeof value !== "object") return ws() + JSON.stringify(value) + ws();
  if (Array.isArray(value)) return ws() + "[" + value.map((v) => scrambledStringify(v, rand)).join(ws() + ",") + "]" + ws();
  const keys = Object.keys(value);
  for (let i = keys.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [keys[i], keys[j]] = [keys[j]!, keys[i]!];
  }
  const record = value as Record<string, unknown>;
  return ws() + "{" + keys.map((k) => ws() + JSON.stringify(k) + ws() + ":" + scrambledStringify(record[k], rand)).join(",") + "}" + ws();
}

function seeded(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}

describe("requestFingerprint: stability", () => {
  it("is a 64-character hex sha256 and identical for the same request", () => {
    expect(fp()).toMatch(/^[0-9a-f]{64}$/);
    expect(fp()).toBe(fp());
    expect(requestFingerprint({ ...BASE, body: new Uint8Array(BASE.body!) })).toBe(fp());
  });

  it("ignores JSON whitespace and key order (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.integer(), (value, seed) => {
        const a = json(JSON.stringify(value));
        const b = json(scrambledStringify(value, seeded(seed)));
        expect(b).toBe(a);
      }),
      { numRuns: 300 },
    );
  });

  it("ignores key order and whitespace in YAML bodies, and block vs flow style (property)", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.stringMatching(/^[a-z][a-zA-Z0-9]{0,8}$/), fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/)), fc.integer(), (dict, seed) => {
        const rand = seeded(seed);
        const keys = Object.keys(dict).sort(() => rand() - 0.5);
        const block = keys.map((k) => `${k}:${rand() < 0.5 ? " " : "   "}${dict[k]!}`).join("\n") + "\n";
        const flow = "{" + Object.keys(dict).map((k) => `${k}: ${dict[k]!}`).join(", ") + "}";
        expect(yaml(Object.keys(dict).length === 0 ? "{}" : block)).toBe(yaml(flow));
      }),
      { numRuns: 200 },
    );
  });

  it("treats JSON written as YAML like the equivalent block YAML", () => {
    const asJson = '{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":3}}';
    const asYaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n";
    expect(yaml(asJson)).toBe(yaml(asYaml));
  });

  it("reads JSON sent as YAML exactly as the YAML parser would (property)", () => {
    // A trailing comment makes the text invalid JSON, so the second body takes the YAML-library path.
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = JSON.stringify(value);
        expect(yaml(text)).toBe(yaml(text + "\n# a comment\n"));
      }),
      { numRuns: 300 },
    );
  });

  it("expands YAML aliases", () => {
    expect(yaml("a: &x {b: 1}\nc: *x\n")).toBe(yaml("a: {b: 1}\nc: {b: 1}\n"));
  });

  it("ignores content-type parameters and case, and treats an empty body as no body", () => {
    expect(fp({ contentType: "Application/Merge-Patch+JSON; charset=utf-8" })).toBe(fp());
    expect(fp({ body: undefined, contentType: "" })).toBe(fp({ body: new Uint8Array(0), contentType: "application/json" }));
  });

  it("ignores query parameter order between keys and spelling of escapes", () => {
    expect(fp({ rawPath: "/apis/apps/v1/namespaces/prod/deployments/web?dryRun=All&fieldManager=kubectl" })).toBe(fp());
    expect(fp({ rawPath: "/apis/apps/v1/namespaces/prod/deployments/%77eb?fieldManager=kube%63tl&dryRun=All" })).toBe(fp());
    expect(fp({ rawPath: "/api/v1/pods?labelSelector=a+in+(x)" })).toBe(fp({ rawPath: "/api/v1/pods?labelSelector=a%20in%20%28x%29" }));
  });

  it("falls back to the raw bytes, deterministically, for bodies it cannot decode", () => {
    const bad = '{"a":1,}';
    expect(json(bad)).toBe(json(bad));
    expect(json(bad)).not.toBe(json('{"a":1, }'));
    const protobuf = new Uint8Array([0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0f]);
    expect(fp({ contentType: "application/vnd.kubernetes.protobuf", body: protobuf })).toBe(
      fp({ contentType: "application/vnd.kubernetes.protobuf", body: protobuf.slice() }),
    );
  });

  it("survives alias bombs and deep nesting without hanging (digesting raw bytes)", () => {
    const lol = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 9; i++) lol.push(`${"abcdefghi"[i]!}: &${"abcdefghi"[i]!} [${Array(10).fill(`*${"abcdefghi"[i - 1]!}`).join(", ")}]`);
    const bomb = lol.join("\n") + "\n";
    expect(yaml(bomb)).toBe(yaml(bomb));
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    expect(json(deep)).toBe(json(deep));
    expect(json(deep)).not.toBe(json("[".repeat(99_999) + "]".repeat(99_999)));
  });
});

describe("requestFingerprint: every semantic change", () => {
  it("changes with subject, verb, path, query, media type or body", () => {
    const all = new Set([
      fp(),
      fp({ subject: "system:serviceaccount:agents:other" }),
      fp({ verb: "update" }),
      fp({ rawPath: "/apis/apps/v1/namespaces/staging/deployments/web?fieldManager=kubectl&dryRun=All" }),
      fp({ rawPath: "/apis/apps/v1/namespaces/prod/deployments/web?fieldManager=kubectl" }),
      fp({ rawPath: "/apis/apps/v1/namespaces/prod/deployments/web?fieldManager=kubectl&dryRun=All&force=true" }),
      fp({ rawPath: "/apis/apps/v1/namespaces/prod/deployments/web?fieldManager=kubectl&dryRun=" }),
      fp({ contentType: "application/strategic-merge-patch+json" }),
      fp({ contentType: "application/json-patch+json" }),
      fp({ body: enc.encode('{"spec":{"replicas":30,"template":{"metadata":{"labels":{"app":"web"}}}}}') }),
      fp({ body: enc.encode('{"spec":{"replicas":"3","template":{"metadata":{"labels":{"app":"web"}}}}}') }),
      fp({ body: undefined }),
    ]);
    expect(all.size).toBe(12);
  });

  it("differs for different JSON values (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), (a, b) => {
        fc.pre(canonicalJson(a) !== canonicalJson(b));
        expect(json(JSON.stringify(a))).not.toBe(json(JSON.stringify(b)));
      }),
      { numRuns: 300 },
    );
  });

  it("frames fields unambiguously", () => {
    expect(fp({ subject: "a", verb: "bc" })).not.toBe(fp({ subject: "ab", verb: "c" }));
    expect(fp({ subject: 'a","b' })).not.toBe(fp({ subject: "a", verb: "b" }));
  });

  it("keeps the order of repeated query values (kube reads the first)", () => {
    const a = fp({ rawPath: "/api/v1/pods?fieldSelector=metadata.name%3Da&fieldSelector=metadata.name%3Db" });
    const b = fp({ rawPath: "/api/v1/pods?fieldSelector=metadata.name%3Db&fieldSelector=metadata.name%3Da" });
    expect(a).not.toBe(b);
  });

  it("distinguishes an encoded '?' in the path from a query, and '+' from '%2B'", () => {
    expect(fp({ rawPath: "/api/v1/x%3Fa=b" })).not.toBe(fp({ rawPath: "/api/v1/x?a=b" }));
    expect(fp({ rawPath: "/api/v1/pods?labelSelector=a%2Bb" })).not.toBe(fp({ rawPath: "/api/v1/pods?labelSelector=a+b" }));
  });

  it("keeps integers beyond 2^53 and number spellings distinct", () => {
    expect(json('{"a":9007199254740993}')).not.toBe(json('{"a":9007199254740992}'));
    expect(json('{"a":1.0}')).not.toBe(json('{"a":1}'));
    expect(json('{"a":1}')).not.toBe(json('{"a":"1"}'));
  });

  it("keeps duplicate JSON keys in order", () => {
    expect(json('{"a":1,"a":2}')).not.toBe(json('{"a":2,"a":1}'));
    expect(json('{"a":1,"a":2}')).not.toBe(json('{"a":2}'));
  });

  it("does not merge YAML scalars the apiserver (YAML 1.1) reads differently", () => {
    expect(yaml("a: yes\n")).not.toBe(yaml('a: "yes"\n'));
    expect(yaml("a: on\n")).not.toBe(yaml("a: 'on'\n"));
    expect(yaml("a: 1:30\n")).not.toBe(yaml("a: 90\n"));
    expect(yaml("a: 2001-12-14\n")).not.toBe(yaml('a: "2001-12-14"\n'));
    expect(yaml("a: 0x10\n")).not.toBe(yaml("a: 16\n"));
    expect(yaml("a:\n")).not.toBe(yaml("a: ''\n"));
    expect(yaml("a: !!str 5\n")).not.toBe(yaml("a: 5\n"));
    expect(yaml("a: 1\n---\nb: 2\n")).not.toBe(yaml("a: 1\n"));
    expect(yaml("a: web\n")).toBe(yaml('a: "web"\n'));
  });

  it("distinguishes binary bodies byte for byte", () => {
    const body = new Uint8Array([1, 2, 3, 4]);
    const changed = new Uint8Array([1, 2, 3, 5]);
    expect(fp({ contentType: "application/cbor", body })).not.toBe(fp({ contentType: "application/cbor", body: changed }));
  });

  it("does not let a BOM-prefixed JSON body pass as the clean one", () => {
    expect(json("\uFEFF{}")).not.toBe(json("{}"));
  });
});

describe("canonicalJson", () => {
  it("sorts keys recursively and writes no whitespace", () => {
    expect(canonicalJson({ b: [{ z: 1, a: 2 }], a: "x", c: { y: null, x: true } })).toBe('{"a":"x","b":[{"a":2,"z":1}],"c":{"x":true,"y":null}}');
  });

  it("writes bigints as integers, dates through toJSON, and skips undefined properties", () => {
    expect(canonicalJson({ n: 9007199254740993n, d: new Date(0), u: undefined })).toBe('{"d":"1970-01-01T00:00:00.000Z","n":9007199254740993}');
  });

  it("refuses what JSON cannot represent", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(TypeError);
    expect(() => canonicalJson(Number.NaN)).toThrow(TypeError);
    expect(() => canonicalJson([undefined])).toThrow(TypeError);
    expect(() => canonicalJson(() => 1)).toThrow(TypeError);
    expect(() => canonicalJson(Symbol("s"))).toThrow(TypeError);
  });

  it("allows shared (non-cyclic) references", () => {
    const shared = { a: 1 };
    expect(canonicalJson([shared, shared])).toBe('[{"a":1},{"a":1}]');
  });

  it("matches JSON.stringify for values without objects to sort (property)", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null)), (v) => {
        expect(canonicalJson(v)).toBe(JSON.stringify(v));
      }),
    );
  });
});

describe("normalisedPathAndQuery", () => {
  it.each([
    ["/api/v1/pods", "/api/v1/pods"],
    ["/api/v1/pods?watch=1&limit=500", "/api/v1/pods?limit=500&watch=1"],
    ["/api/v1/namespaces/default/pods/%61bc", "/api/v1/namespaces/default/pods/abc"],
    ["/api/v1/pods?labelSelector=app+in+(a,b)", "/api/v1/pods?labelSelector=app%20in%20%28a%2Cb%29"],
    ["/api/v1/pods?b=2&a=1&b=1", "/api/v1/pods?a=1&b=2&b=1"],
    ["/api/v1/pods?flag&&", "/api/v1/pods?flag="],
    ["/api/v1/namespaces/default/configmaps/caf%c3%a9", "/api/v1/namespaces/default/configmaps/caf%C3%A9"],
    ["/api/v1/x%3Fa", "/api/v1/x%3Fa"],
    ["/api/v1/x%25", "/api/v1/x%25"],
    ["/api/v1/pods/%zz", "raw:/api/v1/pods/%zz"],
  ])("%s → %s", (raw, expected) => {
    expect(normalisedPathAndQuery(raw)).toBe(expected);
  });
});
