/**
 * Offline demo providers: an OpenAI-compatible server (speech, transcriptions, chat) backed by
 * espeak-ng, PocketSphinx and a scripted agent. Dev tooling for the demo and end-to-end tests.
 */
export { matchRule, planReply } from "./chat/agent";
export { AGENT_RULES, CALLER_PHRASES, DTMF_PATTERN, FALLBACK_REPLY, GREETING } from "./chat/rules";
export { latencyFromEnv, type StageLatency } from "./http/latency";
export {
  OFFLINE_MODELS,
  type OfflineProviders,
  type OfflineProvidersOptions,
  startOfflineProviders,
} from "./server";
export { OPENAI_VOICES } from "./speech/voices";
