/**
 * The outbound playout pacer: a pure core driven by an injected monotonic clock.
 *
 * Agent audio arrives in bursts (TTS runs faster than real time); the pacer queues it and emits
 * exactly one 20 ms RTP packet per 20 ms. Frame k is due at `startMs + k × 20` — computed from the
 * start, never by adding intervals to "now" — so timer lateness never accumulates into drift.
 * The timestamp advances by 160 per frame whether or not a packet goes out (idle "none", hold,
 * recvonly), so the far end's clock stays continuous; the sequence number advances per packet sent.
 *
 * The marker bit goes on the first packet of each talk spurt. `clear()` drops the queue at once
 * (the next frame is already silence); `mark(name)` fires when the byte it names has been sent.
 * RFC 4733 digits replace audio frames while they play (the queue waits, it is not consumed).
 */
import { BYTES_PER_FRAME, FRAME_MS, type G711Codec, SILENCE_BYTE } from "@patchbay/shared/audio";
import { DtmfSender, eventCodeOf, writeTelephoneEvent } from "../dtmf/dtmf";
import { RTP_HEADER_BYTES, writeRtpHeader } from "../rtp/packet";

export type IdleMode = "silence" | "none";

const MAX_PENDING_MARKS = 1024;

export interface PacerOptions {
  codec: G711Codec;
  payloadType: number;
  /** The remote side's telephone-event payload type; without it sendDtmf rejects. */
  dtmfPayloadType?: number;
  ssrc: number;
  initialSequence: number;
  initialTimestamp: number;
  idle: IdleMode;
  /** Queue cap; audio beyond it is dropped (a runaway TTS must not eat the VM's memory). */
  maxQueueMs?: number;
  /** After a stall longer than this many frames, skip ahead instead of bursting. */
  maxCatchUpFrames?: number;
  /** A frame due within this many ms counts as due (the timer may wake a hair early). */
  slackMs?: number;
  /**
   * Packet allocator. Every byte of a packet is written, so the adapter may pass a pooled,
   * uninitialised allocator (Buffer.allocUnsafe): one fresh ArrayBuffer per packet is GC work.
   */
  allocate?: (length: number) => Uint8Array;
}

export interface PacerSink {
  /**
   * A packet to put on the wire now. `agentAudio` is the 160-byte agent frame it carries, if any;
   * `frameMs` is the frame's slot on the grid (ms since start), for time-aligned recording.
   */
  send(packet: Uint8Array, agentAudio: Uint8Array | undefined, frameMs: number): void;
  markPlayed(name: string, atMs: number): void;
}

export interface PacerStats {
  packetsSent: number;
  octetsSent: number;
  queuedMs: number;
  underruns: number;
  overflowDroppedMs: number;
  skippedFrames: number;
  dtmfPacketsSent: number;
}

export class PlayoutPacer {
  private codec: G711Codec;
  private payloadType: number;
  private dtmfPayloadType: number | undefined;
  private readonly ssrc: number;
  private readonly idle: IdleMode;
  private readonly maxQueueBytes: number;
  private readonly maxCatchUpFrames: number;
  private readonly slackMs: number;
  private readonly sink: PacerSink;
  private readonly allocate: (length: number) => Uint8Array;

  private sequence: number;
  private timestamp: number;
  private started = false;
  private startMs = 0;
  private frameIndex = 0;
  private sending = true;
  private talking = false;

  private chunks: Uint8Array[] = [];
  private headOffset = 0;
  private queuedBytes = 0;
  private enqueuedTotal = 0;
  private consumedTotal = 0;
  private marks: { name: string; offset: number }[] = [];

  private readonly dtmf = new DtmfSender();
  private dtmfTimestamp = 0;

  private packetsSent = 0;
  private octetsSent = 0;
  private underruns = 0;
  private overflowDroppedBytes = 0;
  private skippedFrames = 0;
  private dtmfPacketsSent = 0;
  /** Last RTP timestamp and when (monotonic ms) it was due, for RTCP sender reports. */
  lastTimestampSent = 0;

