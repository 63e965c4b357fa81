/**
 * Offline demo providers: an OpenAI-compatible server (speech, transcriptions, chat) backed by
 * espeak-ng, PocketSphinx and a scripted agent. Dev tooling for the demo and end-to-end tests.
 */
export { type AgentPlan, matchRule, planReply } from "./chat/agent";
export {
  AGENT_REPLY_PHRASES,
  AGENT_RULES,
  CALLER_PHRASES,
  type CallerPhrase,
  DTMF_PATTERN,
  FALLBACK_REPLY,
  GREETING,
  KEY_WORDS,
} from "./chat/rules";
export { latencyFromEnv, type StageLatency } from "./http/latency";
export {
  OFFLINE_MODELS,
  type OfflineProviders,
  type OfflineProvidersOptions,
  startOfflineProviders,
} from "./server";
export type { SpeechFormat } from "./speech/formats";
export { PocketSphinxRecognizer, type RecognizerOptions } from "./speech/recognizer";
export { type SpeechOptions, synthesizeSpeech } from "./speech/synthesizer";
export { OPENAI_VOICES } from "./speech/voices";
export { isWavError, parseWav, type WavInfo } from "./speech/wav";
