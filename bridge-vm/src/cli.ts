/**
 * The `patchbay` command.
 *   patchbay           run the bridge (config from the environment / PATCHBAY_CONFIG)
 *   patchbay doctor    check config, DNS, registrar, registration, Worker, ports; exit 0 only if all pass
 * SIGTERM/SIGINT drain: no new calls, live calls finish (up to DRAIN_TIMEOUT, then they get a BYE),
 * exit 0. A second signal ends the drain at once (BYE to every call, exit 0); a third, or hang-ups that
 * take longer than FORCED_STOP_MS, exit 1 without waiting. See onSignal below for why.
 */
import { startBridge } from "./app";
import { loadConfigOrExit, redactConfig } from "./config/index";
import { runDoctor } from "./doctor/index";
import { registerOnce } from "./doctor/register-once";
import { createLogger } from "./logging";

/** How long a second signal waits for the BYEs to be answered before giving up on a clean stop. */
const FORCED_STOP_MS = 3000;

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

  // Signals. The first drains (no new calls; live calls finish for up to DRAIN_TIMEOUT, then get a BYE)
  // and exits 0. systemd sends SIGTERM once (then SIGKILL after TimeoutStopSec), so a second one is a
  // person (`systemctl kill`, a second Ctrl-C) saying "stop now": end the drain at once the way its
  // deadline would, a BYE to every call still up so the PBX frees its channels instead of waiting for
  // an RTP timeout, and exit 0, a stop that was asked for, so the unit ends inactive, not failed. Only
  // if those hang-ups do not finish within FORCED_STOP_MS, or a third signal comes, does it exit 1 at
  // once: that stop was not clean (calls may be left without a BYE).
  let signals = 0;
  const exitNow = (code: number) => {
    logger.flush();
    process.exit(code);
  };
  const exitAfter = (stopping: Promise<void>) =>
    stopping
      .then(() => {
        logger.info("stopped");
        exitNow(0);
      })
      .catch((error: unknown) => {
        logger.error({ err: error }, "error during shutdown");
        exitNow(1);
      });
  const onSignal = (signal: string) => {
    signals++;
    if (signals === 1) {
      logger.info({ signal }, "shutting down");
      void exitAfter(bridge.drain());
      return;
    }
    if (signals === 2) {
      logger.warn(
        { signal, forcedStopMs: FORCED_STOP_MS },
        "second signal; ending the drain now: hanging up every call",
      );
      setTimeout(() => {
        logger.error({ forcedStopMs: FORCED_STOP_MS }, "calls not hung up in time; exiting anyway");
        exitNow(1);
      }, FORCED_STOP_MS);
      void exitAfter(bridge.stop());
      return;
    }
    logger.warn({ signal }, "third signal; exiting without waiting for the hang-ups");
    exitNow(1);
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
}
