/**
 * Bridge ↔ Worker integration from Node: wrangler's createTestHarness() runs the real Worker (offline
 * env) and a real `ws` client plays the bridge; a local fake OpenAI-compatible server (loopback, free
 * port) serves STT, LLM and TTS to the default receptionist agent. Separate from the workerd suite.
 */
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    root: new URL("../..", import.meta.url).pathname,
    include: ["test/integration/**/*.test.ts"],
    environment: "node",
    testTimeout: 90_000,
    hookTimeout: 90_000,
  },
});
