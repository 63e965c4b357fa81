/**
 * One TTS contract, every implementation. The fakes speak a sine whose frequency encodes the sentence's
 * first letter (A → 300 Hz, B → 600 Hz, C → 900 Hz, D → 1200 Hz) for 10 ms per character, so the test
 * can check, in the call's codec, that audio arrives in order, with a plausible length, at the right
 * level (decoding with the wrong G.711 law gives ~3.5x the RMS), and that nothing stale follows clear().
 */
import { decodeG711, type G711Codec } from "@patchbay/shared/audio";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CartesiaTts } from "../../../src/providers/cartesia";
import { DeepgramAuraTts } from "../../../src/providers/deepgram";
import { ElevenLabsTts } from "../../../src/providers/elevenlabs";
import { OpenAiSpeechTts } from "../../../src/providers/openai";
import { ProviderError, type TtsProvider, type TtsSession } from "../../../src/providers/types";
import { WorkersAiTts } from "../../../src/providers/workers-ai";
import { TtsRecorder } from "../recorders";
import {
  BAD_KEY,
  BUSY_KEY,
  delay,
  eventually,
  expectNoViolations,
  fakeAi,
  fakes,
  GOOD_KEY,
  NO_RETRY,
  resetFakes,
  wsUrl,
} from "../support";

type Key = typeof GOOD_KEY | typeof BAD_KEY | typeof BUSY_KEY;

interface TtsCase {
  name: string;
  voice: string;
  make(key: Key, scenario?: "drop"): TtsProvider;
  failsAtConnect: boolean;
  canDrop: boolean;
}

const prefix = (scenario?: string) => (scenario ? `/s/${scenario}` : "");

const cases: TtsCase[] = [
  {
    name: "deepgram aura (websocket)",
    voice: "aura-2-thalia-en",
    make: (key, scenario) =>
      new DeepgramAuraTts({
        apiKey: key,
        baseUrl: wsUrl(fakes().deepgram) + prefix(scenario),
        retry: NO_RETRY,
      }),
    failsAtConnect: true,
    canDrop: true,
  },
  {
    name: "elevenlabs stream-input",
    voice: "voice123",
    make: (key, scenario) =>
      new ElevenLabsTts({
        apiKey: key,
        baseUrl: wsUrl(fakes().elevenlabs) + prefix(scenario),
        voiceSettings: { stability: 0.5, similarity_boost: 0.8 },
        retry: NO_RETRY,
      }),
    failsAtConnect: true,
    canDrop: true,
  },
  {
    name: "cartesia websocket",
    voice: "voice-abc",
    make: (key, scenario) =>
      new CartesiaTts({ apiKey: key, baseUrl: wsUrl(fakes().cartesia) + prefix(scenario), retry: NO_RETRY }),
    failsAtConnect: true,
    canDrop: true,
  },
  {
    name: "openai speech (pcm 24 kHz)",
    voice: "alloy",
    make: (key, scenario) =>
      new OpenAiSpeechTts({
        apiKey: key,
        baseUrl: `${fakes().openai}${prefix(scenario)}/v1`,
        model: "gpt-4o-mini-tts",
        retry: NO_RETRY,
      }),
    failsAtConnect: false,
    canDrop: true,
  },
  {
    name: "openai-compatible speech (wav)",
    voice: "alloy",
    make: (key, scenario) =>
      new OpenAiSpeechTts({
        apiKey: key,
        baseUrl: `${fakes().openai}${prefix(scenario)}/v1`,
        model: "tts-1",
        responseFormat: "wav",
        retry: NO_RETRY,
      }),
    failsAtConnect: false,
    canDrop: false,
  },
  {
    name: "workers-ai aura (binding)",
    voice: "asteria",
    make: (key) =>
      new WorkersAiTts({
        ai: fakeAi(key === BAD_KEY ? "unauthorized" : key === BUSY_KEY ? "busy" : undefined),
        retry: NO_RETRY,
      }),
    failsAtConnect: false,
    canDrop: false,
  },
];

const SENTENCES = ["Alpha one two three.", "Bravo four five.", "Charlie six seven eight nine."];
const BYTES_PER_CHAR = 80; // 10 ms of 8 kHz G.711 per character in the fakes

interface Analysis {
  /** Dominant frequency of each 50 ms window, snapped to the fakes' 300 Hz grid. */
  frequencies: number[];
  medianRms: number;
}

function analyze(codec: G711Codec, audio: Uint8Array): Analysis {
  const pcm = decodeG711(codec, audio);
  const frequencies: number[] = [];
  const levels: number[] = [];
  for (let start = 0; start + 400 <= pcm.length; start += 400) {
    const window = pcm.subarray(start, start + 400);
    let crossings = 0;
    let energy = 0;
    for (let i = 0; i < window.length; i++) {
      energy += window[i]! * window[i]!;
      if (i > 0 && window[i - 1]! < 0 !== window[i]! < 0) crossings++;
    }
    frequencies.push(Math.round((crossings * 10) / 300) * 300);
    levels.push(Math.sqrt(energy / window.length));
  }
  levels.sort((a, b) => a - b);
  return { frequencies, medianRms: levels[Math.floor(levels.length / 2)] ?? 0 };
}

