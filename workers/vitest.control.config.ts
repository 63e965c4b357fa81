/**
 * The control-plane suite (test/control/*.spec.ts) inside workerd, against a test-only Worker
 * (test/control/wrangler.test.toml → entry.ts) that holds just the BridgeRegistry and the control
 * routes. Files are *.spec.ts so the default config (test/**\/*.test.ts) does not pick them up
 * without the BRIDGE_REGISTRY binding. Heartbeats are shortened so "a silent bridge leaves the
 * rotation" takes a fraction of a second.
 */
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./test/control/wrangler.test.toml" },
      miniflare: {
        compatibilityDate: "2026-08-01",
        bindings: {
          BRIDGE_SECRET: "test-bridge-secret-0123456789abcdef",
          API_TOKEN: "test-api-token-0123456789",
          CONTROL_HEARTBEAT_INTERVAL_MS: "150",
          // The global calls-per-second cap, high enough that the other tests never meet it.
          OUTBOUND_MAX_CALLS_PER_SECOND: "10",
        },
      },
    }),
  ],
  test: {
    include: ["test/control/**/*.spec.ts"],
    testTimeout: 20_000,
    silent: "passed-only",
  },
});
