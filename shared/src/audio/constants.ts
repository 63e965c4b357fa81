/** Telephony audio as it travels end to end: G.711 at 8 kHz in 20 ms frames. */
export const SAMPLE_RATE = 8000;
export const FRAME_MS = 20;
/** One 20 ms frame of 8 kHz audio: 160 samples, which is also 160 bytes of G.711. */
export const SAMPLES_PER_FRAME = (SAMPLE_RATE * FRAME_MS) / 1000;
export const BYTES_PER_FRAME = SAMPLES_PER_FRAME;

/** Static RTP payload types (RFC 3551) doubling as our codec ids on the wire. */
export const PAYLOAD_TYPE_PCMU = 0;
export const PAYLOAD_TYPE_PCMA = 8;

export type G711Codec = "PCMU" | "PCMA";

export function payloadTypeOf(codec: G711Codec): number {
  return codec === "PCMU" ? PAYLOAD_TYPE_PCMU : PAYLOAD_TYPE_PCMA;
}

/** The byte a G.711 encoder produces for digital silence (used for idle playout and concealment). */
export const SILENCE_BYTE: Record<G711Codec, number> = { PCMU: 0xff, PCMA: 0xd5 };
