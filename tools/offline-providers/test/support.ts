/** Test helpers: a server per file, authenticated requests, SSE parsing and audio measurements via sox. */
import { spawnSync } from "node:child_process";

export const AUTH = { authorization: "Bearer test-key" };

export function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = AUTH,
): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** Splits an SSE body into its `data:` payloads, checking the framing the real API uses. */
export function sseData(body: string): string[] {
  const events = body.split("\n\n").filter((event) => event.length > 0);
  return events.map((event) => {
    if (!event.startsWith("data: ")) throw new Error(`not an SSE data event: ${JSON.stringify(event)}`);
    return event.slice("data: ".length);
  });
}

/** Decodes headerless audio with sox into PCM16 samples at its own rate. */
export function decodeWithSox(bytes: Uint8Array, inputArgs: string[]): Int16Array {
  const result = spawnSync(
    "sox",
    ["-V1", ...inputArgs, "-", "-t", "raw", "-e", "signed-integer", "-b", "16", "-L", "-"],
    {
      input: bytes,
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  if (result.status !== 0) throw new Error(`sox failed: ${result.stderr.toString()}`);
  const out = result.stdout;
  return new Int16Array(out.buffer, out.byteOffset, Math.floor(out.length / 2));
}

/** RMS of each 20 ms frame, in dBFS. */
export function frameLevels(samples: Int16Array, sampleRate: number): number[] {
  const frame = Math.round(sampleRate * 0.02);
  const levels: number[] = [];
  for (let start = 0; start + frame <= samples.length; start += frame) {
    let sum = 0;
    for (let i = start; i < start + frame; i++) sum += (samples[i]! / 32768) ** 2;
    levels.push(10 * Math.log10(sum / frame + 1e-12));
  }
  return levels;
}

/** A PCM16 mono WAV file around the given samples. */
export function wavFile(samples: Int16Array, sampleRate: number): Uint8Array {
  const data = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
  const header = Buffer.alloc(44);
  header.write("RIFF", 0, "ascii");
  header.writeUInt32LE(36 + data.length, 4);
  header.write("WAVEfmt ", 8, "ascii");
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36, "ascii");
  header.writeUInt32LE(data.length, 40);
  return new Uint8Array(Buffer.concat([header, data]));
}

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** The error object of an OpenAI-shaped error response. */
export async function errorOf(response: Response): Promise<OpenAiErrorBody["error"]> {
  return ((await response.json()) as OpenAiErrorBody).error;
}
