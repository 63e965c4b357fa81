/**
 * The one seam to the Workers AI binding (`env.AI`). Typed against the real `Ai` interface from
 * @cloudflare/workers-types; tests pass an object whose run() returns what the binding returns (a
 * Response carrying a webSocket, an SSE ReadableStream, a raw Response).
 *
 * The binding's per-model input types lag the model catalog (e.g. Aura's `encoding: "mulaw"` with
 * `container: "none"`, Flux's options), so calls go through a loosely typed run and every result is
 * checked at runtime instead of trusted.
 */
import { ProviderError } from "../types";

export type AiBinding = Pick<Ai, "run">;

type LooseRun = (
  model: string,
  inputs: Record<string, unknown>,
  options?: Record<string, unknown>,
) => Promise<unknown>;

export function runModel(
  ai: AiBinding,
  model: string,
  inputs: Record<string, unknown>,
  options?: Record<string, unknown>,
): Promise<unknown> {
  return (ai.run.bind(ai) as unknown as LooseRun)(model, inputs, options);
}

/**
 * The binding throws plain Errors whose message carries Workers AI's code (e.g. "3040: Capacity
 * temporarily exceeded", "10000: Authentication error", https://developers.cloudflare.com/workers-ai/platform/errors/).
 */
export function aiError(provider: string, error: unknown): ProviderError {
  if (error instanceof ProviderError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof Error && error.name === "AbortError")
    return new ProviderError(provider, "closed", "aborted", false);
  if (/\b(3040|429)\b|capacity|rate limit/i.test(message)) {
    return new ProviderError(provider, "rate-limit", message, true, 429);
  }
  if (/\b(10000|401|403)\b|authenticat|unauthori[sz]ed/i.test(message)) {
    return new ProviderError(provider, "auth", message, false, 401);
  }
  if (/\b(400|5006|3010)\b|invalid input|bad request/i.test(message)) {
    return new ProviderError(provider, "bad-request", message, false, 400);
  }
  return new ProviderError(provider, "unavailable", message, true);
}
