import { alaw, mulaw } from "alawmulaw";
import { describe, expect, it } from "vitest";
import {
  decodeG711,
  decodeG711Sample,
  encodeG711,
  Resampler,
  resample,
  SAMPLES_PER_FRAME,
  SILENCE_BYTE,
  transcodeG711,
} from "../src/audio/index";

function tone(frequency: number, rate: number, samples: number, amplitude = 8000): Int16Array {
  const out = new Int16Array(samples);
  for (let i = 0; i < samples; i++)
    out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * frequency * i) / rate));
  return out;
}

/** Power of one frequency (Goertzel), normalised by length, so tests compare tones not bytes. */
function goertzel(samples: Int16Array, frequency: number, rate: number): number {
  const coefficient = 2 * Math.cos((2 * Math.PI * frequency) / rate);
  let previous = 0;
  let beforePrevious = 0;
  for (const sample of samples) {
    const current = sample + coefficient * previous - beforePrevious;
    beforePrevious = previous;
    previous = current;
  }
  return (
    (previous * previous + beforePrevious * beforePrevious - coefficient * previous * beforePrevious) /
    samples.length
  );
}

describe("G.711 tables", () => {
  it("decode every byte exactly as the alawmulaw reference does", () => {
    const bytes = new Uint8Array(256).map((_, i) => i);
    expect(Array.from(decodeG711("PCMU", bytes))).toEqual(Array.from(mulaw.decode(bytes)));
    expect(Array.from(decodeG711("PCMA", bytes))).toEqual(Array.from(alaw.decode(bytes)));
  });

  it("encode every PCM value exactly as the reference does", () => {
    const pcm = new Int16Array(65536).map((_, i) => i - 32768);
    expect(encodeG711("PCMU", pcm)).toEqual(mulaw.encode(pcm));
    expect(encodeG711("PCMA", pcm)).toEqual(alaw.encode(pcm));
  });

  it("round-trips a code word through decode and encode unchanged", () => {
    const bytes = new Uint8Array(256).map((_, i) => i);
    for (const codec of ["PCMU", "PCMA"] as const) {
      const back = encodeG711(codec, decodeG711(codec, bytes));
      // μ-law has two encodings of zero (0x7f and 0xff); everything else is a bijection.
      const mismatches = Array.from(back).filter((byte, i) => byte !== bytes[i]);
      expect(mismatches.length).toBeLessThanOrEqual(1);
    }
  });

  it("writes into caller buffers and refuses ones that are too small", () => {
    const target = new Int16Array(SAMPLES_PER_FRAME);
    const frame = new Uint8Array(SAMPLES_PER_FRAME).fill(SILENCE_BYTE.PCMU);
    expect(decodeG711("PCMU", frame, target)).toBe(target);
    expect(Math.abs(decodeG711Sample("PCMU", SILENCE_BYTE.PCMU))).toBeLessThan(8);
    expect(Math.abs(decodeG711Sample("PCMA", SILENCE_BYTE.PCMA))).toBeLessThan(16);
    expect(() => decodeG711("PCMU", frame, new Int16Array(10))).toThrow(/got 10 < need 160/);
  });

  it("transcodes between laws without losing the signal", () => {
    const pcm = tone(1000, 8000, 800);
    const ulaw = encodeG711("PCMU", pcm);
    const viaAlaw = decodeG711("PCMA", transcodeG711("PCMU", "PCMA", ulaw));
    expect(goertzel(viaAlaw, 1000, 8000)).toBeGreaterThan(0.9 * goertzel(pcm, 1000, 8000));
    expect(Array.from(transcodeG711("PCMU", "PCMU", ulaw))).toEqual(Array.from(ulaw));
  });
});

describe("Resampler", () => {
  it.each([
    [8000, 16000],
    [8000, 24000],
    [16000, 8000],
    [24000, 8000],
  ])("keeps a 1 kHz tone through %i -> %i Hz", (from, to) => {
    const input = tone(1000, from, from); // one second
    const output = resample(input, from, to);
    expect(Math.abs(output.length - to)).toBeLessThanOrEqual(TAP_DELAY_ALLOWANCE);
    const steady = output.subarray(200, output.length - 200);
    const reference = tone(1000, to, steady.length);
    expect(goertzel(steady, 1000, to)).toBeGreaterThan(0.8 * goertzel(reference, 1000, to));
  });

  it("removes content above the target Nyquist frequency when downsampling", () => {
    const input = tone(6000, 24000, 24000); // 6 kHz cannot exist at 8 kHz
    const output = resample(input, 24000, 8000);
    const rms = Math.sqrt(output.reduce((sum, sample) => sum + sample * sample, 0) / output.length);
    expect(rms).toBeLessThan(8000 / Math.SQRT2 / 100); // at least 40 dB down
  });

  it("is seamless across chunk boundaries", () => {
    const input = tone(440, 8000, 8000);
    const whole = new Resampler(8000, 16000).process(input);
    const chunked = new Resampler(8000, 16000);
    const parts: number[] = [];
    for (let offset = 0; offset < input.length; offset += 160) {
      parts.push(...chunked.process(input.subarray(offset, offset + 160)));
    }
    expect(parts.length).toBe(whole.length);
    expect(parts).toEqual(Array.from(whole));
  });

  it("rejects ratios it was not built for", () => {
    expect(() => new Resampler(8000, 44100)).toThrow(/not a small integer ratio/);
    expect(() => new Resampler(0, 8000)).toThrow(/positive integers/);
  });
});

/** The FIR's group delay holds back a few samples at the end of a one-shot conversion. */
const TAP_DELAY_ALLOWANCE = 48;
