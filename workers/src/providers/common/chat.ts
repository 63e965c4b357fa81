/**
 * Chat-completions wire shapes shared by every OpenAI-style endpoint (OpenAI, Groq, local servers, the
 * Workers AI binding): request mapping from our ChatMessage/ToolSpec, and a pure assembler for streamed
 * chunks. Tool-call arguments arrive as fragments keyed by `index` and are emitted whole once the model
 * says it is finished (finish_reason) or the stream ends (cloudflare.md §3.6).
 *
 * Two chunk formats are accepted (Workers AI streams either, per model):
 *   OpenAI:  {"choices":[{"delta":{"content","tool_calls":[{index,id,function:{name,arguments}}]},"finish_reason"}]}
 *   Native:  {"response":"text","tool_calls":[{name, arguments}],"finish_reason"?}
 * (native shape as parsed by cloudflare/ai packages/workers-ai-provider/src/streaming.ts).
 */
import type { ChatEvent, ChatMessage, ToolCall, ToolSpec } from "../types";
import { protocolError, toProviderError } from "./errors";
import { asArray, asNumber, asRecord, asString } from "./json";
import { readSseData } from "./sse";

export type WireMessage =
  | { role: "system" | "user"; content: string }
  | {
      role: "assistant";
      content: string | null;
      tool_calls?: { id: string; type: "function"; function: { name: string; arguments: string } }[];
    }
  | { role: "tool"; tool_call_id: string; content: string };

export function toWireMessages(messages: ChatMessage[]): WireMessage[] {
  return messages.map((message): WireMessage => {
    switch (message.role) {
      case "system":
      case "user":
        return { role: message.role, content: message.content };
      case "assistant":
        if (message.toolCalls && message.toolCalls.length > 0) {
          return {
            role: "assistant",
            content: message.content === "" ? null : message.content,
            tool_calls: message.toolCalls.map((call) => ({
              id: call.id,
              type: "function",
              function: { name: call.name, arguments: call.arguments },
            })),
          };
        }
        return { role: "assistant", content: message.content };
      default:
        return { role: "tool", tool_call_id: message.toolCallId, content: message.content };
    }
  });
}

export function toWireTools(tools: ToolSpec[]) {
  return tools.map((tool) => ({
    type: "function" as const,
    function: { name: tool.name, description: tool.description, parameters: tool.parameters },
  }));
}

type FinishReason = Extract<ChatEvent, { type: "done" }>["finishReason"];

function mapFinishReason(raw: string): FinishReason {
  switch (raw) {
    case "stop":
    case "end_turn":
      return "stop";
    case "tool_calls":
    case "function_call":
      return "tool_calls";
    case "length":
    case "max_tokens":
      return "length";
    default:
      return "error";
  }
}

/** Cap on one tool call's argument text: a runaway model must not grow the call's memory unbounded. */
export const MAX_TOOL_ARGUMENTS = 64 * 1024;

interface PartialCall {
  id: string | undefined;
  name: string;
  args: string;
}

export class ChatStreamAssembler {
  private readonly calls = new Map<number, PartialCall>();
  private finishReason: FinishReason | undefined;
  private emittedCalls = false;
  private sawDoneMarker = false;
  private nextNativeIndex = 0;

  /** Ids for calls the model sent without one (Workers AI native chunks); unique across turns. */
  constructor(
    private readonly makeId: (index: number) => string = (index) =>
      `call_${crypto.randomUUID().slice(0, 8)}_${index}`,
  ) {}

  /** Feed the data of one SSE event. Returns the events to emit now. */
  pushData(data: string): ChatEvent[] {
    if (data === "[DONE]") {
      this.sawDoneMarker = true;
      return [];
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      throw new SyntaxError(`chat stream chunk is not JSON: ${data.slice(0, 80)}`);
    }
    return this.pushChunk(parsed);
  }

