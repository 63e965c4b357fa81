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
 * clear() cancels the contexts; any late chunk of one carries its old context_id and is dropped.
 * Contexts are generated concurrently, so a later context's audio is held until the earlier is done.
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

interface Context {
  /** "" for a flush with nothing said: acknowledged in order without a round trip. */
  id: string;
  /** flush() ended it (continue:false sent). */
  ended: boolean;
  /** `done` (or `error`) received: all its audio has arrived. */
  done: boolean;
  /** Audio that arrived while an earlier context was still playing out. */
  held: Uint8Array[];
  heldBytes: number;
}

/** Cap on audio held back for a later context (60 s of 8 kHz G.711). */
const MAX_HELD_BYTES = 8000 * 60;

class CartesiaSession implements TtsSession {
  private readonly vendor: VendorSocket;
  private contextCounter = 0;
  /**
   * Contexts in speaking order; the last may be open (receiving speak()). Cartesia generates contexts
   * concurrently on one socket, so only the head delivers audio and later ones hold theirs.
   */
  private contexts: Context[] = [];
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

  private get open(): Context | undefined {
    const last = this.contexts[this.contexts.length - 1];
    return last && !last.ended ? last : undefined;
  }

  speak(text: string): void {
    if (this.closed || text === "") return;
    let context = this.open;
    if (!context) {
      context = {
        id: `${this.sessionId}-${++this.contextCounter}`,
        ended: false,
        done: false,
        held: [],
        heldBytes: 0,
      };
      this.contexts.push(context);
    }
    this.sendGeneration(context.id, text, true);
  }

  flush(): void {
    if (this.closed) return;
    const context = this.open;
    if (context) {
      context.ended = true;
      this.sendGeneration(context.id, "", false);
    } else {
      this.contexts.push({ id: "", ended: true, done: true, held: [], heldBytes: 0 });
      this.drain();
    }
  }

  clear(): void {
    if (this.closed) return;
    for (const context of this.contexts) {
      if (context.id !== "" && !context.done) this.vendor.sendJson({ context_id: context.id, cancel: true });
    }
    this.contexts = [];
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
    const id = asString(message.context_id);
    const context = id ? this.contexts.find((candidate) => candidate.id === id) : undefined;
    if (!context || this.closed) return; // cancelled or foreign context
    switch (asString(message.type)) {
      case "chunk": {
        const audio = base64ToBytes(asString(message.data) ?? "");
        if (!audio) throw protocolError(this.provider, "chunk data is not base64");
        if (context === this.contexts[0]) {
          this.events.onAudio(audio);
        } else {
          context.heldBytes += audio.length;
          if (context.heldBytes > MAX_HELD_BYTES) throw protocolError(this.provider, "too much audio held");
          context.held.push(audio);
        }
        return;
      }
      case "done":
        context.done = true;
        this.drain();
        return;
      case "error":
        context.done = true;
        this.events.onError(protocolError(this.provider, asString(message.error) ?? "generation failed"));
        this.drain();
        return;
      default:
        return; // timestamps, flush_done, phoneme timestamps
    }
  }

  /** Acknowledge finished contexts in order and release the next one's held audio. */
  private drain(): void {
    while (this.contexts[0]?.done && this.contexts[0].ended) {
      this.contexts.shift();
      this.events.onFlushed();
      const next = this.contexts[0];
      if (next) {
        for (const chunk of next.held) this.events.onAudio(chunk);
        next.held = [];
        next.heldBytes = 0;
      }
    }
  }

  private onClosed(error: ProviderError | undefined): void {
    if (error && !this.closed) this.events.onError(error);
    this.closed = true;
  }
}
