/**
 * Turning vendor failures into ProviderError, in one place, so every client classifies the same way
 * (livekit/agents-js convention): 4xx are never retryable except 408 (timeout) and 429 (rate limit).
 */
import { ProviderError } from "../types";

export function isRetryableStatus(status: number): boolean {
  if (status === 408 || status === 429) return true;
  return status >= 500 || status === 0;
}

export function codeForStatus(status: number): string {
  if (status === 401 || status === 403) return "auth";
  if (status === 429) return "rate-limit";
  if (status === 408) return "timeout";
  if (status >= 400 && status < 500) return "bad-request";
  return "unavailable";
}

/** Build the error for a non-2xx HTTP answer (including a refused WebSocket upgrade). */
export async function errorFromResponse(provider: string, response: Response): Promise<ProviderError> {
  let detail = "";
  try {
    // Vendors put the useful reason in the body; keep it short, it ends up in logs.
    detail = (await response.text()).slice(0, 200);
  } catch {
    detail = "";
  }
  const status = response.status;
  return new ProviderError(
    provider,
    codeForStatus(status),
    `HTTP ${status}${detail ? `: ${detail}` : ""}`,
    isRetryableStatus(status),
    status,
  );
}

/** Wrap anything thrown by fetch/WebSocket code; ProviderErrors pass through unchanged. */
export function toProviderError(
  provider: string,
  error: unknown,
  fallbackCode = "unavailable",
): ProviderError {
  if (error instanceof ProviderError) return error;
  if (isAbortError(error)) return new ProviderError(provider, "closed", "aborted", false);
  const message = error instanceof Error ? error.message : String(error);
  // Network-level failures (connection refused, reset) are worth another attempt.
  return new ProviderError(provider, fallbackCode, message, fallbackCode === "unavailable");
}

export function isAbortError(error: unknown): boolean {
  return error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError");
}

export function protocolError(provider: string, message: string): ProviderError {
  return new ProviderError(provider, "protocol", message, false);
}

export function closedError(provider: string, message: string): ProviderError {
  // A socket that drops mid-stream may well come back: the pipeline may reconnect.
  return new ProviderError(provider, "closed", message, true);
}
