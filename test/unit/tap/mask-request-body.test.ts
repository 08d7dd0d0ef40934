/**
 * @module test/unit/tap/mask-request-body.test
 * Masked copies of request bodies for the audit record and approval previews: JSON create/update,
 * merge and strategic-merge patches, YAML apply patches, JSON patches; unparseable bodies refused.
 */
import { describe, expect, it } from "vitest";
import { defaultMaskConfig } from "../../../tap/mask/mask-config.js";
import { maskRequestBody } from "../../../tap/mask/mask-request-body.js";
import { expectNoPlantedSecret, fixture } from "./planted-secrets.js";

const b = (s: string): Buffer => Buffer.from(s, "utf8");

function ok(input: Parameters<typeof maskRequestBody>[0]): { text: string; count: number } {
  const result = maskRequestBody(input, defaultMaskConfig);
  if (!result.ok) throw new Error(`${result.code}: ${result.message}`);
  expectNoPlantedSecret(result.text);
  return { text: result.text, count: result.maskedCount };
}

describe("maskRequestBody", () => {
  it("masks a Secret create body (data and stringData)", () => {
    const body = b(JSON.stringify({ apiVersion: "v1", kind: "Secret", metadata: { name: "x" }, stringData: { pw: "p-LEAK-1" }, data: { k: b("d-LEAK-2").toString("base64") } }));
    const { text, count } = ok({ contentType: "application/json", path: "/api/v1/namespaces/prod/secrets", body });
    expect(count).toBe(2);
    expect(JSON.parse(text)).toMatchObject({ kind: "Secret", metadata: { name: "x" } });
  });

  it("masks a merge patch on a Secret (no kind in the body: the path says secrets)", () => {
    const { count } = ok({ contentType: "application/merge-patch+json", path: "/api/v1/namespaces/prod/secrets/db", body: b('{"stringData":{"pw":"m-LEAK"}}') });
    expect(count).toBe(1);
  });

  it("masks a strategic merge patch on a Deployment's env", () => {
    const patch = { spec: { template: { spec: { containers: [{ name: "app", env: [{ name: "DB_PASSWORD", value: "s-LEAK" }] }] } } } };
    ok({ contentType: "application/strategic-merge-patch+json", path: "/apis/apps/v1/namespaces/prod/deployments/web", body: b(JSON.stringify(patch)) });
  });

  it("masks a YAML server-side apply patch and returns JSON", () => {
    const yaml = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: y-LEAK\n";
    const { text } = ok({ contentType: "application/apply-patch+yaml", path: "/api/v1/namespaces/prod/secrets/db?fieldManager=kubectl", body: b(yaml) });
    expect(JSON.parse(text)).toMatchObject({ kind: "Secret", metadata: { name: "db" } });
  });

  it("masks JSON patch values that touch secret data, env, ConfigMap keys and last-applied", () => {
    const ops = [
      { op: "add", path: "/data/pw", value: b("j-LEAK-1").toString("base64") },
      { op: "replace", path: "/stringData", value: { a: "j-LEAK-2" } },
      { op: "test", path: "/data/other", value: b("j-LEAK-3").toString("base64") },
      { op: "remove", path: "/data/old" },
    ];
    const { count } = ok({ contentType: "application/json-patch+json", path: "/api/v1/namespaces/prod/secrets/db", body: b(JSON.stringify(ops)) });
    expect(count).toBe(3);
    const depOps = [
      { op: "add", path: "/spec/template/spec/containers/0/env/-", value: { name: "API_KEY", value: "k-LEAK" } },
      { op: "replace", path: "/spec/template/spec/containers/0/env/3/value", value: "v-LEAK" },
      { op: "replace", path: "/spec/replicas", value: 3 },
      { op: "add", path: "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration", value: JSON.stringify({ kind: "Secret", stringData: { a: "la-LEAK" } }) },
    ];
    const dep = ok({ contentType: "application/json-patch+json", path: "/apis/apps/v1/namespaces/prod/deployments/web", body: b(JSON.stringify(depOps)) });
    expect((JSON.parse(dep.text) as Array<{ value: unknown }>)[2]!.value).toBe(3);
    const cmOps = [{ op: "add", path: "/data/DB_PASSWORD", value: "cm-LEAK" }, { op: "add", path: "/data/LEVEL", value: "info" }];
    const cm = ok({ contentType: "application/json-patch+json", path: "/api/v1/namespaces/prod/configmaps/app", body: b(JSON.stringify(cmOps)) });
    expect((JSON.parse(cm.text) as Array<{ value: unknown }>)[1]!.value).toBe("info");
  });

  it("masks every fixture when sent as a request body", () => {
    for (const name of ["secret.json", "secret-list.json", "v1-list.json", "deployment.json", "configmap-app.json", "configmap-helm.json"]) {
      ok({ contentType: "application/json", body: fixture(name) });
    }
  });

  it("refuses bodies it cannot inspect", () => {
    expect(maskRequestBody({ contentType: "application/vnd.kubernetes.protobuf", body: b("k8s\0") }, defaultMaskConfig)).toMatchObject({ ok: false, code: "unsupported_content_type" });
    expect(maskRequestBody({ contentType: "application/json", body: b("{") }, defaultMaskConfig)).toMatchObject({ ok: false, code: "unparseable_json" });
    expect(maskRequestBody({ contentType: "application/json-patch+json", body: b("{}") }, defaultMaskConfig)).toMatchObject({ ok: false, code: "unparseable_json" });
    expect(maskRequestBody({ contentType: "application/apply-patch+yaml", body: b("a: [") }, defaultMaskConfig)).toMatchObject({ ok: false });
    expect(maskRequestBody({ contentType: undefined, body: b("{}") }, defaultMaskConfig)).toMatchObject({ ok: false });
    expect(maskRequestBody({ contentType: "application/json", body: Buffer.alloc(0) }, defaultMaskConfig)).toEqual({ ok: true, text: "", maskedCount: 0 });
  });
});
