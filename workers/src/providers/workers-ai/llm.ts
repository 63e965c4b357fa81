/**
 * Chat with tools through the AI binding: `env.AI.run(model, {messages, tools, stream: true})` returns
 * an SSE ReadableStream (https://developers.cloudflare.com/workers-ai/configuration/bindings/ ;
 * https://developers.cloudflare.com/workers-ai/features/function-calling/). Chunks come in either the
 * OpenAI or the native `{response, tool_calls}` shape depending on the model; the shared assembler
 * handles both.
 */
import {
  chatEventsFromSse,
  protocolError,
  type RetryPolicy,
  toWireMessages,
  toWireTools,
  withRetries,
} from "../common";
import type { ChatEvent, ChatRequest, LlmProvider } from "../types";
import { type AiBinding, aiError, runModel } from "./binding";

export const WORKERS_AI_DEFAULT_LLM = "@cf/meta/llama-3.3-70b-instruct-fp8-fast";

export interface WorkersAiLlmOptions {
  ai: AiBinding;
  retry?: RetryPolicy;
}

export class WorkersAiLlm implements LlmProvider {
  readonly name = "workers-ai";

  constructor(private readonly options: WorkersAiLlmOptions) {}

  async *stream(request: ChatRequest): AsyncIterable<ChatEvent> {
    const inputs: Record<string, unknown> = {
      messages: toWireMessages(request.messages),
      stream: true,
      ...(request.tools.length > 0 ? { tools: toWireTools(request.tools) } : {}),
      ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
      ...(request.maxTokens !== undefined ? { max_tokens: request.maxTokens } : {}),
    };
    let stream: ReadableStream<Uint8Array>;
    try {
      stream = await withRetries(
        this.name,
        async () => {
          let result: unknown;
          try {
            result = await runModel(this.options.ai, request.model || WORKERS_AI_DEFAULT_LLM, inputs, {
              signal: request.signal,
            });
          } catch (error) {
            throw aiError(this.name, error);
          }
          if (result instanceof ReadableStream) return result as ReadableStream<Uint8Array>;
          if (result instanceof Response && result.body) return result.body;
          throw protocolError(this.name, "stream: true did not return a stream");
        },
        { policy: this.options.retry, signal: request.signal },
      );
    } catch (error) {
      if (request.signal.aborted) return;
      throw error;
    }
    yield* chatEventsFromSse(this.name, stream, request.signal);
  }
}
