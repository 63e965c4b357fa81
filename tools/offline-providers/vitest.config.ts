import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // espeak-ng and PocketSphinx are real processes on a shared 2-core machine: generous per-test
    // bounds, and one file at a time so decodes do not compete with each other.
    testTimeout: 20_000,
    hookTimeout: 20_000,
    fileParallelism: false,
  },
});
