/**
 * OpenAI Realtime (GA) speech-to-speech over a WebSocket, G.711 in and out (no conversion at all).
 * Wire protocol (client events: https://developers.openai.com/api/reference/resources/realtime/client-events ;
 * server events: …/server-events ; cloudflare.md §3.5):
 *   GET /v1/realtime?model=gpt-realtime, Authorization: Bearer
 *   client → session.update {session:{type:"realtime",instructions,audio:{input:{format:{type:"audio/pcmu"},
 *            turn_detection:{type:"server_vad"},transcription},output:{format,voice}},tools}}
 *            input_audio_buffer.append {audio:b64}; conversation.item.truncate {item_id,content_index,audio_end_ms}
 *            conversation.item.create {item:{type:"function_call_output",call_id,output}}; response.create
 *   server → session.created, session.updated, input_audio_buffer.speech_started/stopped,
 *            response.output_audio.delta {item_id,delta}, response.output_audio_transcript.delta/done,
 *            conversation.item.input_audio_transcription.delta/completed,
 *            response.function_call_arguments.done {call_id,name,arguments}, response.done, error
 * connect() resolves once the server confirmed our session.update (session.updated), so a bad
 * configuration fails the call setup rather than the first turn.
 */
import {
  asRecord,
  asString,
  base64ToBytes,
  bytesToBase64,
  connectWebSocket,
  parseJson,
  protocolError,
  type RetryPolicy,
  VendorSocket,
  withRetries,
} from "../common";
import type {
  RealtimeConnectOptions,
  RealtimeEvents,
  RealtimeProvider,
  RealtimeSession,
} from "../realtime-types";
import { ProviderError } from "../types";

export interface OpenAiRealtimeOptions {
  apiKey: string;
  /** Default "wss://api.openai.com/v1". */
  baseUrl?: string;
  /** Default model when the agent names none. */
  model?: string;
  /** Input transcription model (caller transcript for logs); undefined disables it. */
  transcriptionModel?: string;
  /** server_vad silence before the turn ends. */
  silenceDurationMs?: number;
  retry?: RetryPolicy;
  connectTimeoutMs?: number;
}

export const OPENAI_REALTIME_BASE_URL = "wss://api.openai.com/v1";

export class OpenAiRealtime implements RealtimeProvider {
  readonly name = "openai-realtime";

  constructor(private readonly options: OpenAiRealtimeOptions) {}

  async connect(options: RealtimeConnectOptions, events: RealtimeEvents): Promise<RealtimeSession> {
    const base = (this.options.baseUrl ?? OPENAI_REALTIME_BASE_URL).replace(/\/+$/, "");
    const model = options.model ?? this.options.model ?? "gpt-realtime";
    const socket = await withRetries(
      this.name,
      () =>
        connectWebSocket({
          provider: this.name,
          url: `${base}/realtime?model=${encodeURIComponent(model)}`,
          headers: { Authorization: `Bearer ${this.options.apiKey}` },
          timeoutMs: this.options.connectTimeoutMs,
          signal: options.signal,
        }),
      { policy: this.options.retry, signal: options.signal },
    );
    const session = new OpenAiRealtimeSession(this.name, socket, events);
    const audioFormat = { type: options.format.codec === "PCMU" ? "audio/pcmu" : "audio/pcma" };
    session.configure({
      type: "session.update",
      session: {
        type: "realtime",
        instructions: options.instructions,
        audio: {
          input: {
            format: audioFormat,
            turn_detection: {
              type: "server_vad",
              silence_duration_ms: this.options.silenceDurationMs ?? 500,
              create_response: true,
              interrupt_response: true,
            },
            ...(this.options.transcriptionModel
              ? {
                  transcription: {
                    model: this.options.transcriptionModel,
                    language: options.language.split("-")[0],
                  },
                }
              : {}),
          },
          output: { format: audioFormat, voice: options.voice },
        },
        tools: options.tools.map((tool) => ({
          type: "function",
          name: tool.name,
          description: tool.description,
          parameters: tool.parameters,
        })),
        tool_choice: "auto",
      },
    });
    await session.configured(this.options.connectTimeoutMs ?? 5000);
    return session;
  }
}

class OpenAiRealtimeSession implements RealtimeSession {
  private readonly vendor: VendorSocket;
  private closed = false;
  private readonly assistantText = new Map<string, string>();
  private readonly userText = new Map<string, string>();
  /** Tool calls of the latest response still waiting for sendToolResult. */
  private readonly pendingCalls = new Set<string>();
  private responseActive = false;
  private resultsSubmitted = false;
  private settle: { resolve: () => void; reject: (error: ProviderError) => void } | undefined;

