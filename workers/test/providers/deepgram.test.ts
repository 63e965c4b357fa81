/** Deepgram specifics the conformance suite does not cover: KeepAlive while idle, CloseStream on close, handshake timeout. */
import { beforeEach, describe, expect, it } from "vitest";
import { DeepgramLiveStt } from "../../src/providers/deepgram";
import { ProviderError } from "../../src/providers/types";
import { SttRecorder } from "./recorders";
import { fakeState, fakes, GOOD_KEY, NO_RETRY, resetFakes, wsUrl } from "./support";

describe("Deepgram live STT socket upkeep", () => {
  beforeEach(resetFakes);

  it("sends KeepAlive while no audio flows and CloseStream on close", async () => {
    const stt = new DeepgramLiveStt({
      apiKey: GOOD_KEY,
      baseUrl: wsUrl(fakes().deepgram),
      keepAliveMs: 100,
      retry: NO_RETRY,
    });
    const recorder = new SttRecorder();
    const session = await stt.connect(
      { format: { codec: "PCMU", sampleRate: 8000 }, language: "en" },
      recorder,
    );
    await expect
      .poll(async () => (await fakeState(fakes().deepgram)).counters.KeepAlive ?? 0)
      .toBeGreaterThan(0);
    await session.close();
    await expect.poll(async () => (await fakeState(fakes().deepgram)).counters.CloseStream ?? 0).toBe(1);
    expect(recorder.errors).toEqual([]);
    expect((await fakeState(fakes().deepgram)).violations).toEqual([]);
  });

  it("a handshake that never completes fails connect() with a retryable timeout", async () => {
    const stt = new DeepgramLiveStt({
      apiKey: GOOD_KEY,
      baseUrl: `${wsUrl(fakes().deepgram)}/s/hang`,
      connectTimeoutMs: 200,
      retry: NO_RETRY,
    });
    const error = await stt
      .connect({ format: { codec: "PCMU", sampleRate: 8000 }, language: "en" }, new SttRecorder())
      .then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
    expect(error).toBeInstanceOf(ProviderError);
    expect((error as ProviderError).code).toBe("timeout");
    expect((error as ProviderError).retryable).toBe(true);
  });
});
