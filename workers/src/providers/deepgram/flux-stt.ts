/**
 * Deepgram Flux (v2 listen): speech recognition with model-integrated turn detection.
 * Wire protocol (https://developers.deepgram.com/docs/flux/state ; cloudflare.md §3.1):
 *   client → binary audio; {"type":"CloseStream"}
 *   server → {"type":"Connected"}; {"type":"TurnInfo","event":"StartOfTurn"|"Update"|"EagerEndOfTurn"|
 *            "TurnResumed"|"EndOfTurn","turn_index","transcript","end_of_turn_confidence"}; {"type":"Error"}
 * Flux decides turns itself, so finalize() has nothing to do. Reused by the Workers AI binding's Flux
 * WebSocket mode (same protocol, linear16 audio: hence `transformAudio`).
 */
import {
  asNumber,
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

export interface DeepgramFluxOptions extends DeepgramOptions {
  model?: string;
  eotThreshold?: number;
  /** Set to get EagerEndOfTurn (speculative LLM start); leave undefined to disable. */
  eagerEotThreshold?: number;
  eotTimeoutMs?: number;
}

export const FLUX_CAPABILITIES: SttCapabilities = {
  endOfTurn: true,
  eagerEndOfTurn: true,
  interimResults: true,
  speechStarted: true,
};

export class DeepgramFluxStt implements SttProvider {
  readonly name = "deepgram-flux";
  readonly capabilities = FLUX_CAPABILITIES;

  constructor(private readonly options: DeepgramFluxOptions) {}

  async connect(
    options: { format: AudioFormat; language: string; signal?: AbortSignal },
    events: SttEvents,
  ): Promise<SttSession> {
    const query: Record<string, string> = {
      model: this.options.model ?? "flux-general-en",
      encoding: deepgramEncoding(options.format.codec),
      sample_rate: String(options.format.sampleRate),
      eot_threshold: String(this.options.eotThreshold ?? 0.7),
      eot_timeout_ms: String(this.options.eotTimeoutMs ?? 5000),
    };
    if (this.options.eagerEotThreshold !== undefined) {
      query.eager_eot_threshold = String(this.options.eagerEotThreshold);
    }
    const socket = await withRetries(
      this.name,
      () =>
        connectWebSocket({
          provider: this.name,
          url: deepgramUrl(this.options, "/v2/listen", query),
          headers: deepgramAuth(this.options),
          timeoutMs: this.options.connectTimeoutMs,
          signal: options.signal,
        }),
      { policy: this.options.retry, signal: options.signal },
    );
    return new FluxSession(this.name, socket, events);
  }
}

export class FluxSession implements SttSession {
  private readonly vendor: VendorSocket;
  private closed = false;

  constructor(
    private readonly provider: string,
    socket: WebSocket,
    private readonly events: SttEvents,
    private readonly transformAudio?: (audio: Uint8Array) => Uint8Array,
  ) {
    this.vendor = new VendorSocket(provider, socket, {
      onText: (text) => this.onText(text),
      onBinary: () => {
        throw protocolError(provider, "unexpected binary frame from Flux");
      },
      onClosed: (error) => this.onClosed(error),
    });
  }

  sendAudio(audio: Uint8Array): void {
    if (this.closed) return;
    this.vendor.sendBinary(this.transformAudio ? this.transformAudio(audio) : audio);
  }

  finalize(): void {
    // Flux has no Finalize message: its own turn detection ends turns.
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.vendor.sendJson({ type: "CloseStream" });
    await this.vendor.close();
  }

  private onText(text: string): void {
    const message = asRecord(parseJson(text));
    if (!message) throw protocolError(this.provider, "Flux message is not a JSON object");
    const type = asString(message.type);
    if (type === "Error") {
      this.events.onError(protocolError(this.provider, asString(message.description) ?? "error message"));
      return;
    }
    if (type !== "TurnInfo") return;
    const transcript = (asString(message.transcript) ?? "").trim();
    const confidence = asNumber(message.end_of_turn_confidence);
    switch (asString(message.event)) {
      case "StartOfTurn":
        this.events.onSpeechStarted();
        if (transcript !== "") this.events.onInterim(transcript);
        return;
      case "Update":
        if (transcript !== "") this.events.onInterim(transcript);
        return;
      case "EagerEndOfTurn":
        this.events.onEndOfTurn(transcript, { eager: true, confidence });
        return;
      case "TurnResumed":
        this.events.onTurnResumed();
        if (transcript !== "") this.events.onInterim(transcript);
        return;
      case "EndOfTurn":
        if (transcript !== "") this.events.onFinal(transcript);
        this.events.onEndOfTurn(transcript, { eager: false, confidence });
        return;
      default:
        throw protocolError(this.provider, `unknown TurnInfo event ${String(message.event)}`);
    }
  }

  private onClosed(error: ProviderError | undefined): void {
    if (error && !this.closed) this.events.onError(error);
    this.closed = true;
  }
}
