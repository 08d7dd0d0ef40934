/**
 * @module test/unit/tap/mask-config.test
 * Masking settings: defaults (baseline on), path-qualified validation errors, frozen result.
 */
import { describe, expect, it } from "vitest";
import { defaultMaskConfig, parseMaskConfig, TEXT_DETECTOR_NAMES } from "../../../tap/mask/mask-config.js";
import { kubePathHints } from "../../../tap/mask/kube-path-hints.js";
import { pathGlobMatches } from "../../../tap/mask/response-plan.js";

describe("mask config", () => {
  it("has the baseline on by default and nothing skipped", () => {
    expect(defaultMaskConfig.maxBodyBytes).toBe(32 * 1024 * 1024);
    expect(defaultMaskConfig.skipBodyFor).toEqual([]);
    for (const name of TEXT_DETECTOR_NAMES) expect(defaultMaskConfig.detectors[name]).toBe(true);
    expect(defaultMaskConfig.maskConfigMaps && defaultMaskConfig.maskEnvValues && defaultMaskConfig.maskLogs).toBe(true);
    expect(Object.isFrozen(defaultMaskConfig)).toBe(true);
  });

  it("matches sensitive key names and not ordinary ones", () => {
    for (const key of ["DB_PASSWORD", "db_passwd", "API_KEY", "apiKey", "GITHUB_TOKEN", "client-secret", "PRIVATE_KEY", "AWS_ACCESS_KEY_ID", "SENTRY_DSN", "credentials.json"]) {
      expect(defaultMaskConfig.sensitiveKey.test(key), key).toBe(true);
    }
    for (const key of ["LOG_LEVEL", "PORT", "HOSTNAME", "feature.flags", "COMPASS_URL"]) expect(defaultMaskConfig.sensitiveKey.test(key), key).toBe(false);
  });

  it("reports path-qualified errors", () => {
    const result = parseMaskConfig({ maxBodyBytes: -1, detectors: { jwt: "yes" }, sensitiveKeyPatterns: ["("], extra: 1 });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const text = result.errors.join("\n");
    expect(text).toContain("maxBodyBytes:");
    expect(text).toContain("detectors.jwt:");
    expect(text).toContain("sensitiveKeyPatterns.0:");
    expect(text).toMatch(/extra|unrecognized/i);
  });

  it("accepts explicit skip rules and rejects vague ones", () => {
    expect(parseMaskConfig({ skipBodyFor: [{ resource: "pods", verbs: ["list"] }, { pathGlob: "/openapi/**" }] }).ok).toBe(true);
    expect(parseMaskConfig({ skipBodyFor: [{ resource: "pods" }] }).ok).toBe(false);
    expect(parseMaskConfig({ skipBodyFor: [{ pathGlob: "openapi" }] }).ok).toBe(false);
  });

  it("matches path globs segment-wise", () => {
    expect(pathGlobMatches("/openapi/**", "/openapi/v3/apis/apps/v1?hash=1")).toBe(true);
    expect(pathGlobMatches("/api/v1/namespaces/*/pods", "/api/v1/namespaces/prod/pods")).toBe(true);
    expect(pathGlobMatches("/api/v1/namespaces/*/pods", "/api/v1/namespaces/prod/x/pods")).toBe(false);
    expect(pathGlobMatches("/version", "/version.json")).toBe(false);
  });

  it("reads Kubernetes path hints like kube-apiserver", () => {
    expect(kubePathHints("/api/v1/namespaces/prod/secrets/db")).toEqual({ resource: "secrets", subresource: undefined, isWatch: false });
    expect(kubePathHints("/api/v1/namespaces/prod/pods/web/log?follow=true")).toEqual({ resource: "pods", subresource: "log", isWatch: false });
    expect(kubePathHints("/api/v1/watch/namespaces/prod/secrets")).toMatchObject({ resource: "secrets", isWatch: true });
    expect(kubePathHints("/apis/apps/v1/deployments?watch=1")).toMatchObject({ resource: "deployments", isWatch: true });
    expect(kubePathHints("/api/v1/secrets?watch=false")).toMatchObject({ isWatch: false });
    expect(kubePathHints("/api/v1/namespaces/prod")).toMatchObject({ resource: "namespaces" });
    expect(kubePathHints("/api/v1/namespaces/prod/status")).toMatchObject({ resource: "namespaces", subresource: "status" });
    expect(kubePathHints("/healthz")).toMatchObject({ resource: undefined });
  });
});
