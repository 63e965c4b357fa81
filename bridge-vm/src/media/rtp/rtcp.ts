/**
 * RTCP (RFC 3550 §6): sender/receiver reports, SDES and BYE, parsed leniently and built byte-exact.
 *
 * "Lenient" means: a compound packet is walked block by block, unknown packet types are kept as
 * `{type: "unknown"}`, and a malformed block ends the walk with what was parsed so far plus an
 * error code, never an exception. The bridge only needs RTCP for round-trip time and the peer's
 * view of our loss, so nothing here is allowed to take a call down.
 */

export const RTCP_SR = 200;
export const RTCP_RR = 201;
export const RTCP_SDES = 202;
export const RTCP_BYE = 203;
export const SDES_CNAME = 1;

export interface ReportBlock {
  ssrc: number;
  /** Fraction lost since the last report, as the 8-bit fixed-point value (0..255 = 0..~1). */
  fractionLost: number;
  /** Cumulative packets lost, signed 24-bit. */
  cumulativeLost: number;
  extendedHighestSequence: number;
  jitter: number;
  lastSenderReport: number;
  delaySinceLastSenderReport: number;
}

export interface SenderReport {
  type: "sr";
  ssrc: number;
  ntpSeconds: number;
  ntpFraction: number;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  reports: ReportBlock[];
}

export interface ReceiverReport {
  type: "rr";
  ssrc: number;
  reports: ReportBlock[];
}

export interface SdesChunk {
  ssrc: number;
  items: { type: number; text: string }[];
}

export interface SourceDescription {
  type: "sdes";
  chunks: SdesChunk[];
}

export interface Goodbye {
  type: "bye";
  sources: number[];
  reason?: string;
}

export interface UnknownRtcp {
  type: "unknown";
  packetType: number;
}

export type RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye | UnknownRtcp;

export type RtcpErrorCode = "too-short" | "bad-version" | "truncated" | "bad-length";

export interface RtcpParseResult {
  packets: RtcpPacket[];
  error?: { code: RtcpErrorCode; got: number; need: number };
}

const textDecoder = new TextDecoder("utf-8", { fatal: false });
const textEncoder = new TextEncoder();

function readReportBlocks(view: DataView, offset: number, count: number, end: number): ReportBlock[] | null {
  if (offset + count * 24 > end) return null;
  const blocks: ReportBlock[] = [];
  for (let i = 0; i < count; i++, offset += 24) {
    const lostWord = view.getUint32(offset + 4);
    let cumulativeLost = lostWord & 0xffffff;
    if (cumulativeLost & 0x800000) cumulativeLost -= 0x1000000;
    blocks.push({
      ssrc: view.getUint32(offset),
      fractionLost: lostWord >>> 24,
      cumulativeLost,
      extendedHighestSequence: view.getUint32(offset + 8),
      jitter: view.getUint32(offset + 12),
      lastSenderReport: view.getUint32(offset + 16),
      delaySinceLastSenderReport: view.getUint32(offset + 20),
    });
  }
  return blocks;
}

