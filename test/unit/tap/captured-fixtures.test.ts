/**
 * @module test/unit/tap/captured-fixtures
 * The masker on bodies captured byte for byte from the real kube-apiserver test bed (test/fixtures/k8s/): no planted
 * `fixture-` value survives in clear text, base64 or base64-of-gzip, masked values stay valid base64, and the watch
 * stream masks identically at every chunk boundary.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { defaultMaskConfig } from "../../../tap/mask/mask-config.js";
import { maskResponseBody } from "../../../tap/mask/mask-response.js";
import { WatchStreamMasker } from "../../../tap/mask/watch-stream-masker.js";

const FIXTURES = join(import.meta.dirname, "../../fixtures/k8s");
const read = (name: string): Buffer => readFileSync(join(FIXTURES, name));

/** Every planted value the capture script wrote, found in the raw captures themselves (clear or base64). */
function plantedValues(): string[] {
  const found = new Set<string>();
  const scan = (text: string): void => {
    for (const match of text.matchAll(/fixture-[A-Za-z0-9-]+/g)) found.add(match[0]);
  };
  for (const name of ["secret.json", "secret-applied.json", "secret-helm-release.json", "secret-list.json", "configmap.json", "deployment.json", "watch-secrets.jsonl"]) {
    const text = read(name).toString("utf8");
    scan(text);
    for (const match of text.matchAll(/"([A-Za-z0-9+/]{8,}={0,2})"/g)) {
      const decoded = Buffer.from(match[1] ?? "", "base64");
      scan(decoded.toString("latin1"));
      // Helm: base64(base64(gzip(json))).
      try {
        scan(gunzipSync(Buffer.from(decoded.toString("latin1"), "base64")).toString("utf8"));
      } catch {
        // not a Helm release payload
      }
    }
  }
  return [...found];
}

const PLANTED = plantedValues();

function assertNoPlantedValue(output: string): void {
  for (const value of PLANTED) {
    expect(output, value).not.toContain(value);
    expect(output, `base64 of ${value}`).not.toContain(Buffer.from(value).toString("base64").slice(0, 12));
  }
}

function mask(name: string, path: string, contentType = "application/json"): string {
  const result = maskResponseBody({ contentType, path, body: read(name) }, defaultMaskConfig);
  if (!result.ok) throw new Error(`${name}: blocked: ${result.message}`);
  return result.body.toString("utf8");
}

describe("captured kube-apiserver responses", () => {
  it("found the planted values in the captures (the test would prove nothing otherwise)", () => {
    expect(PLANTED.length).toBeGreaterThanOrEqual(8);
  });

  it.each([
    ["secret.json", "/api/v1/namespaces/airlock-fixtures/secrets/db-credentials"],
    ["secret-applied.json", "/api/v1/namespaces/airlock-fixtures/secrets/api-key"],
    ["secret-helm-release.json", "/api/v1/namespaces/airlock-fixtures/secrets/sh.helm.release.v1.myapp.v1"],
    ["secret-list.json", "/api/v1/namespaces/airlock-fixtures/secrets"],
    ["configmap.json", "/api/v1/namespaces/airlock-fixtures/configmaps/app-config"],
    ["deployment.json", "/apis/apps/v1/namespaces/airlock-fixtures/deployments/web"],
  ])("%s: no planted value survives, and Secret data stays valid base64", (name, path) => {
    const output = mask(name, path);
    assertNoPlantedValue(output);
    const parsed = JSON.parse(output) as { kind: string; data?: Record<string, string>; items?: { data?: Record<string, string> }[] };
    if (parsed.kind !== "Secret" && parsed.kind !== "SecretList") return;
    for (const data of [parsed.data, ...(parsed.items ?? []).map((item) => item.data)]) {
      for (const value of Object.values(data ?? {})) {
        expect(Buffer.from(value, "base64").toString("base64")).toBe(value);
        expect(Buffer.from(value, "base64").toString("utf8")).toMatch(/^airlock:masked:/);
      }
    }
  });

  it("masks inside the last-applied annotation and keeps it valid JSON", () => {
    const output = JSON.parse(mask("secret-applied.json", "/api/v1/namespaces/airlock-fixtures/secrets/api-key")) as {
      metadata: { annotations: Record<string, string> };
    };
    const annotation = output.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"] ?? "";
    expect(() => JSON.parse(annotation) as unknown).not.toThrow();
    assertNoPlantedValue(annotation);
  });

  it("masks Secret data in a Table with includeObject=Object", () => {
    const output = mask(
      "table-secrets-includeObject.json",
      "/api/v1/namespaces/airlock-fixtures/secrets?includeObject=Object",
      "application/json;as=Table;v=v1;g=meta.k8s.io",
    );
    assertNoPlantedValue(output);
    expect((JSON.parse(output) as { kind: string }).kind).toBe("Table");
  });

  it("masks the TokenRequest token", () => {
    const raw = JSON.parse(read("tokenrequest.json").toString("utf8")) as { status: { token: string } };
    const output = mask("tokenrequest.json", "/api/v1/namespaces/airlock-fixtures/serviceaccounts/agent/token");
    expect(output).not.toContain(raw.status.token);
    expect(output).not.toContain(raw.status.token.split(".")[1]);
  });

  it("masks the captured watch stream identically whatever the chunk boundary", () => {
    const body = read("watch-secrets.jsonl");
    const whole = new WatchStreamMasker(defaultMaskConfig, "Secret");
    const reference = Buffer.concat([whole.push(body), whole.end()].map((step) => {
      if (!step.ok) throw new Error(step.message);
      return step.out;
    }));
    assertNoPlantedValue(reference.toString("utf8"));
    expect(reference.toString("utf8").trim().split("\n").map((line) => (JSON.parse(line) as { type: string }).type)).toEqual(["ADDED", "MODIFIED", "DELETED"]);
    for (let cut = 1; cut < body.length; cut++) {
      const masker = new WatchStreamMasker(defaultMaskConfig, "Secret");
      const parts = [masker.push(body.subarray(0, cut)), masker.push(body.subarray(cut)), masker.end()];
      const out = Buffer.concat(parts.map((step) => {
        if (!step.ok) throw new Error(step.message);
        return step.out;
      }));
      expect(out.equals(reference), `cut at ${cut}`).toBe(true);
    }
  });
});
