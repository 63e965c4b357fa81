/**
 * One call's media: the socket adapter around the pure cores.
 *
 *   RTP socket (even port) ──▶ SourceLatch ──▶ payload-type routing ─┬─▶ JitterBuffer ─▶ callerFrame
 *                                                                   └─▶ DtmfReceiver ─▶ dtmf
 *   enqueueAgentAudio ─▶ PlayoutPacer ─▶ RTP socket (sent FROM the bound port: symmetric RTP)
 *   RTCP socket (port + 1): SR/RR every ~5 s, incoming reports → round-trip time
 *
 * Everything time-based runs in `tick`, called by the engine's shared scheduler; the socket
 * handler only classifies and buffers. G.711 bytes pass through untouched; PCM is produced only
 * for the recording (and inside the jitter buffer for concealment).
 */

import { randomBytes } from "node:crypto";
import type { Socket } from "node:dgram";
import { BYTES_PER_FRAME, decodeG711, FRAME_MS, type G711Codec } from "@patchbay/shared/audio";
import { DtmfReceiver } from "./dtmf/dtmf";
import { JitterBuffer } from "./jitter/jitter-buffer";
import { type LatchTiming, SourceLatch } from "./latch";
import { Listeners } from "./listeners";
import type { MediaLogger } from "./logger";
import { type IdleMode, PlayoutPacer } from "./playout/pacer";
import type { WavRecorder } from "./recording/wav-recorder";
import { looksLikeRtcp, parseRtp, RTP_VERSION } from "./rtp/packet";
import { ntpMiddle, parseRtcp, type RtcpPacket, roundTripMs, serializeRtcp, toNtp } from "./rtp/rtcp";
import type {
  CallAudioDuplex,
  CallAudioDuplexEvents,
  CallMedia,
  CallMediaEvents,
  MediaParams,
  MediaStats,
} from "./types";

/** Catch-up cap for the receive side, as for the pacer. */
const MAX_PULLS_PER_TICK = 3;

export interface SessionOptions {
  callId: string;
  params: MediaParams;
  extraAddresses?: readonly string[];
  latch: boolean;
  latchTiming?: LatchTiming;
  timeoutS: number;
  idle: IdleMode;
  /** Mean RTCP report interval (RFC 3550 randomises it by ±50 %); Asterisk uses 5 s. */
  rtcpIntervalMs?: number;
  rtp: Socket;
  rtcp: Socket;
  localPort: number;
  recorder?: WavRecorder;
  clock: () => number;
  wallClock?: () => number;
  logger: MediaLogger;
  /** Called once when the session has released everything (the engine returns the port). */
  onClosed: (session: MediaSession) => void;
}

function randomUint32(): number {
  return randomBytes(4).readUInt32BE(0);
}

export class MediaSession implements CallMedia {
  readonly localPort: number;
  readonly duplex: CallAudioDuplex;
  readonly callId: string;

  private params: MediaParams;
  private extraAddresses: readonly string[];
  private readonly rtp: Socket;
  private readonly rtcp: Socket;
  private readonly latch: SourceLatch;
  private jitter: JitterBuffer;
  private readonly dtmfIn = new DtmfReceiver();
  private readonly pacer: PlayoutPacer;
  private readonly recorder: WavRecorder | undefined;
  private readonly clock: () => number;
  private readonly wallClock: () => number;
  private readonly logger: MediaLogger;
  private readonly timeoutMs: number;
  private readonly rtcpIntervalMs: number;
  private readonly onClosed: (session: MediaSession) => void;
  private readonly ssrc = randomUint32();
  private readonly cname: string;

  private readonly duplexListeners: Listeners<CallAudioDuplexEvents>;
  private readonly mediaListeners: Listeners<CallMediaEvents>;

