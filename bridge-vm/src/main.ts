/**
 * Entry point: load and validate config (bad config → exit 2 with one line), start the service, and on
 * SIGINT/SIGTERM un-REGISTER, hang up and exit 0. A second signal exits at once.
 */
import { loadConfigOrExit, redactConfig } from "./config";
import { createLogger } from "./logging";
import { BridgeService } from "./service";

const config = loadConfigOrExit();
const logger = createLogger({ level: config.log.level });
logger.info({ config: redactConfig(config) }, "starting patchbay bridge");

let service: BridgeService | undefined;
let stopping = false;

async function shutdown(signal: string): Promise<void> {
  if (stopping) {
    logger.warn({ signal }, "second signal; exiting now");
    process.exit(1);
  }
  stopping = true;
  logger.info({ signal }, "shutting down");
  try {
    await service?.stop();
    logger.info("stopped");
  } catch (error) {
    logger.error({ err: error }, "error during shutdown");
  }
  logger.flush();
  process.exit(0);
}

process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("unhandledRejection", (reason) => logger.error({ err: reason }, "unhandled rejection"));
process.on("uncaughtException", (error) => {
  // A bug, not a condition we handle: say so in the log and let the supervisor restart us.
  logger.fatal({ err: error }, "uncaught exception");
  logger.flush();
  process.exit(1);
});

try {
  service = await BridgeService.start({ config, logger });
} catch (error) {
  logger.fatal({ err: error }, "could not start");
  logger.flush();
  process.exit(1);
}
