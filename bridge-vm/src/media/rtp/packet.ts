/**
 * RTP packets (RFC 3550 §5.1): parse and serialize, byte-exact and symmetric.
 *
 * The parser never throws on untrusted input: every read is preceded by a length check and a
 * failure comes back as a coded value (`{code, got, need}`), in the manner of pion/rtp.
 * `payload`, `extension.data` and the padding are views into the input; copy them to keep them.
 */

export const RTP_VERSION = 2;
export const RTP_HEADER_BYTES = 12;

export interface RtpHeaderExtension {
  /** The 16-bit "defined by profile" field (0xBEDE for RFC 8285 one-byte headers). */
  profile: number;
  /** Extension body; its length is a multiple of 4 bytes. */
  data: Uint8Array;
}

export interface RtpPacket {
  marker: boolean;
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  csrc: number[];
  extension?: RtpHeaderExtension;
  payload: Uint8Array;
  /** Number of padding bytes including the final count byte; 0 when the P bit is clear. */
  paddingBytes: number;
}

export type RtpParseErrorCode =
  | "too-short"
  | "bad-version"
  | "truncated-csrc"
  | "truncated-extension"
  | "bad-padding";

export interface RtpParseError {
  code: RtpParseErrorCode;
  got: number;
  need: number;
}

export type RtpParseResult = { ok: true; packet: RtpPacket } | { ok: false; error: RtpParseError };

function fail(code: RtpParseErrorCode, got: number, need: number): RtpParseResult {
  return { ok: false, error: { code, got, need } };
}

export function parseRtp(bytes: Uint8Array): RtpParseResult {
  if (bytes.length < RTP_HEADER_BYTES) return fail("too-short", bytes.length, RTP_HEADER_BYTES);
  const first = bytes[0]!;
  const version = first >> 6;
  if (version !== RTP_VERSION) return fail("bad-version", version, RTP_VERSION);
  const hasPadding = (first & 0x20) !== 0;
  const hasExtension = (first & 0x10) !== 0;
  const csrcCount = first & 0x0f;
  const second = bytes[1]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  let offset = RTP_HEADER_BYTES;
  const csrcEnd = offset + csrcCount * 4;
  if (bytes.length < csrcEnd) return fail("truncated-csrc", bytes.length, csrcEnd);
  const csrc: number[] = [];
  for (; offset < csrcEnd; offset += 4) csrc.push(view.getUint32(offset));

  let extension: RtpHeaderExtension | undefined;
  if (hasExtension) {
    if (bytes.length < offset + 4) return fail("truncated-extension", bytes.length, offset + 4);
    const profile = view.getUint16(offset);
    const words = view.getUint16(offset + 2);
    const dataStart = offset + 4;
    const dataEnd = dataStart + words * 4;
    if (bytes.length < dataEnd) return fail("truncated-extension", bytes.length, dataEnd);
    extension = { profile, data: bytes.subarray(dataStart, dataEnd) };
    offset = dataEnd;
  }

  let end = bytes.length;
  let paddingBytes = 0;
  if (hasPadding) {
    paddingBytes = bytes[bytes.length - 1]!;
    // RFC 3550: the count includes itself, so 0 is invalid, and padding may not eat into the header.
    if (paddingBytes === 0 || paddingBytes > bytes.length - offset) {
      return fail("bad-padding", paddingBytes, bytes.length - offset);
    }
    end -= paddingBytes;
  }

  const packet: RtpPacket = {
    marker: (second & 0x80) !== 0,
    payloadType: second & 0x7f,
    sequenceNumber: view.getUint16(2),
    timestamp: view.getUint32(4),
    ssrc: view.getUint32(8),
    csrc,
    payload: bytes.subarray(offset, end),
    paddingBytes,
  };
  if (extension) packet.extension = extension;
  return { ok: true, packet };
}

export function rtpSerializedLength(packet: RtpPacket): number {
  return (
    RTP_HEADER_BYTES +
    packet.csrc.length * 4 +
    (packet.extension ? 4 + packet.extension.data.length : 0) +
    packet.payload.length +
    packet.paddingBytes
  );
}

/**
 * Serialize a packet. Padding bytes are zero except the last, which holds the count (RFC 3550 §5.1).
 * Throws RangeError only for a packet WE built wrongly (more than 15 CSRCs, unaligned extension).
 */
export function serializeRtp(packet: RtpPacket, target?: Uint8Array): Uint8Array {
  if (packet.csrc.length > 15) throw new RangeError(`RTP CSRC count ${packet.csrc.length} > 15`);
  if (packet.extension && packet.extension.data.length % 4 !== 0) {
    throw new RangeError(`RTP extension length ${packet.extension.data.length} is not a multiple of 4`);
  }
  if (packet.paddingBytes > 255) throw new RangeError(`RTP padding ${packet.paddingBytes} > 255`);
  const length = rtpSerializedLength(packet);
  const out = target && target.length >= length ? target.subarray(0, length) : new Uint8Array(length);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out[0] =
    (RTP_VERSION << 6) |
    (packet.paddingBytes > 0 ? 0x20 : 0) |
    (packet.extension ? 0x10 : 0) |
    packet.csrc.length;
  out[1] = (packet.marker ? 0x80 : 0) | (packet.payloadType & 0x7f);
  view.setUint16(2, packet.sequenceNumber & 0xffff);
  view.setUint32(4, packet.timestamp >>> 0);
  view.setUint32(8, packet.ssrc >>> 0);
  let offset = RTP_HEADER_BYTES;
  for (const source of packet.csrc) {
    view.setUint32(offset, source >>> 0);
    offset += 4;
  }
  if (packet.extension) {
    view.setUint16(offset, packet.extension.profile & 0xffff);
    view.setUint16(offset + 2, packet.extension.data.length / 4);
    out.set(packet.extension.data, offset + 4);
    offset += 4 + packet.extension.data.length;
  }
  out.set(packet.payload, offset);
  offset += packet.payload.length;
  if (packet.paddingBytes > 0) {
    out.fill(0, offset, offset + packet.paddingBytes - 1);
    out[offset + packet.paddingBytes - 1] = packet.paddingBytes;
  }
  return out;
}

/**
 * Hot-path writer for the packets the bridge itself sends: a fixed 12-byte header (no CSRC,
 * extension or padding) followed by the payload, written into `target` (which must be big enough).
 */
export function writeRtpHeader(
  target: Uint8Array,
  marker: boolean,
  payloadType: number,
  sequenceNumber: number,
  timestamp: number,
  ssrc: number,
): void {
  target[0] = RTP_VERSION << 6;
  target[1] = (marker ? 0x80 : 0) | (payloadType & 0x7f);
  target[2] = (sequenceNumber >>> 8) & 0xff;
  target[3] = sequenceNumber & 0xff;
  target[4] = timestamp >>> 24;
  target[5] = (timestamp >>> 16) & 0xff;
  target[6] = (timestamp >>> 8) & 0xff;
  target[7] = timestamp & 0xff;
  target[8] = ssrc >>> 24;
  target[9] = (ssrc >>> 16) & 0xff;
  target[10] = (ssrc >>> 8) & 0xff;
  target[11] = ssrc & 0xff;
}

/** RTCP packet types 200..204 share the first byte layout with RTP; this tells them apart (RFC 5761 §4). */
export function looksLikeRtcp(bytes: Uint8Array): boolean {
  if (bytes.length < 2 || bytes[0]! >> 6 !== RTP_VERSION) return false;
  const type = bytes[1]!;
  return type >= 192 && type <= 223;
}
