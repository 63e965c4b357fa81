import type { G711Codec } from "@patchbay/shared/audio";
import type { RetryPolicy } from "../common";

export interface DeepgramOptions {
  apiKey: string;
  /** Override for tests or a regional endpoint; default "wss://api.deepgram.com". */
  baseUrl?: string;
  retry?: RetryPolicy;
  connectTimeoutMs?: number;
}

export const DEEPGRAM_BASE_URL = "wss://api.deepgram.com";

export function deepgramUrl(options: DeepgramOptions, path: string, query: Record<string, string>): string {
  const base = (options.baseUrl ?? DEEPGRAM_BASE_URL).replace(/\/+$/, "");
  return `${base}${path}?${new URLSearchParams(query).toString()}`;
}

/** Deepgram's names for the G.711 laws (https://developers.deepgram.com/docs/encoding). */
export function deepgramEncoding(codec: G711Codec): "mulaw" | "alaw" {
  return codec === "PCMU" ? "mulaw" : "alaw";
}

export function deepgramAuth(options: DeepgramOptions): Record<string, string> {
  return { Authorization: `Token ${options.apiKey}` };
}
