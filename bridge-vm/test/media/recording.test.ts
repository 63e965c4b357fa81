import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { StereoAligner } from "../../src/media/recording/stereo-aligner";
import { readStereoWav, WavRecorder } from "../../src/media/recording/wav-recorder";

const frameOf = (value: number) => new Int16Array(160).fill(value);

/** Goertzel power of one frequency, normalised by length: how much of a tone a signal holds. */
function tonePower(samples: Int16Array, frequency: number): number {
  const coefficient = 2 * Math.cos((2 * Math.PI * frequency) / 8000);
  let s1 = 0;
  let s2 = 0;
  for (const sample of samples) {
    const s0 = sample + coefficient * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return (s1 * s1 + s2 * s2 - coefficient * s1 * s2) / (samples.length * samples.length);
}

const directories: string[] = [];
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  await Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "patchbay-rec-"));
  directories.push(dir);
  return dir;
}

describe("StereoAligner", () => {
  it("keeps both channels on one timeline and fills gaps with silence", () => {
    const aligner = new StereoAligner(1600);
    const chunks: Int16Array[] = [];
    const emit = (chunk: Int16Array) => chunks.push(chunk);
    for (let frame = 0; frame < 40; frame++) {
      // Caller: frames 10-14 missing (nothing left the jitter buffer). Agent: starts talking at frame 20.
      if (frame < 10 || frame >= 15) aligner.write(0, frameOf(1000 + frame), frame * 160 + (frame % 3), emit); // timer wobble
      if (frame >= 20) aligner.write(1, frameOf(-2000 - frame), frame * 160, emit);
      aligner.drainUntil(frame * 160 - 320, emit);
    }
    aligner.drainUntil(aligner.endSample, emit);
    const all = new Int16Array(chunks.reduce((n, c) => n + c.length, 0));
    let offset = 0;
    for (const chunk of chunks) {
      all.set(chunk, offset);
      offset += chunk.length;
    }
    const left = (sample: number) => all[sample * 2]!;
    const right = (sample: number) => all[sample * 2 + 1]!;
    expect(all.length).toBe(40 * 160 * 2);
    expect(left(5 * 160 + 7)).toBe(1005);
    expect(left(12 * 160)).toBe(0); // the caller's gap is silence
    expect(left(15 * 160)).toBe(1015); // and the caller resumes at the right time, not early
    expect(right(19 * 160 + 159)).toBe(0);
    expect(right(20 * 160)).toBe(-2020); // the agent's first frame lands at 400 ms
    expect(left(20 * 160)).toBe(1020);
  });
});

describe("WavRecorder", () => {
  it("writes a stereo 8 kHz 16-bit WAV whose header is exact after close", async () => {
    const path = join(await tempDir(), "nested", "call.wav");
    const recorder = await WavRecorder.create(path);
    for (let frame = 0; frame < 100; frame++) {
      recorder.write(0, frameOf(frame), frame * 160);
      if (frame % 2 === 0) recorder.write(1, frameOf(-frame), frame * 160);
      recorder.advance(frame * 160, frame * 20);
    }
    await recorder.close();
    await recorder.close(); // idempotent
    const wav = readStereoWav(await readFile(path));
    expect(wav).toMatchObject({ channels: 2, sampleRate: 8000, headerFrames: 16000 });
    expect(wav.left.length).toBe(16000);
    expect(wav.left[50 * 160]).toBe(50);
    expect(wav.right[50 * 160]).toBe(-50);
    expect(wav.right[51 * 160]).toBe(0);
  });

  it("stays readable when the recording process is SIGKILLed mid-call", async () => {
    const path = join(await tempDir(), "killed.wav");
    const script = join(import.meta.dirname, "support", "record-until-killed.ts");
    const child = spawn(process.execPath, ["--import", "tsx", script, path, "1500"], {
      cwd: join(import.meta.dirname, "..", ".."),
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (code) => reject(new Error(`recorder child exited early (${code})`)));
      child.stdout!.on("data", (data: Buffer) => {
        if (data.toString().includes("ready")) resolve();
      });
    });
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));

    const bytes = await readFile(path);
    const wav = readStereoWav(bytes);
    expect(wav.channels).toBe(2);
    // At least ~1 s of audio made it to disk (1.5 s recorded minus the 200 ms in-memory lag, minus slack).
    expect(wav.left.length).toBeGreaterThan(8000);
    // The header was patched with a real size, never more than what is on disk.
    expect(wav.headerFrames).toBeDefined();
    expect(wav.headerFrames!).toBeLessThanOrEqual(wav.left.length);
    expect(wav.headerFrames!).toBeGreaterThan(4000);
    // And it is the audio we wrote: 440 Hz on the left, 880 Hz on the right.
    const left = wav.left.subarray(0, 8000);
    const right = wav.right.subarray(0, 8000);
    expect(tonePower(left, 440)).toBeGreaterThan(100 * tonePower(left, 880));
    expect(tonePower(right, 880)).toBeGreaterThan(100 * tonePower(right, 440));
  });
});
