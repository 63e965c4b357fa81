/**
 * Deepgram live transcription (v1 listen, Nova-3) over a WebSocket.
 * Wire protocol (https://developers.deepgram.com/reference/speech-to-text/listen-streaming; cloudflare.md §3.1):
 *   client → binary audio; {"type":"KeepAlive"}; {"type":"Finalize"}; {"type":"CloseStream"}
 *   server → {"type":"Results","is_final","speech_final","from_finalize"?,"channel":{"alternatives":[{"transcript"}]}}
 *            {"type":"UtteranceEnd","last_word_end"}  {"type":"SpeechStarted"}  {"type":"Metadata"}
 * A turn ends at speech_final (endpointing), at UtteranceEnd when speech_final never came (noise), or at
 * the Results answering our Finalize (from_finalize).
 *
 * DeepgramLiveSession takes an already-open socket so the Workers AI binding's Nova-3 WebSocket mode
 * (which speaks the same protocol) reuses it.
 */
import {
  asArray,
  asBoolean,
  asRecord,
  asString,
  connectWebSocket,
  parseJson,
  protocolError,
  VendorSocket,
  withRetries,
} from "../common";
import type {
  AudioFormat,
  ProviderError,
  SttCapabilities,
  SttEvents,
  SttProvider,
  SttSession,
} from "../types";
import { type DeepgramOptions, deepgramAuth, deepgramEncoding, deepgramUrl } from "./config";

export interface DeepgramLiveOptions extends DeepgramOptions {
  model?: string;
  /** Silence (ms) after which Deepgram marks speech_final. 300–500 suits conversation. */
  endpointingMs?: number;
  utteranceEndMs?: number;
  /** Send KeepAlive when no audio was sent for this long (Deepgram closes after ~10 s). */
  keepAliveMs?: number;
}

export const DEEPGRAM_LIVE_CAPABILITIES: SttCapabilities = {
  endOfTurn: true,
  eagerEndOfTurn: false,
  interimResults: true,
  speechStarted: true,
};

export class DeepgramLiveStt implements SttProvider {
  readonly name = "deepgram";
  readonly capabilities = DEEPGRAM_LIVE_CAPABILITIES;

  constructor(private readonly options: DeepgramLiveOptions) {}

  async connect(
    options: { format: AudioFormat; language: string; signal?: AbortSignal },
    events: SttEvents,
  ): Promise<SttSession> {
    const url = deepgramUrl(
      this.options,
      "/v1/listen",
      liveQuery(this.options, options.format, options.language),
    );
    const socket = await withRetries(
      this.name,
      () =>
        connectWebSocket({
          provider: this.name,
          url,
          headers: deepgramAuth(this.options),
          timeoutMs: this.options.connectTimeoutMs,
          signal: options.signal,
        }),
      { policy: this.options.retry, signal: options.signal },
    );
    return new DeepgramLiveSession(this.name, socket, events, { keepAliveMs: this.options.keepAliveMs });
  }
}

export function liveQuery(
  options: { model?: string; endpointingMs?: number; utteranceEndMs?: number },
  format: AudioFormat,
  language: string,
): Record<string, string> {
  return {
    model: options.model ?? "nova-3",
    encoding: deepgramEncoding(format.codec),
    sample_rate: String(format.sampleRate),
    channels: "1",
    language,
    interim_results: "true",
    endpointing: String(options.endpointingMs ?? 300),
    utterance_end_ms: String(options.utteranceEndMs ?? 1000),
    vad_events: "true",
    smart_format: "true",
  };
}

export class DeepgramLiveSession implements SttSession {
  private readonly vendor: VendorSocket;
  /** Final pieces of the current turn, joined at end of turn. */
  private finals: string[] = [];
  private keepAliveTimer: ReturnType<typeof setInterval> | undefined;
  private lastSendAt: number;
  private closed = false;

  constructor(
    private readonly provider: string,
    socket: WebSocket,
    private readonly events: SttEvents,
    options: { keepAliveMs?: number; now?: () => number; transformAudio?: (audio: Uint8Array) => Uint8Array },
  ) {
    this.now = options.now ?? Date.now;
    this.transformAudio = options.transformAudio;
    this.lastSendAt = this.now();
    this.vendor = new VendorSocket(provider, socket, {
      onText: (text) => this.onText(text),
      onBinary: () => {
        throw protocolError(provider, "unexpected binary frame from STT");
      },
      onClosed: (error) => this.onClosed(error),
    });
    const keepAliveMs = options.keepAliveMs ?? 4000;
    this.keepAliveTimer = setInterval(
      () => {
        if (this.now() - this.lastSendAt >= keepAliveMs) this.sendControl("KeepAlive");
      },
      Math.max(100, keepAliveMs / 2),
    );
  }

  private readonly now: () => number;
  private readonly transformAudio: ((audio: Uint8Array) => Uint8Array) | undefined;

  sendAudio(audio: Uint8Array): void {
    if (this.closed) return;
    this.lastSendAt = this.now();
    this.vendor.sendBinary(this.transformAudio ? this.transformAudio(audio) : audio);
  }

  finalize(): void {
    this.sendControl("Finalize");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopTimer();
    this.vendor.sendJson({ type: "CloseStream" });
    await this.vendor.close();
  }

  private sendControl(type: "KeepAlive" | "Finalize"): void {
    if (this.closed) return;
    this.lastSendAt = this.now();
    this.vendor.sendJson({ type });
  }

  private onText(text: string): void {
    const message = asRecord(parseJson(text));
    if (!message) throw protocolError(this.provider, "STT message is not a JSON object");
    switch (asString(message.type)) {
      case "Results":
        this.onResults(message);
        return;
      case "UtteranceEnd":
        this.endTurn();
        return;
      case "SpeechStarted":
        this.events.onSpeechStarted();
        return;
      case "Metadata":
        return;
      case "Error":
        this.events.onError(protocolError(this.provider, asString(message.description) ?? "error message"));
        return;
      default:
        return; // forward compatible: ignore message types we do not use
    }
  }

  private onResults(message: Record<string, unknown>): void {
    const alternative = asRecord(asArray(asRecord(message.channel)?.alternatives)?.[0]);
    const transcript = (asString(alternative?.transcript) ?? "").trim();
    const isFinal = asBoolean(message.is_final) ?? false;
    if (!isFinal) {
      if (transcript !== "") this.events.onInterim(joinWords([...this.finals, transcript]));
      return;
    }
    if (transcript !== "") {
      this.finals.push(transcript);
      this.events.onFinal(transcript);
    }
    if (asBoolean(message.speech_final) || asBoolean(message.from_finalize)) this.endTurn();
  }

  private endTurn(): void {
    if (this.finals.length === 0) return;
    const transcript = joinWords(this.finals);
    this.finals = [];
    this.events.onEndOfTurn(transcript, { eager: false });
  }

  private onClosed(error: ProviderError | undefined): void {
    this.stopTimer();
    if (error && !this.closed) this.events.onError(error);
    this.closed = true;
  }

  private stopTimer(): void {
    if (this.keepAliveTimer !== undefined) clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
  }
}

function joinWords(parts: string[]): string {
  return parts.join(" ").replace(/\s+/g, " ").trim();
}
