/**
 * One pino logger for the bridge. Children carry scope (`callId`, `sipCallId`, `component`) so every
 * line of a call can be found with one filter. Secrets never reach a log line: config is redacted by
 * the caller (redactConfig), pino redacts known secret keys, and SIP traces mask digest credentials.
 */
import { type Logger, type LoggerOptions, pino } from "pino";

export type { Logger };

export interface LoggingOptions {
  level: LoggerOptions["level"];
  /** Where lines go; defaults to stdout. Tests pass a stream to capture lines. */
  destination?: NodeJS.WritableStream;
  /**
   * SIP_TRACE. The transports log every SIP message at debug ("sip message", credentials masked), so on
   * its own the switch showed nothing at the default LOG_LEVEL=info. With `sipTrace` the SIP transports'
   * loggers (and only theirs) run at debug whatever `level` says: turning the trace on is enough, and it
   * does not drown the trace in every other component's debug lines.
   */
  sipTrace?: boolean;
}

/** The `component` of the loggers the SIP transports get (src/service.ts); their debug lines are the trace. */
export const SIP_TRACE_COMPONENTS: ReadonlySet<string> = new Set(["sip-udp", "sip-tcp"]);

export function createLogger(options: LoggingOptions): Logger {
  const config: LoggerOptions = {
    level: options.level ?? "info",
    base: { service: "patchbay-bridge" },
    redact: {
      paths: ["password", "secret", "*.password", "*.secret", "authorization", "*.authorization"],
      censor: "***",
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (options.sipTrace) {
    // Called for every child (and grandchild) once its bindings are set; the child's own later
    // children inherit the lowered level.
    config.onChild = (child) => {
      const component = (child.bindings() as { component?: unknown }).component;
      if (
        typeof component === "string" &&
        SIP_TRACE_COMPONENTS.has(component) &&
        !child.isLevelEnabled("debug")
      )
        child.level = "debug";
    };
  }
  return options.destination
    ? pino(config, options.destination as unknown as pino.DestinationStream)
    : pino(config);
}

/** A logger that drops everything (unit tests, optional dependencies). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

const CREDENTIAL_HEADER = /^((?:Proxy-)?Authorization\s*:\s*\S+\s)(.*)$/gim;

/**
 * A SIP message as text for trace logs, with Authorization / Proxy-Authorization values masked (the
 * scheme stays visible) and bodies cut at `maxBodyChars`.
 */
export function redactSipText(text: string, maxChars = 4000): string {
  const masked = text.replace(CREDENTIAL_HEADER, (_line, head: string) => `${head}***`);
  return masked.length > maxChars
    ? `${masked.slice(0, maxChars)}…(${masked.length - maxChars} more)`
    : masked;
}
