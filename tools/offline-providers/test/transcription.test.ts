import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { matchRule } from "../src/chat/agent";
import { type OfflineProviders, startOfflineProviders } from "../src/index";
import { AUTH, decodeWithSox, errorOf, postJson, wavFile } from "./support";

let providers: OfflineProviders;

beforeAll(async () => {
  providers = await startOfflineProviders();
});
afterAll(async () => {
  await providers?.close();
});

/** What a test caller does: our own TTS as 8 kHz μ-law (the RTP payload), decoded to an 8 kHz PCM16 WAV. */
async function telephonyWav(text: string): Promise<Uint8Array> {
  const response = await postJson(`${providers.url}/v1/audio/speech`, {
    model: "tts-1",
    voice: "alloy",
    input: text,
    response_format: "mulaw",
  });
  const ulaw = new Uint8Array(await response.arrayBuffer());
  return wavFile(decodeWithSox(ulaw, ["-t", "ul", "-r", "8000", "-c", "1"]), 8000);
}

async function transcribe(wav: Uint8Array, fields: Record<string, string> = {}): Promise<Response> {
  const form = new FormData();
  form.set("file", new Blob([wav], { type: "audio/wav" }), "turn.wav");
  form.set("model", "whisper-1");
  for (const [name, value] of Object.entries(fields)) form.set(name, value);
  return fetch(`${providers.url}/v1/audio/transcriptions`, { method: "POST", headers: AUTH, body: form });
}

describe("POST /v1/audio/transcriptions", () => {
  it.each([
    ["what are your opening hours", ["opening", "hours"], "hours"],
    ["i want to talk to a human", ["human"], "transfer"],
    ["thanks that is all goodbye", ["goodbye"], "goodbye"],
  ])("hears '%s' after an 8 kHz G.711 round trip", async (phrase, keywords, rule) => {
    const response = await transcribe(await telephonyWav(phrase), { language: "en" });
    expect(response.status).toBe(200);
    const { text } = (await response.json()) as { text: string };
    for (const keyword of keywords) expect(text.split(" ")).toContain(keyword);
    expect(matchRule(text)?.name).toBe(rule);
  });

  it("hears a phrase on a line 20 dB quieter (the level is normalized before decoding)", async () => {
    const wav = await telephonyWav("how much does it cost");
    const samples = new Int16Array(wav.buffer.slice(wav.byteOffset + 44, wav.byteOffset + wav.length));
    for (let i = 0; i < samples.length; i++) samples[i] = Math.round(samples[i]! / 10);
    const response = await transcribe(wavFile(samples, 8000));
    const { text } = (await response.json()) as { text: string };
    expect(text.split(" ")).toContain("cost");
    expect(matchRule(text)?.name).toBe("price");
  });

  it("returns plain text for response_format=text, and empty text for silence", async () => {
    const spoken = await transcribe(await telephonyWav("how much does it cost"), { response_format: "text" });
    expect(spoken.headers.get("content-type")).toMatch(/^text\/plain/);
    expect((await spoken.text()).trim()).toContain("cost");
    const silence = await transcribe(wavFile(new Int16Array(8000), 8000));
    expect(await silence.json()).toEqual({ text: "" });
  });

  it.each([
    ["a file that is not WAV", { file: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]) }, "file"],
    ["no model", { model: undefined }, "model"],
    ["an unsupported response format", { response_format: "srt" }, "response_format"],
  ])("400 for %s", async (_name, override, param) => {
    const form = new FormData();
    const file = "file" in override ? override.file : wavFile(new Int16Array(800), 8000);
    form.set("file", new Blob([file as Uint8Array]), "x.wav");
    if (!("model" in override)) form.set("model", "whisper-1");
    if ("response_format" in override) form.set("response_format", String(override.response_format));
    const response = await fetch(`${providers.url}/v1/audio/transcriptions`, {
      method: "POST",
      headers: AUTH,
      body: form,
    });
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatchObject({ type: "invalid_request_error", param });
  });
});
