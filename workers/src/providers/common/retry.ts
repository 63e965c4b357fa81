/**
 * Retries for connection setup only (opening a socket, starting an HTTP request). Once a stream is
 * flowing, a failure is reported, never silently replayed: replaying half a turn would duplicate audio.
 */
import type { ProviderError } from "../types";
import { toProviderError } from "./errors";

export interface RetryPolicy {
  /** Total attempts including the first. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 3, baseDelayMs: 200, maxDelayMs: 2000 };

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export const realSleep: Sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });

export async function withRetries<T>(
  provider: string,
  attempt: () => Promise<T>,
  options: { policy?: RetryPolicy; signal?: AbortSignal; sleep?: Sleep } = {},
): Promise<T> {
  const policy = options.policy ?? DEFAULT_RETRY;
  const sleep = options.sleep ?? realSleep;
  let lastError: ProviderError | undefined;
  for (let index = 0; index < policy.attempts; index++) {
    if (options.signal?.aborted) throw toProviderError(provider, options.signal.reason);
    try {
      return await attempt();
    } catch (error) {
      lastError = toProviderError(provider, error);
      if (!lastError.retryable || index === policy.attempts - 1) throw lastError;
      const delay = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** index);
      await sleep(delay, options.signal);
    }
  }
  throw lastError ?? toProviderError(provider, new Error("no attempts configured"));
}
