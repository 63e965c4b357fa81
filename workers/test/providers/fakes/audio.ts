/**
 * Audio the fakes hear and speak. Hearing: frames are classified by RMS as the test tone (speech), silence,
 * or neither — "neither" means the client sent audio in a different encoding than it declared (μ-law
 * silence decoded as A-law is ~850, not ~0), which is a protocol violation. Speaking: a sine whose
 * frequency encodes which sentence it belongs to (first letter A → 300 Hz, B → 600 Hz, …) and whose
 * length is 10 ms per character, so tests can check order, length and codec of what comes back.
 */
import { encodeG711, type G711Codec } from "@patchbay/shared/audio";

export const TONE_AMPLITUDE = 8000;
export const MS_PER_CHAR = 10;
export const WORDS = ["hello", "world", "this", "is", "a", "test", "of", "the", "phone", "agent"];
/** 200 ms of tone make one recognized word. */
export const MS_PER_WORD = 200;

export type FrameKind = "speech" | "silence" | "garbled";

export function classify(samples: Int16Array): FrameKind {
  let sum = 0;
  for (const sample of samples) sum += sample * sample;
  const rms = Math.sqrt(sum / Math.max(1, samples.length));
  if (rms > 2000) return "speech";
  if (rms < 100) return "silence";
  return "garbled";
}

export function frequencyFor(text: string): number {
  const letter = text.trim().toUpperCase().charCodeAt(0);
  const index = letter >= 65 && letter <= 90 ? (letter - 65) % 8 : 0;
  return 300 * (index + 1);
}

export function tonePcm(samples: number, rate: number, frequency: number): Int16Array {
  const out = new Int16Array(samples);
  for (let i = 0; i < samples; i++)
    out[i] = Math.round(TONE_AMPLITUDE * Math.sin((2 * Math.PI * frequency * i) / rate));
  return out;
}

export function speechFor(text: string, rate: number): Int16Array {
  return tonePcm(Math.round((text.length * MS_PER_CHAR * rate) / 1000), rate, frequencyFor(text));
}

export function g711For(text: string, codec: G711Codec): Uint8Array {
  return encodeG711(codec, speechFor(text, 8000));
}

export function pcmLe(samples: Int16Array): Buffer {
  const buffer = Buffer.alloc(samples.length * 2);
  for (let i = 0; i < samples.length; i++) buffer.writeInt16LE(samples[i]!, 2 * i);
  return buffer;
}

export function readPcmLe(bytes: Buffer): Int16Array {
  const out = new Int16Array(bytes.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readInt16LE(2 * i);
  return out;
}

export function wordsFor(speechMs: number): string {
  const count = Math.max(1, Math.round(speechMs / MS_PER_WORD));
  return WORDS.slice(0, count).join(" ");
}

/**
 * Turn-taking listener shared by the STT fakes: feeds 20 ms frames, reports speech start, interim
 * word counts and end of utterance after `silenceFrames` of silence.
 */
export class Listener {
  speechFrames = 0;
  silenceRun = 0;
  inSpeech = false;
  garbled = 0;

  constructor(
    private readonly silenceFrames: number,
    private readonly on: {
      started(): void;
      interim(words: string): void;
      silence(frames: number, words: string): void;
    },
  ) {}

  /**
   * Returns false when the audio is not what the client declared: two garbled frames in a row. A single
   * one is a frame straddling a tone edge (resampling filters smear edges across a frame boundary).
   */
  frame(kind: FrameKind): boolean {
    if (kind === "garbled") {
      this.garbled++;
      return this.garbled < 2;
    }
    this.garbled = 0;
    if (kind === "speech") {
      this.silenceRun = 0;
      if (!this.inSpeech) {
        this.inSpeech = true;
        this.on.started();
      }
      this.speechFrames++;
      if (this.speechFrames % 5 === 0) this.on.interim(this.words());
      return true;
    }
    if (!this.inSpeech) return true;
    this.silenceRun++;
    this.on.silence(this.silenceRun, this.words());
    return true;
  }

  words(): string {
    return wordsFor(this.speechFrames * 20);
  }

  reset(): void {
    this.speechFrames = 0;
    this.silenceRun = 0;
    this.inSpeech = false;
  }

  get silenceLimit(): number {
    return this.silenceFrames;
  }
}