  pushChunk(chunk: unknown): ChatEvent[] {
    const events: ChatEvent[] = [];
    const record = asRecord(chunk);
    if (!record) return events;
    const errorObject = asRecord(record.error);
    if (errorObject) throw new Error(asString(errorObject.message) ?? "error chunk in stream");

    const choice = asRecord(asArray(record.choices)?.[0]);
    const delta = asRecord(choice?.delta);
    const text = asString(delta?.content) ?? asString(record.response);
    if (text) events.push({ type: "text", delta: text });

    const openAiCalls = asArray(delta?.tool_calls);
    if (openAiCalls) for (const fragment of openAiCalls) this.addFragment(asRecord(fragment), false);
    const nativeCalls = asArray(record.tool_calls);
    if (nativeCalls) for (const fragment of nativeCalls) this.addFragment(asRecord(fragment), true);

    const finish = asString(choice?.finish_reason) ?? asString(record.finish_reason);
    if (finish) {
      this.finishReason = mapFinishReason(finish);
      events.push(...this.takeCalls());
    }
    return events;
  }

  /** End of stream: remaining tool calls, then `done`. A stream cut before any end marker is an error. */
  finish(): ChatEvent[] {
    const events = this.takeCalls();
    let reason = this.finishReason;
    if (!reason) {
      if (!this.sawDoneMarker) reason = "error";
      else reason = this.emittedCalls ? "tool_calls" : "stop";
    }
    events.push({ type: "done", finishReason: reason });
    return events;
  }

  private addFragment(fragment: Record<string, unknown> | undefined, native: boolean): void {
    if (!fragment) return;
    const fn = asRecord(fragment.function);
    const name = asString(fn?.name) ?? asString(fragment.name);
    const rawArgs = fn?.arguments ?? fragment.arguments;
    const args = typeof rawArgs === "string" ? rawArgs : rawArgs != null ? JSON.stringify(rawArgs) : "";
    const id = asString(fragment.id);
    // Workers AI closes a call with an all-null sentinel fragment; it carries nothing.
    if (!id && !name && args === "") return;
    const index = asNumber(fragment.index) ?? (native ? this.nextNativeIndex++ : 0);
    let call = this.calls.get(index);
    if (!call) {
      call = { id, name: name ?? "", args: "" };
      this.calls.set(index, call);
    } else {
      if (id && !call.id) call.id = id;
      if (name && !call.name) call.name = name;
    }
    call.args += args;
    if (call.args.length > MAX_TOOL_ARGUMENTS) {
      throw new RangeError(
        `tool call arguments too long: got ${call.args.length} > max ${MAX_TOOL_ARGUMENTS}`,
      );
    }
  }

  private takeCalls(): ChatEvent[] {
    const indexes = [...this.calls.keys()].sort((a, b) => a - b);
    const events: ChatEvent[] = [];
    for (const index of indexes) {
      const partial = this.calls.get(index)!;
      if (!partial.name) continue;
      const call: ToolCall = {
        id: partial.id ?? this.makeId(index),
        name: partial.name,
        arguments: partial.args === "" ? "{}" : partial.args,
      };
      events.push({ type: "tool_call", call });
      this.emittedCalls = true;
    }
    this.calls.clear();
    return events;
  }
}

/**
 * ChatEvents from an SSE byte stream. Abort via `signal` ends the iteration quietly (the caller asked
 * for it); a broken stream throws a ProviderError.
 */
export async function* chatEventsFromSse(
  provider: string,
  stream: ReadableStream<Uint8Array>,
  signal: AbortSignal,
): AsyncGenerator<ChatEvent> {
  const assembler = new ChatStreamAssembler();
  try {
    for await (const data of readSseData(stream, signal)) {
      for (const event of assembler.pushData(data)) yield event;
    }
  } catch (error) {
    if (signal.aborted) return;
    throw error instanceof SyntaxError || error instanceof RangeError
      ? protocolError(provider, error.message)
      : toProviderError(provider, error);
  }
  if (signal.aborted) return;
  for (const event of assembler.finish()) yield event;
}
