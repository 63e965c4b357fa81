import { describe, expect, it } from "vitest";
import { SourceLatch } from "../../src/media/latch";
import { PortPool } from "../../src/media/port-pool";

describe("SourceLatch (RTP bleed defence)", () => {
  const expected = { address: "192.0.2.10", port: 20000 };

  it("accepts the SDP source at once and locks onto it after four sequential packets", () => {
    const latch = new SourceLatch({ expected, latch: true });
    expect([1, 2, 3, 4].map((seq) => latch.accept("192.0.2.10", 20000, seq))).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(latch.isLatched).toBe(true);
    expect(latch.switches).toBe(0);
    expect(latch.accept("192.0.2.10", 30000, 5)).toBe(false);
  });

  it("switches to a NAT'd port of the expected IP only after probation, then ignores everything else", () => {
    const latch = new SourceLatch({ expected, latch: true });
    expect(latch.accept("192.0.2.10", 40000, 10)).toBe(false);
    expect(latch.accept("192.0.2.10", 40000, 12)).toBe(false); // not sequential: probation restarts
    expect([13, 14, 15].map((seq) => latch.accept("192.0.2.10", 40000, seq))).toEqual([false, false, true]);
    expect(latch.target).toEqual({ address: "192.0.2.10", port: 40000 });
    expect(latch.switches).toBe(1);
    expect(latch.accept("192.0.2.10", 20000, 16)).toBe(false);
  });

  it("never latches onto a foreign IP however many sequential packets it sends", () => {
    const latch = new SourceLatch({ expected, latch: true });
    for (let seq = 0; seq < 100; seq++) expect(latch.accept("198.51.100.66", 20000, seq)).toBe(false);
    expect(latch.isLatched).toBe(false);
    expect(latch.target).toEqual(expected);
  });

  it("interleaved sprays cannot complete probation; extra addresses (NAT'd PBX) may latch", () => {
    const latch = new SourceLatch({ expected, latch: true, extraAddresses: ["203.0.113.5"] });
    for (let i = 0; i < 20; i++) {
      latch.accept("192.0.2.10", 50000 + (i % 2), 100 + i); // two ports alternating
    }
    expect(latch.isLatched).toBe(false);
    [1, 2, 3, 4].forEach((seq) => {
      latch.accept("203.0.113.5", 7000, seq);
    });
    expect(latch.target).toEqual({ address: "203.0.113.5", port: 7000 });
  });

  it("re-learns after a renegotiation; without latching accepts any port of allowed IPs", () => {
    const latch = new SourceLatch({ expected, latch: true });
    [1, 2, 3, 4].forEach((seq) => {
      latch.accept("192.0.2.10", 20000, seq);
    });
    latch.reset({ address: "192.0.2.20", port: 22000 });
    expect(latch.isLatched).toBe(false);
    expect(latch.accept("192.0.2.10", 20000, 5)).toBe(false);
    const open = new SourceLatch({ expected, latch: false });
    expect(open.accept("192.0.2.10", 1234, 1)).toBe(true);
    expect(open.accept("192.0.2.11", 20000, 2)).toBe(false);
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
