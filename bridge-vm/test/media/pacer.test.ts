import { decodeG711, encodeG711 } from "@patchbay/shared/audio";
import { describe, expect, it } from "vitest";
import { DtmfReceiver } from "../../src/media/dtmf/dtmf";
import { type IdleMode, PlayoutPacer } from "../../src/media/playout/pacer";
import { parseRtp, type RtpPacket } from "../../src/media/rtp/packet";

interface Sent {
  atMs: number;
  packet: RtpPacket;
}

function makePacerWith(options: { maxCatchUpFrames: number }) {
  return makePacer("silence", {}, options.maxCatchUpFrames);
}

function makePacer(
  idle: IdleMode = "silence",
  extra: { dtmfPayloadType?: number; codec?: "PCMU" | "PCMA" } = {},
  maxCatchUpFrames?: number,
) {
  const sent: Sent[] = [];
  const marks: { name: string; atMs: number; packetsBefore: number }[] = [];
  let now = 0;
  const codec = extra.codec ?? "PCMU";
  const pacer = new PlayoutPacer(
    {
      codec,
      payloadType: codec === "PCMU" ? 0 : 8,
      ssrc: 0x01020304,
      initialSequence: 65530,
      initialTimestamp: 0xffffff00,
      idle,
      ...(maxCatchUpFrames !== undefined ? { maxCatchUpFrames } : {}),
      ...(extra.dtmfPayloadType !== undefined ? { dtmfPayloadType: extra.dtmfPayloadType } : {}),
    },
    {
      send(packet) {
        const parsed = parseRtp(packet);
        if (!parsed.ok) throw new Error("pacer produced an invalid packet");
        sent.push({ atMs: now, packet: { ...parsed.packet, payload: parsed.packet.payload.slice() } });
      },
      markPlayed(name, atMs) {
        marks.push({ name, atMs, packetsBefore: sent.length });
      },
    },
  );
  const at = (ms: number) => {
    now = ms;
    pacer.tick(ms);
  };
  /** Tick every 20 ms from `from` (inclusive) to `to` (exclusive), each wake `late` ms after the grid. */
  const run = (from: number, to: number, late = 0.4) => {
    for (let t = from; t < to; t += 20) at(t + late);
  };
  return { pacer, sent, marks, at, run };
}

const speech = (ms: number, byte = 0x20) => new Uint8Array(ms * 8).fill(byte);

