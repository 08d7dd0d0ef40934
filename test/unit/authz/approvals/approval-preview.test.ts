/**
 * @module test/unit/authz/approvals/approval-preview.test
 * The approver preview never shows Secret/ConfigMap bodies or secret-looking values.
 */
import { describe, expect, it } from "vitest";
import { buildApprovalPreview, MASKED_VALUE } from "../../../../authz/approvals/approval-preview.js";
import type { ApprovalPreviewInput } from "../../../../authz/approvals/approval-preview.js";
import type { ApprovalRequestAttributes } from "../../../../authz/approvals/approval-record.js";

const podAttrs: ApprovalRequestAttributes = {
  verb: "create",
  apiGroup: "",
  apiVersion: "v1",
  resource: "pods",
  subresource: "",
  namespace: "prod",
  name: "",
  resourceRequest: true,
};

function input(over: Partial<ApprovalPreviewInput>): ApprovalPreviewInput {
  return { method: "post", path: "/api/v1/namespaces/prod/pods", query: "?dryRun=All", attributes: podAttrs, body: undefined, maxBytes: 16_384, ...over };
}

describe("buildApprovalPreview", () => {
  it("keeps method, path, query and only the known attribute fields", () => {
    const richer = { ...podAttrs, kubeVerb: "create", parts: ["pods"], query: { dryRun: ["All"] } };
    const p = buildApprovalPreview(input({ attributes: richer }));
    expect(p).toEqual({ method: "POST", path: "/api/v1/namespaces/prod/pods", query: "dryRun=All", attributes: podAttrs, body: { kind: "none" } });
  });

  it.each(["secrets", "configmaps"])("withholds %s bodies without a masker", (resource) => {
    const body = JSON.stringify({ kind: "Secret", data: { password: "aHVudGVyMg==" } });
    const p = buildApprovalPreview(input({ attributes: { ...podAttrs, resource }, body }));
    expect(p.body).toEqual({ kind: "withheld", reason: `${resource} bodies are never shown` });
    expect(JSON.stringify(p)).not.toContain("aHVudGVyMg==");
  });

  it("masks env values, secret-looking keys, embedded Secret data and last-applied annotations in other bodies", () => {
    const body = JSON.stringify({
      kind: "Pod",
      metadata: { name: "x", annotations: { "kubectl.kubernetes.io/last-applied-configuration": '{"password":"p1"}' } },
      spec: {
        containers: [
          {
            name: "c",
            image: "nginx",
            env: [
              { name: "DB_URL", value: "postgres://u:p2@db" },
              { name: "FROM_SECRET", valueFrom: { secretKeyRef: { name: "s", key: "k" } } },
            ],
            args: ["--token", "visible-arg"],
          },
        ],
      },
      items: [{ kind: "Secret", data: { a: "c2VjcmV0" }, stringData: { b: "plain-secret" } }],
      config: { apiKey: "k-123", nested: { clientSecret: "cs" } },
    });
    const p = buildApprovalPreview(input({ body: Buffer.from(body) }));
    expect(p.body.kind).toBe("masked");
    const text = p.body.kind === "masked" ? p.body.text : "";
    for (const secret of ["p1", "p2@db", "c2VjcmV0", "plain-secret", "k-123", '"cs"']) expect(text).not.toContain(secret);
    const shown = JSON.parse(text) as {
      spec: { containers: { env: { name: string; value?: string; valueFrom?: unknown }[]; image: string }[] };
      items: { data: Record<string, string> }[];
    };
    expect(shown.spec.containers[0]?.env[0]).toEqual({ name: "DB_URL", value: MASKED_VALUE });
    expect(shown.spec.containers[0]?.env[1]?.valueFrom).toEqual({ secretKeyRef: { name: "s", key: "k" } });
    expect(shown.spec.containers[0]?.image).toBe("nginx");
    expect(shown.items[0]?.data).toEqual({ a: MASKED_VALUE });
  });

  it("withholds bodies that are not JSON", () => {
    expect(buildApprovalPreview(input({ body: "apiVersion: v1\nkind: Pod\n" })).body).toEqual({ kind: "withheld", reason: "the body is not JSON and cannot be masked" });
  });

  it("uses an injected masker when given, and withholds when it fails or throws", () => {
    const secret = input({ attributes: { ...podAttrs, resource: "secrets" }, body: '{"data":{"a":"b"}}' });
    expect(buildApprovalPreview({ ...secret, maskBody: () => ({ ok: true, text: '{"data":{"a":"***"}}' }) }).body).toEqual({
      kind: "masked",
      text: '{"data":{"a":"***"}}',
      truncated: false,
    });
    expect(buildApprovalPreview({ ...secret, maskBody: () => ({ ok: false }) }).body.kind).toBe("withheld");
    expect(
      buildApprovalPreview({
        ...secret,
        maskBody: () => {
          throw new Error("boom");
        },
      }).body.kind,
    ).toBe("withheld");
  });

  it("truncates to maxBytes on a character boundary", () => {
    const p = buildApprovalPreview(input({ body: JSON.stringify({ note: "é".repeat(400) }), maxBytes: 301 }));
    expect(p.body).toMatchObject({ kind: "masked", truncated: true });
    const text = p.body.kind === "masked" ? p.body.text : "";
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(301);
    expect(text).not.toContain("\uFFFD");
  });
});