function expectPlausible(codec: G711Codec, audio: Uint8Array, texts: string[]): Analysis {
  const expected = texts.reduce((sum, text) => sum + text.length, 0) * BYTES_PER_CHAR;
  expect(audio.length).toBeGreaterThan(expected * 0.9);
  expect(audio.length).toBeLessThan(expected * 1.1);
  const analysis = analyze(codec, audio);
  expect(analysis.medianRms).toBeGreaterThan(5657 * 0.85);
  expect(analysis.medianRms).toBeLessThan(5657 * 1.15);
  return analysis;
}

describe.each(cases)("TTS conformance: $name", (impl) => {
  const open: TtsSession[] = [];
  beforeEach(resetFakes);
  afterEach(async () => {
    await Promise.all(open.splice(0).map((session) => session.close()));
  });

  async function connect(codec: G711Codec, recorder: TtsRecorder, key: Key = GOOD_KEY, scenario?: "drop") {
    const session = await impl
      .make(key, scenario)
      .connect({ format: { codec, sampleRate: 8000 }, voice: impl.voice, language: "en-US" }, recorder);
    open.push(session);
    return session;
  }

  it.each<G711Codec>(["PCMU", "PCMA"])(
    "speaks sentences in order in the call's codec, then flushes (%s)",
    async (codec) => {
      const recorder = new TtsRecorder();
      const session = await connect(codec, recorder);
      for (const sentence of SENTENCES) session.speak(sentence);
      session.flush();
      await eventually(() => expect(recorder.flushed).toBe(1));
      const first = expectPlausible(codec, recorder.audio(), SENTENCES);
      const sorted = [...first.frequencies].sort((a, b) => a - b);
      expect(first.frequencies).toEqual(sorted);
      expect(new Set(first.frequencies)).toEqual(new Set([300, 600, 900]));

      // The session carries on with the next utterance.
      const mark = recorder.chunks.length;
      session.speak("Bravo again.");
      session.flush();
      await eventually(() => expect(recorder.flushed).toBe(2));
      await delay(30);
      const second = expectPlausible(codec, recorder.audio(mark), ["Bravo again."]);
      expect(new Set(second.frequencies)).toEqual(new Set([600]));
      expect(recorder.log).toEqual(["audio", "flushed", "audio", "flushed"]);
      expect(recorder.errors).toEqual([]);
      await expectNoViolations();
    },
  );

  /**
   * Race pinned: two utterances flushed back to back. Vendors that open a socket per utterance
   * (ElevenLabs) generate both at once; the second one's audio must be held until the first is final,
   * or the caller hears them interleaved. Fix: only the head utterance delivers, later ones hold.
   */
  it("two utterances flushed back to back play one after the other, each acknowledged", async () => {
    const recorder = new TtsRecorder();
    const session = await connect("PCMU", recorder);
    session.speak("Alpha first utterance here.");
    session.flush();
    session.speak("Bravo second utterance here.");
    session.flush();
    await eventually(() => expect(recorder.flushed).toBe(2));
    await delay(30);
    const analysis = expectPlausible("PCMU", recorder.audio(), [
      "Alpha first utterance here.",
      "Bravo second utterance here.",
    ]);
    expect(analysis.frequencies).toEqual([...analysis.frequencies].sort((a, b) => a - b));
    expect(recorder.log).toEqual(["audio", "flushed", "audio", "flushed"]);
    await expectNoViolations();
  });

  it("clear() mid-utterance stops its audio; the next utterance plays clean", async () => {
    const recorder = new TtsRecorder();
    const session = await connect("PCMU", recorder);
    session.speak(`Delta ${"la ".repeat(150)}end.`);
    session.flush();
    await eventually(() => expect(recorder.chunks.length).toBeGreaterThan(0));
    session.clear();
    const mark = recorder.chunks.length;
    session.speak("Bravo short one.");
    session.flush();
    await eventually(() => expect(recorder.flushed).toBe(1));
    await delay(50);
    const after = expectPlausible("PCMU", recorder.audio(mark), ["Bravo short one."]);
    expect(new Set(after.frequencies)).toEqual(new Set([600]));
    expect(recorder.flushed).toBe(1);
    expect(recorder.errors).toEqual([]);
    await expectNoViolations();
  });

  it("close() is idempotent", async () => {
    const recorder = new TtsRecorder();
    const session = await connect("PCMA", recorder);
    session.speak("Alpha.");
    await session.close();
    await session.close();
    session.speak("ignored");
    session.flush();
    session.clear();
    await delay(20);
    expect(recorder.errors).toEqual([]);
  });

  async function failure(key: Key, scenario?: "drop"): Promise<ProviderError> {
    const recorder = new TtsRecorder();
    if (impl.failsAtConnect && !scenario) {
      const error = await connect("PCMU", recorder, key).then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
      expect(error).toBeInstanceOf(ProviderError);
      return error as ProviderError;
    }
    const session = await connect("PCMU", recorder, key, scenario);
    session.speak("Alpha one two three four five six.");
    session.flush();
    await eventually(() => expect(recorder.errors.length).toBeGreaterThan(0));
    return recorder.errors[0]!;
  }

  it("401 → ProviderError auth, not retryable", async () => {
    const error = await failure(BAD_KEY);
    expect(error.code).toBe("auth");
    expect(error.retryable).toBe(false);
  });

  it("429 → ProviderError rate-limit, retryable", async () => {
    const error = await failure(BUSY_KEY);
    expect(error.code).toBe("rate-limit");
    expect(error.retryable).toBe(true);
  });

  it.runIf(impl.canDrop)("connection dropped mid-stream → onError", async () => {
    const error = await failure(GOOD_KEY, "drop");
    expect(error).toBeInstanceOf(ProviderError);
  });
});