  constructor(options: PacerOptions, sink: PacerSink) {
    this.codec = options.codec;
    this.payloadType = options.payloadType;
    this.dtmfPayloadType = options.dtmfPayloadType;
    this.ssrc = options.ssrc >>> 0;
    this.sequence = options.initialSequence & 0xffff;
    this.timestamp = options.initialTimestamp >>> 0;
    this.idle = options.idle;
    this.maxQueueBytes = ((options.maxQueueMs ?? 120_000) * 8) | 0;
    this.maxCatchUpFrames = options.maxCatchUpFrames ?? 5;
    this.slackMs = options.slackMs ?? 1;
    this.sink = sink;
    this.allocate = options.allocate ?? ((length) => new Uint8Array(length));
  }

  /** Anchor the frame grid: frame 0 is due at `nowMs`. */
  start(nowMs: number): void {
    if (this.started) return;
    this.started = true;
    this.startMs = nowMs;
    this.frameIndex = 0;
  }

  get isStarted(): boolean {
    return this.started;
  }

  /** Monotonic time at which the next frame is due (for a scheduler that wants to sleep exactly). */
  get nextDueMs(): number {
    return this.startMs + this.frameIndex * FRAME_MS;
  }

  /** Hold/resume and recvonly/inactive: when false, frames advance the clock but nothing is sent. */
  setSending(sending: boolean): void {
    if (sending && !this.sending) this.talking = false;
    this.sending = sending;
  }

  /** A re-INVITE may change codec or payload types; SSRC, sequence and timestamp stay continuous. */
  setPayloadTypes(codec: G711Codec, payloadType: number, dtmfPayloadType: number | undefined): void {
    this.codec = codec;
    this.payloadType = payloadType;
    this.dtmfPayloadType = dtmfPayloadType;
  }

  enqueue(audio: Uint8Array): void {
    let length = audio.length;
    if (this.queuedBytes + length > this.maxQueueBytes) {
      const room = Math.max(0, this.maxQueueBytes - this.queuedBytes);
      this.overflowDroppedBytes += length - room;
      length = room;
    }
    if (length === 0) return;
    // Copy: the caller's buffer is usually a view into a WebSocket message that will be reused.
    this.chunks.push(audio.slice(0, length));
    this.queuedBytes += length;
    this.enqueuedTotal += length;
  }

  clear(): { discardedMs: number } {
    const discardedMs = this.queuedBytes / 8;
    this.chunks = [];
    this.headOffset = 0;
    this.queuedBytes = 0;
    this.consumedTotal = this.enqueuedTotal;
    this.marks = [];
    this.talking = false;
    return { discardedMs };
  }

  mark(name: string): void {
    // Bounded like everything fed from outside: a runaway sender of marks cannot grow this forever.
    if (this.marks.length >= MAX_PENDING_MARKS) this.marks.shift();
    this.marks.push({ name, offset: this.enqueuedTotal });
  }

  sendDtmf(digits: string): Promise<void> {
    if (this.dtmfPayloadType === undefined) {
      return Promise.reject(new Error("the remote side did not negotiate telephone-event"));
    }
    const codes: number[] = [];
    for (const digit of digits) {
      const code = eventCodeOf(digit);
      if (code === undefined)
        return Promise.reject(new RangeError(`not a DTMF digit: ${JSON.stringify(digit)}`));
      codes.push(code);
    }
    return Promise.all(
      codes.map((code) => new Promise<void>((resolve) => this.dtmf.enqueue(code, resolve))),
    ).then(() => undefined);
  }

  /** Stop: pending DTMF promises resolve, the queue is dropped. */
  stop(): void {
    this.dtmf.cancel();
    this.clear();
  }

  /** Emit every frame due by `nowMs`. Returns how many frame slots were processed. */
  tick(nowMs: number): number {
    if (!this.started) return 0;
    let due = this.startMs + this.frameIndex * FRAME_MS;
    if (nowMs + this.slackMs < due) return 0;
    const behindFrames = Math.floor((nowMs - due) / FRAME_MS);
    if (behindFrames >= this.maxCatchUpFrames) {
      // The process stalled (GC, overload): bursting the backlog would only flood the far end's
      // jitter buffer. Skip the missed slots on the clock; queued audio waits, nothing is lost.
      const skip = behindFrames - this.maxCatchUpFrames + 1;
      this.frameIndex += skip;
      this.timestamp = (this.timestamp + skip * BYTES_PER_FRAME) >>> 0;
      this.skippedFrames += skip;
      due = this.startMs + this.frameIndex * FRAME_MS;
    }
    let processed = 0;
    while (nowMs + this.slackMs >= due) {
      this.emitFrame(nowMs);
      this.frameIndex++;
      this.timestamp = (this.timestamp + BYTES_PER_FRAME) >>> 0;
      processed++;
      due = this.startMs + this.frameIndex * FRAME_MS;
    }
    return processed;
  }

