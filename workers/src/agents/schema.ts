/**
 * The agent definition: everything that makes one voice agent different from another, as data.
 * Definitions live in workers/agents/*.json, are bundled into the Worker at build time and validated
 * by this schema (at load, and by `pnpm check:agents` before a deploy). Defaults live here, once.
 */
import { z } from "zod";
import { placeholdersIn, VARIABLE_NAME } from "./variables";

const agentId = z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, "agent ids are lowercase [a-z0-9-], max 64");
const envName = z.string().regex(/^[A-Z][A-Z0-9_]{0,63}$/, "an environment variable / secret name");

/** Which vendor implementation serves a stage; see src/providers/registry.ts for the known ids. */
const sttChoice = z.object({
  provider: z.string().min(1),
  model: z.string().optional(),
  /** Free-form vendor options (endpointing, keyterms…), passed to the provider factory untouched. */
  options: z.record(z.string(), z.unknown()).default({}),
});
const llmChoice = z.object({
  provider: z.string().min(1),
  model: z.string().min(1),
  temperature: z.number().min(0).max(2).optional(),
  maxTokens: z.number().int().positive().max(4096).optional(),
  /** Most recent history messages sent to the model each turn (the full history is still stored). */
  maxHistoryMessages: z.number().int().min(2).max(1000).default(80),
  options: z.record(z.string(), z.unknown()).default({}),
});
const ttsChoice = z.object({
  provider: z.string().min(1),
  model: z.string().optional(),
  options: z.record(z.string(), z.unknown()).default({}),
});

/** A JSON Schema object for tool arguments; we check only its outer shape, the model reads the rest. */
const jsonSchemaObject = z
  .object({ type: z.literal("object"), properties: z.record(z.string(), z.unknown()).default({}) })
  .catchall(z.unknown());

const toolName = z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$/, "tool names are [a-zA-Z0-9_-], max 64");

const builtinTool = z.object({
  type: z.literal("builtin"),
  name: z.enum(["end_call", "transfer_call", "send_dtmf"]),
  /** Overrides the built-in description shown to the model. */
  description: z.string().max(1024).optional(),
});

const webhookTool = z.object({
  type: z.literal("webhook"),
  name: toolName,
  description: z.string().min(1).max(1024),
  parameters: jsonSchemaObject,
  url: z.url({ protocol: /^https?$/ }),
  timeoutMs: z.number().int().min(100).max(30_000).default(5_000),
  /**
   * Name of the secret (env) whose value signs the request body (X-Patchbay-Signature). Required
   * unless `unsigned: true` says, explicitly, that the receiver accepts unauthenticated requests.
   */
  signingSecret: envName.optional(),
  unsigned: z.literal(true).optional(),
  /** What the agent says while waiting for a slow webhook; omitted = silence. */
  fillerText: z.string().max(256).optional(),
});

export const toolDefinition = z.discriminatedUnion("type", [builtinTool, webhookTool]);
export type ToolDefinition = z.infer<typeof toolDefinition>;
export type WebhookToolDefinition = z.infer<typeof webhookTool>;

