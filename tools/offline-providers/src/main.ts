/**
 * `pnpm --filter @patchbay/offline-providers start`: runs the offline demo providers until SIGINT/SIGTERM.
 * Env: PORT (default 0 = any free port, printed), HOST (default 127.0.0.1), OFFLINE_PROVIDERS_AUTH=off to
 * drop the bearer check, OFFLINE_LATENCY_{STT,LLM,LLM_TOKEN,TTS}_MS for fixed added latency,
 * OFFLINE_TRANSFER_TARGET for the scripted agent's transfers.
 */
import { latencyFromEnv } from "./http/latency";
import { startOfflineProviders } from "./server";

const port = Number(process.env.PORT ?? "0");
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`PORT must be an integer 0-65535, got '${process.env.PORT}'`);
  process.exit(2);
}

const providers = await startOfflineProviders({
  port,
  host: process.env.HOST ?? "127.0.0.1",
  requireAuth: process.env.OFFLINE_PROVIDERS_AUTH !== "off",
  latency: latencyFromEnv(process.env),
  ...(process.env.OFFLINE_TRANSFER_TARGET ? { transferTarget: process.env.OFFLINE_TRANSFER_TARGET } : {}),
});
// One machine-readable line first (scripts wait for it), then the human hint.
console.log(JSON.stringify({ event: "listening", url: providers.url, openaiBaseUrl: `${providers.url}/v1` }));
console.log(`offline demo providers (espeak-ng, PocketSphinx, scripted agent) at ${providers.url}/v1`);

const shutdown = (): void => {
  providers.close().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
};
process.once("SIGINT", shutdown);
process.once("SIGTERM", shutdown);
