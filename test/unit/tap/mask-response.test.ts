/**
 * @module test/unit/tap/mask-response.test
 * maskResponseBody over the fixtures: every secret-bearing representation masked, structure kept,
 * placeholders valid base64 with fingerprints, and every fail-closed case blocked.
 */
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { defaultMaskConfig, loadMaskConfig } from "../../../tap/mask/mask-config.js";
import { maskResponseBody } from "../../../tap/mask/mask-response.js";
import { maskedPlaceholder } from "../../../tap/mask/masked-value.js";
import { expectNoPlantedSecret, fixture } from "./planted-secrets.js";

const JSON_TYPE = "application/json";

function maskOk(name: string, path: string, contentType = JSON_TYPE): { body: Buffer; json: unknown; count: number } {
  const result = maskResponseBody({ contentType, path, body: fixture(name) }, defaultMaskConfig);
  if (!result.ok) throw new Error(`expected ok, got ${result.code}: ${result.message}`);
  expectNoPlantedSecret(result.body);
  return { body: result.body, json: contentType.startsWith(JSON_TYPE) ? JSON.parse(result.body.toString("utf8")) : null, count: result.maskedCount };
}

type Obj = Record<string, unknown> & { data?: Record<string, string>; metadata?: Record<string, unknown> };
const decode = (b64: string): string => Buffer.from(b64, "base64").toString("utf8");

describe("maskResponseBody: Secrets", () => {
  it("masks every data value of a single Secret as valid base64 carrying a fingerprint", () => {
    const { json, count } = maskOk("secret.json", "/api/v1/namespaces/prod/secrets/db");
    const secret = json as Obj;
    const original = JSON.parse(fixture("secret.json").toString("utf8")) as Obj;
    expect(Object.keys(secret.data!)).toEqual(Object.keys(original.data!));
    for (const [key, value] of Object.entries(secret.data!)) {
      expect(value).toMatch(/^[A-Za-z0-9+/]+=*$/);
      expect(decode(value)).toBe(maskedPlaceholder(Buffer.from(original.data![key]!, "base64"), defaultMaskConfig));
      expect(decode(value)).toMatch(/^airlock:masked:sha256:[0-9a-f]{8}$/);
    }
    // 3 data values + 1 stringData value inside last-applied.
    expect(count).toBe(4);
    expect(secret.metadata!.name).toBe("db");
    expect((secret.metadata!.annotations as Record<string, string>).team).toBe("payments");
  });

  it("masks stringData inside the last-applied annotation and keeps it parseable JSON with its newline", () => {
    const { json } = maskOk("secret.json", "/api/v1/namespaces/prod/secrets/db");
    const annotation = ((json as Obj).metadata!.annotations as Record<string, string>)["kubectl.kubernetes.io/last-applied-configuration"]!;
    expect(annotation.endsWith("\n")).toBe(true);
    const embedded = JSON.parse(annotation) as { stringData: { password: string } };
    expect(embedded.stringData.password).toMatch(/^airlock:masked:sha256:[0-9a-f]{8}$/);
  });

  it("gives the same fingerprint to the same value in data and stringData form", () => {
    const config = defaultMaskConfig;
    const viaData = maskResponseBody(
      { contentType: JSON_TYPE, body: Buffer.from(JSON.stringify({ kind: "Secret", data: { a: Buffer.from("same").toString("base64") } })) },
      config,
    );
    const viaString = maskResponseBody(
      { contentType: JSON_TYPE, body: Buffer.from(JSON.stringify({ kind: "Secret", stringData: { a: "same" } })) },
      config,
    );
    expect(viaData.ok && viaString.ok).toBe(true);
    if (!viaData.ok || !viaString.ok) return;
    const a = (JSON.parse(viaData.body.toString()) as Obj).data!.a!;
    const b = (JSON.parse(viaString.body.toString()) as { stringData: { a: string } }).stringData.a;
    expect(decode(a)).toBe(b);
  });

  it("uses keyed fingerprints when a fingerprint key is configured", () => {
    const keyed = loadMaskConfig({ fingerprintKey: "0123456789abcdef0123" });
    expect(maskedPlaceholder("x", keyed)).toMatch(/^airlock:masked:hmac:[0-9a-f]{8}$/);
    expect(maskedPlaceholder("x", keyed)).not.toBe(maskedPlaceholder("x", loadMaskConfig({ fingerprintKey: "another-key-0123456789" })));
  });

  it("masks a SecretList (items without kind) including tls, dockerconfig, SA token and Helm release secrets", () => {
    const { json, count } = maskOk("secret-list.json", "/api/v1/namespaces/prod/secrets");
    const items = (json as { items: Obj[] }).items;
    expect(items).toHaveLength(5);
    for (const item of items) for (const value of Object.values(item.data ?? {})) expect(decode(value)).toMatch(/^airlock:masked:/);
    expect(count).toBe(7);
    expect(items[4]!.data).toBeUndefined();
  });

  it("masks a v1 List of mixed kinds, a Table with includeObject=Object, and leaves cells intact", () => {
    maskOk("v1-list.json", "/api/v1/namespaces/prod/secrets");
    const { json } = maskOk("table-secrets-object.json", "/api/v1/namespaces/prod/secrets?includeObject=Object", "application/json;as=Table;v=v1;g=meta.k8s.io");
    const rows = (json as { rows: Array<{ cells: unknown[]; object: Obj }> }).rows;
    expect(rows[0]!.cells).toEqual(["db", "Opaque", 3]);
    expect(decode(rows[0]!.object.data!.password!)).toMatch(/^airlock:masked:/);
  });

  it("returns the original bytes untouched when nothing needed masking", () => {
    const body = Buffer.from(JSON.stringify({ kind: "Namespace", apiVersion: "v1", metadata: { name: "prod" } }, null, 2));
    const result = maskResponseBody({ contentType: JSON_TYPE, path: "/api/v1/namespaces/prod", body }, defaultMaskConfig);
    expect(result).toEqual({ ok: true, body, maskedCount: 0, skipped: false });
  });
});

