/**
 * OpenAI Realtime client against the fake Realtime server (GA event shapes): session setup is
 * validated, the greeting streams G.711 audio with transcripts, caller speech triggers barge-in and a
 * tool call, the tool result continues the conversation, and truncate() is accepted for played audio.
 */
import { decodeG711, type G711Codec } from "@patchbay/shared/audio";
import { beforeEach, describe, expect, it } from "vitest";
import { OpenAiRealtime } from "../../src/providers/openai-realtime";
import type { RealtimeEvents } from "../../src/providers/realtime-types";
import {
  type ProviderError,
  ProviderError as ProviderErrorClass,
  type ToolCall,
} from "../../src/providers/types";
import {
  BAD_KEY,
  callerAudio,
  eventually,
  expectNoViolations,
  fakeState,
  fakes,
  GOOD_KEY,
  NO_RETRY,
  resetFakes,
  wsUrl,
} from "./support";

class RealtimeRecorder implements RealtimeEvents {
  audio: { bytes: Uint8Array; itemId: string }[] = [];
  speechStarted = 0;
  transcripts: { role: string; text: string; final: boolean }[] = [];
  toolCalls: ToolCall[] = [];
  responsesDone = 0;
  errors: ProviderError[] = [];
  onAudio(audio: Uint8Array, itemId: string) {
    this.audio.push({ bytes: audio.slice(), itemId });
  }
  onSpeechStarted() {
    this.speechStarted++;
  }
  onTranscript(role: "user" | "assistant", text: string, final: boolean) {
    this.transcripts.push({ role, text, final });
  }
  onToolCall(call: ToolCall) {
    this.toolCalls.push(call);
  }
  onResponseDone() {
    this.responsesDone++;
  }
  onError(error: ProviderError) {
    this.errors.push(error);
  }
}

function rms(codec: G711Codec, chunks: { bytes: Uint8Array }[]): number {
  let energy = 0;
  let count = 0;
  for (const { bytes } of chunks) {
    for (const sample of decodeG711(codec, bytes)) {
      energy += sample * sample;
      count++;
    }
  }
  return Math.sqrt(energy / Math.max(1, count));
}

const provider = (key = GOOD_KEY) =>
  new OpenAiRealtime({
    apiKey: key,
    baseUrl: `${wsUrl(fakes().realtime)}/v1`,
    transcriptionModel: "gpt-4o-mini-transcribe",
    retry: NO_RETRY,
  });

const tools = [
  {
    name: "get_weather",
    description: "Current weather",
    parameters: { type: "object", properties: { city: { type: "string" } } },
  },
];

describe("OpenAI Realtime", () => {
  beforeEach(resetFakes);

  it.each<G711Codec>(["PCMU", "PCMA"])(
    "greets, hears the caller, calls a tool and answers (%s)",
    async (codec) => {
      const events = new RealtimeRecorder();
      const session = await provider().connect(
        {
          format: { codec, sampleRate: 8000 },
          instructions: "Be brief.",
          voice: "marin",
          language: "en-US",
          tools,
        },
        events,
      );
      session.requestResponse("Greet the caller.");
      await eventually(() => expect(events.responsesDone).toBe(1));
      expect(rms(codec, events.audio)).toBeGreaterThan(5657 * 0.85);
      expect(rms(codec, events.audio)).toBeLessThan(5657 * 1.15);
      expect(events.transcripts.filter((t) => t.role === "assistant" && t.final).map((t) => t.text)).toEqual([
        "Alpha, welcome to the fake line.",
      ]);

      // Barge-in: the caller speaks; the client truncates the greeting to what was played.
      const greetingItem = events.audio[0]!.itemId;
      for (const frame of callerAudio(codec, 400, 600)) session.sendAudio(frame);
      await eventually(() => expect(events.speechStarted).toBe(1));
      session.truncate(greetingItem, 120);
      await eventually(() => expect(events.toolCalls).toHaveLength(1));
      expect(events.toolCalls[0]!.name).toBe("get_weather");
      expect(JSON.parse(events.toolCalls[0]!.arguments)).toEqual({ city: "Paris" });
      expect(events.transcripts).toContainEqual({ role: "user", text: "hello world", final: true });

      session.sendToolResult(events.toolCalls[0]!.id, '{"sky":"clear"}');
      await eventually(() => expect(events.responsesDone).toBe(3));
      expect(events.transcripts.filter((t) => t.role === "assistant" && t.final).map((t) => t.text)).toEqual([
        "Alpha, welcome to the fake line.",
        "Charlie says it is sunny.",
      ]);
      expect((await fakeState(fakes().realtime)).counters.truncate).toBe(1);
      await session.close();
      await session.close();
      expect(events.errors).toEqual([]);
      await expectNoViolations();
    },
  );

  it("a socket dropped mid-response → onError(closed), retryable", async () => {
    const events = new RealtimeRecorder();
    const session = await new OpenAiRealtime({
      apiKey: GOOD_KEY,
      baseUrl: `${wsUrl(fakes().realtime)}/s/drop/v1`,
      retry: NO_RETRY,
    }).connect(
      {
        format: { codec: "PCMU", sampleRate: 8000 },
        instructions: "",
        voice: "marin",
        language: "en",
        tools: [],
      },
      events,
    );
    session.requestResponse();
    await eventually(() => expect(events.errors).toHaveLength(1));
    expect(events.errors[0]!.code).toBe("closed");
    expect(events.errors[0]!.retryable).toBe(true);
    await session.close();
  });

  it("a bad key fails connect() with auth, not retryable", async () => {
    const error = await provider(BAD_KEY)
      .connect(
        {
          format: { codec: "PCMU", sampleRate: 8000 },
          instructions: "",
          voice: "marin",
          language: "en",
          tools: [],
        },
        new RealtimeRecorder(),
      )
      .then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
    expect(error).toBeInstanceOf(ProviderErrorClass);
    expect((error as ProviderError).code).toBe("auth");
    expect((error as ProviderError).retryable).toBe(false);
  });
});
