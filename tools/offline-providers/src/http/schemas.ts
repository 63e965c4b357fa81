/**
 * Request schemas for the three endpoints: the subset of OpenAI's request bodies the offline
 * providers read. Unknown fields are ignored (as a compatible server must), known ones are checked.
 */
import { z } from "zod";
import { badRequest } from "./errors";

export const speechRequestSchema = z.object({
  model: z.string().min(1),
  input: z.string().min(1).max(4096),
  voice: z.string().min(1),
  response_format: z.string().optional(),
  speed: z.number().min(0.25).max(4).optional(),
  instructions: z.string().optional(),
  stream_format: z.literal("audio").optional(),
});
export type SpeechRequestBody = z.infer<typeof speechRequestSchema>;

const toolCallSchema = z.object({
  id: z.string(),
  type: z.literal("function"),
  function: z.object({ name: z.string(), arguments: z.string() }),
});

const messageSchema = z.discriminatedUnion("role", [
  z.object({ role: z.literal("system"), content: z.unknown() }),
  z.object({ role: z.literal("developer"), content: z.unknown() }),
  z.object({ role: z.literal("user"), content: z.unknown() }),
  z.object({
    role: z.literal("assistant"),
    content: z.unknown().optional(),
    tool_calls: z.array(toolCallSchema).optional(),
  }),
  z.object({ role: z.literal("tool"), tool_call_id: z.string().min(1), content: z.unknown() }),
]);

export const chatRequestSchema = z.object({
  model: z.string().min(1),
  messages: z.array(messageSchema).min(1),
  tools: z
    .array(
      z.object({
        type: z.literal("function"),
        function: z.object({
          name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/),
          description: z.string().optional(),
          parameters: z.record(z.string(), z.unknown()).optional(),
        }),
      }),
    )
    .optional(),
  tool_choice: z.unknown().optional(),
  stream: z.boolean().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
  temperature: z.number().optional(),
  max_tokens: z.number().optional(),
  max_completion_tokens: z.number().optional(),
});
export type ChatRequestBody = z.infer<typeof chatRequestSchema>;

/** Validates or throws an OpenAI-shaped 400 naming the first bad parameter. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const param = issue && issue.path.length > 0 ? issue.path.map(String).join(".") : null;
  const message = issue
    ? `Invalid value for '${param ?? "body"}': ${issue.message}`
    : "Invalid request body.";
  throw badRequest(message, param, "invalid_value");
}
