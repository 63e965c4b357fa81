/**
 * Registers the vendor implementations (providers/<vendor>/) under the ids agent definitions use.
 * Each factory maps an agent's provider choice (+ its free-form `options`) and the Worker env onto the
 * vendor class's options, and fails with ProviderUnavailableError naming the missing secret or binding.
 *
 *   stt: "deepgram" (live, Nova), "deepgram-flux", "openai" (segment transcription), "workers-ai" (Flux / Nova-3)
 *   llm: "openai" (any OpenAI-compatible endpoint, OPENAI_BASE_URL), "workers-ai"
 *   tts: "openai", "deepgram" (Aura), "elevenlabs", "cartesia", "workers-ai" (Aura)
 *   realtime (agent.mode = "realtime", named by agent.llm): "openai-realtime"
 */
import { CartesiaTts } from "./cartesia/index";
import { DeepgramAuraTts, DeepgramFluxStt, DeepgramLiveStt } from "./deepgram/index";
import { ElevenLabsTts } from "./elevenlabs/index";
import {
  OpenAiChatLlm,
  type OpenAiCompatibleOptions,
  OpenAiSegmentStt,
  OpenAiSpeechTts,
} from "./openai/index";
import { OpenAiRealtime } from "./openai-realtime/index";
import {
  type FactoryContext,
  type ProviderChoice,
  type ProviderEnv,
  ProviderUnavailableError,
  registerProvider,
  registerRealtimeProvider,
  requireSecret,
} from "./registry";
import {
  WORKERS_AI_FLUX,
  WORKERS_AI_NOVA_3,
  WorkersAiLlm,
  WorkersAiStt,
  WorkersAiTts,
} from "./workers-ai/index";

const DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1";

function numberOption(choice: ProviderChoice, key: string): number | undefined {
  const value = choice.options[key];
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

function stringOption(choice: ProviderChoice, key: string): string | undefined {
  const value = choice.options[key];
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** Drops undefined values so optional vendor options stay absent (exactOptionalPropertyTypes-safe). */
function defined<T extends Record<string, unknown>>(record: T): T {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined)) as T;
}

/**
 * OpenAI-compatible endpoint: OPENAI_BASE_URL (or options.baseUrl) + OPENAI_API_KEY. A key is required
 * for api.openai.com; a custom base URL (a local server for the offline demo) may run without one.
 */
function openAiEndpoint(
  stage: "stt" | "llm" | "tts",
  choice: ProviderChoice,
  env: ProviderEnv,
): OpenAiCompatibleOptions {
  const baseUrl = stringOption(choice, "baseUrl") ?? env.OPENAI_BASE_URL ?? DEFAULT_OPENAI_BASE_URL;
  const apiKey =
    baseUrl === DEFAULT_OPENAI_BASE_URL
      ? requireSecret(env, stage, choice.provider, "OPENAI_API_KEY")
      : (env.OPENAI_API_KEY ?? "none");
  return { baseUrl, apiKey, name: choice.provider };
}

function aiBinding(stage: "stt" | "llm" | "tts", choice: ProviderChoice, env: ProviderEnv): Ai {
  if (!env.AI)
    throw new ProviderUnavailableError(
      stage,
      choice.provider,
      "the AI binding is not configured (offline env?)",
    );
  return env.AI;
}

function deepgramKey(stage: "stt" | "tts", choice: ProviderChoice, context: FactoryContext) {
  return defined({
    apiKey: requireSecret(context.env, stage, choice.provider, "DEEPGRAM_API_KEY"),
    baseUrl: stringOption(choice, "baseUrl"),
  });
}

/**
 * Idempotent (re-registering replaces the same factories); cheap enough to call at every call setup,
 * which keeps it correct even when a test runner reloads the registry module.
 */
