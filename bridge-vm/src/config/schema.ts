/**
 * The bridge's whole configuration: one validated, frozen object built once at boot.
 * Sources, later wins: defaults here → JSON file named by PATCHBAY_CONFIG → environment variables.
 * The environment variable for each key is listed in ENV_KEYS below (and in deploy/bridge.env.example).
 */
import { isIP } from "node:net";
import { z } from "zod";
import { OUTBOUND_ENV_KEYS, outboundConfigSchema } from "../control/config";

const port = z.coerce.number().int().min(1).max(65535);
const bool = z.preprocess(
  (value) => (typeof value === "string" ? ["1", "true", "yes", "on"].includes(value.toLowerCase()) : value),
  z.boolean(),
);
/** A list from JSON, or from one environment variable separated by commas/spaces. */
const listOf = <Item extends z.ZodType>(item: Item) =>
  z.preprocess(
    (value) => (typeof value === "string" ? value.split(/[\s,]+/).filter(Boolean) : value),
    z.array(item),
  );
/**
 * One allow-list entry: an IPv4/IPv6 address with an optional prefix in range (/0–32, /0–128). Checked
 * here, not only where it is used: the allow-list skips entries it cannot parse, so a typo such as
 * 10.0.0.0/99 would otherwise boot a bridge that silently refuses every call.
 */
const cidr = z.string().refine(
  (text) => {
    const [address = "", prefix, extra] = text.split("/");
    const family = isIP(address);
    if (family === 0 || extra !== undefined) return false;
    if (prefix === undefined) return true;
    return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
  },
  { message: "an IPv4/IPv6 address or CIDR such as 192.0.2.10 or 10.0.0.0/8" },
);
const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/, "host or host:port, e.g. pbx.example.com:5060");

