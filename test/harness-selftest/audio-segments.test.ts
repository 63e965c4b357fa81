/**
 * The piecewise comparison media tests use for "the recording matches what was sent"
 * (support/audio.ts segmentCorrelations / matchedShare / matchesInOrder / energyRatio): it must accept a
 * recording whose second half was delayed (a stalled sender) and reject the failures it stands in for.
 */
import { describe, expect, it } from "vitest";
import {
  concat,
  crossCorrelationPeak,
  energyRatio,
  espeak,
  g711RoundTrip,
  matchedShare,
  matchesInOrder,
  segmentCorrelations,
  silence,
} from "../support/audio";

describe("segmentCorrelations", async () => {
  const speech = g711RoundTrip("PCMU", await espeak("what are your opening hours", { wpm: 140 }));
  const half = Math.floor(speech.length / 2 / 160) * 160;
  const first = speech.subarray(0, half);
  const second = speech.subarray(half);

  it("finds every piece of an intact recording, and of one whose second half came 400 ms late", () => {
    const intact = concat(silence(200), speech, silence(300));
    expect(matchedShare(segmentCorrelations(speech, intact), 0.9)).toBeGreaterThan(0.99);
    const stalled = concat(silence(200), first, silence(400), second, silence(300));
    const pieces = segmentCorrelations(speech, stalled);
    // One global figure sinks; the pieces (all but the one straddling the stall) are all there, in order.
    expect(crossCorrelationPeak(speech, stalled).correlation).toBeLessThan(0.8);
    expect(matchedShare(pieces, 0.9)).toBeGreaterThan(0.8);
    expect(matchesInOrder(pieces, 0.9)).toBe(true);
    expect(energyRatio(speech, stalled)).toBeLessThan(1.05);
  });

  it("rejects a recording missing half the speech, shuffled, noisy, or with audio never sent", () => {
    expect(
      matchedShare(segmentCorrelations(speech, concat(silence(200), first, silence(1500))), 0.9),
    ).toBeLessThan(0.8);
    const shuffled = concat(silence(200), second, first);
    expect(matchesInOrder(segmentCorrelations(speech, shuffled), 0.9)).toBe(false);
    let seed = 1;
    const noise = Int16Array.from({ length: speech.length + 4000 }, () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return (seed % 16000) - 8000;
    });
    expect(matchedShare(segmentCorrelations(speech, noise), 0.9)).toBe(0);
    expect(energyRatio(speech, concat(speech, speech))).toBeGreaterThan(1.9);
  });
});
