/**
 * RFC 4733 telephone-events, both directions, as pure cores.
 *
 * Receive: the payload type is whatever the REMOTE side negotiated (never a hard-coded 101); the
 * routing by payload type happens in the session. One key press arrives as several packets that
 * share one RTP timestamp (the event start), the last three carrying the E bit; we emit exactly
 * one event per timestamp, when the first end packet arrives, or when a new event starts without
 * any end packet having survived, or on `flush` after the stream went quiet.
 *
 * Send: one event = packets every 20 ms with the same timestamp, marker on the first, growing
 * duration, and the final packet (E bit set, final duration) sent three times (RFC 4733 §2.5.1.4).
 */

export const DTMF_DIGITS = "0123456789*#ABCD";
const FLASH_EVENT = 16;

export function eventCodeOf(digit: string): number | undefined {
  const index = DTMF_DIGITS.indexOf(digit.toUpperCase());
  return index >= 0 && digit.length === 1 ? index : undefined;
}

export function digitOf(eventCode: number): string | undefined {
  if (eventCode === FLASH_EVENT) return "!";
  return DTMF_DIGITS[eventCode];
}

export interface TelephoneEventPayload {
  event: number;
  end: boolean;
  volume: number;
  duration: number;
}

export function parseTelephoneEvent(payload: Uint8Array): TelephoneEventPayload | undefined {
  if (payload.length < 4) return undefined;
  return {
    event: payload[0]!,
    end: (payload[1]! & 0x80) !== 0,
    volume: payload[1]! & 0x3f,
    duration: (payload[2]! << 8) | payload[3]!,
  };
}

export function writeTelephoneEvent(target: Uint8Array, offset: number, value: TelephoneEventPayload): void {
  target[offset] = value.event & 0xff;
  target[offset + 1] = (value.end ? 0x80 : 0) | (value.volume & 0x3f);
  target[offset + 2] = (value.duration >>> 8) & 0xff;
  target[offset + 3] = value.duration & 0xff;
}

export interface ReceivedDigit {
  digit: string;
  durationMs: number;
  /** Arrival time (caller's clock) of the event's first packet. */
  startedAtMs: number;
}

interface OpenEvent {
  timestamp: number;
  ssrc: number;
  event: number;
  duration: number;
  startedAtMs: number;
  lastPacketMs: number;
}

export class DtmfReceiver {
  private open: OpenEvent | undefined;
  /** Timestamps of events already reported, so the repeated end packets are ignored. */
  private readonly reported: number[] = [];
  private readonly clockRate: number;

  constructor(clockRate = 8000) {
    this.clockRate = clockRate;
  }

  /** Feed one telephone-event packet; returns the digits completed by it (0, 1 or 2). */
  receive(ssrc: number, timestamp: number, payload: Uint8Array, arrivalMs: number): ReceivedDigit[] {
    const parsed = parseTelephoneEvent(payload);
    if (!parsed || parsed.event > FLASH_EVENT) return [];
    const key = timestamp >>> 0;
    if (this.reported.includes(key)) return [];
    const done: ReceivedDigit[] = [];
    if (this.open && (this.open.timestamp !== key || this.open.ssrc !== ssrc)) {
      // A new event began and the previous one never showed an end packet: report it as it stood.
      done.push(this.finish(this.open));
      this.open = undefined;
    }
    if (!this.open) {
      this.open = {
        timestamp: key,
        ssrc,
        event: parsed.event,
        duration: parsed.duration,
        startedAtMs: arrivalMs,
        lastPacketMs: arrivalMs,
      };
    }
    const open = this.open;
    open.duration = Math.max(open.duration, parsed.duration);
    open.lastPacketMs = arrivalMs;
    if (parsed.end) {
      done.push(this.finish(open));
      this.open = undefined;
    }
    return done;
  }

  /** Report an event whose end packets were all lost, once nothing came for `quietMs`. */
  flush(nowMs: number, quietMs = 500): ReceivedDigit[] {
    if (!this.open || nowMs - this.open.lastPacketMs < quietMs) return [];
    const digit = this.finish(this.open);
    this.open = undefined;
    return [digit];
  }

  private finish(event: OpenEvent): ReceivedDigit {
    this.reported.push(event.timestamp);
    if (this.reported.length > 16) this.reported.shift();
    return {
      digit: digitOf(event.event) ?? "?",
      durationMs: Math.round((event.duration / this.clockRate) * 1000),
      startedAtMs: event.startedAtMs,
    };
  }
}

export interface DtmfSendOptions {
  toneMs?: number;
  /** Silence between digits, during which audio resumes. */
  gapMs?: number;
  volume?: number;
  frameMs?: number;
  clockRate?: number;
}

/** One packet the pacer must send instead of an audio frame. */
export interface DtmfPacketPlan {
  payload: TelephoneEventPayload;
  /** First packet of the event: set the RTP marker bit and fix the event timestamp here. */
  first: boolean;
}

/**
 * Plans the per-frame packets for queued digits. The pacer asks once per 20 ms frame:
 * `next()` returns a packet to send in place of audio, `"gap"` for an inter-digit pause
 * (send audio as normal), or undefined when no digits are pending.
 */
export class DtmfSender {
  private readonly toneUnits: number;
  private readonly gapFrames: number;
  private readonly frameUnits: number;
  private readonly volume: number;
  private readonly queue: { event: number; done: () => void }[] = [];
  private current: { event: number; done: () => void; duration: number; endsSent: number } | undefined;
  private gapLeft = 0;

  constructor(options: DtmfSendOptions = {}) {
    const clockRate = options.clockRate ?? 8000;
    const frameMs = options.frameMs ?? 20;
    this.frameUnits = (clockRate * frameMs) / 1000;
    this.toneUnits = ((options.toneMs ?? 100) * clockRate) / 1000;
    this.gapFrames = Math.ceil((options.gapMs ?? 60) / frameMs);
    this.volume = options.volume ?? 10;
  }

  enqueue(event: number, done: () => void): void {
    this.queue.push({ event, done });
  }

  get pending(): boolean {
    return this.current !== undefined || this.queue.length > 0 || this.gapLeft > 0;
  }

  /** Abandon everything queued (call closing); pending promises resolve. */
  cancel(): void {
    this.current?.done();
    for (const item of this.queue) item.done();
    this.current = undefined;
    this.queue.length = 0;
    this.gapLeft = 0;
  }

  next(): DtmfPacketPlan | "gap" | undefined {
    if (!this.current) {
      if (this.gapLeft > 0) {
        this.gapLeft--;
        return "gap";
      }
      const item = this.queue.shift();
      if (!item) return undefined;
      this.current = { ...item, duration: 0, endsSent: 0 };
    }
    const current = this.current;
    const first = current.duration === 0;
    if (current.duration < this.toneUnits) {
      current.duration = Math.min(this.toneUnits, current.duration + this.frameUnits);
      const end = current.duration >= this.toneUnits;
      if (end) current.endsSent = 1;
      return {
        payload: { event: current.event, end, volume: this.volume, duration: current.duration },
        first,
      };
    }
    current.endsSent++;
    if (current.endsSent >= 3) this.finishCurrent();
    return {
      payload: { event: current.event, end: true, volume: this.volume, duration: current.duration },
      first,
    };
  }

  private finishCurrent(): void {
    const current = this.current;
    this.current = undefined;
    this.gapLeft = this.gapFrames;
    current?.done();
  }
}
