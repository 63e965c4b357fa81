import { describe, expect, it } from "vitest";
import { type LatchOptions, SourceLatch } from "../../src/media/latch";
import { PortPool } from "../../src/media/port-pool";

describe("SourceLatch (RTP bleed defence)", () => {
  const sdp = { address: "192.0.2.10", port: 20000 };
  /** The PBX's public signalling IP when its SDP shows a private address. */
  const natPublic = "203.0.113.5";

  function makeLatch(extra: Partial<LatchOptions> = {}): { latch: SourceLatch; clock: { now: number } } {
    const clock = { now: 1_000 };
    const latch = new SourceLatch({ expected: sdp, latch: true, clock: () => clock.now, ...extra });
    return { latch, clock };
  }

  /** Send `count` sequential packets from one source, `stepMs` apart; returns what accept() said. */
  function stream(
    latch: SourceLatch,
    clock: { now: number },
    source: { address: string; port: number },
    firstSeq: number,
    count: number,
    stepMs = 20,
  ): boolean[] {
    const verdicts: boolean[] = [];
    for (let i = 0; i < count; i++) {
      verdicts.push(latch.accept(source.address, source.port, (firstSeq + i) & 0xffff));
      clock.now += stepMs;
    }
    return verdicts;
  }

  it("accepts the SDP source at once and locks onto it after four sequential packets", () => {
    const { latch, clock } = makeLatch();
    latch.startMedia();
    expect(stream(latch, clock, sdp, 1, 4)).toEqual([true, true, true, true]);
    expect(latch.isLatched).toBe(true);
    expect(latch.switches).toBe(0);
    clock.now += 2_000;
    expect(stream(latch, clock, { address: sdp.address, port: 30000 }, 5, 10)).not.toContain(true);
    expect(latch.target).toEqual(sdp);
  });

  it("attack: another port on the PBX's IP spraying before the PBX's first RTP never takes the latch", () => {
    const { latch, clock } = makeLatch({ extraAddresses: [natPublic] });
    const attacker = { address: sdp.address, port: 40000 };
    // Sprayed before the answer and in the gap between the answer and the PBX's first packet.
    expect(stream(latch, clock, attacker, 1000, 20, 5)).not.toContain(true);
    latch.startMedia();
    expect(stream(latch, clock, attacker, 1020, 60, 5)).not.toContain(true);
    expect(latch.target).toEqual(sdp);
    // The PBX starts streaming from its SDP port while the spray goes on, interleaved packet by packet.
    for (let i = 0; i < 200; i++) {
      expect(latch.accept(sdp.address, sdp.port, 500 + i)).toBe(true);
      expect(latch.accept(attacker.address, attacker.port, 1080 + i)).toBe(false);
      clock.now += 20;
    }
    expect(latch.target).toEqual(sdp);
    expect(latch.switches).toBe(0);
  });

  it("while the SDP port streams, nothing else locks even if it never completes probation itself", () => {
    const { latch, clock } = makeLatch();
    latch.startMedia();
    const other = { address: sdp.address, port: 40000 };
    for (let i = 0; i < 100; i++) {
      // The PBX's own packets arrive out of order (never 4 in a row), the attacker's perfectly in order.
      expect(latch.accept(sdp.address, sdp.port, i % 2 === 0 ? 100 + i : 50 + i)).toBe(true);
      expect(latch.accept(other.address, other.port, 2000 + i)).toBe(false);
      clock.now += 20;
    }
    expect(latch.isLatched).toBe(false);
    expect(latch.target).toEqual(sdp);
  });

  it("NAT: the right IP with a rewritten port latches after probation once the SDP port stays silent", () => {
    const { latch, clock } = makeLatch();
    latch.startMedia();
    const natted = { address: sdp.address, port: 40000 };
    expect(latch.accept(natted.address, natted.port, 10)).toBe(false);
    expect(latch.accept(natted.address, natted.port, 12)).toBe(false); // not sequential: probation restarts
    // Sequential from now on, but the SDP port keeps first claim for 1 s (50 × 20 ms) after media start.
    const early = stream(latch, clock, natted, 13, 40);
    expect(early).not.toContain(true);
    const verdicts = [...early, ...stream(latch, clock, natted, 53, 20)];
    expect(verdicts.indexOf(true)).toBe(50);
    expect(verdicts.slice(50)).not.toContain(false);
    expect(latch.target).toEqual(natted);
    expect(latch.switches).toBe(1);
    // Another port of the same IP cannot take it over.
    expect(stream(latch, clock, { address: sdp.address, port: 40002 }, 1, 10)).not.toContain(true);
  });

  it("NAT: a private SDP address latches onto the PBX's public signalling IP; foreign IPs never", () => {
    const { latch, clock } = makeLatch({ extraAddresses: [natPublic] });
    latch.startMedia();
    expect(stream(latch, clock, { address: "198.51.100.66", port: 20000 }, 0, 100)).not.toContain(true);
    expect(latch.isLatched).toBe(false);
    const pbx = { address: natPublic, port: 7000 };
    const verdicts = stream(latch, clock, pbx, 1, 20);
    // 100 foreign packets took 2 s: the SDP preference has expired, so plain probation decides.
    expect(verdicts).toEqual([false, false, false, ...Array<boolean>(17).fill(true)]);
    expect(latch.target).toEqual(pbx);
  });

  it("switch-back: four sequential packets from the SDP ip:port move the latch home at any time", () => {
    const { latch, clock } = makeLatch({ extraAddresses: [natPublic] });
    latch.startMedia();
    const pbx = { address: natPublic, port: 7000 };
    clock.now += 1_500;
    stream(latch, clock, pbx, 1, 4);
    expect(latch.target).toEqual(pbx);
    clock.now += 60_000; // long after the learning window closed
    expect(latch.accept(sdp.address, sdp.port, 100)).toBe(true); // always heard
    expect(latch.accept(sdp.address, sdp.port, 102)).toBe(true); // gap: probation restarts
    expect(latch.target).toEqual(pbx);
    expect(stream(latch, clock, sdp, 103, 4)).toEqual([true, true, true, true]);
    expect(latch.target).toEqual(sdp);
    expect(latch.switches).toBe(2);
    expect(latch.accept(pbx.address, pbx.port, 5)).toBe(false);
  });

  it("closed learning window: 5 s after media start only the SDP ip:port (and a latched source) count", () => {
    const { latch, clock } = makeLatch({ extraAddresses: [natPublic] });
    latch.startMedia();
    clock.now += 5_000;
    expect(stream(latch, clock, { address: natPublic, port: 7000 }, 1, 50)).not.toContain(true);
    expect(latch.isLatched).toBe(false);
    expect(stream(latch, clock, sdp, 1, 4)).toEqual([true, true, true, true]);
    expect(latch.target).toEqual(sdp);
  });

  it("the learning window can be tuned and stays open until media start", () => {
    const { latch, clock } = makeLatch({ learningWindowMs: 2_000, sdpPreferenceMs: 500 });
    const natted = { address: sdp.address, port: 40000 };
    clock.now += 30_000; // a long ring: before the answer nothing but the SDP port may lock
    expect(stream(latch, clock, natted, 1, 10)).not.toContain(true);
    latch.startMedia();
    clock.now += 1_999;
    expect(stream(latch, clock, natted, 20, 4, 0)).toEqual([false, false, false, true]);
  });

  it("a renegotiation forgets the latch and reopens the window for the new SDP endpoint", () => {
    const { latch, clock } = makeLatch();
    latch.startMedia();
    stream(latch, clock, sdp, 1, 4);
    clock.now += 10_000;
    const moved = { address: "192.0.2.20", port: 22000 };
    latch.reset(moved);
    expect(latch.isLatched).toBe(false);
    expect(latch.target).toEqual(moved);
    expect(latch.accept(sdp.address, sdp.port, 5)).toBe(false); // old IP no longer allowed
    const natted = { address: moved.address, port: 40000 };
    clock.now += 1_000;
    expect(stream(latch, clock, natted, 1, 4)).toEqual([false, false, false, true]);
    expect(latch.target).toEqual(natted);
  });

  it("without latching accepts any port of allowed IPs and nothing else", () => {
    const { latch: open } = makeLatch({ latch: false });
    expect(open.accept("192.0.2.10", 1234, 1)).toBe(true);
    expect(open.accept("192.0.2.11", 20000, 2)).toBe(false);
    expect(open.target).toEqual(sdp);
  });
});

describe("PortPool", () => {
  it("hands out even ports round-robin and tolerates double release", () => {
    const pool = new PortPool(10000, 10008);
    expect([pool.acquire(), pool.acquire()]).toEqual([10000, 10002]);
    pool.release(10000);
    pool.release(10000);
    pool.release(12345);
    expect([pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire()]).toEqual([
      10004,
      10006,
      10000,
      undefined,
    ]);
    expect(pool.used).toBe(4);
    expect(pool.available).toBe(0);
  });
});