describe("maskResponseBody: other kinds", () => {
  it("masks every value of a Helm configmap-driver release (owner=helm)", () => {
    const { json } = maskOk("configmap-helm.json", "/api/v1/namespaces/prod/configmaps/web.v1");
    expect((json as Obj).data!.release).toMatch(/^airlock:masked:sha256:/);
  });

  it("masks ConfigMap values by key name and by detectors, and leaves harmless values", () => {
    const { json } = maskOk("configmap-app.json", "/api/v1/namespaces/prod/configmaps/app");
    const data = (json as Obj).data!;
    expect(data.LOG_LEVEL).toBe("info");
    expect(data["feature.flags"]).toBe("a=1,b=2");
    expect(data.API_TOKEN).toMatch(/^airlock:masked:/);
    expect(data["application.properties"]).toMatch(/^server\.port=8080\nspring\.datasource\.password=airlock:masked:sha256:[0-9a-f]{8}\n$/);
  });

  it("masks env literals, URL passwords, args tokens and init containers in every pod template form", () => {
    const { json } = maskOk("deployment.json", "/apis/apps/v1/namespaces/prod/deployments/web");
    const spec = (json as { spec: { template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string }>; args: string[] }> } } } }).spec.template.spec;
    const env = spec.containers[0]!.env;
    expect(env[0]!.value).toMatch(/^airlock:masked:/);
    expect(env[1]!.value).toMatch(/^postgres:\/\/app:airlock:masked:sha256:[0-9a-f]{8}@db:5432\/app$/);
    expect(env[2]!.value).toBe("debug");
    expect(env[3]!.value).toBeUndefined();
    expect(spec.containers[0]!.args[0]).toMatch(/^--github-token=airlock:masked:/);
    // List holds Pod, CronJob, ControllerRevision, Helm ConfigMap; all covered by the leak check.
    maskOk("v1-list.json", "/api/v1/namespaces/prod/pods");
  });

  it("leaves env values alone when env masking is off (but still masks Secrets)", () => {
    const config = loadMaskConfig({ maskEnvValues: false });
    const result = maskResponseBody({ contentType: JSON_TYPE, body: fixture("deployment.json") }, config);
    expect(result.ok && result.body.toString()).toContain("env-LEAK-literal-password");
  });

  it("masks TokenRequest status.token and CSR status.certificate", () => {
    const token = maskOk("token-request.json", "/api/v1/namespaces/prod/serviceaccounts/ci/token");
    expect((token.json as { status: { token: string; expirationTimestamp: string } }).status.token).toMatch(/^airlock:masked:/);
    const csr = maskOk("csr.json", "/apis/certificates.k8s.io/v1/certificatesigningrequests/agent");
    expect(decode((csr.json as { status: { certificate: string } }).status.certificate)).toMatch(/^airlock:masked:/);
  });

  it("runs the detectors over Status and Event messages", () => {
    const status = { kind: "Status", apiVersion: "v1", status: "Failure", message: "admission webhook denied: token ghp_abcdefghijklmnopqrstuvwxyz0123456789AB is invalid", code: 403 };
    const result = maskResponseBody({ contentType: JSON_TYPE, body: Buffer.from(JSON.stringify(status)) }, defaultMaskConfig);
    expect(result.ok && result.body.toString()).toMatch(/token airlock:masked:sha256:[0-9a-f]{8} is invalid/);
  });

  it("masks a plain object answered on a watch=true named GET (not an event envelope)", () => {
    const result = maskResponseBody(
      { contentType: JSON_TYPE, path: "/api/v1/namespaces/prod/secrets/db?watch=true", body: Buffer.from(JSON.stringify(JSON.parse(fixture("secret.json").toString()))) },
      defaultMaskConfig,
    );
    expect(result.ok).toBe(true);
    if (result.ok) expectNoPlantedSecret(result.body);
  });

  it("masks pods/log text", () => {
    const { body } = maskOk("pod-log.txt", "/api/v1/namespaces/prod/pods/web-1/log", "text/plain");
    const text = body.toString();
    expect(text).toContain("request served in 12ms\n");
    expect(text).toContain("-----BEGIN RSA PRIVATE KEY-----");
    expect(text).toContain("-----END RSA PRIVATE KEY-----");
  });
});

