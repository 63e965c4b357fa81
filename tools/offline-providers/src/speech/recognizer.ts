/**
 * PocketSphinx transcription restricted to the scripted caller phrases.
 *
 * `create()` prepares a work directory once: the en-us acoustic model linked file by file with a
 * tuned feat.params (see vocabulary.ts), a dictionary of only the phrase words and a JSGF grammar.
 * Each `transcribe()` converts the upload's samples with sox to 16 kHz mono PCM (the model is wideband;
 * upsampling 8 kHz telephony audio measured better than `-samprate 8000`), normalizes its peak level,
 * writes it as a WAV in the work directory and runs `pocketsphinx_continuous -infile` on it. A file, not a pipe: Node's child stdio are socket
 * pairs, which `-infile /dev/stdin` cannot open.
 * PocketSphinx is CPU heavy, so at most `maxConcurrent` decodes run at once; the rest queue.
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { wavHeader } from "./formats";
import {
  buildDictionary,
  buildJsgf,
  phraseWords,
  TELEPHONY_ESPEAK_CMN_INIT,
  tuneFeatureParams,
} from "./vocabulary";
import type { WavInfo } from "./wav";

export const DEFAULT_MODEL_DIR = "/usr/share/pocketsphinx/model/en-us/en-us";
export const DEFAULT_DICTIONARY = "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict";

export interface RecognizerOptions {
  phrases: readonly string[];
  modelDir?: string;
  dictionaryPath?: string;
  /** Override the tuned initial cepstral mean; `null` keeps the model's own (for measurements). */
  cmnInit?: string | null;
  /** Decode with the stock language model instead of the phrase grammar (for measurements). */
  freeForm?: boolean;
  maxConcurrent?: number;
}

const OUTPUT_CAP = 64 * 1024;
const DECODER_RATE = 16000;
/** The transcription endpoint caps uploads at 120 s; 130 s of 16 kHz PCM16 leaves headroom. */
const MAX_DECODER_INPUT_BYTES = 130 * DECODER_RATE * 2;

/**
 * Peak level the decoder expects: espeak-ng's own peak (about -3.6 dBFS). The tuned cepstral mean
 * includes the energy coefficient c0, so recognition depends on level: measured 6/9 phrases at -20 dB,
 * 8/9 at -6 dB, 9/9 at 0 and +4 dB; with peak normalization 9/9 from -30 dB to +4 dB.
 */
export const TARGET_PEAK = Math.round(32767 * 10 ** (-3.6 / 20));
/** Below this peak (-45 dBFS) the input is silence or line noise: left as is, not amplified. */
export const NORMALIZE_FLOOR = Math.round(32767 * 10 ** (-45 / 20));

/** Scales samples in place so their peak is TARGET_PEAK (unless the input is near silence). */
export function normalizePeak(samples: Int16Array): void {
  let peak = 0;
  for (const sample of samples) peak = Math.max(peak, Math.abs(sample));
  if (peak < NORMALIZE_FLOOR || peak === TARGET_PEAK) return;
  const gain = TARGET_PEAK / peak;
  for (let i = 0; i < samples.length; i++) samples[i] = Math.round(samples[i]! * gain);
}

export class PocketSphinxRecognizer {
  private closed = false;
  private running = 0;
  private sequence = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly children = new Set<ReturnType<typeof spawn>>();

  private constructor(
    private readonly workDir: string,
    private readonly decoderArgs: readonly string[],
    private readonly maxConcurrent: number,
  ) {}

  static async create(options: RecognizerOptions): Promise<PocketSphinxRecognizer> {
    const modelDir = options.modelDir ?? DEFAULT_MODEL_DIR;
    const workDir = await mkdtemp(join(tmpdir(), "patchbay-sphinx-"));
    try {
      const hmmDir = join(workDir, "hmm");
      const args = ["-hmm", hmmDir, "-logfn", "/dev/null"];
      const cmnInit = options.cmnInit === undefined ? TELEPHONY_ESPEAK_CMN_INIT : options.cmnInit;
      await linkModel(modelDir, hmmDir, cmnInit);
      if (!options.freeForm) {
        const words = new Set(options.phrases.flatMap(phraseWords));
        const cmudict = await readFile(options.dictionaryPath ?? DEFAULT_DICTIONARY, "utf8");
        const dictionary = buildDictionary(words, cmudict);
        if (dictionary.missing.length > 0) {
          throw new Error(
            `words missing from the pronunciation dictionary: ${dictionary.missing.join(", ")}`,
          );
        }
        await writeFile(join(workDir, "phrases.dict"), dictionary.text);
        await writeFile(join(workDir, "phrases.gram"), buildJsgf(options.phrases));
        args.push("-dict", join(workDir, "phrases.dict"), "-jsgf", join(workDir, "phrases.gram"));
      }
      return new PocketSphinxRecognizer(workDir, args, Math.max(1, options.maxConcurrent ?? 2));
    } catch (error) {
      await rm(workDir, { recursive: true, force: true });
      throw error;
    }
  }

