/**
 * Signal helpers for end-to-end audio assertions: WAV I/O, synthetic test signals, espeak-ng speech,
 * and measurements (Goertzel power, dominant frequency, RMS, speech segments, cross-correlation).
 *
 * Pure TypeScript with no dependencies except G.711, which comes from @patchbay/shared/audio (the one
 * codec implementation in the project, itself tested against alawmulaw). Samples are PCM16 in Int16Array;
 * "full scale" is 32768. Everything here is deterministic and allocation-light enough for 60 s of audio.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeG711, encodeG711, type G711Codec } from "@patchbay/shared/audio";
import { runToCompletion } from "./process";

export const TELEPHONY_RATE = 8000;

// ---------------------------------------------------------------------------------------------- WAV

export interface PcmAudio {
  sampleRate: number;
  channels: number;
  /** Interleaved PCM16 samples (frames × channels). */
  samples: Int16Array;
}

/** Encodes PCM16 as a canonical 44-byte-header RIFF/WAVE file. */
export function writeWav(audio: PcmAudio): Buffer {
  const dataBytes = audio.samples.length * 2;
  const out = Buffer.alloc(44 + dataBytes);
  out.write("RIFF", 0, "ascii");
  out.writeUInt32LE(36 + dataBytes, 4);
  out.write("WAVE", 8, "ascii");
  out.write("fmt ", 12, "ascii");
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(1, 20);
  out.writeUInt16LE(audio.channels, 22);
  out.writeUInt32LE(audio.sampleRate, 24);
  out.writeUInt32LE(audio.sampleRate * audio.channels * 2, 28);
  out.writeUInt16LE(audio.channels * 2, 32);
  out.writeUInt16LE(16, 34);
  out.write("data", 36, "ascii");
  out.writeUInt32LE(dataBytes, 40);
  for (let i = 0; i < audio.samples.length; i++) out.writeInt16LE(audio.samples[i]!, 44 + 2 * i);
  return out;
}

/**
 * Decodes a PCM16 WAV (format 1 or WAVE_FORMAT_EXTENSIBLE). Tolerates a data chunk whose size was never
 * finalised (0 or 0xFFFFFFFF, or larger than the file: a recorder killed mid-call) by reading to the end.
 */
export function readWav(bytes: Uint8Array): PcmAudio {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 12 || buf.toString("ascii", 0, 4) !== "RIFF" || buf.toString("ascii", 8, 12) !== "WAVE") {
    throw new Error(`readWav: not a RIFF/WAVE file (got ${buf.length} bytes)`);
  }
  let offset = 12;
  let format: { channels: number; sampleRate: number; bits: number; tag: number } | undefined;
  while (offset + 8 <= buf.length) {
    const id = buf.toString("ascii", offset, offset + 4);
    const size = buf.readUInt32LE(offset + 4);
    const start = offset + 8;
    if (id === "fmt ") {
      if (size < 16 || start + 16 > buf.length)
        throw new Error(`readWav: fmt chunk too short: got ${size} < need 16`);
      format = {
        tag: buf.readUInt16LE(start),
        channels: buf.readUInt16LE(start + 2),
        sampleRate: buf.readUInt32LE(start + 4),
        bits: buf.readUInt16LE(start + 14),
      };
    } else if (id === "data") {
      if (format === undefined) throw new Error("readWav: data chunk before fmt chunk");
      if ((format.tag !== 1 && format.tag !== 0xfffe) || format.bits !== 16) {
        throw new Error(`readWav: only PCM16 supported (format ${format.tag}, ${format.bits} bits)`);
      }
      const available = buf.length - start;
      const length = size === 0 || size > available ? available : size;
      const frameBytes = 2 * format.channels;
      const usable = length - (length % frameBytes);
      const samples = new Int16Array(usable / 2);
      for (let i = 0; i < samples.length; i++) samples[i] = buf.readInt16LE(start + 2 * i);
      return { sampleRate: format.sampleRate, channels: format.channels, samples };
    }
    offset = start + size + (size % 2);
  }
  throw new Error("readWav: no data chunk");
}

export async function readWavFile(path: string): Promise<PcmAudio> {
  return readWav(await readFile(path));
}

