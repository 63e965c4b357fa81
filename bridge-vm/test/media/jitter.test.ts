import { decodeG711 } from "@patchbay/shared/audio";
import { describe, expect, it } from "vitest";
import { JitterBuffer, type PullOutcome } from "../../src/media/jitter/jitter-buffer";

interface Scripted {
  seq: number;
  ts: number;
  atMs: number;
  ssrc?: number;
  /** Payload fill byte; identifies the frame at the output. */
  fill: number;
  audio?: boolean;
}

/** A steady stream: packet i has seq seq0+i, ts ts0+160i, arrives at 20i + offset. */
function stream(count: number, seq0 = 1000, ts0 = 50_000, offsetMs = 3): Scripted[] {
  return Array.from({ length: count }, (_, i) => ({
    seq: (seq0 + i) & 0xffff,
    ts: (ts0 + 160 * i) >>> 0,
    atMs: 20 * i + offsetMs,
    fill: 20 + (i % 90),
  }));
}

interface Output {
  outcome: PullOutcome;
  fill: number;
  frame: Uint8Array;
}

/** Feed packets by arrival time and pull one frame per 20 ms tick, like the session does. */
function play(buffer: JitterBuffer, packets: Scripted[], untilMs: number): Output[] {
  const queue = [...packets].sort((a, b) => a.atMs - b.atMs);
  const out: Output[] = [];
  const frame = new Uint8Array(160);
  for (let now = 0; now <= untilMs; now += 20) {
    while (queue.length > 0 && queue[0]!.atMs <= now) {
      const p = queue.shift()!;
      buffer.push(
        {
          ssrc: p.ssrc ?? 0x1234,
          sequenceNumber: p.seq,
          timestamp: p.ts,
          payload: new Uint8Array(160).fill(p.fill),
        },
        p.atMs,
        p.audio ?? true,
      );
    }
    const outcome = buffer.pull(now, frame);
    if (outcome !== "none") out.push({ outcome, fill: frame[0]!, frame: frame.slice() });
  }
  return out;
}

/** Concealed frames before the last real frame (after the stream ends the buffer conceals until it detects the stall). */
const concealedWithin = (out: Output[]) => {
  let last = out.length - 1;
  while (last >= 0 && out[last]!.outcome !== "audio") last--;
  return out.slice(0, last + 1).filter((o) => o.outcome === "concealed").length;
};
const audioFills = (out: Output[]) => out.filter((o) => o.outcome === "audio").map((o) => o.fill);
const energy = (frame: Uint8Array) => decodeG711("PCMU", frame).reduce((sum, v) => sum + v * v, 0);