  constructor(
    private readonly provider: string,
    socket: WebSocket,
    private readonly events: RealtimeEvents,
  ) {
    this.vendor = new VendorSocket(provider, socket, {
      onText: (text) => this.onText(text),
      onBinary: () => {
        throw protocolError(provider, "unexpected binary frame");
      },
      onClosed: (error) => {
        const wasClosed = this.closed;
        this.closed = true;
        if (this.settle) this.settle.reject(error ?? protocolError(provider, "closed during setup"));
        else if (error && !wasClosed) this.events.onError(error);
      },
    });
  }

  configure(update: unknown): void {
    this.vendor.sendJson(update);
  }

  configured(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle = undefined;
        void this.vendor.close();
        reject(new ProviderError(this.provider, "timeout", "no session.updated", true));
      }, timeoutMs);
      this.settle = {
        resolve: () => {
          clearTimeout(timer);
          this.settle = undefined;
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          this.settle = undefined;
          void this.vendor.close();
          reject(error);
        },
      };
    });
  }

  sendAudio(audio: Uint8Array): void {
    if (this.closed) return;
    this.vendor.sendJson({ type: "input_audio_buffer.append", audio: bytesToBase64(audio) });
  }

  requestResponse(instructions?: string): void {
    if (this.closed) return;
    this.vendor.sendJson({
      type: "response.create",
      ...(instructions ? { response: { instructions } } : {}),
    });
  }

  truncate(itemId: string, audioEndMs: number): void {
    if (this.closed) return;
    this.vendor.sendJson({
      type: "conversation.item.truncate",
      item_id: itemId,
      content_index: 0,
      audio_end_ms: Math.max(0, Math.round(audioEndMs)),
    });
  }

  sendToolResult(callId: string, output: string): void {
    if (this.closed) return;
    this.vendor.sendJson({
      type: "conversation.item.create",
      item: { type: "function_call_output", call_id: callId, output },
    });
    this.pendingCalls.delete(callId);
    this.resultsSubmitted = true;
    this.maybeContinue();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.vendor.close();
  }

  /** One response.create after the response that asked for tools is done and every call has a result. */
  private maybeContinue(): void {
    if (this.pendingCalls.size > 0 || this.responseActive || !this.resultsSubmitted) return;
    this.resultsSubmitted = false;
    this.vendor.sendJson({ type: "response.create" });
  }

  private onText(text: string): void {
    const message = asRecord(parseJson(text));
    if (!message) throw protocolError(this.provider, "message is not a JSON object");
    const itemId = asString(message.item_id) ?? "";
    switch (asString(message.type)) {
      case "session.updated":
        this.settle?.resolve();
        return;
      case "error": {
        const detail = asRecord(message.error);
        const error = protocolError(this.provider, asString(detail?.message) ?? "error event");
        if (this.settle) this.settle.reject(error);
        else this.events.onError(error);
        return;
      }
      case "input_audio_buffer.speech_started":
        this.events.onSpeechStarted();
        return;
      case "response.created":
        this.responseActive = true;
        return;
      case "response.output_audio.delta": {
        const audio = base64ToBytes(asString(message.delta) ?? "");
        if (!audio) throw protocolError(this.provider, "audio delta is not base64");
        this.events.onAudio(audio, itemId);
        return;
      }
      case "response.output_audio_transcript.delta": {
        const so_far = (this.assistantText.get(itemId) ?? "") + (asString(message.delta) ?? "");
        this.assistantText.set(itemId, so_far);
        this.events.onTranscript("assistant", so_far, false);
        return;
      }
      case "response.output_audio_transcript.done":
        this.assistantText.delete(itemId);
        this.events.onTranscript("assistant", asString(message.transcript) ?? "", true);
        return;
      case "conversation.item.input_audio_transcription.delta": {
        const so_far = (this.userText.get(itemId) ?? "") + (asString(message.delta) ?? "");
        this.userText.set(itemId, so_far);
        this.events.onTranscript("user", so_far, false);
        return;
      }
      case "conversation.item.input_audio_transcription.completed":
        this.userText.delete(itemId);
        this.events.onTranscript("user", asString(message.transcript) ?? "", true);
        return;
      case "response.function_call_arguments.done": {
        const callId = asString(message.call_id);
        const name = asString(message.name);
        if (!callId || !name) throw protocolError(this.provider, "function call without call_id or name");
        this.pendingCalls.add(callId);
        this.events.onToolCall({ id: callId, name, arguments: asString(message.arguments) ?? "{}" });
        return;
      }
      case "response.done":
        this.responseActive = false;
        this.events.onResponseDone();
        this.maybeContinue();
        return;
      default:
        return; // many informational events (rate_limits.updated, conversation.item.added, …)
    }
  }
}
