/**
 * Builds the providers an agent asks for (agent.stt/llm/tts.provider) from the Worker env. The vendor
 * implementations in providers/<vendor>/ register here under stable ids; tests register in-process
 * fakes under their own ids. A missing provider or key is a typed error naming what is missing, raised
 * at call setup (before the greeting), never in the middle of a turn.
 */
import type { AgentDefinition } from "../agents/schema";
import type { RealtimeProvider } from "./realtime-types";
import type { OptionalSecrets, ProviderSecretName } from "./secrets";
import type { LlmProvider, SttProvider, TtsProvider } from "./types";

/**
 * The part of the Worker's Env a provider factory may read: the AI binding (absent in the offline env)
 * and the optional vendor secrets (./secrets.ts). The Durable Object passes its Env as is.
 */
export type ProviderEnv = { readonly AI?: Ai } & Pick<OptionalSecrets, ProviderSecretName>;

/**
 * The provider ids the vendor implementations register (vendors.ts; the registry test keeps the two
 * equal). Static so the deploy check (`check:agents`) can reject a typo without building anything.
 */
export const KNOWN_PROVIDER_IDS = {
  stt: ["deepgram", "deepgram-flux", "openai", "workers-ai"],
  llm: ["openai", "workers-ai"],
  tts: ["openai", "deepgram", "elevenlabs", "cartesia", "workers-ai"],
  realtime: ["openai-realtime"],
} as const satisfies Record<Stage | "realtime", readonly string[]>;

export interface ProviderChoice {
  provider: string;
  model?: string | undefined;
  options: Record<string, unknown>;
}

export interface FactoryContext {
  agent: AgentDefinition;
  env: ProviderEnv;
}

export type ProviderFactory<T> = (choice: ProviderChoice, context: FactoryContext) => T;

export interface ProviderSet {
  stt: SttProvider;
  llm: LlmProvider;
  tts: TtsProvider;
}

export class ProviderUnavailableError extends Error {
  override readonly name = "ProviderUnavailableError";
  constructor(
    readonly stage: "stt" | "llm" | "tts" | "realtime",
    readonly provider: string,
    detail: string,
  ) {
    super(`${stage} provider ${provider} not available: ${detail}`);
  }
}

type Stage = "stt" | "llm" | "tts";
type StageProvider = { stt: SttProvider; llm: LlmProvider; tts: TtsProvider };

const factories: { [S in Stage]: Map<string, ProviderFactory<StageProvider[S]>> } = {
  stt: new Map(),
  llm: new Map(),
  tts: new Map(),
};

/** Registers (or replaces) the factory for provider id `id` at `stage`. */
export function registerProvider<S extends Stage>(
  stage: S,
  id: string,
  factory: ProviderFactory<StageProvider[S]>,
): void {
  (factories[stage] as Map<string, ProviderFactory<StageProvider[S]>>).set(id, factory);
}

export function unregisterProvider(stage: Stage, id: string): void {
  factories[stage].delete(id);
}

export function registeredProviders(stage: Stage): string[] {
  return [...factories[stage].keys()];
}

function build<S extends Stage>(stage: S, choice: ProviderChoice, context: FactoryContext): StageProvider[S] {
  const factory = (factories[stage] as Map<string, ProviderFactory<StageProvider[S]>>).get(choice.provider);
  if (!factory) {
    const known = registeredProviders(stage).join(", ") || "none";
    throw new ProviderUnavailableError(stage, choice.provider, `not registered (known: ${known})`);
  }
  return factory(choice, context);
}

const realtimeFactories = new Map<string, ProviderFactory<RealtimeProvider>>();

export function registeredRealtimeProviders(): string[] {
  return [...realtimeFactories.keys()];
}

/** Registers a speech-to-speech provider (agent.mode = "realtime"; agent.llm.provider names it). */
export function registerRealtimeProvider(id: string, factory: ProviderFactory<RealtimeProvider>): void {
  realtimeFactories.set(id, factory);
}

/** Builds the speech-to-speech provider of a realtime agent; throws ProviderUnavailableError. */
export function buildRealtimeProvider(agent: AgentDefinition, env: ProviderEnv): RealtimeProvider {
  const factory = realtimeFactories.get(agent.llm.provider);
  if (!factory) {
    const known = [...realtimeFactories.keys()].join(", ") || "none";
    throw new ProviderUnavailableError("realtime", agent.llm.provider, `not registered (known: ${known})`);
  }
  return factory(agent.llm, { agent, env });
}

/** Builds the three pipeline providers for an agent; throws ProviderUnavailableError. */
export function buildProviders(agent: AgentDefinition, env: ProviderEnv): ProviderSet {
  if (agent.mode === "realtime") {
    throw new ProviderUnavailableError(
      "realtime",
      agent.llm.provider,
      "speech-to-speech mode is not wired yet",
    );
  }
  const context: FactoryContext = { agent, env };
  return {
    stt: build("stt", agent.stt, context),
    llm: build("llm", agent.llm, context),
    tts: build("tts", agent.tts, context),
  };
}

/** Reads a required secret for a factory, with an error that names it. */
export function requireSecret(
  env: ProviderEnv,
  stage: Stage,
  provider: string,
  name: ProviderSecretName,
): string {
  const value = env[name];
  if (typeof value !== "string" || value === "") {
    throw new ProviderUnavailableError(stage, provider, `secret ${name} is not set`);
  }
  return value;
}