  private startRequested = false;
  private started = false;
  private epochMs = 0;
  private rxStartMs = 0;
  private rxFrameIndex = 0;
  private callerSeq = 0;
  private readonly frame = new Uint8Array(BYTES_PER_FRAME);
  private readonly pcm = new Int16Array(BYTES_PER_FRAME);
  private lastReceiveMs = 0;
  private timedOut = false;
  private nextRtcpMs = 0;
  private rtcpTarget: { address: string; port: number } | undefined;
  private lastSenderReport: { middle: number; arrivalMs: number } | undefined;
  private roundTrip: number | undefined;
  private closing: Promise<void> | undefined;

  private droppedNotRtp = 0;
  private droppedWrongPayloadType = 0;
  private droppedWrongSource = 0;
  private sendErrors = 0;
  private rtcpReceived = 0;

  constructor(options: SessionOptions) {
    this.callId = options.callId;
    this.params = options.params;
    this.extraAddresses = options.extraAddresses ?? [];
    this.rtp = options.rtp;
    this.rtcp = options.rtcp;
    this.localPort = options.localPort;
    this.recorder = options.recorder;
    this.clock = options.clock;
    this.wallClock = options.wallClock ?? Date.now;
    this.logger = options.logger;
    this.timeoutMs = options.timeoutS * 1000;
    this.rtcpIntervalMs = options.rtcpIntervalMs ?? 5000;
    this.onClosed = options.onClosed;
    this.duplexListeners = new Listeners(this.logger);
    this.mediaListeners = new Listeners(this.logger);
    this.cname = `patchbay-${this.ssrc.toString(16)}`;
    this.latch = new SourceLatch({
      expected: { address: options.params.remoteAddress, port: options.params.remotePort },
      extraAddresses: this.extraAddresses,
      latch: options.latch,
      ...options.latchTiming,
      clock: options.clock,
    });
    this.jitter = new JitterBuffer({ codec: options.params.codec });
    this.pacer = new PlayoutPacer(
      {
        codec: options.params.codec,
        payloadType: options.params.payloadType,
        dtmfPayloadType: options.params.dtmfPayloadType,
        ssrc: this.ssrc,
        initialSequence: randomUint32() & 0x7fff,
        initialTimestamp: randomUint32(),
        idle: options.idle,
        allocate: (length) => Buffer.allocUnsafe(length),
      },
      {
        send: (packet, agentAudio, frameMs) => this.sendRtp(packet, agentAudio, frameMs),
        markPlayed: (name, atMs) => this.duplexListeners.emit("markPlayed", name, atMs),
      },
    );
    this.applyDirection();
    this.duplex = this.makeDuplex();
    this.rtp.on("message", this.onRtp);
    this.rtcp.on("message", this.onRtcp);
    // Send errors (ICMP unreachable surfacing as ECONNREFUSED, etc.) are counted, never fatal.
    this.rtp.on("error", this.onSocketError);
    this.rtcp.on("error", this.onSocketError);
    this.lastReceiveMs = this.clock();
  }

  private makeDuplex(): CallAudioDuplex {
    const session = this;
    return {
      get codec(): G711Codec {
        return session.params.codec;
      },
      on(event, listener) {
        session.duplexListeners.on(event, listener);
      },
      off(event, listener) {
        session.duplexListeners.off(event, listener);
      },
      enqueueAgentAudio: (audio) => this.pacer.enqueue(audio),
      clearAgentAudio: () => this.pacer.clear(),
      mark: (name) => this.pacer.mark(name),
      sendDtmf: (digits) => this.pacer.sendDtmf(digits),
      stats: () => this.stats(),
    };
  }

  on<E extends keyof CallMediaEvents>(event: E, listener: CallMediaEvents[E]): void {
    this.mediaListeners.on(event, listener);
  }

  start(): void {
    if (this.closing) return;
    this.startRequested = true;
    // The answer: the latch's learning window now runs for a few seconds, then closes.
    this.latch.startMedia();
  }

