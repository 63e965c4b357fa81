/**
 * Provider clients run inside workerd (they use fetch-upgrade WebSockets and the AI binding), so their
 * tests do too. The fake vendor servers are Node processes started by globalSetup on 127.0.0.1; the
 * tests reach them over ordinary fetch and read their URLs through inject("fakeVendors").
 */
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  plugins: [
    cloudflareTest({
      miniflare: { compatibilityDate: "2026-08-01", compatibilityFlags: [] },
    }),
  ],
  test: {
    include: ["test/providers/**/*.test.ts"],
    globalSetup: ["test/providers/global-setup.ts"],
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
});
