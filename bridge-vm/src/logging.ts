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
}

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