describe("JitterBuffer", () => {
  it("plays an in-order stream frame for frame with no loss", () => {
    const jb = new JitterBuffer({ codec: "PCMU" });
    const packets = stream(50);
    const out = play(jb, packets, 1100);
    expect(audioFills(out)).toEqual(packets.map((p) => p.fill));
    expect(jb.stats()).toMatchObject({ lost: 0, lossPercent: 0, late: 0, duplicates: 0, reordered: 0 });
    expect(concealedWithin(out)).toBe(0);
  });

  it("conceals lost frames with a fading repeat, then comfort silence, and counts the loss", () => {
    const jb = new JitterBuffer({ codec: "PCMU" });
    const packets = stream(40).filter((p) => p.seq < 1010 || p.seq > 1014); // 5 lost
    const out = play(jb, packets, 1000);
    const firstGap = out.findIndex((o) => o.outcome === "concealed");
    const concealed = out.slice(firstGap, firstGap + 5);
    expect(concealed.map((o) => o.outcome)).toEqual(Array(5).fill("concealed"));
    const last = out[firstGap - 1]!.frame;
    expect(energy(concealed[0]!.frame)).toBeLessThan(energy(last));
    expect(energy(concealed[1]!.frame)).toBeLessThan(energy(concealed[0]!.frame));
    expect(energy(concealed[1]!.frame)).toBeGreaterThan(0);
    expect(concealed.slice(2).every((o) => o.frame.every((b) => b === 0xff))).toBe(true);
    expect(out[firstGap + 5]).toMatchObject({
      outcome: "audio",
      fill: packets.find((p) => p.seq === 1015)!.fill,
    });
    const stats = jb.stats();
    expect(stats.lost).toBe(5);
    expect(stats.lossPercent).toBeCloseTo(12.5, 5);
    expect(concealedWithin(out)).toBe(5);
  });

  it("puts reordered packets back in order without loss or concealment", () => {
    const jb = new JitterBuffer({ codec: "PCMU", minDepthMs: 40 });
    const packets = stream(30);
    // Swap arrival of 1010/1011 and 1020/1021 (the later one overtakes by 5 ms).
    for (const first of [10, 20]) {
      packets[first]!.atMs += 25;
    }
    const out = play(jb, packets, 800);
    expect(audioFills(out)).toEqual(packets.map((p) => p.fill));
    expect(jb.stats()).toMatchObject({ reordered: 2, lost: 0, late: 0 });
    expect(concealedWithin(out)).toBe(0);
  });

  it("drops duplicates and counts them", () => {
    const jb = new JitterBuffer({ codec: "PCMU" });
    const packets = stream(20);
    packets.push(
      { ...packets[5]!, atMs: packets[5]!.atMs + 1 },
      { ...packets[6]!, atMs: packets[6]!.atMs + 60 },
    );
    const out = play(jb, packets, 500);
    expect(audioFills(out)).toEqual(stream(20).map((p) => p.fill));
    expect(jb.stats()).toMatchObject({ duplicates: 2, lost: 0 });
  });

  it("drops a packet that arrives after its playout time as late", () => {
    const jb = new JitterBuffer({ codec: "PCMU" });
    const packets = stream(30);
    packets[10]!.atMs += 100; // far beyond the 20-40 ms depth, and later packets are already there
    const out = play(jb, packets, 700);
    const stats = jb.stats();
    expect(stats.late).toBe(1);
    expect(stats.lost).toBe(0); // it did arrive: RFC 3550 loss counts it as received
    expect(stats.concealed).toBeGreaterThanOrEqual(1);
    expect(audioFills(out)).not.toContain(packets[10]!.fill);
  });

  it("crosses the sequence number wrap at 65535 without loss", () => {
    const jb = new JitterBuffer({ codec: "PCMU" });
    const packets = stream(30, 65520);
    const out = play(jb, packets, 700);
    expect(audioFills(out)).toEqual(packets.map((p) => p.fill));
    expect(jb.stats()).toMatchObject({ lost: 0, expected: 30, received: 30 });
    expect(jb.receive.extendedHighestSequence).toBe(65536 + 13);
  });

  it("crosses the timestamp wrap at 2^32 without a glitch", () => {
    const jb = new JitterBuffer({ codec: "PCMU" });
    const packets = stream(30, 10, 0xffffffff - 160 * 10 + 1);
    const out = play(jb, packets, 700);
    expect(audioFills(out)).toEqual(packets.map((p) => p.fill));
    expect(jb.stats()).toMatchObject({ lost: 0, late: 0 });
    expect(concealedWithin(out)).toBe(0);
  });

  it("follows an SSRC change (re-INVITE) with a new sequence and timeline; ignores stragglers of the old one", () => {
    const jb = new JitterBuffer({ codec: "PCMU" });
    const first = stream(20, 100, 1000);
    const second = stream(20, 40_000, 900_000_000, 20 * 20 + 3).map((p) => ({
      ...p,
      ssrc: 0x9999,
      fill: p.fill + 100,
    }));
    const straggler = { ...first[19]!, seq: 120, ts: 1000 + 160 * 20, atMs: 20 * 25 + 7 };
    const out = play(jb, [...first, ...second, straggler], 1000);
    const fills = audioFills(out);
    expect(fills.slice(0, 20)).toEqual(first.map((p) => p.fill));
    expect(fills.slice(-19)).toEqual(second.slice(1).map((p) => p.fill));
    const stats = jb.stats();
    expect(stats.ssrcChanges).toBe(1);
    expect(stats.lost).toBe(0);
    expect(stats.received).toBe(40);
  });

  it("counts telephone-event packets in the sequence space so DTMF is not loss", () => {
    const jb = new JitterBuffer({ codec: "PCMU" });
    const packets = stream(30);
    for (const p of packets.slice(10, 15)) {
      p.audio = false;
      p.ts = packets[10]!.ts; // RFC 4733: one timestamp for the event
    }
    play(jb, packets, 700);
    expect(jb.stats()).toMatchObject({ lost: 0, received: 30 });
  });

  it("adapts its depth: 20 ms on a clean stream, more under jitter, never above 80 ms", () => {
    const clean = new JitterBuffer({ codec: "PCMU" });
    play(clean, stream(100), 2100);
    expect(clean.stats().targetDepthMs).toBeCloseTo(20, 0);

    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const jittery = new JitterBuffer({ codec: "PCMU" });
    const packets = stream(200).map((p) => ({ ...p, atMs: p.atMs + Math.floor(random() * 30) }));
    const out = play(jittery, packets, 4200);
    const stats = jittery.stats();
    expect(stats.jitterMs).toBeGreaterThan(4);
    expect(stats.targetDepthMs).toBeGreaterThan(30);
    expect(stats.targetDepthMs).toBeLessThanOrEqual(80);
    // With the depth grown, nearly everything plays (only the start, before the estimate grew, may conceal).
    expect(audioFills(out).length).toBeGreaterThan(190);

    const wild = new JitterBuffer({ codec: "PCMU" });
    play(
      wild,
      stream(200).map((p, i) => ({ ...p, atMs: p.atMs + (i % 2) * 200 })),
      4500,
    );
    expect(wild.stats().targetDepthMs).toBe(80);
  });

  it("shrinks the delay back after a delay spike", () => {
    const jb = new JitterBuffer({ codec: "PCMU" });
    const packets = stream(300);
    // An 80 ms pause in delivery, then the backlog arrives at once (a Wi-Fi hiccup).
    for (const p of packets.slice(50, 54)) p.atMs = packets[54]!.atMs;
    play(jb, packets, 6100);
    const stats = jb.stats();
    expect(stats.stretched).toBe(1);
    expect(stats.late).toBe(0);
    expect(stats.shrunk).toBeGreaterThan(0);
    expect(stats.bufferedMs).toBeLessThanOrEqual(60);
  });

  it("stops producing frames when the stream stalls, and restarts when it resumes", () => {
    const jb = new JitterBuffer({ codec: "PCMU" });
    const packets = [...stream(10), ...stream(10, 1010, 50_000 + 1600, 1000)];
    const frame = new Uint8Array(160);
    const outcomes: PullOutcome[] = [];
    const queue = [...packets];
    for (let now = 0; now <= 1400; now += 20) {
      while (queue.length > 0 && queue[0]!.atMs <= now) {
        const p = queue.shift()!;
        jb.push(
          { ssrc: 1, sequenceNumber: p.seq, timestamp: p.ts, payload: new Uint8Array(160).fill(p.fill) },
          p.atMs,
        );
      }
      outcomes.push(jb.pull(now, frame));
    }
    expect(outcomes.slice(30, 45).every((o) => o === "none")).toBe(true);
    expect(outcomes.filter((o) => o === "audio")).toHaveLength(20);
  });
});
