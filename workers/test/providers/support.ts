/**
 * Test-side (workerd) helpers: fake vendor URLs, violation checks, caller audio, event recorders and
 * the fake `Ai` binding. The fake binding's run() returns exactly what the real binding returns — a
 * Response carrying an unaccepted webSocket for `{websocket: true}`, an SSE ReadableStream for
 * `stream: true`, the raw Response for `returnRawResponse` — produced by the Node fakes, so the
 * provider code on our side of that boundary runs unchanged.
 */
import { encodeG711, type G711Codec } from "@patchbay/shared/audio";
import { expect, inject } from "vitest";
import type { AiBinding } from "../../src/providers/workers-ai";
import type { FakeVendorUrls } from "./global-setup";

export const GOOD_KEY = "test-key";
export const BAD_KEY = "bad-key";
export const BUSY_KEY = "busy-key";
/** Tests keep retries short and deterministic. */
export const NO_RETRY = { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 };
export const FAST_RETRY = { attempts: 3, baseDelayMs: 5, maxDelayMs: 10 };

export function fakes(): FakeVendorUrls {
  return inject("fakeVendors");
}

export function wsUrl(httpUrl: string): string {
  return httpUrl.replace(/^http/, "ws");
}

export async function resetFakes(): Promise<void> {
  await Promise.all(Object.values(fakes()).map((url) => fetch(`${url}/__fake/reset`, { method: "POST" })));
}

export async function fakeState(
  url: string,
): Promise<{ violations: string[]; counters: Record<string, number> }> {
  const response = await fetch(`${url}/__fake/violations`);
  return response.json();
}

export async function expectNoViolations(): Promise<void> {
  const all: string[] = [];
  for (const url of Object.values(fakes())) all.push(...(await fakeState(url)).violations);
  expect(all).toEqual([]);
}

/** 20 ms frames of caller audio: `toneMs` of a 440 Hz tone then `silenceMs` of silence. */
export function callerAudio(codec: G711Codec, toneMs: number, silenceMs: number): Uint8Array[] {
  const frames: Uint8Array[] = [];
  let t = 0;
  for (let ms = 0; ms < toneMs + silenceMs; ms += 20) {
    const pcm = new Int16Array(160);
    for (let i = 0; i < 160; i++, t++) {
      pcm[i] = ms < toneMs ? Math.round(8000 * Math.sin((2 * Math.PI * 440 * t) / 8000)) : 0;
    }
    frames.push(encodeG711(codec, pcm));
  }
  return frames;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll until `check` passes or `timeoutMs` ends (then the last assertion error is thrown). */
export async function eventually(check: () => void, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    try {
      check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await delay(10);
    }
  }
}

/** The fake Workers AI binding; `scenario` selects a failure path on the Node fake. */
export function fakeAi(scenario?: "unauthorized" | "busy" | "drop" | "flaky"): AiBinding {
  const prefix = scenario ? `/s/${scenario}` : "";
  const run = async (model: string, inputs: Record<string, unknown>, options?: Record<string, unknown>) => {
    if (options?.websocket === true) {
      if (scenario === "unauthorized") throw new Error("10000: Authentication error");
      if (scenario === "busy") throw new Error("3040: Capacity temporarily exceeded");
      const query = new URLSearchParams(Object.entries(inputs).map(([k, v]) => [k, String(v)]));
      return fetch(`${fakes().deepgram}${prefix}/workers-ai/${model}?${query}`, {
        headers: { Upgrade: "websocket" },
      });
    }
    const response = await fetch(`${fakes().openai}${prefix}/workers-ai/run/${model}`, {
      method: "POST",
      body: JSON.stringify(inputs),
      signal: options?.signal as AbortSignal | undefined,
    });
    if (options?.returnRawResponse === true) return response;
    if (!response.ok) {
      // The binding throws for failed runs, with Workers AI's numeric code in the message.
      const body = (await response.json()) as { errors?: { code: number; message: string }[] };
      const first = body.errors?.[0];
      throw new Error(`${first?.code ?? response.status}: ${first?.message ?? "error"}`);
    }
    return response.body;
  };
  // Only run() is part of the boundary; the cast stands in for the rest of the binding's surface.
  return { run } as unknown as AiBinding;
}
