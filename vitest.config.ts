// Test tiers as vitest projects: unit (pure, no network), integration (real servers on port 0),
// e2e (real kubectl, kube-apiserver, ClickHouse and PostgreSQL started by .ci/run or test setup).
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      { test: { name: "unit", include: ["test/unit/**/*.test.ts"], testTimeout: 20_000, setupFiles: ["test/setup/fast-check-seed.ts"] } },
      { test: { name: "integration", include: ["test/integration/**/*.test.ts"], testTimeout: 60_000, hookTimeout: 120_000, setupFiles: ["test/setup/fast-check-seed.ts"] } },
      { test: { name: "e2e", include: ["test/e2e/**/*.test.ts"], testTimeout: 120_000, hookTimeout: 300_000, pool: "forks", poolOptions: { forks: { singleFork: true } } } },
    ],
  },
});
