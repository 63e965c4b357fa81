import { encodeG711 } from "@patchbay/shared/audio";
import { afterEach, describe, expect, it, vi } from "vitest";
import { JitterBuffer } from "../../src/media/jitter/jitter-buffer";
import { PacingScheduler, type Tickable } from "../../src/media/scheduler";
import { tone } from "./support/audio";

afterEach(() => {
  vi.useRealTimers();
});

describe("PacingScheduler (one timer for all calls)", () => {
  it("ticks every call once per 20 ms on its own slot of the period, spread over the phases", () => {
    vi.useFakeTimers();
    const clock = () => Date.now();
    const scheduler = new PacingScheduler(clock, (error) => {
      throw error;
    });
    const ticks = new Map<number, number[]>();
    const calls: Tickable[] = Array.from({ length: 8 }, (_, i) => ({
      tick(_now: number, scheduled: number) {
        const list = ticks.get(i) ?? [];
        list.push(scheduled);
        ticks.set(i, list);
      },
    }));
    const start = Date.now();
    for (const call of calls) scheduler.add(call);
    vi.advanceTimersByTime(1000);
    for (let i = 0; i < 8; i++) {
      const times = ticks.get(i)!;
      expect(times.length).toBeGreaterThanOrEqual(49);
      // Exactly 20 ms apart, and the slot offset within the period is i mod 4 × 5 ms.
      expect(times.slice(1).every((t, k) => t - times[k]! === 20)).toBe(true);
      expect((times[0]! - start) % 20).toBe((i % 4) * 5);
    }
    for (const call of calls) scheduler.remove(call);
    expect(scheduler.size).toBe(0);
    const before = ticks.get(0)!.length;
    vi.advanceTimersByTime(200);
    expect(ticks.get(0)!.length).toBe(before); // no timer left running
  });

  it("contains a tick that throws: the other calls keep their pace", () => {
    vi.useFakeTimers();
    const errors: unknown[] = [];
    const scheduler = new PacingScheduler(
      () => Date.now(),
      (error) => errors.push(error),
      1,
    );
    let healthy = 0;
    scheduler.add({
      tick() {
        throw new Error("listener bug");
      },
    });
    scheduler.add({
      tick() {
        healthy++;
      },
    });
    vi.advanceTimersByTime(200);
    expect(healthy).toBeGreaterThanOrEqual(10);
    expect(errors.length).toBe(healthy);
    scheduler.stop();
  });
});

describe("G.711 round trip through the receive path", () => {
  it("PCMA and PCMU frames leave the jitter buffer byte-identical to what arrived", () => {
    for (const codec of ["PCMA", "PCMU"] as const) {
      const jb = new JitterBuffer({ codec });
      const encoded = encodeG711(codec, tone(1000, 1600));
      const out = new Uint8Array(160);
      const received: number[] = [];
      for (let i = 0; i < 10; i++) {
        jb.push(
          {
            ssrc: 1,
            sequenceNumber: i,
            timestamp: i * 160,
            payload: encoded.subarray(i * 160, i * 160 + 160),
          },
          i * 20,
        );
        if (jb.pull(i * 20 + 10, out) === "audio") received.push(...out);
      }
      for (let t = 200; t < 300; t += 20) if (jb.pull(t, out) === "audio") received.push(...out);
      expect(Uint8Array.from(received)).toEqual(encoded);
    }
  });
});