/** Splits interleaved samples into one Int16Array per channel. */
export function deinterleave(audio: PcmAudio): Int16Array[] {
  const frames = Math.floor(audio.samples.length / audio.channels);
  const channels = Array.from({ length: audio.channels }, () => new Int16Array(frames));
  for (let frame = 0; frame < frames; frame++) {
    for (let ch = 0; ch < audio.channels; ch++)
      channels[ch]![frame] = audio.samples[frame * audio.channels + ch]!;
  }
  return channels;
}

// ---------------------------------------------------------------------------------------- synthesis

/** A sine tone; `amplitude` is a fraction of full scale (default 0.5 ≈ -6 dBFS). */
export function tone(freqHz: number, ms: number, amplitude = 0.5, rate = TELEPHONY_RATE): Int16Array {
  const n = Math.round((ms * rate) / 1000);
  const out = new Int16Array(n);
  const scale = Math.min(1, Math.max(0, amplitude)) * 32767;
  for (let i = 0; i < n; i++) out[i] = Math.round(scale * Math.sin((2 * Math.PI * freqHz * i) / rate));
  return out;
}

export function silence(ms: number, rate = TELEPHONY_RATE): Int16Array {
  return new Int16Array(Math.round((ms * rate) / 1000));
}

export function concat(...parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export interface EspeakOptions {
  /** Words per minute (espeak-ng -s); default 150. */
  wpm?: number;
  /** espeak-ng voice (-v); default "en-us". */
  voice?: string;
  /** Output sample rate; default 8000. */
  rate?: number;
}

/** Speech from espeak-ng, resampled by sox to `rate` (default 8 kHz) mono PCM16. */
export async function espeak(text: string, options: EspeakOptions = {}): Promise<Int16Array> {
  const dir = await mkdtemp(join(tmpdir(), "patchbay-espeak-"));
  try {
    const raw = join(dir, "raw.wav");
    const out = join(dir, "out.wav");
    const speak = await runToCompletion("espeak-ng", "espeak-ng", [
      "-v",
      options.voice ?? "en-us",
      "-s",
      String(options.wpm ?? 150),
      "-w",
      raw,
      "--",
      text,
    ]);
    if (speak.code !== 0) throw new Error(`espeak-ng failed (exit ${speak.code}): ${speak.stderr}`);
    const convert = await runToCompletion("sox", "sox", [
      raw,
      "-r",
      String(options.rate ?? TELEPHONY_RATE),
      "-c",
      "1",
      "-b",
      "16",
      "-e",
      "signed-integer",
      out,
    ]);
    if (convert.code !== 0) throw new Error(`sox failed (exit ${convert.code}): ${convert.stderr}`);
    return (await readWavFile(out)).samples;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// -------------------------------------------------------------------------------------------- G.711

export function encodePcm(codec: G711Codec, samples: Int16Array): Uint8Array {
  return encodeG711(codec, samples);
}

export function decodePcm(codec: G711Codec, bytes: Uint8Array): Int16Array {
  return decodeG711(codec, bytes);
}

/** What a signal sounds like after one G.711 round trip (for comparing against received audio). */
export function g711RoundTrip(codec: G711Codec, samples: Int16Array): Int16Array {
  return decodeG711(codec, encodeG711(codec, samples));
}

// ------------------------------------------------------------------------------------- measurements

/**
 * Goertzel estimate of the squared amplitude of `freqHz` in `samples`, relative to full scale:
 * a full-scale sine at that frequency gives ≈1.0, amplitude 0.5 gives ≈0.25, silence 0.
 */
export function goertzelPower(samples: ArrayLike<number>, freqHz: number, rate = TELEPHONY_RATE): number {
  const n = samples.length;
  if (n === 0) return 0;
  const coefficient = 2 * Math.cos((2 * Math.PI * freqHz) / rate);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const s0 = (samples[i] ?? 0) / 32768 + coefficient * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const magnitudeSquared = s1 * s1 + s2 * s2 - coefficient * s1 * s2;
  return (4 * magnitudeSquared) / (n * n);
}

/**
 * The strongest frequency between `minHz` and `maxHz` (default 50 Hz … Nyquist), to ~1 Hz: a 10 Hz
 * Goertzel scan, then a 0.5 Hz refinement around the peak. Uses at most the first 8192 samples.
 */
export function dominantFrequency(
  samples: ArrayLike<number>,
  rate = TELEPHONY_RATE,
  range: { minHz?: number; maxHz?: number } = {},
): number {
  const window = Array.prototype.slice.call(samples, 0, Math.min(samples.length, 8192)) as number[];
  const minHz = range.minHz ?? 50;
  const maxHz = range.maxHz ?? rate / 2 - 10;
  let best = minHz;
  let bestPower = -1;
  for (let f = minHz; f <= maxHz; f += 10) {
    const power = goertzelPower(window, f, rate);
    if (power > bestPower) {
      bestPower = power;
      best = f;
    }
  }
  const coarse = best;
  for (let f = Math.max(minHz, coarse - 10); f <= Math.min(maxHz, coarse + 10); f += 0.5) {
    const power = goertzelPower(window, f, rate);
    if (power > bestPower) {
      bestPower = power;
      best = f;
    }
  }
  return best;
}

/**
 * How much of `samples` holds a tone at `freqHz`, in ms: the signal is cut into `windowMs` windows and a
 * window counts when `freqHz` is its dominant frequency in 300–3400 Hz (±`toleranceHz`) with Goertzel
 * power ≥ `minPower` (0.05 ≈ amplitude 0.22, -13 dBFS). Robust to silence, speech or other tones around
 * the tone, and to where in the file it sits (a call's recording starts before the tone does).
 */
export function toneDurationMs(
  samples: ArrayLike<number>,
  freqHz: number,
  options: { windowMs?: number; minPower?: number; toleranceHz?: number; rate?: number } = {},
): number {
  const rate = options.rate ?? TELEPHONY_RATE;
  const windowMs = options.windowMs ?? 100;
  const size = Math.round((windowMs * rate) / 1000);
  let windows = 0;
  for (let start = 0; start + size <= samples.length; start += size) {
    const window = Array.prototype.slice.call(samples, start, start + size) as number[];
    if (goertzelPower(window, freqHz, rate) < (options.minPower ?? 0.05)) continue;
    const dominant = dominantFrequency(window, rate, { minHz: 300, maxHz: 3400 });
    if (Math.abs(dominant - freqHz) <= (options.toleranceHz ?? 20)) windows++;
  }
  return windows * windowMs;
}

/** RMS level in dBFS (full-scale sine ≈ -3 dBFS); -Infinity for digital silence. */
export function rmsDbfs(samples: ArrayLike<number>): number {
  if (samples.length === 0) return Number.NEGATIVE_INFINITY;
  let sum = 0;
  for (let i = 0; i < samples.length; i++) {
    const v = (samples[i] ?? 0) / 32768;
    sum += v * v;
  }
  const rms = Math.sqrt(sum / samples.length);
  return rms === 0 ? Number.NEGATIVE_INFINITY : 20 * Math.log10(rms);
}

export interface Segment {
  startMs: number;
  endMs: number;
}

export interface SpeechSegmentOptions {
  rate?: number;
  /** Analysis frame (default 20 ms). */
  frameMs?: number;
  /** A frame louder than this is "active" (default -40 dBFS). */
  thresholdDbfs?: number;
  /** Gaps shorter than this inside speech are bridged (default 200 ms). */
  hangoverMs?: number;
  /** Segments shorter than this are dropped as clicks (default 60 ms). */
  minSegmentMs?: number;
}

/** Energy-based onsets/offsets of sound (speech or tones), in milliseconds from the start. */
export function speechSegments(samples: ArrayLike<number>, options: SpeechSegmentOptions = {}): Segment[] {
  const rate = options.rate ?? TELEPHONY_RATE;
  const frameMs = options.frameMs ?? 20;
  const threshold = options.thresholdDbfs ?? -40;
  const hangover = options.hangoverMs ?? 200;
  const minSegment = options.minSegmentMs ?? 60;
  const frameLength = Math.max(1, Math.round((frameMs * rate) / 1000));
  const segments: Segment[] = [];
  let open: Segment | undefined;
  for (let start = 0; start + frameLength <= samples.length; start += frameLength) {
    const frame = Array.prototype.slice.call(samples, start, start + frameLength) as number[];
    const active = rmsDbfs(frame) > threshold;
    const t = (start / rate) * 1000;
    if (active) {
      if (open !== undefined && t - open.endMs <= hangover) open.endMs = t + frameMs;
      else {
        if (open !== undefined) segments.push(open);
        open = { startMs: t, endMs: t + frameMs };
      }
    }
  }
  if (open !== undefined) segments.push(open);
  return segments.filter((segment) => segment.endMs - segment.startMs >= minSegment);
}

// ----------------------------------------------------------------------------------- correlation

function fft(re: Float64Array, im: Float64Array, inverse: boolean): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j]!, re[i]!];
      [im[i], im[j]] = [im[j]!, im[i]!];
    }
  }
  for (let size = 2; size <= n; size <<= 1) {
    const angle = ((inverse ? 2 : -2) * Math.PI) / size;
    const wRe = Math.cos(angle);
    const wIm = Math.sin(angle);
    for (let start = 0; start < n; start += size) {
      let curRe = 1;
      let curIm = 0;
      for (let k = 0; k < size / 2; k++) {
        const a = start + k;
        const b = a + size / 2;
        const tRe = re[b]! * curRe - im[b]! * curIm;
        const tIm = re[b]! * curIm + im[b]! * curRe;
        re[b] = re[a]! - tRe;
        im[b] = im[a]! - tIm;
        re[a] = re[a]! + tRe;
        im[a] = im[a]! + tIm;
        const nextRe = curRe * wRe - curIm * wIm;
        curIm = curRe * wIm + curIm * wRe;
        curRe = nextRe;
      }
    }
  }
  if (inverse) {
    for (let i = 0; i < n; i++) {
      re[i] = re[i]! / n;
      im[i] = im[i]! / n;
    }
  }
}

