/**
 * The inbound jitter buffer: a pure core (no socket, no timer, no clock of its own).
 *
 *   push(packet, arrivalMs)  — every valid RTP packet of the call (audio and telephone-events)
 *   pull(nowMs, out)         — once per 20 ms tick: writes one 160-byte frame into `out`
 *
 * Playout is keyed by RTP timestamp, not sequence number, so a 30 ms-ptime peer or a gap in the
 * sequence space taken by RFC 4733 events plays out correctly. Sequence numbers are used for the
 * RFC 3550 statistics only (loss, duplicates, reordering).
 *
 * Depth adapts between minDepthMs and maxDepthMs: playout starts once `target` ms are buffered
 * (target = 20 ms + 3 × measured jitter, clamped). A missing frame is concealed and playout moves
 * on (real time does not wait); if the "missing" packet then turns up while we are still inside
 * that run of concealment, it was delayed, not lost: playout steps back to it, so the concealment
 * becomes added delay instead of lost speech (up to maxDepthMs). When the buffer has stayed more
 * than a frame above target for a whole second, one frame is dropped to bring the delay back.
 *
 * Concealment: the first lost frames repeat the last good frame with a falling gain, then
 * comfort silence. That needs PCM, so it is the one place on the receive path that decodes.
 */
import {
  BYTES_PER_FRAME,
  decodeG711,
  encodeG711,
  type G711Codec,
  SILENCE_BYTE,
} from "@patchbay/shared/audio";
import { ReceiveStats, type SequenceOutcome } from "./receive-stats";

const TS_MOD = 0x1_0000_0000;
const FRAME_TS = BYTES_PER_FRAME;
/** A timestamp further than this from the playout position is a new timeline, not a gap. */
const MAX_TIMESTAMP_GAP = 8000 * 10;
/** Frames examined before shrinking the delay by one frame. */
const SHRINK_WINDOW_FRAMES = 50;

export interface JitterBufferOptions {
  codec: G711Codec;
  minDepthMs?: number;
  maxDepthMs?: number;
  /** Frames of repeat-with-fade before concealment turns to silence. */
  fadeFrames?: number;
  /** Cap on buffered packets; beyond it the oldest are dropped. */
  capacityPackets?: number;
  /** With nothing arriving for this long, playout stops (no frames) until the stream resumes. */
  stallMs?: number;
}

export interface InboundPacket {
  ssrc: number;
  sequenceNumber: number;
  timestamp: number;
  payload: Uint8Array;
}

export type PushOutcome =
  | "buffered"
  | "counted"
  | "duplicate"
  | "late"
  | "stale-ssrc"
  | "sequence-jump"
  | "empty";

/** `none`: no frame this tick (not started, or the stream stalled). */
export type PullOutcome = "none" | "audio" | "concealed";

export interface JitterStats {
  received: number;
  expected: number;
  lost: number;
  lossPercent: number;
  jitterMs: number;
  late: number;
  reordered: number;
  duplicates: number;
  concealed: number;
  /** Frames dropped to bring the delay back down after a jitter spike. */
  shrunk: number;
  /** Delayed packets played after all by stepping back over concealment (the delay grew). */
  stretched: number;
  overflowDropped: number;
  ssrcChanges: number;
  targetDepthMs: number;
  bufferedMs: number;
}

interface Slot {
  extTimestamp: number;
  payload: Uint8Array;
}

export class JitterBuffer {
  private readonly codec: G711Codec;
  private readonly minDepthMs: number;
  private readonly maxDepthMs: number;
  private readonly fadeFrames: number;
  private readonly capacity: number;
  private readonly stallMs: number;
  private readonly silence: number;

  readonly receive = new ReceiveStats(8000);
  private ssrc: number | undefined;
  private previousSsrc: number | undefined;
  private ssrcChanges = 0;

  /** Buffered packets sorted by extended timestamp. */
  private slots: Slot[] = [];
  private state: "idle" | "buffering" | "playing" = "idle";
  private highestExtTimestamp = 0;
  private hasTimestamp = false;
  private playTs = 0;
  private firstArrivalMs = 0;
  private lastArrivalMs = 0;

  private late = 0;
  private concealed = 0;
  private shrunk = 0;
  private overflowDropped = 0;
  private windowFrames = 0;
  private windowMinBufferedMs = Number.POSITIVE_INFINITY;

  private readonly lastGood = new Uint8Array(BYTES_PER_FRAME);
  private hasLastGood = false;
  private concealRun = 0;
  /** Playout position where the current run of concealment began. */
  private concealStartTs = 0;
  private stretched = 0;
  private readonly pcm = new Int16Array(BYTES_PER_FRAME);

