import type { RetryPolicy } from "../common";

/** One OpenAI-compatible endpoint: OpenAI itself, Groq, or a local server (same wire format). */
export interface OpenAiCompatibleOptions {
  /** Base URL including the version prefix, e.g. "https://api.openai.com/v1", "https://api.groq.com/openai/v1". */
  baseUrl: string;
  apiKey: string;
  /** Name used in errors and logs; defaults to "openai". */
  name?: string;
  retry?: RetryPolicy;
}

export function endpoint(options: OpenAiCompatibleOptions, path: string): string {
  return `${options.baseUrl.replace(/\/+$/, "")}/${path}`;
}

export function authHeaders(options: OpenAiCompatibleOptions): Record<string, string> {
  return { Authorization: `Bearer ${options.apiKey}` };
}

/** "en-US" → "en": the transcription API wants ISO-639-1. */
export function isoLanguage(language: string): string {
  return language.split(/[-_]/)[0]!.toLowerCase();
}