  /** Called by the shared scheduler in this call's slot. */
  tick(nowMs: number, scheduledMs: number): void {
    if (this.closing) return;
    if (this.startRequested && !this.started) {
      // Anchor both frame grids on the slot's ideal time so every later frame is due exactly then.
      this.started = true;
      this.epochMs = scheduledMs;
      this.rxStartMs = scheduledMs;
      this.rxFrameIndex = 0;
      this.lastReceiveMs = nowMs;
      this.nextRtcpMs = nowMs + this.rtcpIntervalMs * (0.5 + Math.random());
      this.pacer.start(scheduledMs);
      // Whatever arrived before the answer is stale by now: start playout fresh.
      this.jitter = new JitterBuffer({ codec: this.params.codec });
    }
    if (!this.started) return;
    this.pacer.tick(nowMs);
    this.pullCallerAudio(nowMs);
    for (const digit of this.dtmfIn.flush(nowMs))
      this.emitDigit(digit.digit, digit.durationMs, digit.startedAtMs);
    if (nowMs >= this.nextRtcpMs) {
      this.nextRtcpMs = nowMs + this.rtcpIntervalMs * (0.5 + Math.random());
      this.sendRtcpReport();
    }
    this.checkTimeout(nowMs);
    this.recorder?.advance(Math.round((nowMs - this.epochMs) * 8), nowMs);
  }

  private pullCallerAudio(nowMs: number): void {
    let due = this.rxStartMs + this.rxFrameIndex * FRAME_MS;
    if (nowMs + 1 < due) return;
    const behind = Math.floor((nowMs - due) / FRAME_MS);
    if (behind >= MAX_PULLS_PER_TICK) {
      this.rxFrameIndex += behind - MAX_PULLS_PER_TICK + 1;
      due = this.rxStartMs + this.rxFrameIndex * FRAME_MS;
    }
    while (nowMs + 1 >= due) {
      const outcome = this.jitter.pull(nowMs, this.frame);
      const frameTimeMs = due - this.epochMs;
      if (outcome !== "none") {
        const seq = this.callerSeq++;
        this.duplexListeners.emit("callerFrame", this.frame, seq, frameTimeMs);
        if (this.recorder) {
          decodeG711(this.params.codec, this.frame, this.pcm);
          this.recorder.write(0, this.pcm, Math.round(frameTimeMs * 8));
        }
      }
      this.rxFrameIndex++;
      due = this.rxStartMs + this.rxFrameIndex * FRAME_MS;
    }
  }

  private checkTimeout(nowMs: number): void {
    if (this.timeoutMs <= 0 || this.timedOut) return;
    // On hold (anything but sendrecv) the far end may legitimately send nothing.
    if (this.params.direction !== "sendrecv") {
      this.lastReceiveMs = nowMs;
      return;
    }
    if (nowMs - this.lastReceiveMs >= this.timeoutMs) {
      this.timedOut = true;
      this.logger.warn({ callId: this.callId, silentMs: nowMs - this.lastReceiveMs }, "media timeout");
      this.mediaListeners.emit("timeout");
    }
  }

  private readonly onRtp = (message: Buffer, remote: { address: string; port: number }): void => {
    if (this.closing) return;
    if (message.length < 12 || message[0]! >> 6 !== RTP_VERSION) {
      this.droppedNotRtp++;
      return;
    }
    if (looksLikeRtcp(message)) {
      // rtcp-mux from a peer that did not negotiate it: read it, it is harmless and useful.
      this.handleRtcp(message, remote.address, remote.port);
      return;
    }
    const sequenceNumber = (message[2]! << 8) | message[3]!;
    if (!this.latch.accept(remote.address, remote.port, sequenceNumber)) {
      this.droppedWrongSource++;
      return;
    }
    const payloadType = message[1]! & 0x7f;
    const isAudio = payloadType === this.params.payloadType;
    const isDtmf = payloadType === this.params.dtmfPayloadType;
    if (!isAudio && !isDtmf) {
      this.droppedWrongPayloadType++;
      return;
    }
    const parsed = parseRtp(message);
    if (!parsed.ok) {
      this.droppedNotRtp++;
      return;
    }
    const packet = parsed.packet;
    const nowMs = this.clock();
    this.lastReceiveMs = nowMs;
    this.timedOut = false;
    if (!this.started) {
      // Before the answer: count it (and keep the timeout quiet) but do not buffer audio yet.
      return;
    }
    const outcome = this.jitter.push(packet, nowMs, isAudio);
    if (isDtmf && outcome === "counted") {
      for (const digit of this.dtmfIn.receive(packet.ssrc, packet.timestamp, packet.payload, nowMs)) {
        this.emitDigit(digit.digit, digit.durationMs, digit.startedAtMs);
      }
    }
  };

