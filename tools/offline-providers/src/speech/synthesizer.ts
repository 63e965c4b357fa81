/**
 * espeak-ng → sox as a process pipeline: espeak-ng writes 22,050 Hz WAV to stdout as it synthesizes,
 * sox resamples and encodes it to the requested format, and sox's stdout is the response body.
 * Audio leaves while later sentences are still being synthesized. One owner: `kill()` ends both
 * processes (idempotent), so a client that hangs up mid-answer leaves nothing running.
 */
import { type ChildProcess, spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { FORMAT_SPECS, type FormatSpec, type SpeechFormat, wavHeader } from "./formats";
import { espeakVoiceFor, wordsPerMinuteFor } from "./voices";

export interface SynthesisRequest {
  text: string;
  /** espeak-ng voice spec, e.g. "en-us+f3". */
  voice: string;
  wordsPerMinute: number;
  spec: FormatSpec;
}

export interface Synthesis {
  /** Encoded audio, streamed as produced. */
  audio: Readable;
  /** Resolves when both processes exit cleanly or were killed by `kill()`; rejects with their stderr otherwise. */
  done: Promise<void>;
  kill(): void;
}

/**
 * sox's default 8 KiB buffer holds back the first audio; a small one gets it out sooner. `-D` turns off
 * sox's random dither so the same text always gives the same bytes (reproducible tests and measurements).
 */
const SOX_BUFFER_BYTES = "1024";
const STDERR_CAP = 4096;

function collectStderr(child: ChildProcess): () => string {
  let text = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    if (text.length < STDERR_CAP) text += chunk.toString("utf8").slice(0, STDERR_CAP - text.length);
  });
  return () => text.trim();
}

function exitOf(child: ChildProcess, name: string, stderr: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once("error", (error) => reject(new Error(`${name} failed to start: ${error.message}`)));
    child.once("close", (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${name} exited with ${signal ?? code}: ${stderr() || "no stderr"}`));
    });
  });
}

export function synthesize(request: SynthesisRequest): Synthesis {
  const espeak = spawn(
    "espeak-ng",
    ["-v", request.voice, "-s", String(request.wordsPerMinute), "--stdout", "--stdin"],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  const sox = spawn(
    "sox",
    ["--buffer", SOX_BUFFER_BYTES, "-q", "-D", "-t", "wav", "-", ...request.spec.soxOutput],
    {
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  const espeakDone = exitOf(espeak, "espeak-ng", collectStderr(espeak));
  const soxDone = exitOf(sox, "sox", collectStderr(sox));

  // A killed peer turns the pipe writes into EPIPE; the exit codes already report the failure.
  espeak.stdin.on("error", () => {});
  sox.stdin.on("error", () => {});
  espeak.stdout.pipe(sox.stdin);
  espeak.stdin.end(request.text);

  let killed = false;
  const kill = (): void => {
    if (killed) return;
    killed = true;
    espeak.kill("SIGKILL");
    sox.kill("SIGKILL");
  };
  const done = Promise.all([espeakDone, soxDone]).then(
    () => undefined,
    (error: unknown) => {
      if (killed) return; // we ended it on purpose (client gone, server closing): not a failure
      kill();
      throw error;
    },
  );
  // Callers that stop early (client hung up) never await `done`; that must not be an unhandled rejection.
  done.catch(() => {});
  return { audio: sox.stdout, done, kill };
}

export interface SpeechOptions {
  /** OpenAI voice name or espeak spec (default "alloy" = en-us, the best-recognized voice). */
  voice?: string;
  /** OpenAI speed, 0.25–4 (default 1 = 140 wpm). */
  speed?: number;
  /** Default "mulaw": 8 kHz G.711, what a test caller sends as RTP. */
  format?: SpeechFormat;
}

/**
 * In-process synthesis for test callers and the demo (no HTTP): the same voices, rate and formats as
 * /v1/audio/speech, returned whole. WAV gets its header.
 */
export async function synthesizeSpeech(text: string, options: SpeechOptions = {}): Promise<Uint8Array> {
  const voice = espeakVoiceFor(options.voice ?? "alloy");
  if (!voice) throw new RangeError(`unknown voice '${options.voice}'`);
  const spec = FORMAT_SPECS[options.format ?? "mulaw"];
  const synthesis = synthesize({ text, voice, wordsPerMinute: wordsPerMinuteFor(options.speed ?? 1), spec });
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of synthesis.audio) chunks.push(chunk as Buffer);
    await synthesis.done;
  } finally {
    synthesis.kill();
  }
  const data = Buffer.concat(chunks);
  const bytes = spec.format === "wav" ? Buffer.concat([wavHeader(data.length, spec.sampleRate), data]) : data;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}
