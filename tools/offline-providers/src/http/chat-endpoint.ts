/** POST /v1/chat/completions: the scripted agent, streamed as SSE or returned whole. */
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { type AgentOptions, type AgentTool, messageText, planReply } from "../chat/agent";
import { completionChunks, completionObject, estimateTokens } from "../chat/chunks";
import { readJson } from "./body";
import { delay, latencyOverride, type StageLatency } from "./latency";
import { chatRequestSchema, parseBody } from "./schemas";

const ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

export function randomId(prefix: string, length = 24): string {
  const bytes = randomBytes(length);
  let id = prefix;
  for (const byte of bytes) id += ID_ALPHABET[byte % ID_ALPHABET.length];
  return id;
}

export async function handleChat(
  request: IncomingMessage,
  response: ServerResponse,
  latency: StageLatency,
  agentOptions: AgentOptions,
  signal: AbortSignal,
): Promise<void> {
  const body = parseBody(chatRequestSchema, await readJson(request));
  const toolsAllowed = body.tool_choice !== "none";
  const tools: AgentTool[] = toolsAllowed
    ? (body.tools ?? []).map((tool) => ({
        name: tool.function.name,
        description: tool.function.description,
        parameters: tool.function.parameters,
      }))
    : [];
  const plan = planReply(body.messages, tools, agentOptions);
  const identity = {
    id: randomId("chatcmpl-"),
    created: Math.floor(Date.now() / 1000),
    model: body.model,
    toolCallIds: plan.toolCalls.map(() => randomId("call_")),
  };
  const promptTokens = body.messages.reduce(
    (sum, message) => sum + estimateTokens(messageText(message.content)),
    0,
  );

  await delay(latencyOverride(request) ?? latency.llmFirstTokenMs, signal);

  if (!body.stream) {
    const completion = completionObject(plan, identity, promptTokens);
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify(completion));
    return;
  }

  const chunks = completionChunks(plan, identity, {
    includeUsage: body.stream_options?.include_usage === true,
    promptTokens,
  });
  response.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    connection: "keep-alive",
  });
  response.flushHeaders();
  for (const [index, chunk] of chunks.entries()) {
    if (index > 0) await delay(latency.llmTokenMs, signal);
    response.write(`data: ${JSON.stringify(chunk)}\n\n`);
  }
  response.end("data: [DONE]\n\n");
}
