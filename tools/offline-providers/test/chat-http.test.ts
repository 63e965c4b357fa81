import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChatCompletion } from "../src/chat/chunks";
import { type OfflineProviders, startOfflineProviders } from "../src/index";
import { AUTH, errorOf, postJson, sseData } from "./support";

let providers: OfflineProviders;
let chatUrl: string;

beforeAll(async () => {
  providers = await startOfflineProviders();
  chatUrl = `${providers.url}/v1/chat/completions`;
});
afterAll(async () => {
  await providers?.close();
});

const TOOLS = [
  {
    type: "function",
    function: {
      name: "transfer_call",
      description: "Transfer the caller",
      parameters: { type: "object", properties: { target: { type: "string" } }, required: ["target"] },
    },
  },
  {
    type: "function",
    function: { name: "end_call", description: "Hang up", parameters: { type: "object" } },
  },
];

interface StreamedTurn {
  content: string;
  toolCalls: Array<{ id: string; name: string; arguments: string }>;
  finishReason: string | null;
  chunkCount: number;
}

/** Assembles a streamed answer the way an OpenAI client does: content deltas, tool calls by index. */
async function streamTurn(body: Record<string, unknown>): Promise<StreamedTurn> {
  const response = await postJson(chatUrl, {
    model: "offline-scripted-agent",
    stream: true,
    tools: TOOLS,
    ...body,
  });
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
  const events = sseData(await response.text());
  expect(events.at(-1)).toBe("[DONE]");
  const turn: StreamedTurn = { content: "", toolCalls: [], finishReason: null, chunkCount: 0 };
  const ids = new Set<string>();
  for (const data of events.slice(0, -1)) {
    const chunk = JSON.parse(data);
    expect(chunk.object).toBe("chat.completion.chunk");
    expect(chunk.id).toMatch(/^chatcmpl-/);
    ids.add(chunk.id);
    turn.chunkCount++;
    const choice = chunk.choices[0];
    if (!choice) continue;
    turn.content += choice.delta.content ?? "";
    for (const fragment of choice.delta.tool_calls ?? []) {
      if (fragment.id) {
        expect(fragment.type).toBe("function");
        expect(fragment.function.arguments).toBe("");
        turn.toolCalls[fragment.index] = { id: fragment.id, name: fragment.function.name, arguments: "" };
      } else {
        const call = turn.toolCalls[fragment.index];
        if (!call) throw new Error(`argument fragment for unopened tool call ${fragment.index}`);
        call.arguments += fragment.function.arguments;
      }
    }
    if (choice.finish_reason) turn.finishReason = choice.finish_reason;
  }
  expect(ids.size).toBe(1);
  return turn;
}

