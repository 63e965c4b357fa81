import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OfflineProviders, startOfflineProviders } from "../src/index";
import { postJson } from "./support";

/** Names of this process's direct child processes (espeak-ng, sox, pocketsphinx are spawned here). */
function childProcessNames(): string[] {
  try {
    return execFileSync("ps", ["-o", "comm=", "--ppid", String(process.pid)], { encoding: "utf8" })
      .split("\n")
      .map((line) => line.trim())
      .filter((name) => name.length > 0 && name !== "ps");
  } catch {
    return []; // ps exits 1 when there are no children
  }
}

async function waitForNoSynthesisProcesses(): Promise<string[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const names = childProcessNames().filter((name) => name === "espeak-ng" || name === "sox");
    if (names.length === 0) return names;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return childProcessNames();
}

let providers: OfflineProviders;

beforeAll(async () => {
  providers = await startOfflineProviders({ latency: { llmFirstTokenMs: 300 } });
});
afterAll(async () => {
  await providers?.close();
});

const LONG_TEXT = Array.from({ length: 40 }, () => "We are open nine to five, Monday to Friday.").join(" ");

describe("lifecycle", () => {
  it("kills espeak-ng and sox when the client hangs up mid-answer", async () => {
    const controller = new AbortController();
    const response = await fetch(`${providers.url}/v1/audio/speech`, {
      method: "POST",
      headers: { authorization: "Bearer k", "content-type": "application/json" },
      body: JSON.stringify({ model: "tts-1", voice: "alloy", input: LONG_TEXT, response_format: "pcm" }),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(first.value?.length).toBeGreaterThan(0);
    // ~2 min of audio (7 MB of pcm) cannot fit in socket buffers: synthesis is still running here.
    expect(childProcessNames()).toContain("sox");
    controller.abort();
    await reader.cancel().catch(() => {});
    expect(await waitForNoSynthesisProcesses()).toEqual([]);
    // The server keeps serving.
    expect((await fetch(`${providers.url}/healthz`)).status).toBe(200);
  });

  it("adds the configured first-token latency, and a per-request override replaces it", async () => {
    const body = { model: "m", messages: [{ role: "user", content: "hello" }] };
    let started = performance.now();
    expect((await postJson(`${providers.url}/v1/chat/completions`, body)).status).toBe(200);
    // A lower bound only: the server must not answer before the configured delay.
    expect(performance.now() - started).toBeGreaterThanOrEqual(280);
    started = performance.now();
    await postJson(`${providers.url}/v1/chat/completions?latency_ms=600`, body);
    expect(performance.now() - started).toBeGreaterThanOrEqual(580);
  });

  it("close() is idempotent and leaves no child processes", async () => {
    const extra = await startOfflineProviders();
    await Promise.all([extra.close(), extra.close()]);
    await extra.close();
    expect(await waitForNoSynthesisProcesses()).toEqual([]);
  });
});