export function parseRtcp(bytes: Uint8Array): RtcpParseResult {
  const packets: RtcpPacket[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  if (bytes.length < 4) return { packets, error: { code: "too-short", got: bytes.length, need: 4 } };
  while (offset + 4 <= bytes.length) {
    const first = bytes[offset]!;
    if (first >> 6 !== 2) return { packets, error: { code: "bad-version", got: first >> 6, need: 2 } };
    const count = first & 0x1f;
    const packetType = bytes[offset + 1]!;
    const length = (view.getUint16(offset + 2) + 1) * 4;
    const end = offset + length;
    if (end > bytes.length) return { packets, error: { code: "truncated", got: bytes.length, need: end } };
    const body = offset + 4;
    switch (packetType) {
      case RTCP_SR: {
        if (body + 24 > end) return { packets, error: { code: "bad-length", got: length, need: 28 } };
        const reports = readReportBlocks(view, body + 24, count, end);
        if (!reports) return { packets, error: { code: "bad-length", got: length, need: 28 + count * 24 } };
        packets.push({
          type: "sr",
          ssrc: view.getUint32(body),
          ntpSeconds: view.getUint32(body + 4),
          ntpFraction: view.getUint32(body + 8),
          rtpTimestamp: view.getUint32(body + 12),
          packetCount: view.getUint32(body + 16),
          octetCount: view.getUint32(body + 20),
          reports,
        });
        break;
      }
      case RTCP_RR: {
        if (body + 4 > end) return { packets, error: { code: "bad-length", got: length, need: 8 } };
        const reports = readReportBlocks(view, body + 4, count, end);
        if (!reports) return { packets, error: { code: "bad-length", got: length, need: 8 + count * 24 } };
        packets.push({ type: "rr", ssrc: view.getUint32(body), reports });
        break;
      }
      case RTCP_SDES: {
        const chunks: SdesChunk[] = [];
        let cursor = body;
        for (let i = 0; i < count && cursor + 4 <= end; i++) {
          const chunk: SdesChunk = { ssrc: view.getUint32(cursor), items: [] };
          cursor += 4;
          while (cursor < end && bytes[cursor] !== 0) {
            if (cursor + 2 > end) break;
            const itemType = bytes[cursor]!;
            const itemLength = bytes[cursor + 1]!;
            if (cursor + 2 + itemLength > end) break;
            chunk.items.push({
              type: itemType,
              text: textDecoder.decode(bytes.subarray(cursor + 2, cursor + 2 + itemLength)),
            });
            cursor += 2 + itemLength;
          }
          // Skip the null terminator and pad to the next 32-bit boundary.
          cursor = body + Math.ceil((cursor + 1 - body) / 4) * 4;
          chunks.push(chunk);
        }
        packets.push({ type: "sdes", chunks });
        break;
      }
      case RTCP_BYE: {
        const sources: number[] = [];
        let cursor = body;
        for (let i = 0; i < count && cursor + 4 <= end; i++, cursor += 4)
          sources.push(view.getUint32(cursor));
        const bye: Goodbye = { type: "bye", sources };
        if (cursor < end) {
          const reasonLength = bytes[cursor]!;
          if (cursor + 1 + reasonLength <= end) {
            bye.reason = textDecoder.decode(bytes.subarray(cursor + 1, cursor + 1 + reasonLength));
          }
        }
        packets.push(bye);
        break;
      }
      default:
        packets.push({ type: "unknown", packetType });
    }
    offset = end;
  }
  if (offset !== bytes.length) {
    return { packets, error: { code: "truncated", got: bytes.length, need: offset + 4 } };
  }
  return { packets };
}

function writeHeader(view: DataView, offset: number, count: number, type: number, length: number): void {
  view.setUint8(offset, 0x80 | (count & 0x1f));
  view.setUint8(offset + 1, type);
  view.setUint16(offset + 2, length / 4 - 1);
}

function writeReportBlocks(view: DataView, offset: number, reports: ReportBlock[]): void {
  for (const block of reports) {
    view.setUint32(offset, block.ssrc >>> 0);
    view.setUint32(offset + 4, ((block.fractionLost & 0xff) << 24) | (block.cumulativeLost & 0xffffff));
    view.setUint32(offset + 8, block.extendedHighestSequence >>> 0);
    view.setUint32(offset + 12, block.jitter >>> 0);
    view.setUint32(offset + 16, block.lastSenderReport >>> 0);
    view.setUint32(offset + 20, block.delaySinceLastSenderReport >>> 0);
    offset += 24;
  }
}

function sdesLength(description: SourceDescription): number {
  let length = 4;
  for (const chunk of description.chunks) {
    let chunkLength = 4;
    for (const item of chunk.items) chunkLength += 2 + Math.min(255, textEncoder.encode(item.text).length);
    length += Math.ceil((chunkLength + 1) / 4) * 4;
  }
  return length;
}

function packetLength(packet: RtcpPacket): number {
  switch (packet.type) {
    case "sr":
      return 28 + packet.reports.length * 24;
    case "rr":
      return 8 + packet.reports.length * 24;
    case "sdes":
      return sdesLength(packet);
    case "bye": {
      const reason =
        packet.reason === undefined ? 0 : 1 + Math.min(255, textEncoder.encode(packet.reason).length);
      return 4 + packet.sources.length * 4 + Math.ceil(reason / 4) * 4;
    }
    case "unknown":
      throw new RangeError(`cannot serialize unknown RTCP packet type ${packet.packetType}`);
  }
}

/** Build a compound RTCP packet (RFC 3550 §6.1: start with SR or RR, include SDES CNAME). */
export function serializeRtcp(packets: RtcpPacket[]): Uint8Array {
  let total = 0;
  for (const packet of packets) total += packetLength(packet);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const packet of packets) {
    const length = packetLength(packet);
    switch (packet.type) {
      case "sr":
        if (packet.reports.length > 31) throw new RangeError("more than 31 report blocks");
        writeHeader(view, offset, packet.reports.length, RTCP_SR, length);
        view.setUint32(offset + 4, packet.ssrc >>> 0);
        view.setUint32(offset + 8, packet.ntpSeconds >>> 0);
        view.setUint32(offset + 12, packet.ntpFraction >>> 0);
        view.setUint32(offset + 16, packet.rtpTimestamp >>> 0);
        view.setUint32(offset + 20, packet.packetCount >>> 0);
        view.setUint32(offset + 24, packet.octetCount >>> 0);
        writeReportBlocks(view, offset + 28, packet.reports);
        break;
      case "rr":
        if (packet.reports.length > 31) throw new RangeError("more than 31 report blocks");
        writeHeader(view, offset, packet.reports.length, RTCP_RR, length);
        view.setUint32(offset + 4, packet.ssrc >>> 0);
        writeReportBlocks(view, offset + 8, packet.reports);
        break;
      case "sdes": {
        writeHeader(view, offset, packet.chunks.length, RTCP_SDES, length);
        let cursor = offset + 4;
        for (const chunk of packet.chunks) {
          const start = cursor;
          view.setUint32(cursor, chunk.ssrc >>> 0);
          cursor += 4;
          for (const item of chunk.items) {
            const text = textEncoder.encode(item.text).subarray(0, 255);
            out[cursor] = item.type;
            out[cursor + 1] = text.length;
            out.set(text, cursor + 2);
            cursor += 2 + text.length;
          }
          // Null terminator plus zero padding to a 32-bit boundary (the buffer is zero-filled).
          cursor = start + Math.ceil((cursor - start + 1) / 4) * 4;
        }
        break;
      }
      case "bye": {
        writeHeader(view, offset, packet.sources.length, RTCP_BYE, length);
        let cursor = offset + 4;
        for (const source of packet.sources) {
          view.setUint32(cursor, source >>> 0);
          cursor += 4;
        }
        if (packet.reason !== undefined) {
          const reason = textEncoder.encode(packet.reason).subarray(0, 255);
          out[cursor] = reason.length;
          out.set(reason, cursor + 1);
        }
        break;
      }
      case "unknown":
        break;
    }
    offset += length;
  }
  return out;
}