describe("PlayoutPacer", () => {
  it("sends a burst of queued audio as exactly one 160-byte packet per 20 ms", () => {
    const { pacer, sent, run } = makePacer("none");
    pacer.start(0);
    pacer.enqueue(speech(1000)); // TTS delivers a second of audio at once
    run(0, 2000);
    expect(sent).toHaveLength(50);
    expect(sent.every((s) => s.packet.payload.length === 160)).toBe(true);
    const intervals = sent.slice(1).map((s, i) => s.atMs - sent[i]!.atMs);
    expect(intervals.every((gap) => Math.abs(gap - 20) < 1e-9)).toBe(true);
  });

  it("keeps sequence and timestamp continuous (and wrapping) across talk, idle silence and talk", () => {
    const { pacer, sent, run } = makePacer("silence");
    pacer.start(0);
    pacer.enqueue(speech(100));
    run(0, 300);
    pacer.enqueue(speech(60));
    run(300, 500);
    expect(sent).toHaveLength(25);
    sent.forEach((s, i) => {
      expect(s.packet.sequenceNumber).toBe((65530 + i) & 0xffff);
      expect(s.packet.timestamp).toBe((0xffffff00 + 160 * i) >>> 0);
    });
    // Marker exactly at the two talk-spurt starts, not on silence.
    expect(sent.flatMap((s, i) => (s.packet.marker ? [i] : []))).toEqual([0, 15]);
    expect(sent.slice(5, 15).every((s) => s.packet.payload.every((b) => b === 0xff))).toBe(true);
  });

  it("idle 'none' sends nothing while silent but the timestamp clock keeps running", () => {
    const { pacer, sent, run } = makePacer("none");
    pacer.start(0);
    pacer.enqueue(speech(40));
    run(0, 200);
    pacer.enqueue(speech(40));
    run(200, 400);
    expect(sent).toHaveLength(4);
    expect(sent.map((s) => s.packet.sequenceNumber)).toEqual([65530, 65531, 65532, 65533]);
    // The second spurt starts 200 ms (1600 units) after the first, not 40 ms after.
    expect((sent[2]!.packet.timestamp - sent[0]!.packet.timestamp) >>> 0).toBe(1600);
    expect(sent.map((s) => s.packet.marker)).toEqual([true, false, true, false]);
  });

  it("does not drift: after 10 simulated minutes of late, jittery wake-ups the grid is < 1 ms off", () => {
    const { pacer, sent, at } = makePacer("silence");
    let seed = 1;
    const random = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    pacer.start(1000.25);
    const frames = 30_000; // 10 minutes
    // Wake-ups come 0.1-2.9 ms after each frame is due, with timer imprecision in fractions of a ms.
    for (let k = 0; k < frames; k++) at(1000.25 + k * 20 + 0.1 + random() * 2.8);
    expect(sent).toHaveLength(frames);
    const offset = (i: number) => sent[i]!.atMs - (1000.25 + i * 20);
    const mean = (from: number, to: number) => {
      let sum = 0;
      for (let i = from; i < to; i++) sum += offset(i);
      return sum / (to - from);
    };
    expect(Math.abs(mean(frames - 500, frames) - mean(0, 500))).toBeLessThan(1);
    expect(sent[frames - 1]!.packet.timestamp).toBe((0xffffff00 + 160 * (frames - 1)) >>> 0);
  });

  it("after a stall sends at most three catch-up packets and skips the rest of the missed slots", () => {
    const { pacer, sent, at, run } = makePacerWith({ maxCatchUpFrames: 3 });
    pacer.start(0);
    run(0, 100);
    at(100 + 300); // the event loop was blocked for 300 ms
    expect(sent).toHaveLength(5 + 3);
    expect(pacer.stats().skippedFrames).toBe(13);
    // Timestamps still follow real time: the last one sent belongs to the 400 ms slot.
    expect((sent[7]!.packet.timestamp - sent[0]!.packet.timestamp) >>> 0).toBe(400 * 8);
  });

  it("clear() empties the queue at once: the very next frame is silence, and it reports what was dropped", () => {
    const { pacer, sent, run } = makePacer("silence");
    pacer.start(0);
    pacer.enqueue(speech(2000));
    run(0, 100);
    const { discardedMs } = pacer.clear();
    expect(discardedMs).toBe(1900);
    run(100, 120);
    expect(sent[5]!.packet.payload.every((b) => b === 0xff)).toBe(true);
    expect(pacer.stats().queuedMs).toBe(0);
    // New speech after the barge-in starts a new talk spurt.
    pacer.enqueue(speech(20));
    run(120, 140);
    expect(sent[6]!.packet.marker).toBe(true);
  });

  it("marks fire when the audio before them has actually been sent, in order; clear drops pending marks", () => {
    const { pacer, marks, run } = makePacer("none");
    pacer.start(0);
    pacer.mark("empty"); // nothing queued: reached at the next frame
    pacer.enqueue(speech(100));
    pacer.mark("first");
    pacer.enqueue(speech(30));
    pacer.mark("second");
    run(0, 40);
    expect(marks.map((m) => m.name)).toEqual(["empty"]);
    run(40, 200);
    expect(marks).toEqual([
      { name: "empty", atMs: 0.4, packetsBefore: 0 },
      { name: "first", atMs: 80.4, packetsBefore: 5 },
      { name: "second", atMs: 120.4, packetsBefore: 7 },
    ]);
    pacer.enqueue(speech(200));
    pacer.mark("never");
    run(200, 240);
    pacer.clear();
    run(240, 600);
    expect(marks.map((m) => m.name)).not.toContain("never");
  });

  it("on hold sends nothing, holds the queue, and resumes with continuous seq/ts and a marker", () => {
    const { pacer, sent, run } = makePacer("silence");
    pacer.start(0);
    pacer.enqueue(speech(200));
    run(0, 60);
    pacer.setSending(false);
    run(60, 1060);
    expect(sent).toHaveLength(3);
    pacer.setSending(true);
    run(1060, 1080);
    expect(sent[3]!.packet.sequenceNumber).toBe((sent[2]!.packet.sequenceNumber + 1) & 0xffff);
    expect((sent[3]!.packet.timestamp - sent[2]!.packet.timestamp) >>> 0).toBe(1000 * 8 + 160);
    expect(sent[3]!.packet.marker).toBe(true);
    expect(pacer.stats().queuedMs).toBe(200 - 80);
  });

  it("sends RFC 4733 digits on the negotiated payload type and they decode back", async () => {
    const { pacer, sent, run } = makePacer("silence", { dtmfPayloadType: 96 });
    pacer.start(0);
    const done = pacer.sendDtmf("4#");
    run(0, 600);
    await done;
    const events = sent.filter((s) => s.packet.payloadType === 96);
    expect(events).toHaveLength(14);
    const first = events.slice(0, 7);
    expect(new Set(first.map((s) => s.packet.timestamp)).size).toBe(1);
    expect(first.map((s) => s.packet.marker)).toEqual([true, false, false, false, false, false, false]);
    const receiver = new DtmfReceiver();
    const digits = events.flatMap((s) => receiver.receive(1, s.packet.timestamp, s.packet.payload, s.atMs));
    expect(digits.map((d) => d.digit)).toEqual(["4", "#"]);
    // Sequence numbers stay continuous through the events.
    sent.forEach((s, i) => {
      expect(s.packet.sequenceNumber).toBe((65530 + i) & 0xffff);
    });
    await expect(makePacer("silence").pacer.sendDtmf("1")).rejects.toThrow(/telephone-event/);
    await expect(pacer.sendDtmf("1x")).rejects.toThrow(RangeError);
  });

  it("carries G.711 bytes through untouched (PCMA and PCMU round trip)", () => {
    for (const codec of ["PCMU", "PCMA"] as const) {
      const { pacer, sent, run } = makePacer("none", { codec });
      const tone = new Int16Array(800).map((_, i) =>
        Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 8000)),
      );
      const encoded = encodeG711(codec, tone);
      pacer.start(0);
      pacer.enqueue(encoded);
      run(0, 200);
      const joined = new Uint8Array(sent.flatMap((s) => [...s.packet.payload]));
      expect(joined).toEqual(encoded);
      const decoded = decodeG711(codec, joined);
      for (let i = 0; i < tone.length; i++) expect(Math.abs(decoded[i]! - tone[i]!)).toBeLessThan(300);
    }
  });
});
