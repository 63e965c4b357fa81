/**
 * Config of the control channel and outbound calls, as a sub-schema the main schema embeds under
 * `outbound` (see the report for the exact lines; src/config/schema.ts belongs to another owner).
 * Secure by default: outbound calling is off, and with it on, no destination is allowed until the
 * operator lists patterns. Patterns must be anchored (^…$) so "1234" cannot match "0099912345".
 */
import { z } from "zod";

const bool = z.preprocess(
  (value) => (typeof value === "string" ? ["1", "true", "yes", "on"].includes(value.toLowerCase()) : value),
  z.boolean(),
);

/**
 * Whitespace- or semicolon-separated in an environment variable (NOT commas: `\d{3,4}` has one).
 */
const patternList = z.preprocess(
  (value) => (typeof value === "string" ? value.split(/[\s;]+/).filter(Boolean) : value),
  z.array(
    z
      .string()
      .max(256)
      .refine((pattern) => pattern.startsWith("^") && pattern.endsWith("$"), "anchor every pattern: ^…$")
      .refine((pattern) => {
        try {
          new RegExp(pattern);
          return true;
        } catch {
          return false;
        }
      }, "not a valid regular expression"),
  ),
);
const hostList = z.preprocess(
  (value) => (typeof value === "string" ? value.split(/[\s,]+/).filter(Boolean) : value),
  z.array(z.string().regex(/^[A-Za-z0-9.-]+$/, "a host name or IPv4 address")),
);

export const outboundConfigSchema = z
  .object({
    /** Off by default: the bridge opens no control channel and originates nothing. */
    enabled: bool.default(false),
    /** Allowed destinations (number, or the user part of a SIP URI), e.g. ^\+1\d{10}$ ^\d{3,4}$ */
    allowedDestinations: patternList.default([]),
    /**
     * Transfer targets the agent may REFER a call to (inbound and outbound), same syntax. Empty: the
     * outbound patterns apply; both empty: no transfer is allowed.
     */
    transferAllowedDestinations: patternList.default([]),
    /**
     * How a warm transfer joins the caller and the human (PROTOCOL.md §9): "relay" through the bridge
     * (any PBX), or "replaces": REFER with Replaces (RFC 3891; Asterisk/FreePBX), relay if refused.
     */
    transferWarmMethod: z.enum(["relay", "replaces"]).default("relay"),
    /** SIP URI hosts allowed besides the SIP domain / registrar host. */
    allowedHosts: hostList.default([]),
    /** Concurrent outbound calls on this bridge (ringing + answered). */
    maxCalls: z.coerce.number().int().min(0).max(10_000).default(10),
    /** New outbound INVITEs per second (token bucket), and the bucket's burst. */
    cps: z.coerce.number().min(0.01).max(100).default(1),
    burst: z.coerce.number().int().min(1).max(100).default(2),
    /** Accepted originates waiting for a token beyond this are refused as rate-limited. */
    maxQueueDelayMs: z.coerce.number().int().min(0).max(600_000).default(30_000),
    ringTimeoutS: z.coerce.number().int().min(5).max(300).default(30),
    maxDurationS: z.coerce
      .number()
      .int()
      .min(10)
      .max(4 * 3600)
      .default(3600),
    /** 3xx answers are reported as failed/redirected unless this is on (then one hop, same policy). */
    followRedirects: bool.default(false),
  })
  .default({
    enabled: false,
    allowedDestinations: [],
    transferAllowedDestinations: [],
    transferWarmMethod: "relay",
    allowedHosts: [],
    maxCalls: 10,
    cps: 1,
    burst: 2,
    maxQueueDelayMs: 30_000,
    ringTimeoutS: 30,
    maxDurationS: 3600,
    followRedirects: false,
  });

export type OutboundConfig = z.infer<typeof outboundConfigSchema>;

/** Environment variables for the main ENV_KEYS table. */
export const OUTBOUND_ENV_KEYS: Readonly<Record<string, string>> = {
  OUTBOUND_ENABLED: "outbound.enabled",
  OUTBOUND_ALLOWED_DESTINATIONS: "outbound.allowedDestinations",
  OUTBOUND_ALLOWED_HOSTS: "outbound.allowedHosts",
  TRANSFER_ALLOWED_DESTINATIONS: "outbound.transferAllowedDestinations",
  TRANSFER_WARM_METHOD: "outbound.transferWarmMethod",
  OUTBOUND_MAX_CALLS: "outbound.maxCalls",
  OUTBOUND_CPS: "outbound.cps",
  OUTBOUND_BURST: "outbound.burst",
  OUTBOUND_MAX_QUEUE_DELAY_MS: "outbound.maxQueueDelayMs",
  OUTBOUND_RING_TIMEOUT: "outbound.ringTimeoutS",
  OUTBOUND_MAX_DURATION: "outbound.maxDurationS",
  OUTBOUND_FOLLOW_REDIRECTS: "outbound.followRedirects",
};