export interface CorrelationPeak {
  /** Samples by which `b` lags `a` (b[i + lag] ≈ a[i]); negative if `b` leads. */
  lag: number;
  /** Normalized correlation at that lag, -1 … 1 (1 = `b` contains `a` exactly, fully overlapping). */
  correlation: number;
}

/**
 * Normalized cross-correlation peak between `a` (what was sent) and `b` (what was received), via FFT so
 * minutes of audio stay fast. Normalized by the energies of both whole signals, so missing or extra audio
 * lowers the score; search is limited to |lag| ≤ `maxLag` samples (default: any lag).
 */
export function crossCorrelationPeak(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  maxLag?: number,
): CorrelationPeak {
  let size = 1;
  while (size < a.length + b.length) size <<= 1;
  const aRe = new Float64Array(size);
  const aIm = new Float64Array(size);
  const bRe = new Float64Array(size);
  const bIm = new Float64Array(size);
  let energyA = 0;
  let energyB = 0;
  for (let i = 0; i < a.length; i++) {
    aRe[i] = a[i] ?? 0;
    energyA += aRe[i]! * aRe[i]!;
  }
  for (let i = 0; i < b.length; i++) {
    bRe[i] = b[i] ?? 0;
    energyB += bRe[i]! * bRe[i]!;
  }
  if (energyA === 0 || energyB === 0) return { lag: 0, correlation: 0 };
  fft(aRe, aIm, false);
  fft(bRe, bIm, false);
  // B · conj(A): its inverse at index k is Σ a[i]·b[i+k].
  for (let i = 0; i < size; i++) {
    const re = bRe[i]! * aRe[i]! + bIm[i]! * aIm[i]!;
    const im = bIm[i]! * aRe[i]! - bRe[i]! * aIm[i]!;
    bRe[i] = re;
    bIm[i] = im;
  }
  fft(bRe, bIm, true);
  const limit = maxLag ?? size;
  let bestLag = 0;
  let best = Number.NEGATIVE_INFINITY;
  for (let k = 0; k < size; k++) {
    const lag = k < size / 2 ? k : k - size;
    if (Math.abs(lag) > limit) continue;
    if (bRe[k]! > best) {
      best = bRe[k]!;
      bestLag = lag;
    }
  }
  return { lag: bestLag, correlation: best / Math.sqrt(energyA * energyB) };
}

