/**
 * Fixed, configurable latency per stage, for latency experiments: the pipeline's measurements
 * should show exactly what was added here. Set per server (options / env) or per request with
 * `?latency_ms=N` on the endpoint URL.
 */
import type { IncomingMessage } from "node:http";

export interface StageLatency {
  /** Before a transcription is returned. */
  sttMs: number;
  /** Before the first chat chunk (time to first token). */
  llmFirstTokenMs: number;
  /** Between streamed chat chunks. */
  llmTokenMs: number;
  /** Before the first byte of synthesized audio. */
  ttsFirstByteMs: number;
}

export const NO_LATENCY: StageLatency = { sttMs: 0, llmFirstTokenMs: 0, llmTokenMs: 0, ttsFirstByteMs: 0 };

const MAX_LATENCY_MS = 60_000;

function clampMs(value: number): number {
  return Number.isFinite(value) ? Math.min(MAX_LATENCY_MS, Math.max(0, Math.round(value))) : 0;
}

/** Reads OFFLINE_LATENCY_{STT,LLM,LLM_TOKEN,TTS}_MS; unset or invalid values are 0. */
export function latencyFromEnv(env: NodeJS.ProcessEnv): StageLatency {
  const read = (name: string): number => clampMs(Number(env[name] ?? "0"));
  return {
    sttMs: read("OFFLINE_LATENCY_STT_MS"),
    llmFirstTokenMs: read("OFFLINE_LATENCY_LLM_MS"),
    llmTokenMs: read("OFFLINE_LATENCY_LLM_TOKEN_MS"),
    ttsFirstByteMs: read("OFFLINE_LATENCY_TTS_MS"),
  };
}

/** The request's `?latency_ms=` override of its stage's first delay, if present. */
export function latencyOverride(request: IncomingMessage): number | undefined {
  const raw = new URL(request.url ?? "/", "http://offline.invalid").searchParams.get("latency_ms");
  return raw === null ? undefined : clampMs(Number(raw));
}

/** Resolves after `ms`, or rejects early when `signal` aborts (the client went away). */
export function delay(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0) return signal.aborted ? Promise.reject(signal.reason) : Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
