/**
 * Deepgram Aura streaming TTS over a WebSocket, asking for the call's own G.711 law at 8 kHz so no
 * conversion happens here at all.
 * Wire protocol (https://developers.deepgram.com/reference/text-to-speech/speak-streaming ;
 * https://developers.deepgram.com/docs/tts-ws-flush ; https://developers.deepgram.com/docs/tts-ws-clear):
 *   client → {"type":"Speak","text"}; {"type":"Flush"}; {"type":"Clear"}; {"type":"Close"}
 *   server → binary audio; {"type":"Flushed","sequence_id"}; {"type":"Cleared","sequence_id"};
 *            {"type":"Metadata"}; {"type":"Warning","description"}
 * Deepgram answers messages in order, so after a Clear everything up to the matching Cleared belongs
 * to the cancelled utterance and is dropped (audio and Flushed alike).
 */
import {
  asRecord,
  asString,
  connectWebSocket,
  parseJson,
  protocolError,
  VendorSocket,
  withRetries,
} from "../common";
import type { AudioFormat, ProviderError, TtsEvents, TtsProvider, TtsSession } from "../types";
import { type DeepgramOptions, deepgramAuth, deepgramEncoding, deepgramUrl } from "./config";

export interface DeepgramAuraOptions extends DeepgramOptions {
  /** Default voice model when the agent names none. */
  model?: string;
}

export class DeepgramAuraTts implements TtsProvider {
  readonly name = "deepgram-aura";

  constructor(private readonly options: DeepgramAuraOptions) {}

  async connect(
    options: { format: AudioFormat; voice: string; model?: string; language: string; signal?: AbortSignal },
    events: TtsEvents,
  ): Promise<TtsSession> {
    // Aura names the voice in the model ("aura-2-thalia-en"); `voice` wins when it looks like one.
    const model = options.voice.startsWith("aura")
      ? options.voice
      : (options.model ?? this.options.model ?? "aura-2-thalia-en");
    const url = deepgramUrl(this.options, "/v1/speak", {
      model,
      encoding: deepgramEncoding(options.format.codec),
      sample_rate: String(options.format.sampleRate),
    });
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
    return new AuraSession(this.name, socket, events);
  }
}

export class AuraSession implements TtsSession {
  private readonly vendor: VendorSocket;
  private pendingFlushes = 0;
  /** Clears sent but not yet acknowledged with Cleared: until then, all output is stale. */
  private pendingClears = 0;
  private closed = false;

  constructor(
    private readonly provider: string,
    socket: WebSocket,
    private readonly events: TtsEvents,
  ) {
    this.vendor = new VendorSocket(provider, socket, {
      onText: (text) => this.onText(text),
      onBinary: (bytes) => {
        if (this.pendingClears === 0 && !this.closed) this.events.onAudio(bytes);
      },
      onClosed: (error) => this.onClosed(error),
    });
  }

  speak(text: string): void {
    if (this.closed || text === "") return;
    this.vendor.sendJson({ type: "Speak", text });
  }

  flush(): void {
    if (this.closed) return;
    this.pendingFlushes++;
    this.vendor.sendJson({ type: "Flush" });
  }

  clear(): void {
    if (this.closed) return;
    this.pendingClears++;
    this.pendingFlushes = 0;
    this.vendor.sendJson({ type: "Clear" });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.vendor.sendJson({ type: "Close" });
    await this.vendor.close();
  }

  private onText(text: string): void {
    const message = asRecord(parseJson(text));
    if (!message) throw protocolError(this.provider, "TTS message is not a JSON object");
    switch (asString(message.type)) {
      case "Flushed":
        if (this.pendingClears === 0 && this.pendingFlushes > 0) {
          this.pendingFlushes--;
          this.events.onFlushed();
        }
        return;
      case "Cleared":
        if (this.pendingClears > 0) this.pendingClears--;
        return;
      case "Error":
        this.events.onError(protocolError(this.provider, asString(message.description) ?? "error message"));
        return;
      default:
        return; // Metadata, Warning: nothing to do
    }
  }

  private onClosed(error: ProviderError | undefined): void {
    if (error && !this.closed) this.events.onError(error);
    this.closed = true;
  }
}