export interface SegmentMatch {
  /** Where the segment starts in `sent`, ms. */
  startMs: number;
  /** Share of the sent signal's energy in this segment, 0 … 1 (the segments' shares add up to ~1). */
  energyShare: number;
  /** Where it was found in `received`: b[i + lag] ≈ a[start + i]. */
  lag: number;
  /** Correlation there, normalized by the energies of the segment and of that stretch of `received`. */
  correlation: number;
}

/**
 * `sent` cut into `segmentMs` pieces (default 250 ms), each looked up on its own in `received` (FFT cross-correlation,
 * normalized per lag by the local energy of `received`). A path that delays part of the signal (a
 * sender stalled by a busy CPU, a jitter buffer that re-synchronised) shifts the pieces differently,
 * which sinks one global correlation but leaves every piece findable; a path that loses or distorts
 * audio fails the pieces it damaged. Near-silent pieces (below `minRmsDbfs`) are skipped: they carry no
 * evidence either way. `matchedShare(matches, threshold)` sums the energy of the pieces found above it.
 */
export function segmentCorrelations(
  sent: ArrayLike<number>,
  received: ArrayLike<number>,
  options: { segmentMs?: number; minRmsDbfs?: number; rate?: number } = {},
): SegmentMatch[] {
  const rate = options.rate ?? TELEPHONY_RATE;
  const size = Math.round(((options.segmentMs ?? 250) * rate) / 1000);
  let totalEnergy = 0;
  for (let i = 0; i < sent.length; i++) totalEnergy += (sent[i] ?? 0) ** 2;
  if (totalEnergy === 0 || received.length < size) return [];
  // prefix[k] = Σ received[0..k)²: the energy of any stretch of `received` in O(1).
  const prefix = new Float64Array(received.length + 1);
  for (let i = 0; i < received.length; i++) prefix[i + 1] = prefix[i]! + (received[i] ?? 0) ** 2;
  let fftSize = 1;
  while (fftSize < received.length + size) fftSize <<= 1;
  const bRe = new Float64Array(fftSize);
  const bIm = new Float64Array(fftSize);
  for (let i = 0; i < received.length; i++) bRe[i] = received[i] ?? 0;
  fft(bRe, bIm, false);
  const matches: SegmentMatch[] = [];
  // The last piece may be shorter (at least half a segment); a shorter tail is too little evidence.
  for (let start = 0; start + size / 2 <= sent.length; start += size) {
    const segment = Array.prototype.slice.call(sent, start, Math.min(sent.length, start + size)) as number[];
    const length = segment.length;
    if (rmsDbfs(segment) < (options.minRmsDbfs ?? -40)) continue;
    let energy = 0;
    const aRe = new Float64Array(fftSize);
    const aIm = new Float64Array(fftSize);
    for (let i = 0; i < length; i++) {
      aRe[i] = segment[i]!;
      energy += segment[i]! ** 2;
    }
    fft(aRe, aIm, false);
    for (let i = 0; i < fftSize; i++) {
      const re = bRe[i]! * aRe[i]! + bIm[i]! * aIm[i]!;
      const im = bIm[i]! * aRe[i]! - bRe[i]! * aIm[i]!;
      aRe[i] = re;
      aIm[i] = im;
    }
    fft(aRe, aIm, true);
    let best = { lag: 0, correlation: 0 };
    for (let k = 0; k + length <= received.length; k++) {
      const local = prefix[k + length]! - prefix[k]!;
      if (local <= 0) continue;
      const correlation = aRe[k]! / Math.sqrt(energy * local);
      if (correlation > best.correlation) best = { lag: k - start, correlation };
    }
    matches.push({ startMs: (start / rate) * 1000, energyShare: energy / totalEnergy, ...best });
  }
  return matches;
}

