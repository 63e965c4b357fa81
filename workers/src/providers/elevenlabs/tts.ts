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
    try {
      await session.ready();
    } catch (error) {
      await session.close();
      throw error;
    }
    return session;
  }
}

/** One utterance's socket; text written before the socket is open waits in `pending`. */
class Utterance {
  socket: VendorSocket | undefined;
  private pending: unknown[] = [];
  /** flush() sent the end of stream on it. */
  ended = false;
  /** isFinal received: all its audio has arrived. */
  final = false;
  abandoned = false;
  /** Text was sent on it: losing the socket now loses speech, which must be reported. */
  spoke = false;
  /** Audio that arrived while an earlier utterance was still playing out. */
  held: Uint8Array[] = [];
  /** Its socket never opened (reported through onError); the next speak() tries a new one. */
  failed = false;

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

/** Cap on audio held back for a later utterance (60 s of 8 kHz G.711). */
const MAX_HELD_BYTES = 8000 * 60;

class ElevenLabsSession implements TtsSession {
  /**
   * Utterances in speaking order; the last one is the open one receiving speak(). Each has its own
   * socket, so a later one may produce audio before an earlier one finished: only the head delivers,
   * the others hold their audio until they become the head.
   */
  private queue: Utterance[] = [];
  private closed = false;
  private started = false;

  constructor(
    private readonly provider: string,
    private readonly open: () => Promise<WebSocket>,
    private readonly format: AudioFormat,
    private readonly events: TtsEvents,
    private readonly voiceSettings: ElevenLabsOptions["voiceSettings"],
  ) {
    this.queue.push(this.startUtterance());
  }

  private get current(): Utterance {
    return this.queue[this.queue.length - 1]!;
  }

  /** Resolves when the first socket is open; its failure is connect()'s to report, not onError's. */
  async ready(): Promise<void> {
    await this.current.opened;
    this.started = true;
  }

  speak(text: string): void {
    if (this.closed || text === "") return;
    if (this.current.failed && !this.current.spoke) this.queue[this.queue.length - 1] = this.startUtterance();
    // The API wants each chunk to end with a space so words are not glued across chunks.
    this.current.spoke = true;
    this.current.send({ text: text.endsWith(" ") ? text : `${text} ` });
  }

  flush(): void {
    if (this.closed) return;
    const finished = this.current;
    finished.ended = true;
    if (finished.spoke) {
      finished.send({ text: " ", flush: true });
      finished.send({ text: "" });
    } else {
      // Nothing to say: acknowledge in order without a round trip, and reuse nothing of it.
      finished.final = true;
      this.abandonSocket(finished);
    }
    this.queue.push(this.startUtterance());
    this.drain();
  }

  clear(): void {
    if (this.closed) return;
    for (const utterance of this.queue) this.abandon(utterance);
    this.queue = [this.startUtterance()];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const utterance of this.queue) this.abandon(utterance);
    this.queue = [];
  }

  private abandon(utterance: Utterance): void {
    utterance.abandoned = true;
    utterance.held = [];
    this.abandonSocket(utterance);
  }

  private abandonSocket(utterance: Utterance): void {
    void utterance.socket?.close(1000, "done");
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
        if (utterance.abandoned || (utterance.final && !utterance.spoke)) void vendor.close(1000, "done");
      },
      (error: unknown) => {
        utterance.failed = true;
        if (!utterance.abandoned && !this.closed && this.started) {
          this.events.onError(toProviderError(this.provider, error));
        }
        // Later utterances must not wait behind one that will never finish.
        if (utterance.ended || utterance.spoke) {
          utterance.final = true;
          this.drain();
        }
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
      const converted = this.format.codec === "PCMU" ? ulaw : transcodeG711("PCMU", this.format.codec, ulaw);
      if (utterance === this.queue[0]) {
        this.events.onAudio(converted);
      } else {
        const heldBytes = utterance.held.reduce((sum, chunk) => sum + chunk.length, 0);
        if (heldBytes + converted.length > MAX_HELD_BYTES)
          throw protocolError(this.provider, "too much audio held");
        utterance.held.push(converted);
      }
    }
    if (asBoolean(message.isFinal) === true && utterance.ended) {
      utterance.final = true;
      this.abandonSocket(utterance);
      this.drain();
    }
    const error = asString(message.error) ?? asString(message.message);
    if (error && !audio) this.events.onError(protocolError(this.provider, error));
  }

  /** Deliver finished utterances in order: onFlushed for each, then release the next one's held audio. */
  private drain(): void {
    while (this.queue.length > 1 && this.queue[0]!.final) {
      const done = this.queue.shift()!;
      if (done.ended) this.events.onFlushed();
      const next = this.queue[0]!;
      for (const chunk of next.held) this.events.onAudio(chunk);
      next.held = [];
    }
  }

  private onClosed(utterance: Utterance, error: ProviderError | undefined): void {
    if (utterance.abandoned || utterance.final || this.closed) return;
    // The idle look-ahead socket timing out is harmless: replace it before anything was said on it.
    if (utterance === this.current && !utterance.spoke) {
      utterance.abandoned = true;
      this.queue[this.queue.length - 1] = this.startUtterance();
      return;
    }
    this.abandon(utterance);
    this.events.onError(error ?? protocolError(this.provider, "socket closed before isFinal"));
    // Its speech is lost; later utterances must not wait for it, and new text needs a live socket.
    utterance.final = true;
    if (utterance === this.current) this.queue.push(this.startUtterance());
    this.drain();
  }
}
