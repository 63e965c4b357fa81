/**
 * One STT contract, every implementation: each provider is run against its fake vendor (real wire
 * protocol) with the same caller audio and the same expectations. 200 ms of tone is one word for the
 * fakes, so 600 ms of tone must come back as "hello world this".
 */
import type { G711Codec } from "@patchbay/shared/audio";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DeepgramFluxStt, DeepgramLiveStt } from "../../../src/providers/deepgram";
import { OpenAiSegmentStt } from "../../../src/providers/openai";
import { ProviderError, type SttProvider, type SttSession } from "../../../src/providers/types";
import { WORKERS_AI_FLUX, WORKERS_AI_NOVA_3, WorkersAiStt } from "../../../src/providers/workers-ai";
import { SttRecorder } from "../recorders";
import {
  BAD_KEY,
  BUSY_KEY,
  callerAudio,
  eventually,
  expectNoViolations,
  FAST_RETRY,
  fakeAi,
  fakes,
  GOOD_KEY,
  NO_RETRY,
  resetFakes,
  wsUrl,
} from "../support";

type Key = typeof GOOD_KEY | typeof BAD_KEY | typeof BUSY_KEY;

interface SttCase {
  name: string;
  make(key: Key, scenario?: "drop" | "flaky"): SttProvider;
  /** finalize() ends the current turn (Deepgram Finalize, segment upload); Flux ignores it. */
  finalizeEndsTurn: boolean;
  /** Errors surface at connect() (socket vendors) or at the first request (segment HTTP). */
  failsAtConnect: boolean;
  /** Can the fake drop the connection mid-stream? */
  streaming: boolean;
}

const prefix = (scenario?: string) => (scenario ? `/s/${scenario}` : "");
const aiScenario = (key: Key, scenario?: "drop" | "flaky") =>
  key === BAD_KEY ? "unauthorized" : key === BUSY_KEY ? "busy" : scenario;
const retryFor = (scenario?: string) => (scenario === "flaky" ? FAST_RETRY : NO_RETRY);

const cases: SttCase[] = [
  {
    name: "deepgram live (nova-3)",
    make: (key, scenario) =>
      new DeepgramLiveStt({
        apiKey: key,
        baseUrl: wsUrl(fakes().deepgram) + prefix(scenario),
        retry: retryFor(scenario),
      }),
    finalizeEndsTurn: true,
    failsAtConnect: true,
    streaming: true,
  },
  {
    name: "deepgram flux",
    make: (key, scenario) =>
      new DeepgramFluxStt({
        apiKey: key,
        baseUrl: wsUrl(fakes().deepgram) + prefix(scenario),
        eagerEotThreshold: 0.5,
        retry: retryFor(scenario),
      }),
    finalizeEndsTurn: false,
    failsAtConnect: true,
    streaming: true,
  },
  {
    name: "openai segment transcription",
    make: (key, scenario) =>
      new OpenAiSegmentStt({
        apiKey: key,
        baseUrl: `${fakes().openai}${prefix(scenario)}/v1`,
        model: "whisper-1",
        retry: retryFor(scenario),
      }),
    finalizeEndsTurn: true,
    failsAtConnect: false,
    streaming: false,
  },
  {
    name: "workers-ai flux (binding)",
    make: (key, scenario) =>
      new WorkersAiStt({
        ai: fakeAi(aiScenario(key, scenario)),
        model: WORKERS_AI_FLUX,
        eagerEotThreshold: 0.5,
        retry: retryFor(scenario),
      }),
    finalizeEndsTurn: false,
    failsAtConnect: true,
    streaming: true,
  },
  {
    name: "workers-ai nova-3 (binding)",
    make: (key, scenario) =>
      new WorkersAiStt({
        ai: fakeAi(aiScenario(key, scenario)),
        model: WORKERS_AI_NOVA_3,
        retry: retryFor(scenario),
      }),
    finalizeEndsTurn: true,
    failsAtConnect: true,
    streaming: true,
  },
];

const codecs: G711Codec[] = ["PCMU", "PCMA"];