export const agentDefinition = z
  .object({
    id: agentId,
    description: z.string().max(512).optional(),
    /** "pipeline" = STT → LLM → TTS; "realtime" = one speech-to-speech session (OpenAI Realtime). */
    mode: z.enum(["pipeline", "realtime"]).default("pipeline"),
    systemPrompt: z.string().min(1).max(20_000),
    /** Spoken when the call starts; omitted = the agent waits for the caller. */
    greeting: z.string().max(1024).optional(),
    /** Spoken by end_call when the model gave no goodbye of its own. */
    goodbye: z.string().max(512).default("Goodbye."),
    language: z.string().min(2).max(16).default("en"),
    voice: z.string().min(1).max(128),
    stt: sttChoice,
    llm: llmChoice,
    tts: ttsChoice,
    bargeIn: z
      .object({
        enabled: z.boolean().default(true),
        /** Caller speech shorter than this while the agent talks ("mm-hm", a cough) does not interrupt. */
        minSpeechMs: z.number().int().min(0).max(5_000).default(300),
      })
      .prefault({}),
    turn: z
      .object({
        /** Energy VAD hang-over: this much silence ends the caller's turn (providers without end-of-turn). */
        silenceMs: z.number().int().min(100).max(5_000).default(700),
        /** Energy VAD threshold in dBFS; frames louder than this count as speech. */
        speechThresholdDb: z.number().min(-80).max(0).default(-42),
        /** Consecutive loud frames needed to declare speech (hysteresis against clicks). */
        minSpeechFrames: z.number().int().min(1).max(50).default(3),
        /** Caller DTMF digits within this window are delivered to the model together. */
        dtmfDebounceMs: z.number().int().min(0).max(5_000).default(800),
      })
      .prefault({}),
    tools: z.array(toolDefinition).max(32).default([]),
    /** Transfer targets the model may use; empty = any target the model names. */
    transferTargets: z.array(z.string().min(1).max(512)).max(64).default([]),
    transfer: z
      .object({
        /**
         * "blind": the caller is handed over at once (REFER). "warm": the bridge calls the target
         * first and the agent tells the person who answers what the call is about (the model's
         * `summary`, or a default built from the caller's last words), then the two are joined; if
         * nobody answers, the caller stays with the agent (shared/PROTOCOL.md §9).
         */
        mode: z.enum(["blind", "warm"]).default("blind"),
      })
      .prefault({}),
    routing: z
      .object({
        /** Dialed numbers (the SIP To user part, digits and +) that select this agent. */
        numbers: z.array(z.string().regex(/^\+?[0-9*#]{1,32}$/)).default([]),
        /** PBX extensions (To user part) that select this agent. */
        extensions: z.array(z.string().regex(/^[0-9*#]{1,16}$/)).default([]),
      })
      .prefault({}),
    limits: z
      .object({
        maxDurationSeconds: z
          .number()
          .int()
          .min(1)
          .max(4 * 3600)
          .default(1800),
        /** No caller audio for this long ends the call (the bridge or its link is gone). */
        noAudioTimeoutSeconds: z.number().min(0.1).max(600).default(30),
      })
      .prefault({}),
    /**
     * Defaults for `{{name}}` placeholders in systemPrompt, greeting and goodbye, used when the call's
     * variables (hello.call.variables, POST /v1/calls) do not set them. See variables.ts.
     */
    variables: z
      .record(
        z.string().regex(VARIABLE_NAME, "variable names are [A-Za-z_][A-Za-z0-9_]*"),
        z.string().max(500),
      )
      .default({}),
    /** Where the signed call-ended webhook goes (transcript + timings). */
    callEndedWebhook: z
      .object({
        url: z.url({ protocol: /^https?$/ }),
        /** As for webhook tools: a signing secret, or `unsigned: true`. */
        signingSecret: envName.optional(),
        unsigned: z.literal(true).optional(),
      })
      .optional(),
  })
  .superRefine((agent, ctx) => {
    // Spoken text must never say "{{name}}" or a blank: each placeholder there needs a default.
    for (const key of ["greeting", "goodbye"] as const) {
      for (const name of placeholdersIn(agent[key] ?? "")) {
        if (agent.variables[name] === undefined) {
          ctx.addIssue({
            code: "custom",
            path: [key],
            message: `{{${name}}} needs a default in variables.${name} (calls may not set it)`,
          });
        }
      }
    }
    // A webhook without a signature must be a decision, not an omission (the receiver cannot tell our
    // requests from anyone's): exactly one of signingSecret / unsigned.
    const signing = (
      hook: { signingSecret?: string | undefined; unsigned?: true | undefined },
      path: PropertyKey[],
    ) => {
      if ((hook.signingSecret === undefined) === (hook.unsigned === undefined)) {
        ctx.addIssue({
          code: "custom",
          path: [...path, "signingSecret"],
          message:
            hook.signingSecret === undefined
              ? 'set signingSecret (the secret that signs each request) or "unsigned": true to send it unsigned'
              : 'signingSecret and "unsigned": true contradict each other; keep one',
        });
      }
    };
    for (const [index, tool] of agent.tools.entries())
      if (tool.type === "webhook") signing(tool, ["tools", index]);
    if (agent.callEndedWebhook) signing(agent.callEndedWebhook, ["callEndedWebhook"]);
    const names = new Set<string>();
    for (const [index, tool] of agent.tools.entries()) {
      if (names.has(tool.name)) {
        ctx.addIssue({
          code: "custom",
          path: ["tools", index, "name"],
          message: `duplicate tool ${tool.name}`,
        });
      }
      names.add(tool.name);
    }
  });

export type AgentDefinition = z.infer<typeof agentDefinition>;
export type AgentDefinitionInput = z.input<typeof agentDefinition>;

export type AgentCheck = { ok: true; agent: AgentDefinition } | { ok: false; errors: string[] };

/** Validates one definition; errors name the field path so a failed deploy check says what to fix. */
export function checkAgentDefinition(input: unknown): AgentCheck {
  const result = agentDefinition.safeParse(input);
  if (result.success) return { ok: true, agent: result.data };
  return {
    ok: false,
    errors: result.error.issues.map((issue) => `${issue.path.join(".") || "(root)"}: ${issue.message}`),
  };
}