describe("maskResponseBody: fail closed", () => {
  const secretBody = fixture("secret.json");
  const cases: Array<[string, { contentType: string | undefined; contentEncoding?: string }, string]> = [
    ["protobuf", { contentType: "application/vnd.kubernetes.protobuf" }, "unsupported_content_type"],
    ["protobuf watch", { contentType: "application/vnd.kubernetes.protobuf;stream=watch" }, "unsupported_content_type"],
    ["CBOR", { contentType: "application/cbor" }, "unsupported_content_type"],
    ["YAML", { contentType: "application/yaml" }, "unsupported_content_type"],
    ["unknown", { contentType: "application/octet-stream" }, "unsupported_content_type"],
    ["non-UTF-8 charset", { contentType: "application/json; charset=utf-16" }, "unsupported_content_type"],
    ["gzip", { contentType: JSON_TYPE, contentEncoding: "gzip" }, "content_encoded"],
    ["deflate", { contentType: JSON_TYPE, contentEncoding: "deflate" }, "content_encoded"],
    ["no content-type with a body", { contentType: undefined }, "unexpected_body"],
  ];
  for (const [label, headers, code] of cases) {
    it(`blocks ${label}`, () => {
      const result = maskResponseBody({ ...headers, path: "/api/v1/namespaces/prod/secrets/db", body: secretBody }, defaultMaskConfig);
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.code).toBe(code);
        expect(result.message).not.toContain("LEAK");
      }
    });
  }

  it("blocks gzip even when the bytes are valid gzip of JSON", () => {
    const result = maskResponseBody({ contentType: JSON_TYPE, contentEncoding: "gzip", body: gzipSync(secretBody) }, defaultMaskConfig);
    expect(result.ok).toBe(false);
  });

  it("blocks unparseable JSON and truncated JSON", () => {
    for (const body of [Buffer.from("{not json"), secretBody.subarray(0, secretBody.length - 5)]) {
      const result = maskResponseBody({ contentType: JSON_TYPE, path: "/api/v1/namespaces/prod/secrets/db", body }, defaultMaskConfig);
      expect(result).toMatchObject({ ok: false, code: "unparseable_json" });
    }
  });

  it("blocks a body over the configured limit", () => {
    const config = loadMaskConfig({ maxBodyBytes: 100 });
    const result = maskResponseBody({ contentType: JSON_TYPE, body: secretBody }, config);
    expect(result).toMatchObject({ ok: false, code: "body_too_large" });
  });

  it("blocks absurdly nested JSON instead of crashing", () => {
    const deep = Buffer.from(`{"kind":"Pod","spec":${"[".repeat(5000)}${"]".repeat(5000)}}`);
    const result = maskResponseBody({ contentType: JSON_TYPE, body: deep }, defaultMaskConfig);
    expect(result.ok).toBe(false);
  });

  it("passes an empty body with any content type", () => {
    expect(maskResponseBody({ contentType: JSON_TYPE, body: Buffer.alloc(0) }, defaultMaskConfig)).toMatchObject({ ok: true, maskedCount: 0 });
  });
});

