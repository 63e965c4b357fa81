/**
 * Speech over OpenAI-compatible HTTP: POST {base}/audio/speech {model, voice, input, response_format}
 * (https://platform.openai.com/docs/api-reference/audio/createSpeech). "pcm" is raw 24 kHz 16-bit
 * little-endian mono; "wav" carries its own rate (local servers often only do wav). The body is streamed,
 * resampled to 8 kHz and encoded to the call's G.711 as it arrives.
 */
import {
  errorFromResponse,
  PcmToG711Stream,
  protocolError,
  SpeechQueue,
  type Synthesize,
  wavDataOffset,
  withRetries,
} from "../common";
import type { AudioFormat, TtsEvents, TtsProvider, TtsSession } from "../types";
import { authHeaders, endpoint, type OpenAiCompatibleOptions } from "./config";

export const OPENAI_PCM_RATE = 24000;
const MAX_WAV_HEADER = 4096;

export interface OpenAiTtsOptions extends OpenAiCompatibleOptions {
  /** Default model when the agent names none, e.g. "gpt-4o-mini-tts" or "tts-1". */
  model: string;
  responseFormat?: "pcm" | "wav";
}

export class OpenAiSpeechTts implements TtsProvider {
  readonly name: string;

  constructor(private readonly options: OpenAiTtsOptions) {
    this.name = options.name ?? "openai";
  }

  async connect(
    options: { format: AudioFormat; voice: string; model?: string; language: string; signal?: AbortSignal },
    events: TtsEvents,
  ): Promise<TtsSession> {
    const model = options.model ?? this.options.model;
    const responseFormat = this.options.responseFormat ?? "pcm";
    const synthesize: Synthesize = (text, signal) =>
      this.synthesize(text, signal, { model, voice: options.voice, responseFormat, format: options.format });
    return new SpeechQueue(this.name, synthesize, events);
  }

  private async *synthesize(
    text: string,
    signal: AbortSignal,
    request: { model: string; voice: string; responseFormat: "pcm" | "wav"; format: AudioFormat },
  ): AsyncGenerator<Uint8Array> {
    const response = await withRetries(
      this.name,
      async () => {
        const answer = await fetch(endpoint(this.options, "audio/speech"), {
          method: "POST",
          headers: { ...authHeaders(this.options), "Content-Type": "application/json" },
          body: JSON.stringify({
            model: request.model,
            voice: request.voice,
            input: text,
            response_format: request.responseFormat,
          }),
          signal,
        });
        if (!answer.ok) throw await errorFromResponse(this.name, answer);
        return answer;
      },
      { policy: this.options.retry, signal },
    );
    if (!response.body) throw protocolError(this.name, "speech answer has no body");
    let converter =
      request.responseFormat === "pcm"
        ? new PcmToG711Stream(request.format.codec, OPENAI_PCM_RATE)
        : undefined;
    let header = new Uint8Array(0);
    const reader = response.body.getReader();
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        let bytes = value;
        if (!converter) {
          // WAV: hold bytes until the header tells us where PCM starts and at what rate.
          const joined = new Uint8Array(header.length + bytes.length);
          joined.set(header);
          joined.set(bytes, header.length);
          const data = wavDataOffset(joined);
          if (!data) {
            if (joined.length > MAX_WAV_HEADER) throw protocolError(this.name, "WAV header not understood");
            header = joined;
            continue;
          }
          converter = new PcmToG711Stream(request.format.codec, data.sampleRate);
          bytes = joined.subarray(data.offset);
        }
        const audio = converter.process(bytes);
        if (audio.length > 0) yield audio;
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }
}
