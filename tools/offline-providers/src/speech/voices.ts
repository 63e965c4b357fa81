/**
 * OpenAI voice names → espeak-ng voices (all American English variants, so every voice is
 * recognized by the same tuned PocketSphinx setup), and OpenAI's `speed` → espeak words per minute.
 */
export const DEFAULT_VOICE = "en-us";

/** Slightly slower than espeak's 175 wpm default: clearer, and measurably better recognized (README). */
export const BASE_WORDS_PER_MINUTE = 140;

export const OPENAI_VOICES: Readonly<Record<string, string>> = {
  alloy: "en-us",
  ash: "en-us+m2",
  ballad: "en-us+m4",
  coral: "en-us+f2",
  echo: "en-us+m3",
  fable: "en-us+m5",
  nova: "en-us+f3",
  onyx: "en-us+m1",
  sage: "en-us+f4",
  shimmer: "en-us+f5",
  verse: "en-us+m6",
  marin: "en-us+f1",
  cedar: "en-us+m7",
};

/** A direct espeak-ng voice spec is accepted too ("en-us", "en-us+f3"), for experiments. */
const ESPEAK_VOICE = /^en(-[a-z]{2,8})*(\+[a-z0-9]{1,12})?$/;

export function espeakVoiceFor(voice: string): string | undefined {
  const known = OPENAI_VOICES[voice.toLowerCase()];
  if (known) return known;
  return ESPEAK_VOICE.test(voice) ? voice : undefined;
}

/** OpenAI accepts speed 0.25–4.0; espeak-ng accepts 80–450 wpm. */
export function wordsPerMinuteFor(speed: number): number {
  return Math.round(Math.min(450, Math.max(80, BASE_WORDS_PER_MINUTE * speed)));
}
