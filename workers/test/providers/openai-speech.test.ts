/**
 * OpenAI speech specifics: clear() aborts the HTTP requests in flight, not just their audio.
 * Race pinned: speak() calls made while the head sentence streams must still start the look-ahead
 * request (they used to wait until the head finished, leaving a gap between sentences). Fix: every
 * speak() tops up the look-ahead window.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { OpenAiSpeechTts } from "../../src/providers/openai";
import { TtsRecorder } from "./recorders";
import { eventually, fakeState, fakes, GOOD_KEY, NO_RETRY, resetFakes } from "./support";

describe("OpenAI speech queue", () => {
  beforeEach(resetFakes);

  it("clear() aborts in-flight requests (current and look-ahead)", async () => {
    const tts = new OpenAiSpeechTts({
      apiKey: GOOD_KEY,
      baseUrl: `${fakes().openai}/v1`,
      model: "tts-1",
      retry: NO_RETRY,
    });
    const recorder = new TtsRecorder();
    const session = await tts.connect(
      { format: { codec: "PCMU", sampleRate: 8000 }, voice: "alloy", language: "en" },
      recorder,
    );
    session.speak(`Alpha ${"la ".repeat(200)}.`);
    session.speak(`Bravo ${"la ".repeat(200)}.`);
    session.speak("Charlie is never requested before clear.");
    session.flush();
    await eventually(() => expect(recorder.chunks.length).toBeGreaterThan(0));
    session.clear();
    await expect
      .poll(async () => (await fakeState(fakes().openai)).counters["speech:client-aborted"] ?? 0)
      .toBe(2);
    // Look-ahead of one: the third sentence was never requested.
    expect((await fakeState(fakes().openai)).counters["speech:requests"]).toBe(2);
    expect(recorder.flushed).toBe(0);
    await session.close();
  });
});
