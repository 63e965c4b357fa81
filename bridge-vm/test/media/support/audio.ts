/** Signal helpers for the media tests: tones, a speech-like test signal, Goertzel, cross-correlation. */
import { encodeG711, type G711Codec } from "@patchbay/shared/audio";

export function tone(frequency: number, samples: number, amplitude = 8000, offset = 0): Int16Array {
  return new Int16Array(samples).map((_, i) =>
    Math.round(amplitude * Math.sin((2 * Math.PI * frequency * (i + offset)) / 8000)),
  );
}

/**
 * Something with the structure of speech for correlation tests: syllable-rate (4 Hz) bursts of a
 * gliding harmonic signal separated by short pauses, deterministic.
 */
export function speechLike(samples: number): Int16Array {
  const out = new Int16Array(samples);
  let phase = 0;
  for (let i = 0; i < samples; i++) {
    const t = i / 8000;
    const envelope = Math.max(0, Math.sin(2 * Math.PI * 4 * t)) ** 2;
    const pitch = 140 + 60 * Math.sin(2 * Math.PI * 0.7 * t);
    phase += (2 * Math.PI * pitch) / 8000;
    const voiced =
      Math.sin(phase) + 0.5 * Math.sin(2 * phase) + 0.3 * Math.sin(3 * phase + 0.5 * Math.sin(7 * t));
    out[i] = Math.round(6000 * envelope * voiced);
  }
  return out;
}

export function framesOf(codec: G711Codec, pcm: Int16Array): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let offset = 0; offset + 160 <= pcm.length; offset += 160) {
    frames.push(encodeG711(codec, pcm.subarray(offset, offset + 160)));
  }
  return frames;
}

export function tonePower(samples: Int16Array, frequency: number): number {
  const coefficient = 2 * Math.cos((2 * Math.PI * frequency) / 8000);
  let s1 = 0;
  let s2 = 0;
  for (const sample of samples) {
    const s0 = sample + coefficient * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return (s1 * s1 + s2 * s2 - coefficient * s1 * s2) / (samples.length * samples.length);
}

/** Best normalised cross-correlation of `recorded` against `reference` over lags 0..maxLag samples. */
export function bestCorrelation(
  reference: Int16Array,
  recorded: Int16Array,
  maxLag: number,
): { value: number; lag: number } {
  let best = { value: -1, lag: 0 };
  const length = Math.min(reference.length, recorded.length - maxLag);
  let referenceEnergy = 0;
  for (let i = 0; i < length; i++) referenceEnergy += reference[i]! * reference[i]!;
  for (let lag = 0; lag <= maxLag; lag += 1) {
    let dot = 0;
    let energy = 0;
    for (let i = 0; i < length; i++) {
      const r = recorded[i + lag]!;
      dot += reference[i]! * r;
      energy += r * r;
    }
    const value = energy === 0 ? 0 : dot / Math.sqrt(referenceEnergy * energy);
    if (value > best.value) best = { value, lag };
  }
  return best;
}

/**
 * Segmental correlation: the reference cut into windows, each matched against the recording at its
 * own best lag within ±`searchLag` of `aroundLag`. A jitter buffer legitimately shifts the delay by
 * a frame now and then (stepping back over concealment, dropping a frame to shrink), which a single
 * global lag punishes; per-window matching measures "is the speech there, in order, in time".
 */
export function segmentalCorrelations(
  reference: Int16Array,
  recorded: Int16Array,
  aroundLag: number,
  windowSamples = 3200,
  searchLag = 480,
): number[] {
  const values: number[] = [];
  for (let start = 0; start + windowSamples <= reference.length; start += windowSamples) {
    const window = reference.subarray(start, start + windowSamples);
    let energyRef = 0;
    for (const v of window) energyRef += v * v;
    if (energyRef === 0) continue;
    let best = -1;
    for (let lag = Math.max(-start, aroundLag - searchLag); lag <= aroundLag + searchLag; lag++) {
      const from = start + lag;
      if (from + windowSamples > recorded.length) break;
      let dot = 0;
      let energy = 0;
      for (let i = 0; i < windowSamples; i++) {
        const r = recorded[from + i]!;
        dot += window[i]! * r;
        energy += r * r;
      }
      const value = energy === 0 ? 0 : dot / Math.sqrt(energyRef * energy);
      if (value > best) best = value;
    }
    values.push(best);
  }
  return values;
}

/** Mono PCM16 samples of a WAV file, walking the chunks (sox and espeak-ng write small extra chunks). */
export function readMonoWav(bytes: Uint8Array): { sampleRate: number; samples: Int16Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 12;
  let sampleRate = 0;
  while (offset + 8 <= bytes.length) {
    const id = String.fromCharCode(...bytes.subarray(offset, offset + 4));
    const size = view.getUint32(offset + 4, true);
    if (id === "fmt ") sampleRate = view.getUint32(offset + 12, true);
    if (id === "data") {
      const count = Math.floor(Math.min(size, bytes.length - offset - 8) / 2);
      const samples = new Int16Array(count);
      for (let i = 0; i < count; i++) samples[i] = view.getInt16(offset + 8 + i * 2, true);
      return { sampleRate, samples };
    }
    offset += 8 + size + (size % 2);
  }
  throw new Error("no data chunk");
}
