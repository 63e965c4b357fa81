/**
 * The default test config: everything under test/ except test/providers (H5's vendor suites, see
 * vitest.providers.config.ts), run inside workerd with the Worker from ../wrangler.toml, environment
 * "offline" (no AI binding). Secrets are test values. Outbound fetches from the Worker (webhook tools,
 * the call-ended webhook) go to an in-process handler standing in for the operator's server; it records
 * what it got and answers GET https://hooks.test/__received with the log.
 */
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

const received: { url: string; signature: string | null; body: string }[] = [];

async function hooks(request: Request): Promise<Response> {
  const url = new URL(request.url);
  if (url.hostname !== "hooks.test") return new Response("no network in tests", { status: 502 });
  if (url.pathname === "/__received") return Response.json(received);
  if (url.pathname === "/__reset") {
    received.length = 0;
    return Response.json({ ok: true });
  }
  const body = await request.text();
  received.push({ url: url.pathname, signature: request.headers.get("x-patchbay-signature"), body });
  if (url.pathname === "/lookup") {
    const { arguments: args } = JSON.parse(body) as { arguments: { orderNumber?: string } };
    return Response.json({ order: args.orderNumber, status: "shipped", eta: "tomorrow" });
  }
  if (url.pathname === "/slow") return new Promise(() => {});
  return Response.json({ ok: true });
}

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "../wrangler.toml", environment: "offline" },
      miniflare: {
        compatibilityDate: "2026-08-01",
        bindings: {
          BRIDGE_SECRET: "test-bridge-secret-0123456789abcdef",
          API_TOKEN: "test-api-token-0123456789",
          TEST_WEBHOOK_SECRET: "test-webhook-secret-0123456789",
        },
        outboundService: hooks,
      },
    }),
  ],
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/providers/**", "test/integration/**", "**/node_modules/**"],
    setupFiles: ["test/fakes/register.ts"],
    testTimeout: 20_000,
  },
});
