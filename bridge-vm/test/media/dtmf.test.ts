import { describe, expect, it } from "vitest";
import {
  DtmfReceiver,
  DtmfSender,
  parseTelephoneEvent,
  writeTelephoneEvent,
} from "../../src/media/dtmf/dtmf";

function eventPayload(event: number, end: boolean, duration: number, volume = 10): Uint8Array {
  const bytes = new Uint8Array(4);
  writeTelephoneEvent(bytes, 0, { event, end, volume, duration });
  return bytes;
}

describe("RFC 4733 receive", () => {
  it("emits one digit per key press despite the three end packets, with its duration", () => {
    const receiver = new DtmfReceiver();
    const digits = [];
    // Digit 5 at timestamp 8000: updates every 20 ms, then E bit three times (RFC 4733 §2.5.1.4).
    for (const [duration, end, at] of [
      [160, false, 0],
      [320, false, 20],
      [480, false, 40],
      [640, false, 60],
      [800, true, 80],
      [800, true, 100],
      [800, true, 120],
    ] as const) {
      digits.push(...receiver.receive(0xabc, 8000, eventPayload(5, end, duration), 1000 + at));
    }
    expect(digits).toEqual([{ digit: "5", durationMs: 100, startedAtMs: 1000 }]);
  });

  it("byte layout matches RFC 4733 §2.3: event, E|R|volume, duration", () => {
    expect([...eventPayload(11, true, 0x0320, 10)]).toEqual([11, 0x8a, 0x03, 0x20]);
    expect(parseTelephoneEvent(Uint8Array.of(16, 0x0a, 0, 160))).toEqual({
      event: 16,
      end: false,
      volume: 10,
      duration: 160,
    });
    expect(parseTelephoneEvent(Uint8Array.of(1, 2, 3))).toBeUndefined();
  });

  it("reports an event whose end packets were all lost when the next one starts, or on flush", () => {
    const receiver = new DtmfReceiver();
    expect(receiver.receive(1, 100, eventPayload(1, false, 160), 0)).toEqual([]);
    expect(receiver.receive(1, 100, eventPayload(1, false, 480), 40)).toEqual([]);
    expect(receiver.receive(1, 2000, eventPayload(10, false, 160), 300)).toEqual([
      { digit: "1", durationMs: 60, startedAtMs: 0 },
    ]);
    expect(receiver.flush(400)).toEqual([]);
    expect(receiver.flush(900)).toEqual([{ digit: "*", durationMs: 20, startedAtMs: 300 }]);
  });

  it("ignores retransmitted end packets that arrive after the event was reported, and junk events", () => {
    const receiver = new DtmfReceiver();
    expect(receiver.receive(1, 500, eventPayload(0, true, 800), 0)).toHaveLength(1);
    expect(receiver.receive(1, 500, eventPayload(0, true, 800), 20)).toEqual([]);
    expect(receiver.receive(1, 500, eventPayload(0, true, 800), 40)).toEqual([]);
    expect(receiver.receive(1, 900, eventPayload(200, true, 800), 60)).toEqual([]);
    expect(receiver.receive(1, 900, Uint8Array.of(1), 60)).toEqual([]);
  });
});

describe("RFC 4733 send", () => {
  it("plans marker-first packets with growing duration and the end packet three times", () => {
    const sender = new DtmfSender({ toneMs: 100, gapMs: 40 });
    let done = false;
    sender.enqueue(9, () => {
      done = true;
    });
    const plans = [];
    for (let i = 0; i < 12; i++) plans.push(sender.next());
    const packets = plans.filter((p) => typeof p === "object");
    expect(packets.map((p) => p.payload.duration)).toEqual([160, 320, 480, 640, 800, 800, 800]);
    expect(packets.map((p) => p.payload.end)).toEqual([false, false, false, false, true, true, true]);
    expect(packets.map((p) => p.first)).toEqual([true, false, false, false, false, false, false]);
    expect(plans.slice(7, 9)).toEqual(["gap", "gap"]);
    expect(plans[9]).toBeUndefined();
    expect(done).toBe(true);
  });

  it("what the sender produces, the receiver decodes back to the same digits (both directions)", () => {
    const sender = new DtmfSender();
    const receiver = new DtmfReceiver();
    const digits = "159*#0D";
    for (const digit of digits) sender.enqueue("0123456789*#ABCD".indexOf(digit), () => {});
    const received = [];
    let timestamp = 0;
    let eventTimestamp = 0;
    for (let frame = 0; frame < 200; frame++, timestamp += 160) {
      const plan = sender.next();
      if (!plan || plan === "gap") continue;
      if (plan.first) eventTimestamp = timestamp;
      const payload = new Uint8Array(4);
      writeTelephoneEvent(payload, 0, plan.payload);
      received.push(...receiver.receive(7, eventTimestamp, payload, frame * 20));
    }
    expect(received.map((d) => d.digit).join("")).toBe(digits);
    expect(received.every((d) => d.durationMs === 100)).toBe(true);
  });
});
