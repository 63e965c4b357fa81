/**
 * A minimal RTP endpoint for tests: the "other phone" on the far side of the bridge.
 *
 * Deliberately written apart from the bridge's media code (its own packet parsing, pacing, DTMF and
 * reassembly) so a test that passes is two independent implementations agreeing, not one agreeing with
 * itself. It sends PCM16 as paced 20 ms G.711 packets and RFC 4733 events, receives and reassembles audio
 * and digits, and can impair what it sends (drop / reorder / duplicate) with a seeded RNG so failures
 * reproduce. G.711 itself comes from @patchbay/shared/audio (the project's single codec table).
 */
import { createSocket, type Socket } from "node:dgram";
import { performance } from "node:perf_hooks";
import { decodeG711, encodeG711, type G711Codec } from "@patchbay/shared/audio";
import { LOOPBACK } from "./ports";

const RTP_VERSION = 2;
const HEADER_BYTES = 12;
const SAMPLES_PER_PACKET = 160;
const PACKET_MS = 20;
const DTMF_EVENTS = "0123456789*#ABCD";

export interface Impairment {
  /** Probability (0–1) that an outgoing packet is not sent. */
  dropRate?: number;
  /** Probability that an outgoing packet is held back and sent after the next one. */
  reorderRate?: number;
  /** Probability that an outgoing packet is sent twice. */
  duplicateRate?: number;
  /** RNG seed so a failing run reproduces (default 1). */
  seed?: number;
}

export interface RtpPeerOptions {
  host?: string;
  /** Port to bind (default 0: any). Use an even port from freePortPair() when it goes into an SDP. */
  port?: number;
  /** Also bind port+1 and swallow RTCP sent there (default true when `port` is given). */
  bindRtcp?: boolean;
  /** Codec for sending (default PCMU). Received audio is decoded by its payload type (0 or 8). */
  codec?: G711Codec;
  /** RFC 4733 payload type for sending and receiving (default 101). */
  dtmfPayloadType?: number;
  ssrc?: number;
  impairment?: Impairment;
}

export interface RtpPacket {
  payloadType: number;
  marker: boolean;
  sequence: number;
  timestamp: number;
  ssrc: number;
  payload: Uint8Array;
  /** performance.now() at arrival. */
  arrivedAt: number;
  from: { address: string; port: number };
}

export interface ReceivedDigit {
  digit: string;
  /** RFC 4733 duration of the last packet seen, in ms (8 kHz clock). */
  durationMs: number;
  /** Whether an end (E bit) packet arrived. */
  ended: boolean;
  timestamp: number;
  ssrc: number;
}

export interface ReceiveStats {
  packets: number;
  audioPackets: number;
  /** Sequence numbers missing between the first and last audio packet (per SSRC). */
  lost: number;
  duplicates: number;
  /** Packets that arrived with a lower extended sequence than one already seen. */
  reordered: number;
  ssrcs: number[];
}

/** Parses an RTP packet, or returns undefined for anything that is not RTP v2 with a sane length. */
export function parseRtp(
  data: Uint8Array,
  from: { address: string; port: number },
  arrivedAt: number,
): RtpPacket | undefined {
  if (data.length < HEADER_BYTES || data[0]! >> 6 !== RTP_VERSION) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const csrcCount = data[0]! & 0x0f;
  let offset = HEADER_BYTES + 4 * csrcCount;
  if ((data[0]! & 0x10) !== 0) {
    if (offset + 4 > data.length) return undefined;
    offset += 4 + 4 * view.getUint16(offset + 2);
  }
  let end = data.length;
  if ((data[0]! & 0x20) !== 0) end -= data[data.length - 1]!;
  if (offset > end) return undefined;
  return {
    payloadType: data[1]! & 0x7f,
    marker: (data[1]! & 0x80) !== 0,
    sequence: view.getUint16(2),
    timestamp: view.getUint32(4),
    ssrc: view.getUint32(8),
    payload: data.slice(offset, end),
    arrivedAt,
    from,
  };
}