  /** Transcribes one utterance (or several, joined by spaces). Empty string when nothing was heard. */
  async transcribe(audio: WavInfo, signal?: AbortSignal): Promise<string> {
    if (this.closed) throw new Error("recognizer is closed");
    await this.acquire();
    try {
      signal?.throwIfAborted();
      return await this.decode(audio, signal);
    } finally {
      this.release();
    }
  }

  private async decode(audio: WavInfo, signal?: AbortSignal): Promise<string> {
    const input =
      audio.encoding === "pcm16"
        ? ["-t", "raw", "-e", "signed-integer", "-b", "16", "-L"]
        : ["-t", audio.encoding === "mulaw" ? "ul" : "al"];
    // -D: no random dither, so a transcription is repeatable (dither noise, amplified by the peak
    // normalization on quiet input, measurably changed results between runs).
    const raw = await this.run(
      "sox",
      ["-V1", "-D", ...input, "-r", String(audio.sampleRate), "-c", String(audio.channels), "-"].concat([
        "-t",
        "raw",
        "-r",
        String(DECODER_RATE),
        "-c",
        "1",
        "-b",
        "16",
        "-e",
        "signed-integer",
        "-L",
        "-",
      ]),
      audio.data,
      signal,
      MAX_DECODER_INPUT_BYTES,
    );
    // A fresh copy: Int16Array needs an even byte offset, which a concatenated Buffer does not promise.
    const samples = new Int16Array(Uint8Array.from(raw.subarray(0, raw.length - (raw.length % 2))).buffer);
    normalizePeak(samples);
    const wavPath = join(this.workDir, `utterance-${++this.sequence}.wav`);
    try {
      const pcm = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
      await writeFile(wavPath, Buffer.concat([wavHeader(pcm.length, DECODER_RATE), pcm]));
      const stdout = await this.run(
        "pocketsphinx_continuous",
        [...this.decoderArgs, "-infile", wavPath],
        undefined,
        signal,
        OUTPUT_CAP,
      );
      return joinHypotheses(stdout.toString("utf8"));
    } finally {
      await rm(wavPath, { force: true });
    }
  }

  /** Runs one process to completion; its stdout (capped at `outputCap`) is the result. Killed on abort or close. */
  private run(
    command: string,
    args: string[],
    stdin: Uint8Array | undefined,
    signal: AbortSignal | undefined,
    outputCap: number,
  ): Promise<Buffer> {
    const child = spawn(command, args, { stdio: [stdin ? "pipe" : "ignore", "pipe", "pipe"] });
    this.children.add(child);
    const kill = (): void => {
      child.kill("SIGKILL");
    };
    signal?.addEventListener("abort", kill, { once: true });
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      if (stdoutBytes + chunk.length > outputCap) return kill();
      stdout.push(chunk);
      stdoutBytes += chunk.length;
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      if (stderr.length < OUTPUT_CAP) stderr += chunk.toString("utf8");
    });
    if (stdin && child.stdin) {
      child.stdin.on("error", () => {}); // a process that died early: its exit code reports it
      child.stdin.end(stdin);
    }
    return new Promise((resolve, reject) => {
      child.once("error", (error) => reject(new Error(`${command} failed to start: ${error.message}`)));
      child.once("close", (code, exitSignal) => {
        signal?.removeEventListener("abort", kill);
        this.children.delete(child);
        if (signal?.aborted) reject(new Error("transcription aborted"));
        else if (code !== 0)
          reject(new Error(`${command} exited with ${exitSignal ?? code}: ${lastLines(stderr)}`));
        else resolve(Buffer.concat(stdout, stdoutBytes));
      });
    });
  }

  private acquire(): Promise<void> {
    if (this.running < this.maxConcurrent) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }

  /** Kills decodes in flight and removes the work directory. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const child of this.children) child.kill("SIGKILL");
    this.children.clear();
    await rm(this.workDir, { recursive: true, force: true });
  }
}

async function linkModel(modelDir: string, hmmDir: string, cmnInit: string | null): Promise<void> {
  await mkdir(hmmDir, { recursive: true });
  for (const name of await readdir(modelDir)) {
    if (name === "feat.params" && cmnInit !== null) continue;
    await symlink(join(modelDir, name), join(hmmDir, name));
  }
  if (cmnInit !== null) {
    const featParams = await readFile(join(modelDir, "feat.params"), "utf8");
    await writeFile(join(hmmDir, "feat.params"), tuneFeatureParams(featParams, cmnInit));
  }
}

/** pocketsphinx_continuous prints one line per detected utterance. */
export function joinHypotheses(stdout: string): string {
  return stdout
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .join(" ");
}

function lastLines(text: string): string {
  return text.trim().split("\n").slice(-3).join(" | ") || "no stderr";
}
