/**
 * The `patchbay` command.
 *   patchbay           run the bridge (config from the environment / PATCHBAY_CONFIG)
 *   patchbay doctor    check config, DNS, registrar, registration, Worker, ports; exit 0 only if all pass
 * SIGTERM/SIGINT drain: no new calls, live calls finish (up to DRAIN_TIMEOUT), exit 0. A second
 * signal exits at once.
 */
import { startBridge } from "./app";
import { loadConfigOrExit, redactConfig } from "./config/index";
import { runDoctor } from "./doctor/index";
import { registerOnce } from "./doctor/register-once";
import { createLogger } from "./logging";

export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const command = argv[0] ?? "run";
  if (command === "doctor") {
    const { ok } = await runDoctor(process.env, { registerOnce: (config) => registerOnce(config) });
    process.exit(ok ? 0 : 1);
  }
  if (command !== "run") {
    process.stderr.write(`usage: patchbay [run|doctor]\n`);
    process.exit(2);
  }

  const config = loadConfigOrExit();
  const logger = createLogger({ level: config.log.level, sipTrace: config.sip.trace });
  logger.info({ config: redactConfig(config) }, "starting patchbay bridge");
  if (config.sip.trace)
    logger.info(
      'SIP_TRACE on: every SIP message is logged as a debug "sip message" line, credentials masked',
    );

  process.on("unhandledRejection", (reason) => logger.error({ err: reason }, "unhandled rejection"));
  process.on("uncaughtException", (error) => {
    // A bug, not a condition we handle: say so and let the supervisor restart us.
    logger.fatal({ err: error }, "uncaught exception");
    logger.flush();
    process.exit(1);
  });

  let bridge: Awaited<ReturnType<typeof startBridge>>;
  try {
    bridge = await startBridge(config, logger);
  } catch (error) {
    logger.fatal({ err: error }, "could not start");
    logger.flush();
    process.exit(1);
  }

  let signals = 0;
  const onSignal = (signal: string) => {
    if (++signals > 1) {
      logger.warn({ signal }, "second signal; exiting now");
      logger.flush();
      process.exit(1);
    }
    logger.info({ signal }, "shutting down");
    bridge
      .drain()
      .then(() => {
        logger.info("stopped");
        logger.flush();
        process.exit(0);
      })
      .catch((error: unknown) => {
        logger.error({ err: error }, "error during shutdown");
        logger.flush();
        process.exit(1);
      });
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
}