export function buildRtp(
  header: {
    payloadType: number;
    marker: boolean;
    sequence: number;
    timestamp: number;
    ssrc: number;
  },
  payload: Uint8Array,
): Buffer {
  const out = Buffer.alloc(HEADER_BYTES + payload.length);
  out[0] = RTP_VERSION << 6;
  out[1] = (header.marker ? 0x80 : 0) | (header.payloadType & 0x7f);
  out.writeUInt16BE(header.sequence & 0xffff, 2);
  out.writeUInt32BE(header.timestamp >>> 0, 4);
  out.writeUInt32BE(header.ssrc >>> 0, 8);
  out.set(payload, HEADER_BYTES);
  return out;
}

/** mulberry32: tiny, seedable, good enough to decide which packets to impair. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

export class RtpPeer {
  readonly host: string;
  readonly received: RtpPacket[] = [];
  /** Datagrams that did not parse as RTP (counted, not kept). */
  rejected = 0;
  private remote: { address: string; port: number } | undefined;
  private sequence: number;
  private timestamp: number;
  private readonly ssrc: number;
  private readonly codec: G711Codec;
  private readonly dtmfPayloadType: number;
  private readonly random: () => number;
  private readonly impairment: Required<Omit<Impairment, "seed">>;
  private held: Buffer | undefined;
  private closed = false;
  private waiters = new Set<() => void>();

  private constructor(
    private readonly socket: Socket,
    private readonly rtcpSocket: Socket | undefined,
    options: RtpPeerOptions,
  ) {
    this.host = options.host ?? LOOPBACK;
    this.codec = options.codec ?? "PCMU";
    this.dtmfPayloadType = options.dtmfPayloadType ?? 101;
    this.random = seededRandom(options.impairment?.seed ?? 1);
    this.ssrc = options.ssrc ?? Math.floor(this.random() * 2 ** 32);
    this.sequence = Math.floor(this.random() * 65536);
    this.timestamp = Math.floor(this.random() * 2 ** 32);
    this.impairment = {
      dropRate: options.impairment?.dropRate ?? 0,
      reorderRate: options.impairment?.reorderRate ?? 0,
      duplicateRate: options.impairment?.duplicateRate ?? 0,
    };
    socket.on("message", (data, info) => {
      const packet = parseRtp(data, { address: info.address, port: info.port }, performance.now());
      if (packet === undefined) {
        this.rejected++;
        return;
      }
      // Symmetric RTP: with no explicit remote, answer to whoever sends first.
      this.remote ??= packet.from;
      this.received.push(packet);
      for (const wake of this.waiters) wake();
    });
  }

  /** Binds the socket(s) and resolves with a ready peer. */
  static async start(options: RtpPeerOptions = {}): Promise<RtpPeer> {
    const host = options.host ?? LOOPBACK;
    const bind = (port: number) =>
      new Promise<Socket>((resolve, reject) => {
        const socket = createSocket("udp4");
        socket.once("error", reject);
        socket.bind(port, host, () => {
          socket.off("error", reject);
          resolve(socket);
        });
      });
    const socket = await bind(options.port ?? 0);
    let rtcp: Socket | undefined;
    if (options.bindRtcp ?? options.port !== undefined) {
      try {
        rtcp = await bind(socket.address().port + 1);
        rtcp.on("message", () => {});
      } catch (error) {
        socket.close();
        throw new Error(`rtp-peer: cannot bind RTCP port ${socket.address().port + 1}: ${String(error)}`);
      }
    }
    return new RtpPeer(socket, rtcp, options);
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** Where outgoing RTP goes (the bridge's SDP c=/m= address). */
  setRemote(address: string, port: number): void {
    this.remote = { address, port };
  }

  get remoteAddress(): { address: string; port: number } | undefined {
    return this.remote;
  }

  private transmit(packet: Buffer): void {
    if (this.remote === undefined)
      throw new Error("rtp-peer: no remote address (call setRemote or wait for RTP)");
    const { address, port } = this.remote;
    const send = (data: Buffer) => this.socket.send(data, port, address);
    if (this.random() < this.impairment.dropRate) return;
    if (this.held === undefined && this.random() < this.impairment.reorderRate) {
      this.held = packet;
      return;
    }
    send(packet);
    if (this.random() < this.impairment.duplicateRate) send(packet);
    if (this.held !== undefined) {
      send(this.held);
      this.held = undefined;
    }
  }

  /**
   * Sends `samples` (8 kHz PCM16) as 20 ms packets paced against a monotonic clock (no drift), with the
   * marker bit on the first packet. A trailing partial frame is padded with silence.
   */
  async sendAudio(samples: Int16Array, options: { paced?: boolean } = {}): Promise<void> {
    const frames = Math.ceil(samples.length / SAMPLES_PER_PACKET);
    const start = performance.now();
    for (let i = 0; i < frames && !this.closed; i++) {
      if (options.paced !== false) await sleep(start + i * PACKET_MS - performance.now());
      const frame = new Int16Array(SAMPLES_PER_PACKET);
      frame.set(samples.subarray(i * SAMPLES_PER_PACKET, (i + 1) * SAMPLES_PER_PACKET));
      const payload = encodeG711(this.codec, frame);
      this.transmit(
        buildRtp(
          {
            payloadType: this.codec === "PCMU" ? 0 : 8,
            marker: i === 0,
            sequence: this.sequence++,
            timestamp: this.timestamp,
            ssrc: this.ssrc,
          },
          payload,
        ),
      );
      this.timestamp = (this.timestamp + SAMPLES_PER_PACKET) >>> 0;
    }
  }

  /**
   * Sends one RFC 4733 event: packets every 20 ms sharing the event's start timestamp, marker on the first,
   * growing duration, then three end packets (E bit). Advances the media clock by the event's length.
   */
  async sendDtmf(digit: string, options: { durationMs?: number; volume?: number } = {}): Promise<void> {
    const event = DTMF_EVENTS.indexOf(digit.toUpperCase());
    if (event < 0 || digit.length !== 1)
      throw new Error(`rtp-peer: not a DTMF digit: ${JSON.stringify(digit)}`);
    const durationMs = options.durationMs ?? 100;
    const volume = options.volume ?? 10;
    const packets = Math.max(1, Math.round(durationMs / PACKET_MS));
    const eventTimestamp = this.timestamp;
    const payloadFor = (durationSamples: number, end: boolean) =>
      Uint8Array.of(
        event,
        (end ? 0x80 : 0) | (volume & 0x3f),
        (durationSamples >> 8) & 0xff,
        durationSamples & 0xff,
      );
    const start = performance.now();
    for (let i = 0; i < packets; i++) {
      await sleep(start + i * PACKET_MS - performance.now());
      const duration = (i + 1) * SAMPLES_PER_PACKET;
      this.transmit(
        buildRtp(
          {
            payloadType: this.dtmfPayloadType,
            marker: i === 0,
            sequence: this.sequence++,
            timestamp: eventTimestamp,
            ssrc: this.ssrc,
          },
          payloadFor(duration, false),
        ),
      );
    }
    const total = packets * SAMPLES_PER_PACKET;
    for (let i = 0; i < 3; i++) {
      await sleep(start + (packets + i) * PACKET_MS - performance.now());
      this.transmit(
        buildRtp(
          {
            payloadType: this.dtmfPayloadType,
            marker: false,
            sequence: this.sequence++,
            timestamp: eventTimestamp,
            ssrc: this.ssrc,
          },
          payloadFor(total, true),
        ),
      );
    }
    this.timestamp = (this.timestamp + (packets + 3) * SAMPLES_PER_PACKET) >>> 0;
  }

  /** Sends several digits with `gapMs` of nothing in between. */
  async sendDigits(digits: string, options: { durationMs?: number; gapMs?: number } = {}): Promise<void> {
    for (const digit of digits) {
      await this.sendDtmf(digit, options);
      await sleep(options.gapMs ?? 100);
      this.timestamp = (this.timestamp + ((options.gapMs ?? 100) / 1000) * 8000) >>> 0;
    }
  }

  /** Resolves once at least `count` packets (optionally of one payload type) have arrived. */
  async waitForPackets(
    count: number,
    options: { timeoutMs?: number; payloadType?: number } = {},
  ): Promise<void> {
    const have = () =>
      (options.payloadType === undefined
        ? this.received.length
        : this.received.filter((packet) => packet.payloadType === options.payloadType).length) >= count;
    if (have()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(
            `rtp-peer: ${this.received.length} packets after ${options.timeoutMs ?? 5000} ms, wanted ${count}`,
          ),
        );
      }, options.timeoutMs ?? 5000);
      const check = () => {
        if (!have()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
    });
  }

  /**
   * Received G.711 audio (PT 0 and 8) as PCM16, placed by RTP timestamp so lost packets become silence,
   * duplicates count once and reordering is undone. Each SSRC is a segment; segments follow in arrival order.
   */
  receivedAudio(): Int16Array {
    const bySsrc = new Map<number, RtpPacket[]>();
    for (const packet of this.received) {
      if (packet.payloadType !== 0 && packet.payloadType !== 8) continue;
      let list = bySsrc.get(packet.ssrc);
      if (list === undefined) {
        list = [];
        bySsrc.set(packet.ssrc, list);
      }
      list.push(packet);
    }
    const segments: Int16Array[] = [];
    for (const packets of bySsrc.values()) {
      const base = packets[0]!.timestamp;
      const offsets = packets.map((packet) => {
        let delta = (packet.timestamp - base) >>> 0;
        if (delta > 0x80000000) delta -= 0x100000000; // packets reordered before the first one
        return delta;
      });
      const min = Math.min(...offsets);
      const max = Math.max(...packets.map((packet, i) => offsets[i]! + packet.payload.length));
      const out = new Int16Array(max - min);
      packets.forEach((packet, i) => {
        out.set(decodeG711(packet.payloadType === 0 ? "PCMU" : "PCMA", packet.payload), offsets[i]! - min);
      });
      segments.push(out);
    }
    const total = segments.reduce((sum, s) => sum + s.length, 0);
    const out = new Int16Array(total);
    let offset = 0;
    for (const segment of segments) {
      out.set(segment, offset);
      offset += segment.length;
    }
    return out;
  }

  /** Received RFC 4733 events on `dtmfPayloadType`, one per key press (deduplicated by SSRC+timestamp). */
  receivedDigits(): ReceivedDigit[] {
    const digits = new Map<string, ReceivedDigit>();
    for (const packet of this.received) {
      if (packet.payloadType !== this.dtmfPayloadType || packet.payload.length < 4) continue;
      const event = packet.payload[0]!;
      const key = `${packet.ssrc}:${packet.timestamp}`;
      const duration = (packet.payload[2]! << 8) | packet.payload[3]!;
      const ended = (packet.payload[1]! & 0x80) !== 0;
      const existing = digits.get(key);
      const digit =
        event < DTMF_EVENTS.length ? DTMF_EVENTS[event]! : event === 16 ? "flash" : `event${event}`;
      if (existing === undefined) {
        digits.set(key, {
          digit,
          durationMs: duration / 8,
          ended,
          timestamp: packet.timestamp,
          ssrc: packet.ssrc,
        });
      } else {
        existing.durationMs = Math.max(existing.durationMs, duration / 8);
        existing.ended ||= ended;
      }
    }
    return [...digits.values()];
  }

  /** Loss, duplicates and reordering of received audio packets, from sequence numbers. */
  stats(): ReceiveStats {
    const audio = this.received.filter((packet) => packet.payloadType === 0 || packet.payloadType === 8);
    let lost = 0;
    let duplicates = 0;
    let reordered = 0;
    const ssrcs = [...new Set(audio.map((packet) => packet.ssrc))];
    for (const ssrc of ssrcs) {
      const seen = new Set<number>();
      let highest: number | undefined;
      let lowest: number | undefined;
      let previous: number | undefined;
      for (const packet of audio.filter((p) => p.ssrc === ssrc)) {
        // Unwrap the 16-bit sequence: the nearest value to the previous one (handles 65535 -> 0).
        const extended =
          previous === undefined
            ? packet.sequence
            : previous + ((((packet.sequence - (previous & 0xffff) + 32768) & 0xffff) - 32768) | 0);
        previous = extended;
        if (seen.has(extended)) {
          duplicates++;
          continue;
        }
        if (highest !== undefined && extended < highest) reordered++;
        seen.add(extended);
        highest = highest === undefined ? extended : Math.max(highest, extended);
        lowest = lowest === undefined ? extended : Math.min(lowest, extended);
      }
      if (highest !== undefined && lowest !== undefined) lost += highest - lowest + 1 - seen.size;
    }
    return { packets: this.received.length, audioPackets: audio.length, lost, duplicates, reordered, ssrcs };
  }

  /** Closes the socket(s). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closeSocket = (socket: Socket) => new Promise<void>((resolve) => socket.close(() => resolve()));
    await closeSocket(this.socket);
    if (this.rtcpSocket !== undefined) await closeSocket(this.rtcpSocket);
  }
}
