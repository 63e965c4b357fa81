import { describe, expect, it } from "vitest";
import { wavHeader } from "../src/speech/formats";
import { parseWav } from "../src/speech/wav";

function wav(dataBytes: number, declared = dataBytes): Uint8Array {
  const header = wavHeader(dataBytes, 8000);
  header.writeUInt32LE(declared, 40);
  return new Uint8Array(Buffer.concat([header, Buffer.alloc(dataBytes)]));
}

describe("parseWav", () => {
  it("reads a canonical PCM16 header", () => {
    expect(parseWav(wav(16000))).toMatchObject({
      encoding: "pcm16",
      sampleRate: 8000,
      channels: 1,
      durationSeconds: 1,
    });
  });

  it("clamps a streaming header's oversize data length to the bytes present", () => {
    const parsed = parseWav(wav(1600, 0xffffffff));
    expect(parsed).toMatchObject({ durationSeconds: 0.1 });
  });

  it("reports coded errors instead of throwing", () => {
    expect(parseWav(new Uint8Array(4))).toMatchObject({ code: "truncated" });
    expect(parseWav(new TextEncoder().encode("RIFF....AVI LIST"))).toMatchObject({ code: "not-riff" });
    expect(parseWav(wav(0).subarray(0, 20))).toMatchObject({ code: "truncated" });
    const float = wav(100);
    float[20] = 3; // IEEE float
    expect(parseWav(float)).toMatchObject({ code: "unsupported-format" });
  });

  it("never throws on arbitrary bytes after a RIFF header", () => {
    for (let seed = 0; seed < 200; seed++) {
      const bytes = wav(64);
      for (let i = 12; i < bytes.length; i++) bytes[i] = (seed * 31 + i * 17) % 256;
      expect(() => parseWav(bytes)).not.toThrow();
    }
  });
});