describe("maskResponseBody: explicit skip rules", () => {
  const config = loadMaskConfig({
    skipBodyFor: [{ pathGlob: "/openapi/**" }, { resource: "pods", verbs: ["list"] }, { resource: "*", verbs: ["get"] }],
  });

  it("skips only what a rule names", () => {
    const proto = Buffer.from([0x0a, 0x01, 0x02]);
    expect(maskResponseBody({ contentType: "application/com.github.proto-openapi.spec.v2@v1.0+protobuf", path: "/openapi/v2", body: proto }, config)).toMatchObject({ ok: true, skipped: true });
    expect(maskResponseBody({ contentType: "application/vnd.kubernetes.protobuf", path: "/openapi2", body: proto }, config)).toMatchObject({ ok: false });
    expect(
      maskResponseBody({ contentType: JSON_TYPE, path: "/api/v1/pods", kube: { verb: "list", resource: "pods" }, body: Buffer.from("{}") }, config),
    ).toMatchObject({ ok: true, skipped: true });
    expect(
      maskResponseBody({ contentType: JSON_TYPE, path: "/api/v1/pods", kube: { verb: "watch", resource: "pods" }, body: Buffer.from("{}") }, config),
    ).toMatchObject({ ok: true, skipped: false });
  });

  it("never skips Secrets, ConfigMaps, TokenRequests or CSRs even when a rule matches", () => {
    const paths: Array<[string, string, string | undefined]> = [
      ["/api/v1/namespaces/prod/secrets/db", "secrets", undefined],
      ["/api/v1/namespaces/prod/configmaps/app", "configmaps", undefined],
      ["/api/v1/namespaces/prod/serviceaccounts/ci/token", "serviceaccounts", "token"],
      ["/apis/certificates.k8s.io/v1/certificatesigningrequests/x", "certificatesigningrequests", undefined],
    ];
    for (const [path, resource, subresource] of paths) {
      const result = maskResponseBody({ contentType: JSON_TYPE, path, kube: { verb: "get", resource, subresource }, body: fixture("secret.json") }, config);
      expect(result).toMatchObject({ ok: true, skipped: false });
      if (result.ok) expectNoPlantedSecret(result.body);
    }
  });
});