export function registerVendorProviders(): void {
  // ---- STT
  registerProvider("stt", "deepgram", (choice, context) => {
    return new DeepgramLiveStt(
      defined({
        ...deepgramKey("stt", choice, context),
        model: choice.model,
        endpointingMs: numberOption(choice, "endpointingMs"),
        utteranceEndMs: numberOption(choice, "utteranceEndMs"),
      }),
    );
  });
  registerProvider("stt", "deepgram-flux", (choice, context) => {
    return new DeepgramFluxStt(
      defined({
        ...deepgramKey("stt", choice, context),
        model: choice.model,
        eotThreshold: numberOption(choice, "eotThreshold"),
        eagerEotThreshold: numberOption(choice, "eagerEotThreshold"),
        eotTimeoutMs: numberOption(choice, "eotTimeoutMs"),
      }),
    );
  });
  registerProvider("stt", "openai", (choice, context) => {
    return new OpenAiSegmentStt({
      ...openAiEndpoint("stt", choice, context.env),
      model: choice.model ?? "whisper-1",
    });
  });
  registerProvider("stt", "workers-ai", (choice, context) => {
    const model: typeof WORKERS_AI_FLUX | typeof WORKERS_AI_NOVA_3 =
      choice.model === WORKERS_AI_NOVA_3 ? WORKERS_AI_NOVA_3 : WORKERS_AI_FLUX;
    if (choice.model !== undefined && choice.model !== model) {
      throw new ProviderUnavailableError(
        "stt",
        choice.provider,
        `model ${choice.model} is not ${WORKERS_AI_FLUX} or ${WORKERS_AI_NOVA_3}`,
      );
    }
    return new WorkersAiStt(
      defined({
        ai: aiBinding("stt", choice, context.env),
        model: model as typeof WORKERS_AI_FLUX,
        eotThreshold: numberOption(choice, "eotThreshold"),
        eagerEotThreshold: numberOption(choice, "eagerEotThreshold"),
        eotTimeoutMs: numberOption(choice, "eotTimeoutMs"),
        endpointingMs: numberOption(choice, "endpointingMs"),
        utteranceEndMs: numberOption(choice, "utteranceEndMs"),
      }),
    );
  });

  // ---- LLM
  registerProvider(
    "llm",
    "openai",
    (choice, context) => new OpenAiChatLlm(openAiEndpoint("llm", choice, context.env)),
  );
  registerProvider(
    "llm",
    "workers-ai",
    (choice, context) => new WorkersAiLlm({ ai: aiBinding("llm", choice, context.env) }),
  );

  // ---- TTS
  registerProvider("tts", "openai", (choice, context) => {
    return new OpenAiSpeechTts({
      ...openAiEndpoint("tts", choice, context.env),
      model: choice.model ?? "tts-1",
    });
  });
  registerProvider("tts", "deepgram", (choice, context) => {
    return new DeepgramAuraTts(defined({ ...deepgramKey("tts", choice, context), model: choice.model }));
  });
  registerProvider("tts", "elevenlabs", (choice, context) => {
    return new ElevenLabsTts(
      defined({
        apiKey: requireSecret(context.env, "tts", choice.provider, "ELEVENLABS_API_KEY"),
        baseUrl: stringOption(choice, "baseUrl"),
        model: choice.model,
      }),
    );
  });
  registerProvider("tts", "cartesia", (choice, context) => {
    return new CartesiaTts(
      defined({
        apiKey: requireSecret(context.env, "tts", choice.provider, "CARTESIA_API_KEY"),
        baseUrl: stringOption(choice, "baseUrl"),
        version: stringOption(choice, "version"),
        model: choice.model,
      }),
    );
  });
  registerProvider(
    "tts",
    "workers-ai",
    (choice, context) => new WorkersAiTts({ ai: aiBinding("tts", choice, context.env) }),
  );

  // ---- Speech to speech (agent.mode = "realtime"; agent.llm names the provider and model)
  registerRealtimeProvider("openai-realtime", (choice, context) => {
    return new OpenAiRealtime(
      defined({
        apiKey: requireSecret(context.env, "llm", choice.provider, "OPENAI_API_KEY"),
        baseUrl: stringOption(choice, "baseUrl"),
        model: choice.model,
        transcriptionModel: stringOption(choice, "transcriptionModel"),
        silenceDurationMs: numberOption(choice, "silenceDurationMs"),
      }),
    );
  });
}
