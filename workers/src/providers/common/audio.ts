/**
 * Byte-level glue between vendor audio (PCM16 little-endian at 8/16/24 kHz, WAV) and the call's G.711.
 * Codec tables and resampling come from @patchbay/shared/audio; this file only handles byte order,
 * odd-byte carry across network chunks, and the WAV container.
 */
import { decodeG711, encodeG711, type G711Codec, Resampler } from "@patchbay/shared/audio";

/** PCM16 LE bytes arriving in arbitrary chunks → samples (a dangling odd byte waits for the next chunk). */
export class Pcm16LeReader {
  private carry: number | undefined;

  read(bytes: Uint8Array): Int16Array {
    const total = bytes.length + (this.carry === undefined ? 0 : 1);
    const samples = new Int16Array(total >> 1);
    let byteIndex = 0;
    let sampleIndex = 0;
    if (this.carry !== undefined && bytes.length > 0) {
      samples[sampleIndex++] = toInt16(this.carry | (bytes[0]! << 8));
      byteIndex = 1;
      this.carry = undefined;
    }
    for (; byteIndex + 1 < bytes.length; byteIndex += 2) {
      samples[sampleIndex++] = toInt16(bytes[byteIndex]! | (bytes[byteIndex + 1]! << 8));
    }
    if (byteIndex < bytes.length) this.carry = bytes[byteIndex]!;
    return samples.subarray(0, sampleIndex);
  }
}

function toInt16(value: number): number {
  return value >= 0x8000 ? value - 0x10000 : value;
}

export function pcm16ToLeBytes(samples: Int16Array): Uint8Array {
  const bytes = new Uint8Array(samples.length * 2);
  for (let i = 0; i < samples.length; i++) {
    const sample = samples[i]!;
    bytes[2 * i] = sample & 0xff;
    bytes[2 * i + 1] = (sample >> 8) & 0xff;
  }
  return bytes;
}

/** Streaming vendor PCM16 LE at `fromRate` → the call's G.711 at 8 kHz. */
export class PcmToG711Stream {
  private readonly reader = new Pcm16LeReader();
  private readonly resampler: Resampler | undefined;

  constructor(
    private readonly codec: G711Codec,
    fromRate: number,
  ) {
    this.resampler = fromRate === 8000 ? undefined : new Resampler(fromRate, 8000);
  }

  process(bytes: Uint8Array): Uint8Array {
    const samples = this.reader.read(bytes);
    const narrow = this.resampler ? this.resampler.process(samples) : samples;
    return encodeG711(this.codec, narrow);
  }
}

/** Streaming call G.711 → PCM16 LE bytes at `toRate` (for vendors that only take linear16). */
export class G711ToPcmStream {
  private readonly resampler: Resampler | undefined;

  constructor(
    private readonly codec: G711Codec,
    toRate: number,
  ) {
    this.resampler = toRate === 8000 ? undefined : new Resampler(8000, toRate);
  }

  process(g711: Uint8Array): Uint8Array {
    const samples = decodeG711(this.codec, g711);
    return pcm16ToLeBytes(this.resampler ? this.resampler.process(samples) : samples);
  }
}

/** A canonical 44-byte-header RIFF/WAVE file holding mono PCM16 (for segment transcription uploads). */
export function wavFromPcm16(samples: Int16Array, sampleRate: number): Uint8Array {
  const dataBytes = samples.length * 2;
  const wav = new Uint8Array(44 + dataBytes);
  const view = new DataView(wav.buffer);
  const ascii = (offset: number, text: string) => {
    for (let i = 0; i < text.length; i++) wav[offset + i] = text.charCodeAt(i);
  };
  ascii(0, "RIFF");
  view.setUint32(4, 36 + dataBytes, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true); // byte rate
  view.setUint16(32, 2, true); // block align
  view.setUint16(34, 16, true); // bits per sample
  ascii(36, "data");
  view.setUint32(40, dataBytes, true);
  wav.set(pcm16ToLeBytes(samples), 44);
  return wav;
}

/** Where the PCM data of a WAV starts, or undefined if it is not a PCM16 WAV we understand. */
export function wavDataOffset(bytes: Uint8Array): { offset: number; sampleRate: number } | undefined {
  if (bytes.length < 12) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (offset: number) => String.fromCharCode(...bytes.subarray(offset, offset + 4));
  if (tag(0) !== "RIFF" || tag(8) !== "WAVE") return undefined;
  let offset = 12;
  let sampleRate: number | undefined;
  while (offset + 8 <= bytes.length) {
    const id = tag(offset);
    const size = view.getUint32(offset + 4, true);
    if (id === "fmt " && offset + 16 <= bytes.length) {
      sampleRate = view.getUint32(offset + 12, true);
    } else if (id === "data") {
      return sampleRate === undefined ? undefined : { offset: offset + 8, sampleRate };
    }
    offset += 8 + size + (size & 1);
  }
  return undefined;
}