export const configSchema = z
  .object({
    sip: z.object({
      /** Registrar (and outbound proxy) as host[:port]. */
      registrar: hostPort,
      transport: z.enum(["udp", "tcp"]).default("udp"),
      /** The extension number / SIP user the bridge registers as. */
      username: z.string().min(1),
      /** Digest username when it differs from the extension (FreePBX: usually the same). */
      authUsername: z.string().min(1).optional(),
      password: z.string().min(1),
      /** SIP domain for From/To/AOR; defaults to the registrar host. */
      domain: z.string().min(1).optional(),
      localAddress: z.string().default("0.0.0.0"),
      localPort: port.default(5060),
      /** Address the PBX should reach us at (Contact, Via, SDP c=) when we sit behind NAT. */
      publicAddress: z.string().optional(),
      registerExpiresS: z.coerce.number().int().min(60).max(86400).default(600),
      keepalive: z.enum(["crlf", "options", "off"]).default("crlf"),
      keepaliveIntervalS: z.coerce.number().int().min(5).max(3600).default(25),
      /** Who may send us INVITEs; empty means "the registrar's resolved addresses". */
      allowedSources: listOf(cidr).default([]),
      /** What a source outside the allow-list gets: a 403, or no answer at all. */
      rejectMode: z.enum(["403", "silent"]).default("silent"),
      /** Delay between 180 Ringing and 200 OK; 0 answers at once. */
      answerDelayMs: z.coerce.number().int().min(0).max(60000).default(0),
      sendRinging: bool.default(true),
      maxCallS: z.coerce.number().int().min(10).max(86400).default(3600),
      sessionExpiresS: z.coerce.number().int().min(90).max(86400).default(1800),
      minSessionExpiresS: z.coerce.number().int().min(90).max(86400).default(90),
      maxConcurrentCalls: z.coerce.number().int().min(1).max(10000).default(200),
      /** X- headers from the INVITE forwarded to the agent. */
      forwardHeaders: listOf(z.string()).default(["X-Patchbay-Agent"]),
      trace: bool.default(false),
    }),
    rtp: z
      .object({
        portMin: port.default(10000),
        portMax: port.default(20000),
        /** Latch onto the source address of the first valid packets (PBX behind NAT). */
        latch: bool.default(true),
        timeoutS: z.coerce.number().int().min(0).max(3600).default(30),
        /** What the bridge sends while the agent is silent: G.711 silence, or nothing. */
        idle: z.enum(["silence", "none"]).default("silence"),
      })
      .refine((rtp) => rtp.portMin % 2 === 0 && rtp.portMax > rtp.portMin + 2, {
        message: "must be even and at least 2 below the maximum (RTP_PORT_MAX / rtp.portMax)",
        path: ["portMin"],
      }),
    recording: z.object({
      enabled: bool.default(false),
      /** Tokens: {callId} {date} {time} {from} {to}. */
      path: z.string().default("./recordings/{date}/{callId}.wav"),
    }),
    cloud: z.object({
      /** Worker base URL, e.g. wss://patchbay.example.workers.dev; media sockets go to {url}/v1/media/{callId}. */
      url: z
        .string()
        .regex(/^(wss?|https?):\/\//, "a ws://, wss://, http:// or https:// URL")
        .optional(),
      secret: z.string().min(16, "at least 16 characters").optional(),
      /** When the Worker is unreachable at answer time: 503 (PBX fails over) or transfer to a fallback. */
      fallback: z.enum(["reject", "transfer"]).default("reject"),
      fallbackTarget: z.string().optional(),
      connectTimeoutMs: z.coerce.number().int().min(100).max(30000).default(3000),
      bridgeId: z.string().min(1).optional(),
    }),
    http: z.object({
      host: z.string().default("127.0.0.1"),
      /** 0 picks a free port (tests); the bound port is logged. */
      port: z.coerce.number().int().min(0).max(65535).default(9090),
    }),
    log: z.object({
      level: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info"),
    }),
    drainTimeoutS: z.coerce.number().int().min(0).max(86400).default(300),
    /** Outbound calls through the Worker's control channel (off by default; see control/config.ts). */
    outbound: outboundConfigSchema,
  })
  .refine((config) => config.cloud.fallback !== "transfer" || Boolean(config.cloud.fallbackTarget), {
    message: "required when cloud.fallback is transfer",
    path: ["cloud", "fallbackTarget"],
  });

export type BridgeConfig = Readonly<z.infer<typeof configSchema>>;

/** Environment variable → config path. One place, so docs, deploy files and doctor agree. */
export const ENV_KEYS: Readonly<Record<string, string>> = {
  SIP_REGISTRAR: "sip.registrar",
  SIP_TRANSPORT: "sip.transport",
  SIP_USERNAME: "sip.username",
  SIP_AUTH_USERNAME: "sip.authUsername",
  SIP_PASSWORD: "sip.password",
  SIP_DOMAIN: "sip.domain",
  SIP_LOCAL_ADDRESS: "sip.localAddress",
  SIP_LOCAL_PORT: "sip.localPort",
  SIP_PUBLIC_ADDRESS: "sip.publicAddress",
  SIP_REGISTER_EXPIRES: "sip.registerExpiresS",
  SIP_KEEPALIVE: "sip.keepalive",
  SIP_KEEPALIVE_INTERVAL: "sip.keepaliveIntervalS",
  SIP_ALLOWED_SOURCES: "sip.allowedSources",
  SIP_REJECT_MODE: "sip.rejectMode",
  SIP_ANSWER_DELAY_MS: "sip.answerDelayMs",
  SIP_SEND_RINGING: "sip.sendRinging",
  SIP_MAX_CALL_SECONDS: "sip.maxCallS",
  SIP_SESSION_EXPIRES: "sip.sessionExpiresS",
  SIP_MIN_SESSION_EXPIRES: "sip.minSessionExpiresS",
  SIP_MAX_CONCURRENT_CALLS: "sip.maxConcurrentCalls",
  SIP_FORWARD_HEADERS: "sip.forwardHeaders",
  SIP_TRACE: "sip.trace",
  RTP_PORT_MIN: "rtp.portMin",
  RTP_PORT_MAX: "rtp.portMax",
  RTP_LATCH: "rtp.latch",
  RTP_TIMEOUT: "rtp.timeoutS",
  RTP_IDLE: "rtp.idle",
  RECORDING_ENABLED: "recording.enabled",
  RECORDING_PATH: "recording.path",
  CLOUD_URL: "cloud.url",
  CLOUD_SECRET: "cloud.secret",
  CLOUD_FALLBACK: "cloud.fallback",
  CLOUD_FALLBACK_TARGET: "cloud.fallbackTarget",
  CLOUD_CONNECT_TIMEOUT_MS: "cloud.connectTimeoutMs",
  BRIDGE_ID: "cloud.bridgeId",
  HTTP_HOST: "http.host",
  HTTP_PORT: "http.port",
  LOG_LEVEL: "log.level",
  DRAIN_TIMEOUT: "drainTimeoutS",
  ...OUTBOUND_ENV_KEYS,
};

/** Keys whose values must never be printed (logs, doctor output, error messages). */
export const SECRET_PATHS: ReadonlySet<string> = new Set(["sip.password", "cloud.secret"]);
