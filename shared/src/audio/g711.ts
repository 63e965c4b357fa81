/**
 * G.711 μ-law / A-law conversion: the only place in the project that maps between G.711 bytes and PCM16.
 *
 * The sample-level maths comes from the `alawmulaw` package; we turn it into lookup tables once at
 * load (256 entries to decode, 65,536 to encode) because the hot path converts 8,000 samples a second
 * per call and a table read is several times cheaper than the per-sample bit twiddling.
 * Every function writes into a caller-provided buffer so the hot path allocates nothing.
 */
import * as alawmulawModule from "alawmulaw";
import type { G711Codec } from "./constants";

// Bundlers (esbuild for the Worker and the bridge bundle, vite in tests) load the package's ESM
// build, which has named exports. Plain Node (tsx in development) loads its UMD build, whose
// exports Node can only expose as `default`. Accept both.
const alawmulaw = (alawmulawModule as { default?: typeof alawmulawModule }).default ?? alawmulawModule;
const { alaw, mulaw } = alawmulaw;

function buildDecodeTable(decodeSample: (byte: number) => number): Int16Array {
  const table = new Int16Array(256);
  for (let byte = 0; byte < 256; byte++) table[byte] = decodeSample(byte);
  return table;
}

function buildEncodeTable(encodeSample: (sample: number) => number): Uint8Array {
  const table = new Uint8Array(65536);
  for (let index = 0; index < 65536; index++) table[index] = encodeSample(index - 32768);
  return table;
}

const ULAW_DECODE = buildDecodeTable(mulaw.decodeSample);
const ALAW_DECODE = buildDecodeTable(alaw.decodeSample);
const ULAW_ENCODE = buildEncodeTable(mulaw.encodeSample);
const ALAW_ENCODE = buildEncodeTable(alaw.encodeSample);

const ULAW_TO_ALAW = new Uint8Array(256);
const ALAW_TO_ULAW = new Uint8Array(256);
for (let byte = 0; byte < 256; byte++) {
  ULAW_TO_ALAW[byte] = ALAW_ENCODE[(ULAW_DECODE[byte] ?? 0) + 32768] ?? 0;
  ALAW_TO_ULAW[byte] = ULAW_ENCODE[(ALAW_DECODE[byte] ?? 0) + 32768] ?? 0;
}

function checkLengths(source: ArrayLike<number>, target: ArrayLike<number>): void {
  if (target.length < source.length) {
    throw new RangeError(`G.711 output buffer too small: got ${target.length} < need ${source.length}`);
  }
}

/** Decode G.711 bytes into PCM16. Returns the view of `target` that was written. */
export function decodeG711(codec: G711Codec, source: Uint8Array, target?: Int16Array): Int16Array {
  const out = target ?? new Int16Array(source.length);
  checkLengths(source, out);
  const table = codec === "PCMU" ? ULAW_DECODE : ALAW_DECODE;
  for (let i = 0; i < source.length; i++) out[i] = table[source[i]!]!;
  return out.length === source.length ? out : out.subarray(0, source.length);
}

/** Encode PCM16 into G.711 bytes. Returns the view of `target` that was written. */
export function encodeG711(codec: G711Codec, source: Int16Array, target?: Uint8Array): Uint8Array {
  const out = target ?? new Uint8Array(source.length);
  checkLengths(source, out);
  const table = codec === "PCMU" ? ULAW_ENCODE : ALAW_ENCODE;
  for (let i = 0; i < source.length; i++) out[i] = table[source[i]! + 32768]!;
  return out.length === source.length ? out : out.subarray(0, source.length);
}

/** Convert G.711 between the two laws without a PCM buffer in between. */
export function transcodeG711(
  from: G711Codec,
  to: G711Codec,
  source: Uint8Array,
  target?: Uint8Array,
): Uint8Array {
  const out = target ?? new Uint8Array(source.length);
  checkLengths(source, out);
  if (from === to) {
    out.set(source);
  } else {
    const table = from === "PCMU" ? ULAW_TO_ALAW : ALAW_TO_ULAW;
    for (let i = 0; i < source.length; i++) out[i] = table[source[i]!]!;
  }
  return out.length === source.length ? out : out.subarray(0, source.length);
}

/** Decode a single G.711 byte (handy for energy measurements without a buffer). */
export function decodeG711Sample(codec: G711Codec, byte: number): number {
  return (codec === "PCMU" ? ULAW_DECODE : ALAW_DECODE)[byte & 0xff]!;
}
