/**
 * The per-call stereo WAV file (left = caller, right = agent, 8 kHz, 16-bit PCM), written as the
 * call runs. This is the I/O adapter around StereoAligner.
 *
 * Crash safety: the header is written first with "streaming" sizes (0xFFFFFFFF, i.e. "until end of
 * file"), then patched with the real sizes about once a second, always AFTER the data it counts is
 * on disk, and exactly on close. If the process dies mid-call, the file is a valid WAV whose header
 * counts at most ~1 s less than the data present; readers that trust the header lose that second,
 * readers that read to EOF (sox, ffmpeg, ours) lose nothing. See README.md.
 */
import { type FileHandle, mkdir, open } from "node:fs/promises";
import { endianness } from "node:os";
import { dirname } from "node:path";
import { StereoAligner } from "./stereo-aligner";

export const WAV_HEADER_BYTES = 44;
const SAMPLE_RATE = 8000;
const CHANNELS = 2;
const BYTES_PER_SAMPLE = 2;
const STREAMING_SIZE = 0xffffffff;
/** Audio waiting for a slow disk beyond this is a stuck disk: stop recording rather than grow. */
const MAX_PENDING_BYTES = 8 * 1024 * 1024;

export function wavHeader(dataBytes: number): Uint8Array {
  const header = new Uint8Array(WAV_HEADER_BYTES);
  const view = new DataView(header.buffer);
  const ascii = (offset: number, text: string) => {
    for (let i = 0; i < text.length; i++) header[offset + i] = text.charCodeAt(i);
  };
  const streaming = dataBytes === STREAMING_SIZE;
  ascii(0, "RIFF");
  view.setUint32(4, streaming ? STREAMING_SIZE : 36 + dataBytes, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, CHANNELS, true);
  view.setUint32(24, SAMPLE_RATE, true);
  view.setUint32(28, SAMPLE_RATE * CHANNELS * BYTES_PER_SAMPLE, true);
  view.setUint16(32, CHANNELS * BYTES_PER_SAMPLE, true);
  view.setUint16(34, BYTES_PER_SAMPLE * 8, true);
  ascii(36, "data");
  view.setUint32(40, dataBytes, true);
  return header;
}

export interface WavRecorderOptions {
  /** Audio stays in memory this long before it is written, so both channels' frames have landed. */
  lagMs?: number;
  headerPatchIntervalMs?: number;
}

export class WavRecorder {
  private readonly aligner = new StereoAligner();
  private readonly file: FileHandle;
  private readonly lagSamples: number;
  private readonly headerPatchIntervalMs: number;
  private dataBytes = 0;
  private pendingBytes = 0;
  private lastPatchMs = 0;
  private chain: Promise<void> = Promise.resolve();
  private closed: Promise<void> | undefined;
  private failed: unknown;
  readonly path: string;

  private constructor(path: string, file: FileHandle, options: WavRecorderOptions) {
    this.path = path;
    this.file = file;
    this.lagSamples = ((options.lagMs ?? 200) * SAMPLE_RATE) / 1000;
    this.headerPatchIntervalMs = options.headerPatchIntervalMs ?? 1000;
  }

  static async create(path: string, options: WavRecorderOptions = {}): Promise<WavRecorder> {
    await mkdir(dirname(path), { recursive: true });
    const file = await open(path, "w");
    try {
      await file.write(wavHeader(STREAMING_SIZE), 0, WAV_HEADER_BYTES, 0);
    } catch (error) {
      await file.close();
      throw error;
    }
    return new WavRecorder(path, file, options);
  }

  /** Queue a frame of PCM16 on one channel at a sample position of the call's timeline. */
  write(channel: 0 | 1, pcm: Int16Array, atSample: number): void {
    if (this.closed) return;
    this.aligner.write(channel, pcm, atSample, this.append);
  }

