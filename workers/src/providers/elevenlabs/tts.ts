/**
 * ElevenLabs streaming TTS over the single-context `stream-input` WebSocket, asking for μ-law 8 kHz.
 * Wire protocol (https://elevenlabs.io/docs/api-reference/text-to-speech/v-1-text-to-speech-voice-id-stream-input ;
 * cloudflare.md §3.3):
 *   GET /v1/text-to-speech/{voice_id}/stream-input?model_id=…&output_format=ulaw_8000, header xi-api-key
 *   client → {"text":" ","voice_settings":{…}} (begin of stream), {"text":"Hello "}, {"text":" ","flush":true},
 *            {"text":""} (end of stream: generate the rest, then the server closes)
 *   server → {"audio":"<base64>","isFinal":false,…} …, {"isFinal":true}
 * This endpoint has no flush acknowledgement, so one utterance = one socket: flush() sends the end of
 * stream and onFlushed fires on isFinal. The next utterance's socket is opened right away so its
 * handshake overlaps playback. clear() abandons the current socket (its late audio is never delivered).
 * A-law calls: the μ-law output is transcoded with @patchbay/shared/audio.
 */
import { transcodeG711 } from "@patchbay/shared/audio";
import {
  asBoolean,
  asRecord,
  asString,
  base64ToBytes,
  connectWebSocket,
  parseJson,
  protocolError,
  type RetryPolicy,
  toProviderError,
  VendorSocket,
  withRetries,
} from "../common";
import type { AudioFormat, ProviderError, TtsEvents, TtsProvider, TtsSession } from "../types";

export interface ElevenLabsOptions {
  apiKey: string;
  /** Default "wss://api.elevenlabs.io". */
  baseUrl?: string;
  /** Default model when the agent names none. */
  model?: string;
  voiceSettings?: { stability: number; similarity_boost: number; speed?: number };
  retry?: RetryPolicy;
  connectTimeoutMs?: number;
}

export const ELEVENLABS_BASE_URL = "wss://api.elevenlabs.io";

export class ElevenLabsTts implements TtsProvider {
  readonly name = "elevenlabs";

  constructor(private readonly options: ElevenLabsOptions) {}

  async connect(
    options: { format: AudioFormat; voice: string; model?: string; language: string; signal?: AbortSignal },
    events: TtsEvents,
  ): Promise<TtsSession> {
    const base = (this.options.baseUrl ?? ELEVENLABS_BASE_URL).replace(/\/+$/, "");
    const query = new URLSearchParams({
      model_id: options.model ?? this.options.model ?? "eleven_flash_v2_5",
      output_format: "ulaw_8000",
      inactivity_timeout: "180",
    });
    const url = `${base}/v1/text-to-speech/${encodeURIComponent(options.voice)}/stream-input?${query}`;
    const open = () =>
      withRetries(
        this.name,
        () =>
          connectWebSocket({
            provider: this.name,
            url,
            headers: { "xi-api-key": this.options.apiKey },
            timeoutMs: this.options.connectTimeoutMs,
          }),
        { policy: this.options.retry },
      );
    const session = new ElevenLabsSession(
      this.name,
      open,
      options.format,
      events,
      this.options.voiceSettings,
    );
    // Fail connect() itself on a bad key or unreachable vendor, like the socket-per-call providers do.
    await session.ready();
    return session;
  }
}

/** One utterance's socket; text written before the socket is open waits in `pending`. */
class Utterance {
  socket: VendorSocket | undefined;
  private pending: unknown[] = [];
  ended = false;
  abandoned = false;
  /** Text was sent on it: losing the socket now loses speech, which must be reported. */
  spoke = false;

  constructor(readonly opened: Promise<void>) {}

  send(message: unknown): void {
    if (this.socket) this.socket.sendJson(message);
    else this.pending.push(message);
  }

  attach(socket: VendorSocket): void {
    this.socket = socket;
    for (const message of this.pending) socket.sendJson(message);
    this.pending = [];
  }
}

class ElevenLabsSession implements TtsSession {
  private current: Utterance;
  private closed = false;

  constructor(
    private readonly provider: string,
    private readonly open: () => Promise<WebSocket>,
    private readonly format: AudioFormat,
    private readonly events: TtsEvents,
    private readonly voiceSettings: ElevenLabsOptions["voiceSettings"],
  ) {
    this.current = this.startUtterance();
  }

  ready(): Promise<void> {
    return this.current.opened;
  }

  speak(text: string): void {
    if (this.closed || text === "") return;
    // The API wants each chunk to end with a space so words are not glued across chunks.
    this.current.spoke = true;
    this.current.send({ text: text.endsWith(" ") ? text : `${text} ` });
  }

  flush(): void {
    if (this.closed) return;
    const finished = this.current;
    finished.send({ text: " ", flush: true });
    finished.send({ text: "" });
    finished.ended = true;
    this.current = this.startUtterance();
  }

  clear(): void {
    if (this.closed) return;
    this.abandon(this.current);
    this.current = this.startUtterance();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abandon(this.current);
  }

  private abandon(utterance: Utterance): void {
    utterance.abandoned = true;
    void utterance.socket?.close(1000, "cleared");
  }

  private startUtterance(): Utterance {
    let utterance: Utterance;
    const opened = this.open().then(
      (socket) => {
        const vendor = new VendorSocket(this.provider, socket, {
          onText: (text) => this.onText(utterance, text),
          onBinary: () => {
            throw protocolError(this.provider, "unexpected binary frame");
          },
          onClosed: (error) => this.onClosed(utterance, error),
        });
        // Begin-of-stream message carries the voice settings (the text must be a single space).
        vendor.sendJson({ text: " ", ...(this.voiceSettings ? { voice_settings: this.voiceSettings } : {}) });
        utterance.attach(vendor);
        if (utterance.abandoned) void vendor.close(1000, "cleared");
      },
      (error: unknown) => {
        if (!utterance.abandoned && !this.closed) this.events.onError(toProviderError(this.provider, error));
        throw error;
      },
    );
    utterance = new Utterance(opened);
    opened.catch(() => {}); // reported through onError above
    return utterance;
  }

  private onText(utterance: Utterance, text: string): void {
    if (utterance.abandoned || this.closed) return;
    const message = asRecord(parseJson(text));
    if (!message) throw protocolError(this.provider, "message is not a JSON object");
    const audio = asString(message.audio);
    if (audio) {
      const ulaw = base64ToBytes(audio);
      if (!ulaw) throw protocolError(this.provider, "audio is not base64");
      this.events.onAudio(
        this.format.codec === "PCMU" ? ulaw : transcodeG711("PCMU", this.format.codec, ulaw),
      );
    }
    if (asBoolean(message.isFinal) === true && utterance.ended) {
      utterance.abandoned = true; // done: nothing more belongs to the caller
      this.events.onFlushed();
      void utterance.socket?.close();
    }
    const error = asString(message.error) ?? asString(message.message);
    if (error && !audio) this.events.onError(protocolError(this.provider, error));
  }

  private onClosed(utterance: Utterance, error: ProviderError | undefined): void {
    if (utterance.abandoned || this.closed) return;
    utterance.abandoned = true;
    // The idle look-ahead socket timing out is harmless: reopen before anything was said on it.
    if (utterance === this.current && !utterance.spoke) {
      this.current = this.startUtterance();
      return;
    }
    this.events.onError(error ?? protocolError(this.provider, "socket closed before isFinal"));
  }
}