/** The share of the sent energy (0 … 1) in segments found with a correlation above `threshold`. */
export function matchedShare(matches: readonly SegmentMatch[], threshold: number): number {
  return matches.reduce((sum, match) => sum + (match.correlation > threshold ? match.energyShare : 0), 0);
}

/**
 * Whether the segments found above `threshold` sit in `received` in the order they were sent: each one's
 * lag at least the previous one's minus `toleranceSamples` (a path may delay later audio, never move it
 * earlier than audio sent before it).
 */
export function matchesInOrder(
  matches: readonly SegmentMatch[],
  threshold: number,
  toleranceSamples = 160,
): boolean {
  let previous = Number.NEGATIVE_INFINITY;
  for (const match of matches) {
    if (match.correlation <= threshold) continue;
    if (match.lag < previous - toleranceSamples) return false;
    previous = Math.max(previous, match.lag);
  }
  return true;
}

/** Energy of `received` over energy of `sent`: well above 1 means audio that was never sent. */
export function energyRatio(sent: ArrayLike<number>, received: ArrayLike<number>): number {
  let a = 0;
  let b = 0;
  for (let i = 0; i < sent.length; i++) a += (sent[i] ?? 0) ** 2;
  for (let i = 0; i < received.length; i++) b += (received[i] ?? 0) ** 2;
  return a === 0 ? Number.POSITIVE_INFINITY : b / a;
}