describe.each(cases)("STT conformance: $name", (impl) => {
  const open: SttSession[] = [];
  beforeEach(resetFakes);
  afterEach(async () => {
    await Promise.all(open.splice(0).map((session) => session.close()));
  });

  async function connect(
    codec: G711Codec,
    recorder: SttRecorder,
    key: Key = GOOD_KEY,
    scenario?: "drop" | "flaky",
  ) {
    const provider = impl.make(key, scenario);
    const session = await provider.connect(
      { format: { codec, sampleRate: 8000 }, language: "en-US" },
      recorder,
    );
    open.push(session);
    return { provider, session };
  }

  function speak(session: SttSession, codec: G711Codec, toneMs: number, silenceMs: number) {
    for (const frame of callerAudio(codec, toneMs, silenceMs)) session.sendAudio(frame);
  }

  it.each(codecs)("turns caller audio into interim, final and end-of-turn events (%s)", async (codec) => {
    const recorder = new SttRecorder();
    const { provider, session } = await connect(codec, recorder);
    for (const words of ["hello world this", "hello world"]) {
      const before = recorder.endedTurns.length;
      speak(session, codec, words === "hello world" ? 400 : 600, 600);
      if (!provider.capabilities.endOfTurn) session.finalize();
      await eventually(() => expect(recorder.endedTurns.length).toBe(before + 1));
      expect(recorder.endedTurns[before]!.transcript).toBe(words);
    }
    expect(recorder.finals.join(" ")).toBe("hello world this hello world");
    if (provider.capabilities.interimResults) expect(recorder.interims.length).toBeGreaterThan(0);
    if (provider.capabilities.speechStarted) expect(recorder.speechStarted).toBe(2);
    expect(recorder.errors).toEqual([]);
    await expectNoViolations();
  });

  it.runIf(impl.finalizeEndsTurn)("finalize() ends the turn without waiting for silence", async () => {
    const recorder = new SttRecorder();
    const { session } = await connect("PCMU", recorder);
    speak(session, "PCMU", 400, 0);
    session.finalize();
    await eventually(() => expect(recorder.endedTurns).toHaveLength(1));
    expect(recorder.endedTurns[0]!.transcript).toBe("hello world");
    await expectNoViolations();
  });

  it("reports an eager end of turn and its resumption where the vendor has one", async () => {
    const recorder = new SttRecorder();
    const { provider, session } = await connect("PCMU", recorder);
    if (!provider.capabilities.eagerEndOfTurn) return;
    speak(session, "PCMU", 600, 260); // long enough for EagerEndOfTurn, not for EndOfTurn
    await eventually(() => expect(recorder.turns.filter((turn) => turn.eager)).toHaveLength(1));
    speak(session, "PCMU", 200, 600);
    await eventually(() => expect(recorder.endedTurns).toHaveLength(1));
    // Flux: EagerEndOfTurn ⇄ TurnResumed → EndOfTurn (https://developers.deepgram.com/docs/flux/state).
    expect(recorder.log.filter((name) => ["eager-eot", "resumed", "eot"].includes(name))).toEqual([
      "eager-eot",
      "resumed",
      "eager-eot",
      "eot",
    ]);
    expect(recorder.endedTurns[0]!.transcript).toBe("hello world this is");
  });

  it("close() is idempotent and silent", async () => {
    const recorder = new SttRecorder();
    const { session } = await connect("PCMA", recorder);
    speak(session, "PCMA", 200, 0);
    await session.close();
    await session.close();
    session.sendAudio(new Uint8Array(160)); // after close: ignored, no throw
    session.finalize();
    expect(recorder.errors).toEqual([]);
  });

  async function failure(key: Key, scenario?: "drop"): Promise<ProviderError> {
    const recorder = new SttRecorder();
    if (impl.failsAtConnect) {
      const error = await connect("PCMU", recorder, key, scenario).then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
      expect(error).toBeInstanceOf(ProviderError);
      return error as ProviderError;
    }
    const { session } = await connect("PCMU", recorder, key, scenario);
    speak(session, "PCMU", 200, 0);
    session.finalize();
    await eventually(() => expect(recorder.errors).toHaveLength(1));
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

  it.runIf(impl.streaming)("socket dropped mid-stream → onError", async () => {
    const recorder = new SttRecorder();
    const { session } = await connect("PCMU", recorder, GOOD_KEY, "drop");
    speak(session, "PCMU", 400, 0);
    await eventually(() => expect(recorder.errors).toHaveLength(1));
    expect(recorder.errors[0]!.code).toBe("closed");
  });

  it("a 5xx at connection setup is retried", async () => {
    const recorder = new SttRecorder();
    const { provider, session } = await connect("PCMU", recorder, GOOD_KEY, "flaky");
    speak(session, "PCMU", 200, 600);
    if (!provider.capabilities.endOfTurn) session.finalize();
    await eventually(() => expect(recorder.endedTurns).toHaveLength(1));
    expect(recorder.endedTurns[0]!.transcript).toBe("hello");
    expect(recorder.errors).toEqual([]);
  });
});
