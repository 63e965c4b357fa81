/**
 * Segment transcription over OpenAI-compatible HTTP (POST {base}/audio/transcriptions, multipart with
 * `file`, `model`, `language`, `response_format=json` → `{"text": "..."}`;
 * https://platform.openai.com/docs/api-reference/audio/createTranscription). The API has no streaming
 * or end-of-turn detection, so the pipeline's VAD calls finalize(): we upload the buffered segment as
 * an 8 kHz PCM16 WAV and report onFinal + onEndOfTurn with the text.
 */
import { decodeG711 } from "@patchbay/shared/audio";
import { errorFromResponse, protocolError, toProviderError, wavFromPcm16, withRetries } from "../common";
import { asRecord, asString } from "../common/json";
import type { AudioFormat, SttCapabilities, SttEvents, SttProvider, SttSession } from "../types";
import { authHeaders, endpoint, isoLanguage, type OpenAiCompatibleOptions } from "./config";

/** 60 s of 8 kHz G.711: a turn longer than that is cut (the oldest audio is kept). */
export const MAX_SEGMENT_BYTES = 8000 * 60;

export interface OpenAiSttOptions extends OpenAiCompatibleOptions {
  /** e.g. "whisper-1", "gpt-4o-mini-transcribe", Groq "whisper-large-v3-turbo". */
  model: string;
}

export class OpenAiSegmentStt implements SttProvider {
  readonly name: string;
  readonly capabilities: SttCapabilities = {
    endOfTurn: false,
    eagerEndOfTurn: false,
    interimResults: false,
    speechStarted: false,
  };

  constructor(private readonly options: OpenAiSttOptions) {
    this.name = options.name ?? "openai";
  }

  async connect(
    options: { format: AudioFormat; language: string; signal?: AbortSignal },
    events: SttEvents,
  ): Promise<SttSession> {
    return new SegmentSession(this.name, this.options, options.format, isoLanguage(options.language), events);
  }
}

class SegmentSession implements SttSession {
  private chunks: Uint8Array[] = [];
  private bufferedBytes = 0;
  private closed = false;
  private readonly lifetime = new AbortController();
  /** Transcriptions finish in the order their segments ended. */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly provider: string,
    private readonly options: OpenAiSttOptions,
    private readonly format: AudioFormat,
    private readonly language: string,
    private readonly events: SttEvents,
  ) {}

  sendAudio(audio: Uint8Array): void {
    if (this.closed || this.bufferedBytes >= MAX_SEGMENT_BYTES) return;
    const room = MAX_SEGMENT_BYTES - this.bufferedBytes;
    const kept = audio.length > room ? audio.subarray(0, room) : audio;
    // Copy: the caller may reuse its frame buffer.
    this.chunks.push(kept.slice());
    this.bufferedBytes += kept.length;
  }

  finalize(): void {
    if (this.closed || this.bufferedBytes === 0) return;
    const segment = new Uint8Array(this.bufferedBytes);
    let offset = 0;
    for (const chunk of this.chunks) {
      segment.set(chunk, offset);
      offset += chunk.length;
    }
    this.chunks = [];
    this.bufferedBytes = 0;
    const pending = this.transcribe(segment);
    this.chain = this.chain.then(async () => {
      let text: string;
      try {
        text = await pending;
      } catch (error) {
        if (!this.closed) this.events.onError(toProviderError(this.provider, error));
        return;
      }
      if (this.closed) return;
      if (text !== "") this.events.onFinal(text);
      this.events.onEndOfTurn(text, { eager: false });
    });
  }

  private async transcribe(segment: Uint8Array): Promise<string> {
    const wav = wavFromPcm16(decodeG711(this.format.codec, segment), this.format.sampleRate);
    const response = await withRetries(
      this.provider,
      async () => {
        const form = new FormData();
        form.append("file", new Blob([wav], { type: "audio/wav" }), "segment.wav");
        form.append("model", this.options.model);
        form.append("language", this.language);
        form.append("response_format", "json");
        const answer = await fetch(endpoint(this.options, "audio/transcriptions"), {
          method: "POST",
          headers: authHeaders(this.options),
          body: form,
          signal: this.lifetime.signal,
        });
        if (!answer.ok) throw await errorFromResponse(this.provider, answer);
        return answer;
      },
      { policy: this.options.retry, signal: this.lifetime.signal },
    );
    let json: unknown;
    try {
      json = await response.json();
    } catch {
      throw protocolError(this.provider, "transcription answer is not JSON");
    }
    const text = asString(asRecord(json)?.text);
    if (text === undefined) throw protocolError(this.provider, "transcription answer has no text");
    return text.trim();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.chunks = [];
    this.lifetime.abort();
  }
}