  constructor(options: JitterBufferOptions) {
    this.codec = options.codec;
    this.minDepthMs = options.minDepthMs ?? 20;
    this.maxDepthMs = options.maxDepthMs ?? 80;
    this.fadeFrames = options.fadeFrames ?? 2;
    this.capacity = options.capacityPackets ?? 50;
    this.stallMs = options.stallMs ?? 300;
    this.silence = SILENCE_BYTE[this.codec];
  }

  get targetDepthMs(): number {
    const target = 20 + 3 * this.receive.jitterMs;
    return Math.min(this.maxDepthMs, Math.max(this.minDepthMs, target));
  }

  /**
   * Account a packet. `isAudio` false (telephone-event, already routed elsewhere) only feeds the
   * sequence statistics, so DTMF packets do not look like loss.
   */
  push(packet: InboundPacket, arrivalMs: number, isAudio = true): PushOutcome {
    if (packet.ssrc !== this.ssrc) {
      if (this.ssrc !== undefined && packet.ssrc === this.previousSsrc) return "stale-ssrc";
      this.changeSource(packet.ssrc);
    }
    const outcome: SequenceOutcome = this.receive.record(packet.sequenceNumber);
    if (outcome === "duplicate") return "duplicate";
    if (outcome === "jump-dropped") return "sequence-jump";
    this.lastArrivalMs = arrivalMs;
    if (!isAudio) return "counted";
    if (packet.payload.length === 0) return "empty";
    this.receive.recordTransit(arrivalMs, packet.timestamp);

    const extTimestamp = this.extendTimestamp(packet.timestamp);
    if (
      this.state === "playing" &&
      (extTimestamp > this.playTs + MAX_TIMESTAMP_GAP || extTimestamp < this.playTs - MAX_TIMESTAMP_GAP)
    ) {
      // The sender jumped its timestamp (new timeline after re-INVITE, or a restart): follow it.
      this.restartTimeline(packet.timestamp);
      return this.insert({ extTimestamp: packet.timestamp, payload: packet.payload }, arrivalMs);
    }
    if (this.state === "playing" && extTimestamp + packet.payload.length <= this.playTs) {
      const stepBack = this.playTs - extTimestamp;
      if (this.concealRun > 0 && extTimestamp >= this.concealStartTs && stepBack <= this.maxDepthMs * 8) {
        // Everything played since this packet's time was concealment: play it after all.
        this.playTs = extTimestamp;
        this.stretched++;
        this.concealRun = 0;
        return this.insert({ extTimestamp, payload: packet.payload }, arrivalMs);
      }
      this.late++;
      return "late";
    }
    return this.insert({ extTimestamp, payload: packet.payload }, arrivalMs);
  }

  private changeSource(ssrc: number): void {
    if (this.ssrc !== undefined) this.ssrcChanges++;
    this.previousSsrc = this.ssrc;
    this.ssrc = ssrc;
    this.receive.resetSource();
    this.slots = [];
    this.state = "idle";
    this.hasTimestamp = false;
  }

  private restartTimeline(timestamp: number): void {
    this.slots = [];
    this.state = "idle";
    this.hasTimestamp = true;
    this.highestExtTimestamp = timestamp;
  }

  /** Unwrap a 32-bit timestamp against the highest seen, so wrap at 2^32 is invisible. */
  private extendTimestamp(timestamp: number): number {
    if (!this.hasTimestamp) {
      this.hasTimestamp = true;
      this.highestExtTimestamp = timestamp;
      return timestamp;
    }
    const reference = this.highestExtTimestamp;
    const delta = (timestamp - (reference % TS_MOD)) | 0;
    const extended = reference + delta;
    if (extended > reference) this.highestExtTimestamp = extended;
    return extended;
  }

  private insert(slot: Slot, arrivalMs: number): PushOutcome {
    if (this.state === "idle") {
      this.state = "buffering";
      this.firstArrivalMs = arrivalMs;
    }
    // Insert sorted; packets nearly always arrive in order, so scan from the end.
    let index = this.slots.length;
    while (index > 0 && this.slots[index - 1]!.extTimestamp > slot.extTimestamp) index--;
    if (index > 0 && this.slots[index - 1]!.extTimestamp === slot.extTimestamp) return "duplicate";
    this.slots.splice(index, 0, slot);
    if (this.slots.length > this.capacity) {
      this.slots.shift();
      this.overflowDropped++;
      if (this.state === "playing") this.playTs = Math.max(this.playTs, this.slots[0]!.extTimestamp);
    }
    return "buffered";
  }

