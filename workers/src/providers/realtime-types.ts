/**
 * Speech-to-speech providers (OpenAI Realtime): one socket that hears the caller and speaks back, with
 * its own VAD and tool calls. It does not fit the STT → LLM → TTS seams, so the pipeline drives it
 * through this interface instead. Audio is the call's G.711 at 8 kHz in both directions.
 */
import type { AudioFormat, ProviderError, ToolCall, ToolSpec } from "./types";

export interface RealtimeEvents {
  /** Agent audio in the call's format. `itemId` names the assistant item, for truncate() on barge-in. */
  onAudio(audio: Uint8Array, itemId: string): void;
  /** The provider's VAD heard the caller start speaking: stop playout now (barge-in). */
  onSpeechStarted(): void;
  /**
   * Transcript of either side. Non-final calls carry the text so far of the current item; the final
   * call carries the whole item.
   */
  onTranscript(role: "user" | "assistant", text: string, final: boolean): void;
  /** The model wants a tool run; answer with sendToolResult(call.id, output). */
  onToolCall(call: ToolCall): void;
  /** The model finished a response (all its audio was delivered through onAudio). */
  onResponseDone(): void;
  onError(error: ProviderError): void;
}

export interface RealtimeSession {
  /** Caller audio, one or more 20 ms frames in the session's format. Never blocks. */
  sendAudio(audio: Uint8Array): void;
  /** Ask for a response now (e.g. the greeting), optionally with one-off instructions. */
  requestResponse(instructions?: string): void;
  /**
   * Barge-in: tell the provider the caller heard only the first `audioEndMs` of `itemId`, so the
   * conversation history matches what was actually played.
   */
  truncate(itemId: string, audioEndMs: number): void;
  /** Result of a tool call; the model continues once every call of its response has a result. */
  sendToolResult(callId: string, output: string): void;
  close(): Promise<void>;
}

export interface RealtimeConnectOptions {
  format: AudioFormat;
  instructions: string;
  voice: string;
  model?: string;
  language: string;
  tools: ToolSpec[];
  signal?: AbortSignal;
}

export interface RealtimeProvider {
  readonly name: string;
  connect(options: RealtimeConnectOptions, events: RealtimeEvents): Promise<RealtimeSession>;
}
