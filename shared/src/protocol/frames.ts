/**
 * Binary audio frames of the media socket. Audio never goes through JSON or base64: each WebSocket
 * binary message is a 12-byte header followed by raw G.711 bytes.
 *
 *   offset size field
 *   0      1    version     (1)
 *   1      1    kind        (1 = caller audio, bridge → Worker; 2 = agent audio, Worker → bridge)
 *   2      1    codec       (RTP payload type: 0 = PCMU, 8 = PCMA)
 *   3      1    flags       (bit 0: first frame after a gap or resume)
 *   4      4    seq         (uint32 BE: per-direction counter of 20 ms frames, first frame of this message)
 *   8      4    timeMs      (uint32 BE: ms since answer at which the first sample was captured / synthesized)
 *   12     n    payload     (caller audio: n is a multiple of 160, one or more 20 ms frames;
 *                            agent audio: any length, the bridge re-frames it into 20 ms packets)
 *
 * `encodeAudioFrame` can write into a reusable buffer so the hot path allocates nothing.
 */
import { BYTES_PER_FRAME, type G711Codec, PAYLOAD_TYPE_PCMA, PAYLOAD_TYPE_PCMU } from "../audio/constants";

export const FRAME_VERSION = 1;
export const FRAME_HEADER_BYTES = 12;
/** A generous cap: 100 frames (2 s) in one message. Bigger is a bug or an attack. */
export const MAX_FRAME_PAYLOAD = 100 * BYTES_PER_FRAME;

export const FrameKind = { callerAudio: 1, agentAudio: 2 } as const;
export type FrameKindValue = (typeof FrameKind)[keyof typeof FrameKind];

export const FrameFlag = { discontinuity: 1 } as const;

export interface AudioFrame {
  kind: FrameKindValue;
  codec: G711Codec;
  flags: number;
  seq: number;
  timeMs: number;
  /** A view into the received message; copy it if you keep it beyond the handler. */
  payload: Uint8Array;
}

export type FrameDecodeResult = { ok: true; frame: AudioFrame } | { ok: false; error: string };

export function encodeAudioFrame(
  frame: Omit<AudioFrame, "payload">,
  payload: Uint8Array,
  target?: Uint8Array,
): Uint8Array {
  const length = FRAME_HEADER_BYTES + payload.length;
  const out = target && target.length >= length ? target.subarray(0, length) : new Uint8Array(length);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out[0] = FRAME_VERSION;
  out[1] = frame.kind;
  out[2] = frame.codec === "PCMU" ? PAYLOAD_TYPE_PCMU : PAYLOAD_TYPE_PCMA;
  out[3] = frame.flags & 0xff;
  view.setUint32(4, frame.seq >>> 0);
  view.setUint32(8, Math.max(0, Math.floor(frame.timeMs)) >>> 0);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

export function decodeAudioFrame(message: ArrayBuffer | Uint8Array): FrameDecodeResult {
  const bytes = message instanceof Uint8Array ? message : new Uint8Array(message);
  if (bytes.length < FRAME_HEADER_BYTES) {
    return { ok: false, error: `audio frame too short: got ${bytes.length} < need ${FRAME_HEADER_BYTES}` };
  }
  if (bytes[0] !== FRAME_VERSION)
    return { ok: false, error: `audio frame version ${bytes[0]} is not ${FRAME_VERSION}` };
  const kind = bytes[1];
  if (kind !== FrameKind.callerAudio && kind !== FrameKind.agentAudio) {
    return { ok: false, error: `audio frame kind ${kind} is unknown` };
  }
  const payloadType = bytes[2];
  if (payloadType !== PAYLOAD_TYPE_PCMU && payloadType !== PAYLOAD_TYPE_PCMA) {
    return { ok: false, error: `audio frame codec ${payloadType} is not PCMU (0) or PCMA (8)` };
  }
  const payloadLength = bytes.length - FRAME_HEADER_BYTES;
  if (payloadLength > MAX_FRAME_PAYLOAD) {
    return { ok: false, error: `audio frame payload too large: got ${payloadLength} > ${MAX_FRAME_PAYLOAD}` };
  }
  if (kind === FrameKind.callerAudio && payloadLength % BYTES_PER_FRAME !== 0) {
    return {
      ok: false,
      error: `caller audio payload ${payloadLength} is not a multiple of ${BYTES_PER_FRAME}`,
    };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    ok: true,
    frame: {
      kind,
      codec: payloadType === PAYLOAD_TYPE_PCMU ? "PCMU" : "PCMA",
      flags: bytes[3]!,
      seq: view.getUint32(4),
      timeMs: view.getUint32(8),
      payload: bytes.subarray(FRAME_HEADER_BYTES),
    },
  };
}
