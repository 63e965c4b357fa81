import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OfflineProviders, startOfflineProviders } from "../src/index";
import { isWavError, parseWav } from "../src/speech/wav";
import { decodeWithSox, errorOf, frameLevels, postJson } from "./support";

let providers: OfflineProviders;
let speechUrl: string;

beforeAll(async () => {
  providers = await startOfflineProviders();
  speechUrl = `${providers.url}/v1/audio/speech`;
});
afterAll(async () => {
  await providers?.close();
});

const SENTENCE = "We are open nine to five, Monday to Friday.";

async function speak(responseFormat: string, extra: Record<string, unknown> = {}): Promise<Uint8Array> {
  const response = await postJson(speechUrl, {
    model: "tts-1",
    voice: "alloy",
    input: SENTENCE,
    response_format: responseFormat,
    ...extra,
  });
  expect(response.status).toBe(200);
  return new Uint8Array(await response.arrayBuffer());
}

/** Share of 20 ms frames louder than -40 dBFS: speech has plenty, silence none. */
function voicedShare(samples: Int16Array, sampleRate: number): number {
  const levels = frameLevels(samples, sampleRate);
  return levels.filter((level) => level > -40).length / levels.length;
}

// espeak at 140 wpm says this sentence in about 3.5 s.
const PLAUSIBLE_SECONDS = { min: 2, max: 6 };

describe("POST /v1/audio/speech", () => {
  it("returns 8 kHz μ-law that decodes to speech of plausible duration", async () => {
    const bytes = await speak("mulaw");
    const seconds = bytes.length / 8000;
    expect(seconds).toBeGreaterThan(PLAUSIBLE_SECONDS.min);
    expect(seconds).toBeLessThan(PLAUSIBLE_SECONDS.max);
    const samples = decodeWithSox(bytes, ["-t", "ul", "-r", "8000", "-c", "1"]);
    expect(voicedShare(samples, 8000)).toBeGreaterThan(0.4);
  });

  it("accepts the g711_ulaw alias and returns A-law for alaw", async () => {
    expect((await speak("g711_ulaw")).length / 8000).toBeGreaterThan(PLAUSIBLE_SECONDS.min);
    const alaw = await speak("alaw");
    const samples = decodeWithSox(alaw, ["-t", "al", "-r", "8000", "-c", "1"]);
    expect(voicedShare(samples, 8000)).toBeGreaterThan(0.4);
  });

  it("returns OpenAI's pcm: 24 kHz s16le mono, whole samples", async () => {
    const bytes = await speak("pcm");
    expect(bytes.length % 2).toBe(0);
    const samples = new Int16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
    const seconds = samples.length / 24000;
    expect(seconds).toBeGreaterThan(PLAUSIBLE_SECONDS.min);
    expect(seconds).toBeLessThan(PLAUSIBLE_SECONDS.max);
    expect(voicedShare(samples, 24000)).toBeGreaterThan(0.4);
  });

  it("returns a valid WAV with exact sizes", async () => {
    const bytes = await speak("wav");
    const wav = parseWav(bytes);
    if (isWavError(wav)) throw new Error(`invalid wav: ${wav.code} ${wav.detail}`);
    expect(wav).toMatchObject({ encoding: "pcm16", sampleRate: 24000, channels: 1 });
    expect(wav.data.length).toBe(bytes.length - 44);
    expect(wav.durationSeconds).toBeGreaterThan(PLAUSIBLE_SECONDS.min);
  });

  it("speaks faster with a higher speed", async () => {
    const normal = (await speak("mulaw")).length;
    const fast = (await speak("mulaw", { speed: 2 })).length;
    expect(fast).toBeLessThan(normal * 0.75);
  });

  it.each([
    ["unsupported format", { response_format: "mp3" }, "response_format"],
    ["unknown voice", { voice: "robot" }, "voice"],
    ["empty input", { input: "" }, "input"],
    ["speed out of range", { speed: 9 }, "speed"],
  ])("400 for %s", async (_name, override, param) => {
    const response = await postJson(speechUrl, {
      model: "tts-1",
      voice: "alloy",
      input: SENTENCE,
      response_format: "pcm",
      ...override,
    });
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatchObject({ type: "invalid_request_error", param });
  });
});