  private emitDigit(digit: string, durationMs: number, startedAtMs: number): void {
    const event = { digit, durationMs, atMs: Math.max(0, startedAtMs - this.epochMs) };
    this.duplexListeners.emit("dtmf", event);
  }

  private readonly onRtcp = (message: Buffer, remote: { address: string; port: number }): void => {
    if (this.closing) return;
    this.handleRtcp(message, remote.address, remote.port);
  };

  private handleRtcp(message: Uint8Array, address: string, port: number): void {
    if (!this.latch.isAllowedAddress(address)) {
      this.droppedWrongSource++;
      return;
    }
    const { packets } = parseRtcp(message);
    if (packets.length === 0) {
      this.droppedNotRtp++;
      return;
    }
    this.rtcpReceived++;
    // Symmetric RTCP: answer where it comes from (NAT), like RTP.
    this.rtcpTarget = { address, port };
    const nowMs = this.clock();
    const arrival = toNtp(this.wallClock());
    const arrivalMiddle = ntpMiddle(arrival.seconds, arrival.fraction);
    for (const packet of packets) this.readRtcpPacket(packet, nowMs, arrivalMiddle);
  }

  private readRtcpPacket(packet: RtcpPacket, nowMs: number, arrivalMiddle: number): void {
    if (packet.type !== "sr" && packet.type !== "rr") return;
    if (packet.type === "sr") {
      this.lastSenderReport = { middle: ntpMiddle(packet.ntpSeconds, packet.ntpFraction), arrivalMs: nowMs };
    }
    for (const block of packet.reports) {
      if (block.ssrc !== this.ssrc) continue;
      const rtt = roundTripMs(block, arrivalMiddle);
      if (rtt !== undefined) this.roundTrip = rtt;
    }
  }

  private sendRtcpReport(): void {
    const target = this.rtcpDestination();
    if (!target) return;
    const nowMs = this.clock();
    const packets: RtcpPacket[] = [];
    const reports = [];
    const remoteSsrc = this.jitter.currentSsrc;
    if (remoteSsrc !== undefined && this.jitter.receive.hasSource) {
      const fields = this.jitter.receive.takeReceptionReport();
      const lsr = this.lastSenderReport;
      reports.push({
        ssrc: remoteSsrc,
        ...fields,
        lastSenderReport: lsr?.middle ?? 0,
        delaySinceLastSenderReport: lsr ? Math.round(((nowMs - lsr.arrivalMs) / 1000) * 65536) >>> 0 : 0,
      });
    }
    const sent = this.pacer.stats();
    if (sent.packetsSent > 0) {
      const ntp = toNtp(this.wallClock());
      const rtpTimestamp = (this.pacer.nextTimestamp - Math.round((this.pacer.nextDueMs - nowMs) * 8)) >>> 0;
      packets.push({
        type: "sr",
        ssrc: this.ssrc,
        ntpSeconds: ntp.seconds,
        ntpFraction: ntp.fraction,
        rtpTimestamp,
        packetCount: sent.packetsSent >>> 0,
        octetCount: sent.octetsSent >>> 0,
        reports,
      });
    } else {
      packets.push({ type: "rr", ssrc: this.ssrc, reports });
    }
    packets.push({ type: "sdes", chunks: [{ ssrc: this.ssrc, items: [{ type: 1, text: this.cname }] }] });
    this.rtcp.send(serializeRtcp(packets), target.port, target.address);
  }

  private rtcpDestination(): { address: string; port: number } | undefined {
    if (this.rtcpTarget) return this.rtcpTarget;
    const rtpTarget = this.latch.target;
    if (rtpTarget.address === "0.0.0.0" || rtpTarget.port === 0) return undefined;
    return { address: rtpTarget.address, port: rtpTarget.port + 1 };
  }

