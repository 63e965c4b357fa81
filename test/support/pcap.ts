/**
 * Classic libpcap files holding RTP over UDP/IPv4/Ethernet: what SIPp's `play_pcap_audio` replays.
 * SIPp takes the UDP payloads and their capture times (for pacing) and rewrites addresses and ports, so
 * the addresses written here are placeholders from the documentation range.
 */
import { readFile } from "node:fs/promises";
import { buildRtp, parseRtp, type RtpPacket } from "./rtp-peer";

const PCAP_MAGIC = 0xa1b2c3d4;
const LINKTYPE_ETHERNET = 1;
const ETHERNET_BYTES = 14;
const IPV4_BYTES = 20;
const UDP_BYTES = 8;

export interface PcapRtpPacket {
  /** Capture time offset from the first packet, in microseconds. */
  timeUs: number;
  payloadType: number;
  marker: boolean;
  sequence: number;
  timestamp: number;
  ssrc: number;
  payload: Uint8Array;
}

function ipv4Checksum(header: Buffer): number {
  let sum = 0;
  for (let i = 0; i < header.length; i += 2) sum += header.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Serialises RTP packets as a pcap (Ethernet/IPv4/UDP, 192.0.2.1:6000 -> 192.0.2.2:6000). */
export function writeRtpPcap(packets: readonly PcapRtpPacket[]): Buffer {
  const chunks: Buffer[] = [];
  const global = Buffer.alloc(24);
  global.writeUInt32LE(PCAP_MAGIC, 0);
  global.writeUInt16LE(2, 4);
  global.writeUInt16LE(4, 6);
  global.writeInt32LE(0, 8);
  global.writeUInt32LE(0, 12);
  global.writeUInt32LE(65535, 16);
  global.writeUInt32LE(LINKTYPE_ETHERNET, 20);
  chunks.push(global);
  const baseSeconds = 1_700_000_000;
  packets.forEach((packet, index) => {
    const rtp = buildRtp(packet, packet.payload);
    const frame = Buffer.alloc(ETHERNET_BYTES + IPV4_BYTES + UDP_BYTES + rtp.length);
    // Ethernet: locally administered MACs, EtherType IPv4.
    Buffer.from([0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1]).copy(frame, 0);
    frame.writeUInt16BE(0x0800, 12);
    const ip = frame.subarray(ETHERNET_BYTES, ETHERNET_BYTES + IPV4_BYTES);
    ip[0] = 0x45;
    ip.writeUInt16BE(IPV4_BYTES + UDP_BYTES + rtp.length, 2);
    ip.writeUInt16BE(index & 0xffff, 4);
    ip[8] = 64;
    ip[9] = 17;
    Buffer.from([192, 0, 2, 1, 192, 0, 2, 2]).copy(ip, 12);
    ip.writeUInt16BE(ipv4Checksum(ip), 10);
    const udp = frame.subarray(ETHERNET_BYTES + IPV4_BYTES);
    udp.writeUInt16BE(6000, 0);
    udp.writeUInt16BE(6000, 2);
    udp.writeUInt16BE(UDP_BYTES + rtp.length, 4);
    udp.writeUInt16BE(0, 6); // checksum optional over IPv4
    rtp.copy(udp, UDP_BYTES);
    const record = Buffer.alloc(16);
    const seconds = baseSeconds + Math.floor(packet.timeUs / 1_000_000);
    record.writeUInt32LE(seconds, 0);
    record.writeUInt32LE(packet.timeUs % 1_000_000, 4);
    record.writeUInt32LE(frame.length, 8);
    record.writeUInt32LE(frame.length, 12);
    chunks.push(record, frame);
  });
  return Buffer.concat(chunks);
}

/** Reads back the RTP packets of a pcap written by writeRtpPcap (or any Ethernet/IPv4/UDP capture). */
export function readRtpPcap(bytes: Uint8Array): PcapRtpPacket[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 24 || buf.readUInt32LE(0) !== PCAP_MAGIC)
    throw new Error("readRtpPcap: not a little-endian classic pcap");
  if (buf.readUInt32LE(20) !== LINKTYPE_ETHERNET)
    throw new Error("readRtpPcap: only Ethernet link type is supported");
  const out: PcapRtpPacket[] = [];
  let offset = 24;
  let firstUs: number | undefined;
  while (offset + 16 <= buf.length) {
    const timeUs = buf.readUInt32LE(offset) * 1_000_000 + buf.readUInt32LE(offset + 4);
    const length = buf.readUInt32LE(offset + 8);
    const frame = buf.subarray(offset + 16, offset + 16 + length);
    offset += 16 + length;
    if (frame.length < ETHERNET_BYTES + IPV4_BYTES + UDP_BYTES || frame.readUInt16BE(12) !== 0x0800) continue;
    const ipHeader = (frame[ETHERNET_BYTES]! & 0x0f) * 4;
    if (frame[ETHERNET_BYTES + 9] !== 17) continue;
    const udpPayload = frame.subarray(ETHERNET_BYTES + ipHeader + UDP_BYTES);
    const rtp: RtpPacket | undefined = parseRtp(udpPayload, { address: "", port: 0 }, 0);
    if (rtp === undefined) continue;
    firstUs ??= timeUs;
    out.push({ ...rtp, timeUs: timeUs - firstUs });
  }
  return out;
}

export async function readRtpPcapFile(path: string): Promise<PcapRtpPacket[]> {
  return readRtpPcap(await readFile(path));
}
