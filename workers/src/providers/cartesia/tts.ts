/**
 * Cartesia streaming TTS over its WebSocket, one context per utterance, G.711 at 8 kHz natively.
 * Wire protocol (https://docs.cartesia.ai/api-reference/tts/websocket ; cloudflare.md §3.4):
 *   GET /tts/websocket, headers X-API-Key + Cartesia-Version
 *   client → {"model_id","transcript","voice":{"mode":"id","id"},"language","context_id",
 *             "output_format":{"container":"raw","encoding":"pcm_mulaw"|"pcm_alaw","sample_rate":8000},
 *             "continue":true}   (continue:false with an empty transcript ends the context)
 *            {"context_id","cancel":true}
 *   server → {"type":"chunk","data":"<base64>","context_id","done":false}
 *            {"type":"done","context_id","done":true}  {"type":"error","error","status_code","context_id"}
 *            {"type":"timestamps"|"flush_done", …}
 * flush() ends the context, so `done` for it means everything before the flush was delivered.
 * clear() cancels the context; any late chunk of it carries the old context_id and is dropped.
 */
import {
  asRecord,
  asString,
  base64ToBytes,
  connectWebSocket,
  parseJson,
  protocolError,
  type RetryPolicy,
  VendorSocket,
  withRetries,
} from "../common";
import type { AudioFormat, ProviderError, TtsEvents, TtsProvider, TtsSession } from "../types";

export interface CartesiaOptions {
  apiKey: string;
  /** Default "wss://api.cartesia.ai". */
  baseUrl?: string;
  /** API version header, e.g. "2025-04-16". */
  version?: string;
  /** Default model when the agent names none. */
  model?: string;
  retry?: RetryPolicy;
  connectTimeoutMs?: number;
}

export const CARTESIA_BASE_URL = "wss://api.cartesia.ai";
export const CARTESIA_VERSION = "2025-04-16";

export class CartesiaTts implements TtsProvider {
  readonly name = "cartesia";

  constructor(private readonly options: CartesiaOptions) {}

  async connect(
    options: { format: AudioFormat; voice: string; model?: string; language: string; signal?: AbortSignal },
    events: TtsEvents,
  ): Promise<TtsSession> {
    const base = (this.options.baseUrl ?? CARTESIA_BASE_URL).replace(/\/+$/, "");
    const version = this.options.version ?? CARTESIA_VERSION;
    const socket = await withRetries(
      this.name,
      () =>
        connectWebSocket({
          provider: this.name,
          url: `${base}/tts/websocket?cartesia_version=${encodeURIComponent(version)}`,
          headers: { "X-API-Key": this.options.apiKey, "Cartesia-Version": version },
          timeoutMs: this.options.connectTimeoutMs,
          signal: options.signal,
        }),
      { policy: this.options.retry, signal: options.signal },
    );
    return new CartesiaSession(this.name, socket, events, {
      model: options.model ?? this.options.model ?? "sonic-2",
      voice: options.voice,
      language: options.language.split(/[-_]/)[0]!.toLowerCase(),
      encoding: options.format.codec === "PCMU" ? "pcm_mulaw" : "pcm_alaw",
      sampleRate: options.format.sampleRate,
    });
  }
}

interface ContextSettings {
  model: string;
  voice: string;
  language: string;
  encoding: "pcm_mulaw" | "pcm_alaw";
  sampleRate: number;
}

class CartesiaSession implements TtsSession {
  private readonly vendor: VendorSocket;
  private contextCounter = 0;
  /** Context receiving speak(); undefined until the first speak() after a flush/clear. */
  private openContext: string | undefined;
  /** Contexts ended by flush() whose `done` we still owe the pipeline an onFlushed for, in order. */
  private flushing: string[] = [];
  /** Contexts whose audio is still wanted (open or flushing). */
  private readonly live = new Set<string>();
  private readonly sessionId = crypto.randomUUID().slice(0, 8);
  private closed = false;

  constructor(
    private readonly provider: string,
    socket: WebSocket,
    private readonly events: TtsEvents,
    private readonly settings: ContextSettings,
  ) {
    this.vendor = new VendorSocket(provider, socket, {
      onText: (text) => this.onText(text),
      onBinary: () => {
        throw protocolError(provider, "unexpected binary frame");
      },
      onClosed: (error) => this.onClosed(error),
    });
  }

  speak(text: string): void {
    if (this.closed || text === "") return;
    if (!this.openContext) {
      this.openContext = `${this.sessionId}-${++this.contextCounter}`;
      this.live.add(this.openContext);
    }
    this.sendGeneration(this.openContext, text, true);
  }

  flush(): void {
    if (this.closed) return;
    const context = this.openContext;
    if (!context) {
      // Nothing was said since the last flush: still acknowledge, in order.
      if (this.flushing.length === 0) this.events.onFlushed();
      else this.flushing.push("");
      return;
    }
    this.sendGeneration(context, "", false);
    this.flushing.push(context);
    this.openContext = undefined;
  }

  clear(): void {
    if (this.closed) return;
    for (const context of this.live) this.vendor.sendJson({ context_id: context, cancel: true });
    this.live.clear();
    this.flushing = [];
    this.openContext = undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.clear();
    this.closed = true;
    await this.vendor.close();
  }

  private sendGeneration(context: string, transcript: string, more: boolean): void {
    this.vendor.sendJson({
      model_id: this.settings.model,
      transcript,
      voice: { mode: "id", id: this.settings.voice },
      language: this.settings.language,
      context_id: context,
      output_format: {
        container: "raw",
        encoding: this.settings.encoding,
        sample_rate: this.settings.sampleRate,
      },
      continue: more,
    });
  }

  private onText(text: string): void {
    const message = asRecord(parseJson(text));
    if (!message) throw protocolError(this.provider, "message is not a JSON object");
    const context = asString(message.context_id);
    if (!context || !this.live.has(context) || this.closed) return; // cancelled or foreign context
    switch (asString(message.type)) {
      case "chunk": {
        const audio = base64ToBytes(asString(message.data) ?? "");
        if (!audio) throw protocolError(this.provider, "chunk data is not base64");
        this.events.onAudio(audio);
        return;
      }
      case "done":
        this.live.delete(context);
        this.acknowledge(context);
        return;
      case "error":
        this.live.delete(context);
        this.events.onError(protocolError(this.provider, asString(message.error) ?? "generation failed"));
        this.acknowledge(context);
        return;
      default:
        return; // timestamps, flush_done, phoneme timestamps
    }
  }

  /** Fire onFlushed for `context` and any empty flushes queued right behind it. */
  private acknowledge(context: string): void {
    if (this.flushing[0] !== context) return;
    this.flushing.shift();
    this.events.onFlushed();
    while (this.flushing[0] === "") {
      this.flushing.shift();
      this.events.onFlushed();
    }
  }

  private onClosed(error: ProviderError | undefined): void {
    if (error && !this.closed) this.events.onError(error);
    this.closed = true;
  }
}
