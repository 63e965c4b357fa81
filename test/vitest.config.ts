import { defineConfig } from "vitest/config";

// Real peers (Kamailio, SIPp, baresip) bind ports and fork processes: run test files one at a time,
// in child processes (so the exit hook in support/process.ts can kill strays), with generous timeouts.
export default defineConfig({
  test: {
    include: ["**/*.test.ts"],
    exclude: ["**/node_modules/**"],
    pool: "forks",
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 15_000,
    setupFiles: ["./support/setup.ts"],
  },
});