  private sendRtp(packet: Uint8Array, agentAudio: Uint8Array | undefined, frameMs: number): void {
    const target = this.latch.target;
    if (target.address !== "0.0.0.0" && target.port !== 0) {
      this.rtp.send(packet, target.port, target.address);
    }
    if (this.recorder && agentAudio) {
      decodeG711(this.params.codec, agentAudio, this.pcm);
      this.recorder.write(1, this.pcm, Math.round(frameMs * 8));
    }
  }

  private readonly onSocketError = (error: Error): void => {
    this.sendErrors++;
    if (this.sendErrors <= 3) this.logger.warn({ callId: this.callId, err: error }, "RTP socket error");
  };

  update(params: MediaParams): void {
    if (this.closing) return;
    const previous = this.params;
    this.params = params;
    if (previous.remoteAddress !== params.remoteAddress || previous.remotePort !== params.remotePort) {
      this.latch.reset({ address: params.remoteAddress, port: params.remotePort }, this.extraAddresses);
      this.rtcpTarget = undefined;
    }
    if (previous.codec !== params.codec) {
      this.jitter = new JitterBuffer({ codec: params.codec });
    }
    this.pacer.setPayloadTypes(params.codec, params.payloadType, params.dtmfPayloadType);
    this.applyDirection();
  }

  private applyDirection(): void {
    const direction = this.params.direction;
    const onHoldAddress = this.params.remoteAddress === "0.0.0.0";
    this.pacer.setSending(!onHoldAddress && (direction === "sendrecv" || direction === "sendonly"));
  }

  stats(): MediaStats {
    const jitter = this.jitter.stats();
    const sent = this.pacer.stats();
    const stats: MediaStats = {
      packetsReceived: jitter.received,
      packetsSent: sent.packetsSent,
      packetsLost: jitter.lost,
      lossPercent: jitter.lossPercent,
      jitterMs: jitter.jitterMs,
      late: jitter.late,
      reordered: jitter.reordered,
      duplicates: jitter.duplicates,
      concealed: jitter.concealed,
      droppedNotRtp: this.droppedNotRtp,
      droppedWrongPayloadType: this.droppedWrongPayloadType,
      droppedWrongSource: this.droppedWrongSource,
      playoutQueuedMs: sent.queuedMs,
      playoutUnderruns: sent.underruns,
    };
    if (this.roundTrip !== undefined) stats.roundTripMs = this.roundTrip;
    return stats;
  }

  /** Extra figures not in the MediaStats contract (benchmarks, debugging). */
  details(): { latched: boolean; latchSwitches: number; sendErrors: number; rtcpReceived: number } {
    return {
      latched: this.latch.isLatched,
      latchSwitches: this.latch.switches,
      sendErrors: this.sendErrors,
      rtcpReceived: this.rtcpReceived,
    };
  }

  close(reason: string): Promise<void> {
    if (!this.closing) this.closing = this.release(reason);
    return this.closing;
  }

  private async release(reason: string): Promise<void> {
    this.pacer.stop();
    try {
      const target = this.rtcpDestination();
      if (target && this.started) {
        const bye = serializeRtcp([
          { type: "rr", ssrc: this.ssrc, reports: [] },
          { type: "bye", sources: [this.ssrc] },
        ]);
        this.rtcp.send(bye, target.port, target.address);
      }
    } catch {
      // The socket may already be unusable; a BYE is a courtesy.
    }
    this.rtp.off("message", this.onRtp);
    this.rtcp.off("message", this.onRtcp);
    await Promise.all([closeSocket(this.rtp), closeSocket(this.rtcp)]);
    if (this.recorder) {
      await this.recorder.close().catch((error: unknown) => {
        this.logger.error({ callId: this.callId, err: error }, "recording close failed");
      });
    }
    this.onClosed(this);
    this.mediaListeners.emit("closed", reason);
  }
}

export function closeSocket(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}
