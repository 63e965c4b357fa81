/**
 * The bridge ↔ Worker CONTROL channel (one WebSocket per bridge, not per call): the bridge announces
 * itself and its free capacity, the Worker asks it to originate calls, the bridge acknowledges and
 * reports each outbound call's progress. JSON text frames, validated on both ends with these schemas.
 * Liveness uses the bare text frame "ping", answered "pong" by the Durable Object's auto-response
 * (never JSON, so it never wakes a hibernated object). CONTROL-PROTOCOL.md is the prose version of
 * this file: change both together.
 */
import { z } from "zod";

export const CONTROL_PROTOCOL_VERSION = 1;

/** Liveness frames (exact text): the registry answers without waking up. */
export const CONTROL_PING = "ping";
export const CONTROL_PONG = "pong";

/** The subject the bridge signs with signCallToken(BRIDGE_SECRET, ...) to open its control socket. */
export function controlTokenSubject(bridgeId: string): string {
  return `bridge-${bridgeId}`;
}

export const bridgeIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, "bridge ids are 1-64 characters of [A-Za-z0-9_-]");
const callId = z.string().regex(/^[A-Za-z0-9_-]{8,64}$/, "call ids are 8-64 characters of [A-Za-z0-9_-]");
const requestId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{8,128}$/, "request ids are 8-128 characters of [A-Za-z0-9_-]");

/**
 * A destination as the API caller gives it: an E.164-ish number / extension, or a SIP URI. The shape is
 * checked here; WHICH destinations may be dialled is the bridge's policy (toll-fraud allow-list).
 */
export const destinationSchema = z
  .string()
  .min(1)
  .max(256)
  .regex(/^(?:\+?[0-9*#]{1,32}|sips?:[^\s<>"]{1,250})$/, "a number (+digits) or a sip:/sips: URI");

export const bridgeHealth = z.enum(["ok", "degraded", "draining"]);
export type BridgeHealth = z.infer<typeof bridgeHealth>;

export const bridgeCapacity = z.object({
  maxCalls: z.number().int().nonnegative().max(100_000),
  activeCalls: z.number().int().nonnegative().max(100_000),
});
export type BridgeCapacity = z.infer<typeof bridgeCapacity>;

/**
 * What POST /v1/calls accepts (also the payload of `originate`, minus the ids). There is no `from`: the
 * From of an outbound INVITE is the bridge's registered extension, which the PBX identifies and
 * authenticates it by (Asterisk `identify_by=username`); the number callees see is the PBX's outbound
 * route's business. `callerId` is the From display name.
 */
export const originateRequest = z
  .object({
    to: destinationSchema,
    callerId: z.string().max(64).optional(),
    agent: z.string().max(64).optional(),
    variables: z.record(z.string().max(64), z.string().max(2048)).optional(),
    maxDurationS: z
      .number()
      .int()
      .min(10)
      .max(4 * 3600)
      .optional(),
    ringTimeoutS: z.number().int().min(5).max(300).optional(),
  })
  .strict();
export type OriginateRequest = z.infer<typeof originateRequest>;

/** Progress of an outbound call. `completed` = answered and ended; `failed` = never answered. */
export const outboundCallState = z.enum(["queued", "ringing", "answered", "completed", "failed"]);
export type OutboundCallState = z.infer<typeof outboundCallState>;
export const TERMINAL_CALL_STATES: readonly OutboundCallState[] = ["completed", "failed"];

/** Stable failure reasons (`failed.reason`, `originate_ack.reason`). */
export const outboundFailure = z.enum([
  "destination-not-allowed",
  "concurrency-limit",
  "rate-limited",
  "busy",
  "no-answer",
  "rejected",
  "redirected",
  "unauthorized",
  "unreachable",
  "media-failed",
  "cloud-unreachable",
  "no-bridge-available",
  "bridge-lost",
  "bridge-draining",
  "internal",
]);
export type OutboundFailure = z.infer<typeof outboundFailure>;

// ---- bridge → Worker -------------------------------------------------------------------------

export const registerMessage = z.object({
  type: z.literal("register"),
  protocol: z.number().int(),
  bridgeId: bridgeIdSchema,
  version: z.string().max(64),
  capacity: bridgeCapacity,
  health: bridgeHealth,
});

export const capacityMessage = z.object({
  type: z.literal("capacity"),
  capacity: bridgeCapacity,
  health: bridgeHealth.optional(),
});

export const originateAckMessage = z.object({
  type: z.literal("originate_ack"),
  requestId,
  accepted: z.boolean(),
  callId: callId.optional(),
  reason: outboundFailure.optional(),
});

export const callProgressMessage = z.object({
  type: z.literal("call_progress"),
  callId,
  state: outboundCallState,
  sipStatus: z.number().int().min(100).max(699).optional(),
  reason: z.string().max(256).optional(),
});

export const bridgeControlMessage = z.discriminatedUnion("type", [
  registerMessage,
  capacityMessage,
  originateAckMessage,
  callProgressMessage,
]);
export type BridgeControlMessage = z.infer<typeof bridgeControlMessage>;

// ---- Worker → bridge -------------------------------------------------------------------------

export const registeredMessage = z.object({
  type: z.literal("registered"),
  protocol: z.number().int(),
  bridgeId: bridgeIdSchema,
  /** How often the bridge should send "ping"; the registry drops it after ~3 missed intervals. */
  heartbeatIntervalMs: z.number().int().positive(),
});

export const originateMessage = originateRequest.extend({
  type: z.literal("originate"),
  /** Idempotency key: the same request may arrive more than once; the bridge acts on it once. */
  requestId,
  callId,
});
export type OriginateMessage = z.infer<typeof originateMessage>;

export const controlErrorMessage = z.object({
  type: z.literal("error"),
  code: z.enum(["protocol-version", "malformed-message", "not-registered", "wrong-bridge", "internal"]),
  message: z.string().max(512),
});

export const workerControlMessage = z.discriminatedUnion("type", [
  registeredMessage,
  originateMessage,
  controlErrorMessage,
]);
export type WorkerControlMessage = z.infer<typeof workerControlMessage>;

// ---- parsing ---------------------------------------------------------------------------------

export type ControlParseResult<T> = { ok: true; message: T } | { ok: false; error: string };

const MAX_CONTROL_TEXT = 16_384;

function parseControl<T>(schema: z.ZodType<T>, text: string): ControlParseResult<T> {
  if (text.length > MAX_CONTROL_TEXT) {
    return { ok: false, error: `control message too large: ${text.length} > ${MAX_CONTROL_TEXT}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, error: "control message is not JSON" };
  }
  const result = schema.safeParse(json);
  if (result.success) return { ok: true, message: result.data };
  const issue = result.error.issues[0];
  return { ok: false, error: `${issue?.path.join(".") || "message"}: ${issue?.message ?? "invalid"}` };
}

export const parseBridgeControlMessage = (text: string): ControlParseResult<BridgeControlMessage> =>
  parseControl(bridgeControlMessage, text);
export const parseWorkerControlMessage = (text: string): ControlParseResult<WorkerControlMessage> =>
  parseControl(workerControlMessage, text);

/** Close codes of the control socket (application range). */
export const ControlCloseCode = {
  normal: 1000,
  protocolError: 4400,
  unauthorized: 4401,
  /** A newer socket registered the same bridge id: this one is replaced and must not reconnect. */
  superseded: 4409,
  /** The registry stopped hearing pings. */
  heartbeatTimeout: 4408,
} as const;