  private bufferedMs(): number {
    const last = this.slots[this.slots.length - 1];
    if (!last) return 0;
    const start = this.state === "playing" ? this.playTs : this.slots[0]!.extTimestamp;
    return Math.max(0, last.extTimestamp + last.payload.length - start) / 8;
  }

  /** Produce the next 20 ms frame into `out` (160 bytes, the call's codec). */
  pull(nowMs: number, out: Uint8Array): PullOutcome {
    if (this.state === "idle") return "none";
    if (this.state === "buffering") {
      const target = this.targetDepthMs;
      if (this.bufferedMs() < target && nowMs - this.firstArrivalMs < target) return "none";
      this.state = "playing";
      this.playTs = this.slots[0]!.extTimestamp;
      this.windowFrames = 0;
      this.windowMinBufferedMs = Number.POSITIVE_INFINITY;
    }
    this.discardPlayed();
    if (this.slots.length === 0) {
      if (nowMs - this.lastArrivalMs > this.stallMs) {
        // The far end stopped sending (hold, silence suppression, dead peer): stop producing frames.
        this.state = "idle";
        this.concealRun = 0;
        return "none";
      }
      // Underrun: conceal and move on; a packet that turns up late may still step playout back.
      this.conceal(out);
      this.playTs += FRAME_TS;
      return "concealed";
    }
    const covered = this.fill(out);
    this.playTs += FRAME_TS;
    if (covered === 0) {
      this.conceal(out);
    } else {
      this.lastGood.set(out);
      this.hasLastGood = true;
      this.concealRun = 0;
    }
    this.discardPlayed();
    this.adaptDepth();
    return covered === 0 ? "concealed" : "audio";
  }

  /** Copy whatever buffered audio covers [playTs, playTs + 160) into `out`; returns samples covered. */
  private fill(out: Uint8Array): number {
    const start = this.playTs;
    const end = start + FRAME_TS;
    const first = this.slots[0]!;
    if (first.extTimestamp === start && first.payload.length === FRAME_TS) {
      out.set(first.payload);
      return FRAME_TS;
    }
    out.fill(this.silence);
    let covered = 0;
    for (const slot of this.slots) {
      if (slot.extTimestamp >= end) break;
      const from = Math.max(start, slot.extTimestamp);
      const to = Math.min(end, slot.extTimestamp + slot.payload.length);
      if (to <= from) continue;
      out.set(slot.payload.subarray(from - slot.extTimestamp, to - slot.extTimestamp), from - start);
      covered += to - from;
    }
    return covered;
  }

  private discardPlayed(): void {
    let count = 0;
    while (count < this.slots.length) {
      const slot = this.slots[count]!;
      if (slot.extTimestamp + slot.payload.length > this.playTs) break;
      count++;
    }
    if (count > 0) this.slots.splice(0, count);
  }

  private adaptDepth(): void {
    const buffered = this.bufferedMs();
    if (buffered < this.windowMinBufferedMs) this.windowMinBufferedMs = buffered;
    if (++this.windowFrames < SHRINK_WINDOW_FRAMES) return;
    if (this.windowMinBufferedMs >= this.targetDepthMs + 20 && this.slots.length > 0) {
      this.playTs += FRAME_TS;
      this.shrunk++;
      this.discardPlayed();
    }
    this.windowFrames = 0;
    this.windowMinBufferedMs = Number.POSITIVE_INFINITY;
  }

  private conceal(out: Uint8Array): void {
    if (this.concealRun === 0) this.concealStartTs = this.playTs;
    this.concealed++;
    this.concealRun++;
    if (!this.hasLastGood || this.concealRun > this.fadeFrames) {
      out.fill(this.silence);
      return;
    }
    const gain = 1 - this.concealRun / (this.fadeFrames + 1);
    decodeG711(this.codec, this.lastGood, this.pcm);
    for (let i = 0; i < this.pcm.length; i++) this.pcm[i] = Math.round(this.pcm[i]! * gain);
    encodeG711(this.codec, this.pcm, out);
  }

  stats(): JitterStats {
    return {
      received: this.receive.receivedTotal,
      expected: this.receive.expected,
      lost: this.receive.lost,
      lossPercent: this.receive.lossPercent,
      jitterMs: this.receive.jitterMs,
      late: this.late,
      reordered: this.receive.reordered,
      duplicates: this.receive.duplicates,
      concealed: this.concealed,
      shrunk: this.shrunk,
      stretched: this.stretched,
      overflowDropped: this.overflowDropped,
      ssrcChanges: this.ssrcChanges,
      targetDepthMs: this.targetDepthMs,
      bufferedMs: this.bufferedMs(),
    };
  }

  get currentSsrc(): number | undefined {
    return this.ssrc;
  }
}
