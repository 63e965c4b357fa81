/**
 * Speech to text through the AI binding's WebSocket mode, which speaks Deepgram's own protocol
 * (https://developers.cloudflare.com/workers-ai/models/flux/ ; .../models/nova-3/): so the sessions are
 * the Deepgram ones, fed a socket from `env.AI.run(model, inputs, {websocket: true})`.
 *  - Flux (`@cf/deepgram/flux`): linear16 only (model schema), so G.711 is decoded (and by default
 *    upsampled to 16 kHz, the rate Flux is tuned for) before sending. Turn detection incl. eager EOT.
 *  - Nova-3 (`@cf/deepgram/nova-3`): μ-law 8 kHz natively (A-law calls are transcoded to μ-law);
 *    endpointing/utterance end like Deepgram's v1 live API.
 */
import { transcodeG711 } from "@patchbay/shared/audio";
import {
  acceptWebSocketResponse,
  G711ToPcmStream,
  protocolError,
  type RetryPolicy,
  withRetries,
} from "../common";
import { DEEPGRAM_LIVE_CAPABILITIES, DeepgramLiveSession, FLUX_CAPABILITIES, FluxSession } from "../deepgram";
import {
  type AudioFormat,
  ProviderError,
  type SttCapabilities,
  type SttEvents,
  type SttProvider,
  type SttSession,
} from "../types";
import { type AiBinding, aiError, runModel } from "./binding";

export const WORKERS_AI_FLUX = "@cf/deepgram/flux";
export const WORKERS_AI_NOVA_3 = "@cf/deepgram/nova-3";

export interface WorkersAiSttOptions {
  ai: AiBinding;
  /** WORKERS_AI_FLUX (default) or WORKERS_AI_NOVA_3; anything else is refused by the constructor. */
  model?: string;
  /** Flux only: rate the decoded PCM is sent at. */
  fluxSampleRate?: 8000 | 16000;
  eotThreshold?: number;
  /** Flux only: enables EagerEndOfTurn. */
  eagerEotThreshold?: number;
  eotTimeoutMs?: number;
  /** Nova-3 only. */
  endpointingMs?: number;
  utteranceEndMs?: number;
  retry?: RetryPolicy;
}

export class WorkersAiStt implements SttProvider {
  readonly name = "workers-ai";
  readonly capabilities: SttCapabilities;
  private readonly model: string;

  constructor(private readonly options: WorkersAiSttOptions) {
    this.model = options.model ?? WORKERS_AI_FLUX;
    if (this.model !== WORKERS_AI_FLUX && this.model !== WORKERS_AI_NOVA_3) {
      throw new ProviderError(this.name, "bad-request", `no WebSocket STT model ${this.model}`, false);
    }
    this.capabilities = this.model === WORKERS_AI_FLUX ? FLUX_CAPABILITIES : DEEPGRAM_LIVE_CAPABILITIES;
  }

  async connect(
    options: { format: AudioFormat; language: string; signal?: AbortSignal },
    events: SttEvents,
  ): Promise<SttSession> {
    const flux = this.model === WORKERS_AI_FLUX;
    const fluxRate = this.options.fluxSampleRate ?? 16000;
    const inputs: Record<string, unknown> = flux
      ? {
          encoding: "linear16",
          sample_rate: String(fluxRate),
          eot_threshold: this.options.eotThreshold ?? 0.7,
          eot_timeout_ms: this.options.eotTimeoutMs ?? 5000,
          ...(this.options.eagerEotThreshold !== undefined
            ? { eager_eot_threshold: this.options.eagerEotThreshold }
            : {}),
        }
      : {
          encoding: "mulaw",
          sample_rate: options.format.sampleRate,
          channels: 1,
          language: options.language,
          interim_results: true,
          endpointing: this.options.endpointingMs ?? 300,
          utterance_end_ms: this.options.utteranceEndMs ?? 1000,
          vad_events: true,
          smart_format: true,
        };
    const socket = await withRetries(
      this.name,
      async () => {
        let result: unknown;
        try {
          result = await runModel(this.options.ai, this.model, inputs, { websocket: true });
        } catch (error) {
          throw aiError(this.name, error);
        }
        if (!(result instanceof Response))
          throw protocolError(this.name, "websocket mode did not return a Response");
        return acceptWebSocketResponse(this.name, result);
      },
      { policy: this.options.retry, signal: options.signal },
    );
    if (flux) {
      const toPcm = new G711ToPcmStream(options.format.codec, fluxRate);
      return new FluxSession(this.name, socket, events, (audio) => toPcm.process(audio));
    }
    const codec = options.format.codec;
    return new DeepgramLiveSession(this.name, socket, events, {
      transformAudio: codec === "PCMU" ? undefined : (audio) => transcodeG711(codec, "PCMU", audio),
    });
  }
}
