/**
 * Streaming integer-ratio resampling for PCM16 (8 kHz telephony ↔ 16/24 kHz provider audio).
 *
 * A windowed-sinc low-pass FIR evaluated polyphase-style: for an up-by-L, down-by-M conversion we
 * only compute the output samples we keep. State (the last taps' worth of input) carries across
 * calls so chunk boundaries are seamless. Ratios in telephony are small (2, 3, or 2/3), so a
 * 32-tap-per-phase filter is a good trade of quality (> 50 dB stop band) against cost.
 */

const TAPS_PER_PHASE = 32;

function sinc(x: number): number {
  return x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
}

function designLowPass(upFactor: number, cutoff: number): Float32Array {
  const length = TAPS_PER_PHASE * upFactor;
  const taps = new Float32Array(length);
  const centre = (length - 1) / 2;
  for (let i = 0; i < length; i++) {
    const t = i - centre;
    const blackman =
      0.42 -
      0.5 * Math.cos((2 * Math.PI * i) / (length - 1)) +
      0.08 * Math.cos((4 * Math.PI * i) / (length - 1));
    // Gain of upFactor restores the amplitude lost to zero-stuffing.
    taps[i] = upFactor * cutoff * sinc(cutoff * t) * blackman;
  }
  return taps;
}

export class Resampler {
  readonly fromRate: number;
  readonly toRate: number;
  private readonly up: number;
  private readonly down: number;
  private readonly taps: Float32Array;
  /** Input history, newest last; length = TAPS_PER_PHASE - 1 + pending input. */
  private history: Float32Array;
  private historyLength: number;
  /** Position of the next output sample on the upsampled time grid, relative to history start. */
  private phase = 0;

  constructor(fromRate: number, toRate: number) {
    if (!Number.isInteger(fromRate) || !Number.isInteger(toRate) || fromRate <= 0 || toRate <= 0) {
      throw new RangeError(`resampler rates must be positive integers: got ${fromRate} -> ${toRate}`);
    }
    const divisor = gcd(fromRate, toRate);
    this.fromRate = fromRate;
    this.toRate = toRate;
    this.up = toRate / divisor;
    this.down = fromRate / divisor;
    if (this.up > 16 || this.down > 16) {
      throw new RangeError(`resampler ratio ${this.up}/${this.down} is not a small integer ratio`);
    }
    // Cut off at the lower of the two Nyquist frequencies, expressed on the upsampled grid.
    this.taps = designLowPass(this.up, 1 / Math.max(this.up, this.down));
    this.history = new Float32Array(TAPS_PER_PHASE * 2 + 4096);
    this.historyLength = TAPS_PER_PHASE - 1; // primed with silence so the filter starts immediately
  }

  /** Convert one chunk. Output length varies by at most one sample from input * toRate / fromRate. */
  process(input: Int16Array): Int16Array {
    this.ensureCapacity(this.historyLength + input.length);
    for (let i = 0; i < input.length; i++) this.history[this.historyLength + i] = input[i]!;
    this.historyLength += input.length;

    const up = this.up;
    const taps = this.taps;
    const maxOutput = Math.ceil(((input.length + 1) * up) / this.down) + 1;
    const output = new Int16Array(maxOutput);
    let produced = 0;
    // Upsampled index n = phase; the newest input sample that contributes is floor(n / up) + TAPS - 1.
    while (true) {
      const base = Math.floor(this.phase / up);
      if (base + TAPS_PER_PHASE > this.historyLength) break;
      const subPhase = this.phase - base * up;
      let acc = 0;
      for (let k = 0; k < TAPS_PER_PHASE; k++) {
        acc += this.history[base + k]! * taps[(TAPS_PER_PHASE - 1 - k) * up + (up - 1 - subPhase)]!;
      }
      output[produced++] = acc > 32767 ? 32767 : acc < -32768 ? -32768 : Math.round(acc);
      this.phase += this.down;
    }
    // Drop input that no future output needs.
    const consumed = Math.floor(this.phase / up);
    if (consumed > 0) {
      this.history.copyWithin(0, consumed, this.historyLength);
      this.historyLength -= consumed;
      this.phase -= consumed * up;
    }
    return output.subarray(0, produced);
  }

  private ensureCapacity(needed: number): void {
    if (needed <= this.history.length) return;
    const grown = new Float32Array(Math.max(needed, this.history.length * 2));
    grown.set(this.history.subarray(0, this.historyLength));
    this.history = grown;
  }
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** One-shot conversion of a whole buffer (tests, file conversion). */
export function resample(input: Int16Array, fromRate: number, toRate: number): Int16Array {
  if (fromRate === toRate) return input.slice();
  return new Resampler(fromRate, toRate).process(input);
}
