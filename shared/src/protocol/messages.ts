/**
 * Control messages of the bridge ↔ Worker media socket (JSON text frames). Audio never travels here:
 * see ./frames.ts. Both ends validate every incoming message with these schemas; nothing is cast.
 * PROTOCOL.md beside the package root is the prose version of this file: change both together.
 */
import { z } from "zod";

export const PROTOCOL_VERSION = 1;

const callId = z.string().regex(/^[A-Za-z0-9_-]{8,64}$/, "call ids are 8-64 characters of [A-Za-z0-9_-]");
const codec = z.enum(["PCMU", "PCMA"]);
const dtmfDigit = z.string().regex(/^[0-9*#A-D]$/);
/** Stable hang-up causes; the bridge maps them to SIP (BYE reason / status) and metrics labels. */
export const hangupCause = z.enum([
  "normal", // someone said goodbye
  "caller-hangup",
  "agent-hangup",
  "transferred",
  "max-duration",
  "no-audio",
  "media-timeout",
  "cloud-unreachable",
  "rejected",
  "error",
]);
export type HangupCause = z.infer<typeof hangupCause>;

/** Stable error codes carried by `error` messages and close reasons. */
export const errorCode = z.enum([
  "protocol-version",
  "malformed-message",
  "unauthorized",
  "unknown-call",
  "call-ended",
  "superseded",
  "provider-failure",
  "internal",
]);
export type ErrorCode = z.infer<typeof errorCode>;

export const callMetadata = z.object({
  sipCallId: z.string().max(256),
  direction: z.enum(["inbound", "outbound"]),
  from: z.string().max(512),
  to: z.string().max(512),
  displayName: z.string().max(256).optional(),
  /** Selected X- headers from the INVITE (configurable allow-list on the bridge). */
  headers: z.record(z.string().max(64), z.string().max(1024)).default({}),
  codec,
  sampleRate: z.literal(8000),
  frameMs: z.literal(20),
  /** Explicit agent choice (outbound calls, X-Patchbay-Agent); the Worker falls back to routing rules. */
  agent: z.string().max(64).optional(),
  variables: z.record(z.string().max(64), z.string().max(2048)).optional(),
});
export type CallMetadata = z.infer<typeof callMetadata>;

// ---- bridge → Worker -------------------------------------------------------------------------

export const helloMessage = z.object({
  type: z.literal("hello"),
  protocol: z.number().int(),
  callId,
  call: callMetadata,
  bridge: z.object({ id: z.string().max(128), version: z.string().max(64) }),
  /** Present on a reconnect: the token the Worker gave in its welcome. */
  resumeToken: z.string().max(256).optional(),
  /** On a reconnect: the last agent audio sequence number the bridge received. */
  lastAgentSeq: z.number().int().nonnegative().optional(),
});

export const dtmfMessage = z.object({
  type: z.literal("dtmf"),
  digit: dtmfDigit,
  durationMs: z.number().int().nonnegative(),
  /** Milliseconds since the call was answered. */
  atMs: z.number().nonnegative(),
});

export const markPlayedMessage = z.object({
  type: z.literal("mark_played"),
  name: z.string().max(128),
  atMs: z.number().nonnegative(),
});

export const clearedMessage = z.object({
  type: z.literal("cleared"),
  /** Agent audio that was queued and thrown away by the clear. */
  discardedMs: z.number().nonnegative(),
  atMs: z.number().nonnegative(),
});

export const callStateMessage = z.object({
  type: z.literal("call_state"),
  state: z.enum(["answered", "hold", "resumed", "ending"]),
  atMs: z.number().nonnegative(),
});

export const bridgeHangupMessage = z.object({
  type: z.literal("hangup"),
  cause: hangupCause,
  by: z.enum(["caller", "bridge"]),
  sipStatus: z.number().int().optional(),
});

export const transferResultMessage = z.object({
  type: z.literal("transfer_result"),
  ok: z.boolean(),
  target: z.string().max(512),
  sipStatus: z.number().int().optional(),
  reason: z.string().max(256).optional(),
});

/**
 * Warm transfer progress (after a `transfer` with mode "warm"): the human's leg is being dialled, is
 * ringing, or answered. From `consulting` until the legs are joined, agent audio plays to the human
 * (not the caller, who hears silence) and the caller frames the Worker receives are the human's.
 */
export const transferProgressMessage = z.object({
  type: z.literal("transfer_progress"),
  target: z.string().max(512),
  state: z.enum(["dialing", "ringing", "consulting"]),
  atMs: z.number().nonnegative(),
});

export const statsMessage = z.object({
  type: z.literal("stats"),
  atMs: z.number().nonnegative(),
  rtp: z.object({
    packetsReceived: z.number().int().nonnegative(),
    packetsLost: z.number().int(),
    lossPercent: z.number().nonnegative(),
    jitterMs: z.number().nonnegative(),
    late: z.number().int().nonnegative(),
    reordered: z.number().int().nonnegative(),
    concealed: z.number().int().nonnegative(),
    roundTripMs: z.number().nonnegative().optional(),
  }),
  playout: z.object({
    queuedMs: z.number().nonnegative(),
    underruns: z.number().int().nonnegative(),
  }),
});

export const bridgeMessage = z.discriminatedUnion("type", [
  helloMessage,
  dtmfMessage,
  markPlayedMessage,
  clearedMessage,
  callStateMessage,
  bridgeHangupMessage,
  transferResultMessage,
  transferProgressMessage,
  statsMessage,
]);
export type BridgeMessage = z.infer<typeof bridgeMessage>;

// ---- Worker → bridge -------------------------------------------------------------------------

export const welcomeMessage = z.object({
  type: z.literal("welcome"),
  protocol: z.number().int(),
  callId,
  resumeToken: z.string().max(256),
  resumed: z.boolean(),
  agent: z.string().max(64),
});

export const clearMessage = z.object({ type: z.literal("clear") });

export const markMessage = z.object({ type: z.literal("mark"), name: z.string().max(128) });

export const workerHangupMessage = z.object({
  type: z.literal("hangup"),
  cause: hangupCause,
  reason: z.string().max(256).optional(),
});

export const transferMessage = z.object({
  type: z.literal("transfer"),
  target: z.string().min(1).max(512),
  mode: z.enum(["blind", "warm"]),
  /** Warm transfer: what the agent says to the human before joining the legs. */
  summary: z.string().max(4096).optional(),
});

/**
 * Warm transfer: join the caller and the human once the agent audio queued before this message (the
 * summary) has been played to the human. The bridge then answers `transfer_result` and, when it is
 * ok, ends the agent's part of the call with `hangup {cause: "transferred"}`.
 */
export const transferJoinMessage = z.object({ type: z.literal("transfer_join") });

/** Warm transfer: give up on the human (the agent changed its mind); the caller stays with the agent. */
export const transferCancelMessage = z.object({ type: z.literal("transfer_cancel") });

export const sendDtmfMessage = z.object({
  type: z.literal("send_dtmf"),
  digits: z.string().regex(/^[0-9*#A-D]{1,32}$/),
});

export const turnTimingMessage = z.object({
  type: z.literal("turn_timing"),
  turn: z.number().int().nonnegative(),
  /** Each stage's duration in ms; absent where the stage did not run. */
  endpointingMs: z.number().nonnegative().optional(),
  sttMs: z.number().nonnegative().optional(),
  llmFirstTokenMs: z.number().nonnegative().optional(),
  ttsFirstAudioMs: z.number().nonnegative().optional(),
  totalMs: z.number().nonnegative().optional(),
});

export const errorMessage = z.object({
  type: z.literal("error"),
  code: errorCode,
  message: z.string().max(1024),
});

export const workerMessage = z.discriminatedUnion("type", [
  welcomeMessage,
  clearMessage,
  markMessage,
  workerHangupMessage,
  transferMessage,
  transferJoinMessage,
  transferCancelMessage,
  sendDtmfMessage,
  turnTimingMessage,
  errorMessage,
]);
export type WorkerMessage = z.infer<typeof workerMessage>;

export type ParseResult<T> = { ok: true; message: T } | { ok: false; error: string };

function parseWith<T>(schema: z.ZodType<T>, text: string): ParseResult<T> {
  if (text.length > 65536) return { ok: false, error: `control message too large: ${text.length} > 65536` };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, error: "control message is not JSON" };
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    return {
      ok: false,
      error: `invalid control message at ${issue?.path.join(".") || "(root)"}: ${issue?.message}`,
    };
  }
  return { ok: true, message: result.data };
}

export const parseBridgeMessage = (text: string): ParseResult<BridgeMessage> =>
  parseWith(bridgeMessage, text);
export const parseWorkerMessage = (text: string): ParseResult<WorkerMessage> =>
  parseWith(workerMessage, text);

/** WebSocket close codes (4000-4999 are application-defined). */
export const CloseCode = {
  normal: 1000,
  protocolError: 4400,
  unauthorized: 4401,
  unknownCall: 4404,
  superseded: 4409,
  callEnded: 4410,
  internal: 4500,
} as const;
