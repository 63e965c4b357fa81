import { BYTES_PER_FRAME, encodeG711 } from "@patchbay/shared/audio";
import { describe, expect, it } from "vitest";
import { EnergyVad, frameLevelDb, type VadEvent } from "../../src/pipeline/vad";

/** One 20 ms μ-law frame of a 400 Hz sine at `dbfs`. */
function tone(dbfs: number): Uint8Array {
  const amplitude = 32767 * 10 ** (dbfs / 20) * Math.SQRT2;
  const pcm = new Int16Array(BYTES_PER_FRAME);
  for (let i = 0; i < pcm.length; i++)
    pcm[i] = Math.round(amplitude * Math.sin((2 * Math.PI * 400 * i) / 8000));
  return encodeG711("PCMU", pcm);
}
const silence = new Uint8Array(BYTES_PER_FRAME).fill(0xff);

function run(vad: EnergyVad, frames: Uint8Array[], startMs = 0): VadEvent[] {
  return frames.flatMap((frame, index) => vad.push(frame, startMs + index * 20));
}

const options = { speechThresholdDb: -40, minSpeechFrames: 3, silenceMs: 200 };

describe("EnergyVad", () => {
  it("measures frame levels in dBFS", () => {
    expect(frameLevelDb("PCMU", tone(-20))).toBeCloseTo(-20, 0);
    expect(frameLevelDb("PCMU", silence)).toBe(Number.NEGATIVE_INFINITY);
  });

  it("starts speech after minSpeechFrames loud frames, dated at the first", () => {
    const vad = new EnergyVad("PCMU", options);
    expect(run(vad, [tone(-20), tone(-20)])).toEqual([]);
    expect(vad.push(tone(-20), 40)).toEqual([{ type: "speech-start", atMs: 0 }]);
    expect(vad.speaking).toBe(true);
  });

  it("ignores clicks shorter than minSpeechFrames", () => {
    const vad = new EnergyVad("PCMU", options);
    expect(run(vad, [tone(-10), tone(-10), silence, tone(-10), silence, silence])).toEqual([]);
  });

  it("ends speech after the silence hang-over, dated at the end of the last loud frame", () => {
    const vad = new EnergyVad("PCMU", options);
    const events = run(vad, [...Array(5).fill(tone(-20)), ...Array(12).fill(silence)]);
    expect(events).toEqual([
      { type: "speech-start", atMs: 0 },
      { type: "speech-end", atMs: 100 },
    ]);
    expect(vad.lastSpeechEndMs).toBe(100);
  });

  it("has hysteresis: once speaking, quieter frames above threshold-6 dB keep the turn open", () => {
    const vad = new EnergyVad("PCMU", options);
    const events = run(vad, [
      ...Array(3).fill(tone(-30)),
      ...Array(20).fill(tone(-44)),
      ...Array(11).fill(silence),
    ]);
    expect(events.map((event) => event.type)).toEqual(["speech-start", "speech-end"]);
    expect(events[1]).toEqual({ type: "speech-end", atMs: 23 * 20 });
    // …but -44 dB alone never starts speech.
    expect(run(new EnergyVad("PCMU", options), Array(20).fill(tone(-44)))).toEqual([]);
  });

  it("tracks bursts with a short gap tolerance for barge-in", () => {
    const vad = new EnergyVad("PCMU", options);
    run(vad, [tone(-20), tone(-20), silence, silence, tone(-20)]);
    expect(vad.burstStartMs).toBe(0);
    run(vad, Array(8).fill(silence), 100);
    expect(vad.burstStartMs).toBeUndefined();
  });

  it("splits a multi-frame payload into 20 ms frames", () => {
    const vad = new EnergyVad("PCMU", options);
    const payload = new Uint8Array(BYTES_PER_FRAME * 3);
    for (let i = 0; i < 3; i++) payload.set(tone(-20), i * BYTES_PER_FRAME);
    expect(vad.push(payload, 1000)).toEqual([{ type: "speech-start", atMs: 1000 }]);
  });
});
