/**
 * Chat completions over OpenAI-compatible HTTP: POST {base}/chat/completions with stream=true and tools,
 * parsed from SSE (chunk shapes: cloudflare.md §3.6; https://platform.openai.com/docs/api-reference/chat-streaming).
 */
import { chatEventsFromSse, errorFromResponse, toWireMessages, toWireTools, withRetries } from "../common";
import type { ChatEvent, ChatRequest, LlmProvider } from "../types";
import { authHeaders, endpoint, type OpenAiCompatibleOptions } from "./config";

export class OpenAiChatLlm implements LlmProvider {
  readonly name: string;

  constructor(private readonly options: OpenAiCompatibleOptions) {
    this.name = options.name ?? "openai";
  }

  async *stream(request: ChatRequest): AsyncIterable<ChatEvent> {
    const body = {
      model: request.model,
      messages: toWireMessages(request.messages),
      stream: true,
      ...(request.tools.length > 0 ? { tools: toWireTools(request.tools) } : {}),
      ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
      ...(request.maxTokens !== undefined ? { max_tokens: request.maxTokens } : {}),
    };
    const response = await withRetries(
      this.name,
      async () => {
        const answer = await fetch(endpoint(this.options, "chat/completions"), {
          method: "POST",
          headers: {
            ...authHeaders(this.options),
            "Content-Type": "application/json",
            Accept: "text/event-stream",
          },
          body: JSON.stringify(body),
          signal: request.signal,
        });
        if (!answer.ok) throw await errorFromResponse(this.name, answer);
        return answer;
      },
      { policy: this.options.retry, signal: request.signal },
    ).catch((error: unknown) => {
      if (request.signal.aborted) return undefined;
      throw error;
    });
    if (!response?.body) return;
    yield* chatEventsFromSse(this.name, response.body, request.signal);
  }
}
