/**
 * Aura TTS through the AI binding, one request per queued sentence, asking for raw μ-law at 8 kHz
 * (`encoding: "mulaw", sample_rate: 8000, container: "none"`, Aura model schema:
 * https://developers.cloudflare.com/workers-ai/models/aura-1/) so no MP3 decoding is ever needed.
 * `returnRawResponse` gives us the HTTP body as a stream. A-law calls: μ-law is transcoded.
 */
import { transcodeG711 } from "@patchbay/shared/audio";
import {
  errorFromResponse,
  protocolError,
  type RetryPolicy,
  SpeechQueue,
  type Synthesize,
  withRetries,
} from "../common";
import type { AudioFormat, TtsEvents, TtsProvider, TtsSession } from "../types";
import { type AiBinding, aiError, runModel } from "./binding";

export const WORKERS_AI_DEFAULT_TTS = "@cf/deepgram/aura-1";

export interface WorkersAiTtsOptions {
  ai: AiBinding;
  retry?: RetryPolicy;
}

export class WorkersAiTts implements TtsProvider {
  readonly name = "workers-ai";

  constructor(private readonly options: WorkersAiTtsOptions) {}

  async connect(
    options: { format: AudioFormat; voice: string; model?: string; language: string; signal?: AbortSignal },
    events: TtsEvents,
  ): Promise<TtsSession> {
    const model = options.model ?? WORKERS_AI_DEFAULT_TTS;
    const synthesize: Synthesize = (text, signal) =>
      this.synthesize(model, options.voice, options.format, text, signal);
    return new SpeechQueue(this.name, synthesize, events);
  }

  private async *synthesize(
    model: string,
    voice: string,
    format: AudioFormat,
    text: string,
    signal: AbortSignal,
  ): AsyncGenerator<Uint8Array> {
    const inputs = { text, speaker: voice, encoding: "mulaw", sample_rate: 8000, container: "none" };
    const body = await withRetries(
      this.name,
      async () => {
        let result: unknown;
        try {
          result = await runModel(this.options.ai, model, inputs, { returnRawResponse: true, signal });
        } catch (error) {
          throw aiError(this.name, error);
        }
        if (result instanceof Response) {
          if (!result.ok) throw await errorFromResponse(this.name, result);
          if (!result.body) throw protocolError(this.name, "speech answer has no body");
          return result.body;
        }
        if (result instanceof ReadableStream) return result as ReadableStream<Uint8Array>;
        throw protocolError(this.name, "speech answer is neither a Response nor a stream");
      },
      { policy: this.options.retry, signal },
    );
    const reader = body.getReader();
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        if (value.length === 0) continue;
        yield format.codec === "PCMU" ? value : transcodeG711("PCMU", format.codec, value);
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }
}