describe("POST /v1/chat/completions (stream)", () => {
  it("streams a text answer word by word and finishes with stop", async () => {
    const turn = await streamTurn({ messages: [{ role: "user", content: "What are your opening hours?" }] });
    expect(turn.content).toBe("We are open nine to five, Monday to Friday.");
    expect(turn.toolCalls).toEqual([]);
    expect(turn.finishReason).toBe("stop");
    expect(turn.chunkCount).toBeGreaterThan(5);
  });

  it("streams a transfer as a tool call whose argument fragments assemble into JSON", async () => {
    const turn = await streamTurn({ messages: [{ role: "user", content: "Can I talk to a human?" }] });
    expect(turn.finishReason).toBe("tool_calls");
    expect(turn.toolCalls).toHaveLength(1);
    expect(turn.toolCalls[0]?.id).toMatch(/^call_/);
    expect(turn.toolCalls[0]?.name).toBe("transfer_call");
    expect(JSON.parse(turn.toolCalls[0]?.arguments ?? "")).toEqual({ target: "sip:operator@127.0.0.1" });
  });

  it("says goodbye, then calls end_call", async () => {
    const turn = await streamTurn({ messages: [{ role: "user", content: "thanks, that's all, goodbye" }] });
    expect(turn.content).toMatch(/goodbye/i);
    expect(turn.toolCalls.map((call) => call.name)).toEqual(["end_call"]);
  });

  it("answers a DTMF digit and acknowledges tool results", async () => {
    expect((await streamTurn({ messages: [{ role: "user", content: "[caller pressed 7]" }] })).content).toBe(
      "You pressed seven.",
    );
    const ack = await streamTurn({
      messages: [
        { role: "user", content: "transfer me" },
        {
          role: "assistant",
          content: null,
          tool_calls: [
            { id: "call_1", type: "function", function: { name: "transfer_call", arguments: "{}" } },
          ],
        },
        { role: "tool", tool_call_id: "call_1", content: "transferred" },
      ],
    });
    expect(ack.content).toBe("Connecting you now.");
    expect(ack.finishReason).toBe("stop");
  });

  it("sends a usage chunk with empty choices when stream_options.include_usage is set", async () => {
    const response = await postJson(chatUrl, {
      model: "m",
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: "hello" }],
    });
    const events = sseData(await response.text());
    const usageChunk = JSON.parse(events.at(-2) ?? "{}");
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage.total_tokens).toBeGreaterThan(0);
  });
});

describe("POST /v1/chat/completions (whole)", () => {
  it("returns a chat.completion with the tool call", async () => {
    const response = await postJson(chatUrl, {
      model: "m",
      tools: TOOLS,
      messages: [{ role: "user", content: [{ type: "text", text: "goodbye" }] }],
    });
    expect(response.status).toBe(200);
    const completion = (await response.json()) as ChatCompletion;
    expect(completion.object).toBe("chat.completion");
    expect(completion.choices[0]?.finish_reason).toBe("tool_calls");
    expect(completion.choices[0]?.message.tool_calls?.[0]?.function).toEqual({
      name: "end_call",
      arguments: "{}",
    });
  });
});

describe("errors are shaped like OpenAI's", () => {
  it.each([
    ["no messages", { model: "m", messages: [] }, "messages"],
    ["no model", { messages: [{ role: "user", content: "hi" }] }, "model"],
    ["unknown role", { model: "m", messages: [{ role: "robot", content: "hi" }] }, "messages.0.role"],
    [
      "tool message without id",
      { model: "m", messages: [{ role: "tool", content: "x" }] },
      "messages.0.tool_call_id",
    ],
  ])("400 for %s", async (_name, body, param) => {
    const response = await postJson(chatUrl, body);
    expect(response.status).toBe(400);
    const error = await errorOf(response);
    expect(error.type).toBe("invalid_request_error");
    expect(error.param).toBe(param);
    expect(typeof error.message).toBe("string");
  });

  it("400 for a body that is not JSON", async () => {
    const response = await fetch(chatUrl, {
      method: "POST",
      headers: { ...AUTH, "content-type": "application/json" },
      body: "{",
    });
    expect(response.status).toBe(400);
    expect((await errorOf(response)).type).toBe("invalid_request_error");
  });

  it("401 without a bearer token, 404 for unknown paths", async () => {
    const unauthenticated = await postJson(chatUrl, { model: "m", messages: [] }, {});
    expect(unauthenticated.status).toBe(401);
    expect((await errorOf(unauthenticated)).code).toBe("missing_api_key");
    const missing = await fetch(`${providers.url}/v1/nothing`, { headers: AUTH });
    expect(missing.status).toBe(404);
  });

  it("serves /healthz without auth and lists models", async () => {
    expect((await fetch(`${providers.url}/healthz`)).status).toBe(200);
    const models = (await (await fetch(`${providers.url}/v1/models`, { headers: AUTH })).json()) as {
      object: string;
      data: unknown[];
    };
    expect(models.object).toBe("list");
    expect(models.data.length).toBeGreaterThan(0);
  });
});
