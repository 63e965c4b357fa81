/**
 * One LLM contract, every implementation: streamed text, a tool call assembled from argument
 * fragments and emitted whole, the tool result round trip, abort through the signal, and error
 * classification. The OpenAI fake streams `chat.completion.chunk`s; the Workers AI fake streams the
 * binding's native `{response, tool_calls}` chunks (incl. its null finalization sentinel).
 */
import { beforeEach, describe, expect, it } from "vitest";
import { OpenAiChatLlm } from "../../../src/providers/openai";
import {
  type ChatEvent,
  type ChatMessage,
  type LlmProvider,
  ProviderError,
  type ToolSpec,
} from "../../../src/providers/types";
import { WorkersAiLlm } from "../../../src/providers/workers-ai";
import {
  BAD_KEY,
  BUSY_KEY,
  expectNoViolations,
  FAST_RETRY,
  fakeAi,
  fakeState,
  fakes,
  GOOD_KEY,
  NO_RETRY,
  resetFakes,
} from "../support";

type Key = typeof GOOD_KEY | typeof BAD_KEY | typeof BUSY_KEY;

interface LlmCase {
  name: string;
  model: string;
  make(key: Key, scenario?: "flaky"): LlmProvider;
}

const cases: LlmCase[] = [
  {
    name: "openai-compatible chat completions",
    model: "gpt-4o-mini",
    make: (key, scenario) =>
      new OpenAiChatLlm({
        apiKey: key,
        baseUrl: `${fakes().openai}${scenario ? `/s/${scenario}` : ""}/v1`,
        retry: scenario ? FAST_RETRY : NO_RETRY,
      }),
  },
  {
    name: "workers-ai (binding)",
    model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
    make: (key) =>
      new WorkersAiLlm({
        ai: fakeAi(key === BAD_KEY ? "unauthorized" : key === BUSY_KEY ? "busy" : undefined),
        retry: NO_RETRY,
      }),
  },
];

const WEATHER: ToolSpec = {
  name: "get_weather",
  description: "Current weather in a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};

async function collect(
  stream: AsyncIterable<ChatEvent>,
  stopAfterTexts = Number.POSITIVE_INFINITY,
  abort?: () => void,
) {
  const events: ChatEvent[] = [];
  let texts = 0;
  for await (const event of stream) {
    events.push(event);
    if (event.type === "text" && ++texts === stopAfterTexts) abort?.();
  }
  return events;
}

const textOf = (events: ChatEvent[]) =>
  events.flatMap((event) => (event.type === "text" ? [event.delta] : [])).join("");

describe.each(cases)("LLM conformance: $name", (impl) => {
  beforeEach(resetFakes);

  const request = (messages: ChatMessage[], signal = new AbortController().signal) => ({
    model: impl.model,
    messages,
    tools: [WEATHER],
    temperature: 0.2,
    maxTokens: 200,
    signal,
  });

  it("streams text deltas and ends with done(stop)", async () => {
    const events = await collect(
      impl.make(GOOD_KEY).stream(
        request([
          { role: "system", content: "You are a receptionist." },
          { role: "user", content: "Hi there" },
        ]),
      ),
    );
    expect(events.filter((event) => event.type === "text").length).toBeGreaterThan(1);
    expect(textOf(events)).toBe("Hello! How can I help you today?");
    expect(events[events.length - 1]).toEqual({ type: "done", finishReason: "stop" });
    await expectNoViolations();
  });

  it("assembles a tool call from fragments, emits it whole, and takes the result back", async () => {
    const llm = impl.make(GOOD_KEY);
    const messages: ChatMessage[] = [{ role: "user", content: "What's the weather in Paris?" }];
    const events = await collect(llm.stream(request(messages)));
    const calls = events.flatMap((event) => (event.type === "tool_call" ? [event.call] : []));
    expect(calls).toHaveLength(1);
    expect(calls[0]!.name).toBe("get_weather");
    expect(JSON.parse(calls[0]!.arguments)).toEqual({ city: "Paris" });
    expect(calls[0]!.id).not.toBe("");
    expect(events[events.length - 1]).toEqual({ type: "done", finishReason: "tool_calls" });

    messages.push({ role: "assistant", content: "", toolCalls: calls });
    messages.push({ role: "tool", toolCallId: calls[0]!.id, content: '{"sky":"clear"}' });
    const followUp = await collect(llm.stream(request(messages)));
    expect(textOf(followUp)).toBe("It is sunny in Paris.");
    await expectNoViolations();
  });

  it("abort through the signal stops the stream", async () => {
    const controller = new AbortController();
    const events = await collect(
      impl
        .make(GOOD_KEY)
        .stream(request([{ role: "user", content: "Tell me a long story" }], controller.signal)),
      3,
      () => controller.abort(),
    );
    expect(events.filter((event) => event.type === "text").length).toBeLessThan(10);
    expect(events.some((event) => event.type === "done")).toBe(false);
    await expect
      .poll(async () => (await fakeState(fakes().openai)).counters["chat:client-aborted"] ?? 0)
      .toBe(1);
  });

  async function failure(key: Key): Promise<ProviderError> {
    const error = await collect(impl.make(key).stream(request([{ role: "user", content: "Hi" }]))).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(ProviderError);
    return error as ProviderError;
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
});

describe("LLM: OpenAI-compatible specifics", () => {
  beforeEach(resetFakes);

  it("retries a 5xx at connection setup", async () => {
    const llm = cases[0]!.make(GOOD_KEY, "flaky");
    const events = await collect(
      llm.stream({
        model: "m",
        messages: [{ role: "user", content: "Hi" }],
        tools: [],
        signal: new AbortController().signal,
      }),
    );
    expect(textOf(events)).toBe("Hello! How can I help you today?");
  });

  it("a connection cut mid-stream is an error, not a silent end", async () => {
    const llm = cases[0]!.make(GOOD_KEY);
    const result = await collect(
      llm.stream({
        model: "m",
        messages: [{ role: "user", content: "please drop" }],
        tools: [],
        signal: new AbortController().signal,
      }),
    ).then(
      (events) => events,
      (error: unknown) => error,
    );
    if (Array.isArray(result)) {
      expect(result[result.length - 1]).toEqual({ type: "done", finishReason: "error" });
    } else {
      expect(result).toBeInstanceOf(ProviderError);
    }
  });
});
