/**
 * @module test/unit/authz/kube/list-options
 * The ListOptions step of RequestInfoFactory: label-selector grammar and validation (labels.Parse), field-selector
 * parsing (fields.ParseSelector) and the decode-failure fallback.
 */
import { describe, expect, it } from "vitest";
import { decideListQuery, labelSelectorParses } from "../../../../authz/kube/list-options.js";

describe("labelSelectorParses", () => {
  // mirrors k8s.io/apimachinery pkg/labels/selector_test.go TestSelectorParse (good and bad cases) and the grammar
  // comment on labels.Parse.
  it.each([
    "",
    "x=a,y=b,z=c",
    "x!=a,y=b",
    "x=",
    "x= ",
    "x=,z= ",
    "x= ,z= ",
    "!x",
    "x>1",
    "x>1,z<5",
    "x in (a)",
    "x in (foo,,baz),y,z notin ()",
    "x notin (a, b)",
    "in in (in)",
    "x in (,a)",
    "x in (a,)",
    "example.com/x=a",
    "a.b-c_d=E.f-G_h",
    "x==a",
    "  x  =  a  ",
  ])("accepts %j", (selector) => {
    expect(labelSelectorParses(selector)).toBe(true);
  });

  it.each([
    "x=a||y=b",
    "x==a==b",
    "!x=a",
    "x<a",
    "x>-1",
    "x in (a",
    "x in a)",
    "x in ()b",
    "x,",
    ",x",
    "x=a,",
    "x notin",
    "Example.com/x",
    "/x",
    "a/b/c",
    "x=" + "v".repeat(64),
    "k".repeat(64),
    "x=-a",
    "x=a b",
    "x y",
    "!",
    "x>",
  ])("rejects %j", (selector) => {
    expect(labelSelectorParses(selector)).toBe(false);
  });
});

describe("decideListQuery", () => {
  // mirrors requestinfo.go's name-less GET branch.
  const q = (entries: Record<string, string[]>): [Record<string, string[]>, number] => [entries, Object.values(entries).reduce((n, v) => n + v.length, 0)];

  it("is list with no parameters at all", () => {
    expect(decideListQuery(...q({}))).toEqual({ watch: false, name: "" });
  });

  it("takes the name from an exact metadata.name requirement", () => {
    expect(decideListQuery(...q({ fieldSelector: ["metadata.name=foo"], watch: ["true"] }))).toEqual({ watch: true, name: "foo" });
  });

  it("accepts int64 extremes for limit and refuses out-of-range or non-decimal ones", () => {
    const base = { fieldSelector: ["metadata.name=foo"] };
    expect(decideListQuery(...q({ ...base, limit: ["9223372036854775807"] })).name).toBe("foo");
    expect(decideListQuery(...q({ ...base, limit: ["-9223372036854775808"] })).name).toBe("foo");
    expect(decideListQuery(...q({ ...base, limit: ["+0009"] })).name).toBe("foo");
    expect(decideListQuery(...q({ ...base, limit: ["9223372036854775808"] })).name).toBe("");
    expect(decideListQuery(...q({ ...base, limit: ["1_000"] })).name).toBe("");
    expect(decideListQuery(...q({ ...base, limit: ["0x10"] })).name).toBe("");
    expect(decideListQuery(...q({ ...base, limit: ["-"] })).name).toBe("");
  });

  it("applies fields.UnescapeValue and splitTerms exactly", () => {
    expect(decideListQuery(...q({ fieldSelector: ["metadata.name=a\\=b"] })).name).toBe("a=b");
    expect(decideListQuery(...q({ fieldSelector: ["metadata.name=a=b"] })).name).toBe("");
    expect(decideListQuery(...q({ fieldSelector: ["metadata.name=a\\x"] })).name).toBe("");
    expect(decideListQuery(...q({ fieldSelector: [",metadata.name=foo,"] })).name).toBe("foo");
    expect(decideListQuery(...q({ fieldSelector: [" metadata.name=foo"] })).name).toBe("");
  });
});