  private emitFrame(nowMs: number): void {
    if (!this.sending) return;
    // A mark placed when nothing was queued is reached before this frame's audio goes out.
    this.fireMarks(nowMs);
    if (this.dtmfPayloadType !== undefined && this.dtmf.pending) {
      const plan = this.dtmf.next();
      if (plan !== undefined && plan !== "gap") {
        if (plan.first) this.dtmfTimestamp = this.timestamp;
        const packet = this.allocate(RTP_HEADER_BYTES + 4);
        writeRtpHeader(
          packet,
          plan.first,
          this.dtmfPayloadType,
          this.sequence,
          this.dtmfTimestamp,
          this.ssrc,
        );
        writeTelephoneEvent(packet, RTP_HEADER_BYTES, plan.payload);
        this.dtmfPacketsSent++;
        this.talking = false;
        this.transmit(packet, undefined);
        return;
      }
    }
    if (this.queuedBytes > 0) {
      const packet = this.allocate(RTP_HEADER_BYTES + BYTES_PER_FRAME);
      writeRtpHeader(packet, !this.talking, this.payloadType, this.sequence, this.timestamp, this.ssrc);
      this.talking = true;
      const audio = packet.subarray(RTP_HEADER_BYTES);
      const taken = this.take(audio);
      if (taken < BYTES_PER_FRAME) {
        audio.fill(SILENCE_BYTE[this.codec], taken);
        this.underruns++;
      }
      this.transmit(packet, audio);
      this.fireMarks(nowMs);
      return;
    }
    this.talking = false;
    this.fireMarks(nowMs);
    if (this.idle === "silence") {
      const packet = this.allocate(RTP_HEADER_BYTES + BYTES_PER_FRAME);
      writeRtpHeader(packet, false, this.payloadType, this.sequence, this.timestamp, this.ssrc);
      packet.fill(SILENCE_BYTE[this.codec], RTP_HEADER_BYTES);
      this.transmit(packet, undefined);
    }
  }

  private transmit(packet: Uint8Array, agentAudio: Uint8Array | undefined): void {
    this.sequence = (this.sequence + 1) & 0xffff;
    this.packetsSent++;
    this.octetsSent += packet.length - RTP_HEADER_BYTES;
    this.lastTimestampSent = this.timestamp;
    this.sink.send(packet, agentAudio, this.frameIndex * FRAME_MS);
  }

  private take(target: Uint8Array): number {
    let written = 0;
    while (written < target.length && this.chunks.length > 0) {
      const head = this.chunks[0]!;
      const available = head.length - this.headOffset;
      const count = Math.min(available, target.length - written);
      target.set(head.subarray(this.headOffset, this.headOffset + count), written);
      written += count;
      this.headOffset += count;
      if (this.headOffset === head.length) {
        this.chunks.shift();
        this.headOffset = 0;
      }
    }
    this.queuedBytes -= written;
    this.consumedTotal += written;
    return written;
  }

  private fireMarks(nowMs: number): void {
    while (this.marks.length > 0 && this.marks[0]!.offset <= this.consumedTotal) {
      const mark = this.marks.shift()!;
      this.sink.markPlayed(mark.name, nowMs - this.startMs);
    }
  }

  get nextSequence(): number {
    return this.sequence;
  }

  get nextTimestamp(): number {
    return this.timestamp;
  }

  get startedAtMs(): number {
    return this.startMs;
  }

  stats(): PacerStats {
    return {
      packetsSent: this.packetsSent,
      octetsSent: this.octetsSent,
      queuedMs: this.queuedBytes / 8,
      underruns: this.underruns,
      overflowDroppedMs: this.overflowDroppedBytes / 8,
      skippedFrames: this.skippedFrames,
      dtmfPacketsSent: this.dtmfPacketsSent,
    };
  }
}
