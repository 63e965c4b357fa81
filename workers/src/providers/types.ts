/**
 * The provider seams of the voice pipeline. Each vendor implementation (providers/<vendor>/) is the
 * only code that talks to that vendor; the pipeline (src/pipeline/) knows only these interfaces.
 *
 * Audio at every seam is telephony audio: G.711 (μ-law or A-law, the call's codec) at 8 kHz, so a
 * provider that can take or produce G.711 natively does no conversion at all. Implementations that
 * need PCM or other rates convert with @patchbay/shared/audio (the one place for codecs/resampling).
 *
 * Sessions are opened at call setup, not per turn (vendor socket handshakes cost 100+ ms).
 */
import type { G711Codec } from "@patchbay/shared/audio";

export class ProviderError extends Error {
  override readonly name = "ProviderError";
  constructor(
    readonly provider: string,
    /** Stable code: "auth", "rate-limit", "timeout", "protocol", "unavailable", "bad-request", "closed". */
    readonly code: string,
    message: string,
    /** Whether retrying the same request may succeed (4xx are not, except 408/429). */
    readonly retryable: boolean,
    readonly status?: number,
  ) {
    super(`${provider}: ${message}`);
  }
}

export interface AudioFormat {
  codec: G711Codec;
  sampleRate: 8000;
}

// ---- Speech to text ----------------------------------------------------------------------------

export interface SttEvents {
  /** Caller speech detected by the provider's VAD (barge-in trigger where available). */
  onSpeechStarted(): void;
  /** Unstable hypothesis of the words so far in this turn. */
  onInterim(text: string): void;
  /** A stable piece of transcript (may be followed by more in the same turn). */
  onFinal(text: string): void;
  /**
   * The caller finished their turn. `eager` marks a speculative end (Flux EagerEndOfTurn): the pipeline
   * may start the LLM and must cancel it on onTurnResumed. `transcript` is the whole turn.
   */
  onEndOfTurn(transcript: string, details: { eager: boolean; confidence?: number }): void;
  /** The caller kept talking after an eager end of turn. */
  onTurnResumed(): void;
  onError(error: ProviderError): void;
}

export interface SttSession {
  /** Feed one or more 20 ms frames of caller audio in the session's format. Never blocks. */
  sendAudio(audio: Uint8Array): void;
  /**
   * Force the provider to finish the current utterance now (Deepgram Finalize; segment STT transcribes
   * what it has). Used by the pipeline's own VAD when the provider has no end-of-turn detection.
   */
  finalize(): void;
  close(): Promise<void>;
}

export interface SttCapabilities {
  /** The provider decides when a turn ends (Flux, Deepgram endpointing); otherwise the pipeline's VAD does. */
  endOfTurn: boolean;
  eagerEndOfTurn: boolean;
  interimResults: boolean;
  speechStarted: boolean;
}

export interface SttProvider {
  readonly name: string;
  readonly capabilities: SttCapabilities;
  connect(
    options: { format: AudioFormat; language: string; signal?: AbortSignal },
    events: SttEvents,
  ): Promise<SttSession>;
}

// ---- Language model ----------------------------------------------------------------------------

export interface ToolCall {
  id: string;
  name: string;
  /** JSON text exactly as the model produced it; the pipeline validates it against the tool's schema. */
  arguments: string;
}

export type ChatMessage =
  | { role: "system"; content: string }
  | { role: "user"; content: string }
  | { role: "assistant"; content: string; toolCalls?: ToolCall[] }
  | { role: "tool"; toolCallId: string; content: string };

export interface ToolSpec {
  name: string;
  description: string;
  /** JSON Schema of the arguments object. */
  parameters: Record<string, unknown>;
}

export type ChatEvent =
  | { type: "text"; delta: string }
  | { type: "tool_call"; call: ToolCall }
  | { type: "done"; finishReason: "stop" | "tool_calls" | "length" | "error" };

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  tools: ToolSpec[];
  temperature?: number;
  maxTokens?: number;
  signal: AbortSignal;
}

export interface LlmProvider {
  readonly name: string;
  /** Streams text deltas as they arrive; tool calls are emitted whole, once their arguments are complete. */
  stream(request: ChatRequest): AsyncIterable<ChatEvent>;
}

// ---- Text to speech ----------------------------------------------------------------------------

export interface TtsEvents {
  /** Synthesized audio in the session's format, in order; any length. */
  onAudio(audio: Uint8Array): void;
  /** Everything spoken before the matching flush() has been delivered through onAudio. */
  onFlushed(): void;
  onError(error: ProviderError): void;
}

export interface TtsSession {
  /** Queue a chunk of text (a clause or sentence) for synthesis; audio streams back through onAudio. */
  speak(text: string): void;
  /** No more text for this utterance: synthesize what is buffered, then call onFlushed. */
  flush(): void;
  /** Barge-in: drop queued text and audio in flight; onAudio stays quiet until the next speak(). */
  clear(): void;
  close(): Promise<void>;
}

export interface TtsProvider {
  readonly name: string;
  connect(
    options: { format: AudioFormat; voice: string; model?: string; language: string; signal?: AbortSignal },
    events: TtsEvents,
  ): Promise<TtsSession>;
}