const NTP_UNIX_OFFSET_S = 2_208_988_800;

/** Wall-clock milliseconds (Unix epoch) to a 64-bit NTP timestamp as two 32-bit words. */
export function toNtp(unixMs: number): { seconds: number; fraction: number } {
  const seconds = Math.floor(unixMs / 1000);
  const fraction = Math.floor(((unixMs - seconds * 1000) / 1000) * 0x1_0000_0000);
  return { seconds: (seconds + NTP_UNIX_OFFSET_S) >>> 0, fraction: fraction >>> 0 };
}

/** The middle 32 bits of an NTP timestamp, the unit of LSR/DLSR (1/65536 s). */
export function ntpMiddle(seconds: number, fraction: number): number {
  return (((seconds & 0xffff) << 16) | (fraction >>> 16)) >>> 0;
}

/**
 * RFC 3550 §6.4.1 round-trip time: arrival (NTP middle 32) − LSR − DLSR, in milliseconds.
 * Undefined when the block carries no LSR yet (the peer has not seen our SR).
 */
export function roundTripMs(block: ReportBlock, arrivalNtpMiddle: number): number | undefined {
  if (block.lastSenderReport === 0) return undefined;
  const units = (arrivalNtpMiddle - block.lastSenderReport - block.delaySinceLastSenderReport) >>> 0;
  // A negative result wraps to a huge value: clocks disagree, report nothing rather than nonsense.
  if (units > 0x8000_0000) return undefined;
  return (units / 65536) * 1000;
}
