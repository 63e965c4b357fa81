/**
 * Energy voice-activity detector for 8 kHz G.711, with hysteresis: speech starts after
 * `minSpeechFrames` consecutive frames above the start threshold and continues while frames stay above
 * a threshold 6 dB lower; it ends after `silenceMs` of quieter frames (the hang-over). Pure: the caller
 * passes each 20 ms frame and its time, and gets events back. Used for end-of-turn when the STT has no
 * turn detection, and always as barge-in evidence.
 */
import { BYTES_PER_FRAME, decodeG711Sample, FRAME_MS, type G711Codec } from "@patchbay/shared/audio";

export interface VadOptions {
  speechThresholdDb: number;
  minSpeechFrames: number;
  silenceMs: number;
}

export type VadEvent = { type: "speech-start"; atMs: number } | { type: "speech-end"; atMs: number };

const FULL_SCALE_SQUARED = 32768 * 32768;
const HYSTERESIS_DB = 6;
/** A "burst" (barge-in evidence) survives dips this short between syllables. */
const BURST_GAP_MS = 120;

/** Squared sample value for each G.711 byte, so a frame's energy is 160 table lookups. */
const squaredTables: Record<G711Codec, Float64Array> = {
  PCMU: squaredTable("PCMU"),
  PCMA: squaredTable("PCMA"),
};

function squaredTable(codec: G711Codec): Float64Array {
  const table = new Float64Array(256);
  for (let byte = 0; byte < 256; byte++) {
    const sample = decodeG711Sample(codec, byte);
    table[byte] = sample * sample;
  }
  return table;
}

/** Level of one frame in dBFS (-Infinity for digital silence). */
export function frameLevelDb(codec: G711Codec, frame: Uint8Array): number {
  const table = squaredTables[codec];
  let sum = 0;
  for (let i = 0; i < frame.length; i++) sum += table[frame[i]!]!;
  const meanSquare = frame.length === 0 ? 0 : sum / frame.length;
  return 10 * Math.log10(meanSquare / FULL_SCALE_SQUARED);
}

export class EnergyVad {
  #speaking = false;
  #loudRun = 0;
  #loudRunStartMs = 0;
  #lastSpeechMs = 0;
  #speechStartMs = 0;
  #hadSpeech = false;
  #burstStartMs?: number;
  #lastLoudMs = 0;

  constructor(
    private readonly codec: G711Codec,
    private readonly options: VadOptions,
  ) {}

  get speaking(): boolean {
    return this.#speaking;
  }

  /** End of the last frame that counted as speech (undefined before any speech). */
  get lastSpeechEndMs(): number | undefined {
    return this.#hadSpeech ? this.#lastSpeechMs : undefined;
  }

  /**
   * Start of the current burst of caller sound (loud frames with dips under 120 ms), or undefined in
   * quiet. Unlike `speaking`, it has no long hang-over, so the tail of the caller's previous sentence
   * does not count as a new interruption.
   */
  get burstStartMs(): number | undefined {
    return this.#burstStartMs;
  }

  /** When the current speech began (valid while `speaking`). */
  get speechStartMs(): number {
    return this.#speechStartMs;
  }

  /**
   * Feeds one or more whole 20 ms frames starting at `atMs`; returns the events they caused (usually
   * none). Frames of other lengths are measured as one frame.
   */
  push(audio: Uint8Array, atMs: number): VadEvent[] {
    const events: VadEvent[] = [];
    const frames = Math.max(1, Math.floor(audio.length / BYTES_PER_FRAME));
    for (let index = 0; index < frames; index++) {
      const frame =
        frames === 1 ? audio : audio.subarray(index * BYTES_PER_FRAME, (index + 1) * BYTES_PER_FRAME);
      this.#pushFrame(frameLevelDb(this.codec, frame), atMs + index * FRAME_MS, events);
    }
    return events;
  }

  reset(): void {
    this.#speaking = false;
    this.#loudRun = 0;
    this.#burstStartMs = undefined;
  }

  #pushFrame(levelDb: number, atMs: number, events: VadEvent[]): void {
    const threshold = this.#speaking
      ? this.options.speechThresholdDb - HYSTERESIS_DB
      : this.options.speechThresholdDb;
    const burstThreshold = this.options.speechThresholdDb - HYSTERESIS_DB;
    if (levelDb >= burstThreshold) {
      if (this.#burstStartMs === undefined) this.#burstStartMs = atMs;
    } else if (this.#burstStartMs !== undefined && atMs + FRAME_MS - this.#lastLoudMs > BURST_GAP_MS) {
      this.#burstStartMs = undefined;
    }
    if (levelDb >= burstThreshold) this.#lastLoudMs = atMs + FRAME_MS;
    if (levelDb >= threshold) {
      if (this.#loudRun === 0) this.#loudRunStartMs = atMs;
      this.#loudRun++;
      this.#lastSpeechMs = atMs + FRAME_MS;
      if (!this.#speaking && this.#loudRun >= this.options.minSpeechFrames) {
        this.#speaking = true;
        this.#hadSpeech = true;
        this.#speechStartMs = this.#loudRunStartMs;
        events.push({ type: "speech-start", atMs: this.#loudRunStartMs });
      }
      return;
    }
    this.#loudRun = 0;
    if (this.#speaking && atMs + FRAME_MS - this.#lastSpeechMs >= this.options.silenceMs) {
      this.#speaking = false;
      events.push({ type: "speech-end", atMs: this.#lastSpeechMs });
    }
  }
}