  /** Let audio older than the lag go to disk. `nowMs` (monotonic) paces header patches. */
  advance(nowSample: number, nowMs: number): void {
    if (this.closed) return;
    this.aligner.drainUntil(nowSample - this.lagSamples, this.append);
    if (nowMs - this.lastPatchMs >= this.headerPatchIntervalMs) {
      this.lastPatchMs = nowMs;
      const size = this.dataBytes;
      this.enqueue(() => this.patchHeader(size));
    }
  }

  private readonly append = (interleaved: Int16Array): void => {
    if (endianness() === "BE") {
      for (let i = 0; i < interleaved.length; i++) {
        const v = interleaved[i]!;
        interleaved[i] = ((v & 0xff) << 8) | ((v >> 8) & 0xff);
      }
    }
    const bytes = new Uint8Array(interleaved.buffer, interleaved.byteOffset, interleaved.byteLength);
    if (this.failed) return;
    if (this.pendingBytes + bytes.length > MAX_PENDING_BYTES) {
      this.failed = new Error(`recording disk too slow: ${this.pendingBytes} bytes waiting`);
      return;
    }
    const position = WAV_HEADER_BYTES + this.dataBytes;
    this.dataBytes += bytes.length;
    this.pendingBytes += bytes.length;
    this.enqueue(async () => {
      try {
        await this.file.write(bytes, 0, bytes.length, position);
      } finally {
        this.pendingBytes -= bytes.length;
      }
    });
  };

  private patchHeader(dataBytes: number): Promise<void> {
    return this.file.write(wavHeader(dataBytes), 0, WAV_HEADER_BYTES, 0).then(() => undefined);
  }

  private enqueue(step: () => Promise<void>): void {
    this.chain = this.chain.then(async () => {
      if (this.failed) return;
      try {
        await step();
      } catch (error) {
        // A full disk must not take the call down: stop recording, keep what is there.
        this.failed = error;
      }
    });
  }

  get error(): unknown {
    return this.failed;
  }

  /** Write everything still staged, set the exact sizes, close. Idempotent. */
  close(): Promise<void> {
    if (!this.closed) {
      this.aligner.drainUntil(this.aligner.endSample, this.append);
      const size = this.dataBytes;
      this.enqueue(() => this.patchHeader(size));
      this.closed = this.chain.then(() => this.file.close());
    }
    return this.closed;
  }
}

export interface WavData {
  channels: number;
  sampleRate: number;
  /** Sample count the header claims (undefined when it says "streaming"). */
  headerFrames: number | undefined;
  left: Int16Array;
  right: Int16Array;
}

/**
 * Read one of our recordings the way we tell readers to: trust the data that is in the file (to a
 * whole stereo frame), and use the header size only as an upper bound.
 */
export function readStereoWav(bytes: Uint8Array): WavData {
  if (bytes.length < WAV_HEADER_BYTES) throw new RangeError(`WAV too short: got ${bytes.length} < need 44`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (offset: number) => String.fromCharCode(...bytes.subarray(offset, offset + 4));
  if (tag(0) !== "RIFF" || tag(8) !== "WAVE" || tag(12) !== "fmt " || tag(36) !== "data") {
    throw new RangeError("not a canonical RIFF/WAVE file");
  }
  const channels = view.getUint16(22, true);
  const sampleRate = view.getUint32(24, true);
  const declared = view.getUint32(40, true);
  const available = bytes.length - WAV_HEADER_BYTES;
  const dataBytes = declared === STREAMING_SIZE ? available : Math.max(declared, available);
  const frames = Math.floor(Math.min(dataBytes, available) / (channels * 2));
  const left = new Int16Array(frames);
  const right = new Int16Array(frames);
  for (let i = 0; i < frames; i++) {
    left[i] = view.getInt16(WAV_HEADER_BYTES + i * 4, true);
    right[i] = view.getInt16(WAV_HEADER_BYTES + i * 4 + 2, true);
  }
  return {
    channels,
    sampleRate,
    headerFrames: declared === STREAMING_SIZE ? undefined : declared / (channels * 2),
    left,
    right,
  };
}
