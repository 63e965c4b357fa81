/**
 * A tolerant WAV (RIFF) reader for uploaded audio. It finds `fmt ` and `data` by walking chunks with a
 * length check before every read, clamps a streaming header's oversize data length to the bytes
 * actually present, and reports problems as coded values instead of throwing.
 */
export type WavEncoding = "pcm16" | "mulaw" | "alaw";

export interface WavInfo {
  encoding: WavEncoding;
  sampleRate: number;
  channels: number;
  /** The sample data (a view into the input). */
  data: Uint8Array;
  durationSeconds: number;
}

export type WavError =
  | { code: "not-riff"; detail: string }
  | { code: "truncated"; detail: string }
  | { code: "unsupported-format"; detail: string };

const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_ALAW = 6;
const WAVE_FORMAT_MULAW = 7;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

function ascii(bytes: Uint8Array, offset: number): string {
  return String.fromCharCode(bytes[offset]!, bytes[offset + 1]!, bytes[offset + 2]!, bytes[offset + 3]!);
}

export function parseWav(bytes: Uint8Array): WavInfo | WavError {
  if (bytes.length < 12) return { code: "truncated", detail: `got ${bytes.length} < need 12 header bytes` };
  if (ascii(bytes, 0) !== "RIFF" || ascii(bytes, 8) !== "WAVE") {
    return { code: "not-riff", detail: "missing RIFF/WAVE header" };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let format: { tag: number; channels: number; sampleRate: number; bitsPerSample: number } | undefined;
  let offset = 12;
  while (offset + 8 <= bytes.length) {
    const id = ascii(bytes, offset);
    const size = view.getUint32(offset + 4, true);
    const body = offset + 8;
    if (id === "fmt ") {
      if (size < 16 || body + 16 > bytes.length) {
        return {
          code: "truncated",
          detail: `fmt chunk: got ${Math.min(size, bytes.length - body)} < need 16`,
        };
      }
      let tag = view.getUint16(body, true);
      if (tag === WAVE_FORMAT_EXTENSIBLE && size >= 26 && body + 26 <= bytes.length) {
        tag = view.getUint16(body + 24, true); // first two bytes of the SubFormat GUID
      }
      format = {
        tag,
        channels: view.getUint16(body + 2, true),
        sampleRate: view.getUint32(body + 4, true),
        bitsPerSample: view.getUint16(body + 14, true),
      };
    } else if (id === "data") {
      if (!format) return { code: "unsupported-format", detail: "data chunk before fmt chunk" };
      // Streaming writers put 0xFFFFFFFF (or 0) here; the bytes present are the truth.
      const available = bytes.length - body;
      const length = size === 0 || size > available ? available : size;
      return describe(format, bytes.subarray(body, body + length));
    }
    offset = body + size + (size % 2); // chunks are word aligned
  }
  return { code: "truncated", detail: format ? "no data chunk" : "no fmt chunk" };
}

function describe(
  format: { tag: number; channels: number; sampleRate: number; bitsPerSample: number },
  data: Uint8Array,
): WavInfo | WavError {
  const { tag, channels, sampleRate, bitsPerSample } = format;
  let encoding: WavEncoding;
  if (tag === WAVE_FORMAT_PCM && bitsPerSample === 16) encoding = "pcm16";
  else if (tag === WAVE_FORMAT_MULAW && bitsPerSample === 8) encoding = "mulaw";
  else if (tag === WAVE_FORMAT_ALAW && bitsPerSample === 8) encoding = "alaw";
  else {
    return {
      code: "unsupported-format",
      detail: `format tag ${tag} with ${bitsPerSample} bits per sample (need 16-bit PCM, or 8-bit G.711)`,
    };
  }
  if (channels < 1 || channels > 2) return { code: "unsupported-format", detail: `${channels} channels` };
  if (sampleRate < 8000 || sampleRate > 48000) {
    return { code: "unsupported-format", detail: `sample rate ${sampleRate} Hz (need 8000-48000)` };
  }
  const bytesPerFrame = channels * (encoding === "pcm16" ? 2 : 1);
  const whole = data.subarray(0, data.length - (data.length % bytesPerFrame));
  return {
    encoding,
    sampleRate,
    channels,
    data: whole,
    durationSeconds: whole.length / bytesPerFrame / sampleRate,
  };
}

export function isWavError(value: WavInfo | WavError): value is WavError {
  return "code" in value;
}
