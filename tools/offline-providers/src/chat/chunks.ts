/**
 * Turns an agent plan into the exact objects the OpenAI Chat Completions API sends: streamed
 * `chat.completion.chunk`s (role chunk, content word by word, tool calls as an opening fragment then
 * argument fragments, a finish chunk, an optional usage chunk) or one `chat.completion`.
 * Pure: ids and the timestamp are passed in, so tests compare whole chunk sequences.
 */
import type { AgentPlan } from "./agent";

export interface CompletionIdentity {
  /** "chatcmpl-…" */
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
  /** One id per planned tool call ("call_…"). */
  toolCallIds: readonly string[];
}

export const SYSTEM_FINGERPRINT = "fp_offline";

type FinishReason = "stop" | "tool_calls";

interface ChunkToolCallDelta {
  index: number;
  id?: string;
  type?: "function";
  function: { name?: string; arguments: string };
}

interface ChunkDelta {
  role?: "assistant";
  content?: string | null;
  refusal?: null;
  tool_calls?: ChunkToolCallDelta[];
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  system_fingerprint: string;
  choices: Array<{ index: 0; delta: ChunkDelta; logprobs: null; finish_reason: FinishReason | null }>;
  usage?: Usage | null;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** Splits text into word deltas the way token streams look: "We", " are", " open". */
export function wordDeltas(text: string): string[] {
  return text.match(/\s*\S+/g) ?? [];
}

/** Splits a JSON string into a few fragments (cut at arbitrary points, like the real API does). */
export function argumentFragments(json: string, pieces = 3): string[] {
  if (json.length <= 2) return [json];
  const size = Math.max(1, Math.ceil(json.length / pieces));
  const fragments: string[] = [];
  for (let start = 0; start < json.length; start += size) fragments.push(json.slice(start, start + size));
  return fragments;
}

/** A rough token count (words), enough for the usage fields to be plausible. */
export function estimateTokens(text: string): number {
  return wordDeltas(text).length;
}

function finishReasonOf(plan: AgentPlan): FinishReason {
  return plan.toolCalls.length > 0 ? "tool_calls" : "stop";
}

export function completionChunks(
  plan: AgentPlan,
  identity: CompletionIdentity,
  options: { includeUsage: boolean; promptTokens: number },
): ChatCompletionChunk[] {
  const usageField = options.includeUsage ? { usage: null } : {};
  const chunk = (delta: ChunkDelta, finishReason: FinishReason | null = null): ChatCompletionChunk => ({
    id: identity.id,
    object: "chat.completion.chunk",
    created: identity.created,
    model: identity.model,
    system_fingerprint: SYSTEM_FINGERPRINT,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    ...usageField,
  });

  const chunks: ChatCompletionChunk[] = [];
  // The real API opens with the role; content is "" for text answers and null for pure tool calls.
  const opensWithToolCall = plan.text === "" && plan.toolCalls.length > 0;
  chunks.push(chunk({ role: "assistant", content: opensWithToolCall ? null : "", refusal: null }));
  for (const word of wordDeltas(plan.text)) chunks.push(chunk({ content: word }));

  plan.toolCalls.forEach((call, index) => {
    const id = identity.toolCallIds[index] ?? `call_offline_${index}`;
    chunks.push(
      chunk({ tool_calls: [{ index, id, type: "function", function: { name: call.name, arguments: "" } }] }),
    );
    for (const fragment of argumentFragments(JSON.stringify(call.arguments))) {
      chunks.push(chunk({ tool_calls: [{ index, function: { arguments: fragment } }] }));
    }
  });

  chunks.push(chunk({}, finishReasonOf(plan)));

  if (options.includeUsage) {
    const completionTokens = estimateTokens(plan.text) + plan.toolCalls.length * 8;
    chunks.push({
      id: identity.id,
      object: "chat.completion.chunk",
      created: identity.created,
      model: identity.model,
      system_fingerprint: SYSTEM_FINGERPRINT,
      choices: [],
      usage: usageOf(options.promptTokens, completionTokens),
    });
  }
  return chunks;
}

function usageOf(promptTokens: number, completionTokens: number): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  system_fingerprint: string;
  choices: Array<{
    index: 0;
    message: {
      role: "assistant";
      content: string | null;
      refusal: null;
      tool_calls?: Array<{ id: string; type: "function"; function: { name: string; arguments: string } }>;
    };
    logprobs: null;
    finish_reason: FinishReason;
  }>;
  usage: Usage;
}

export function completionObject(
  plan: AgentPlan,
  identity: CompletionIdentity,
  promptTokens: number,
): ChatCompletion {
  const toolCalls = plan.toolCalls.map((call, index) => ({
    id: identity.toolCallIds[index] ?? `call_offline_${index}`,
    type: "function" as const,
    function: { name: call.name, arguments: JSON.stringify(call.arguments) },
  }));
  return {
    id: identity.id,
    object: "chat.completion",
    created: identity.created,
    model: identity.model,
    system_fingerprint: SYSTEM_FINGERPRINT,
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          content: plan.text === "" ? null : plan.text,
          refusal: null,
          ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
        },
        logprobs: null,
        finish_reason: finishReasonOf(plan),
      },
    ],
    usage: usageOf(promptTokens, estimateTokens(plan.text) + plan.toolCalls.length * 8),
  };
}
