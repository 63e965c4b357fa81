/**
 * The audio formats /v1/audio/speech can return, and the sox arguments that produce each.
 * `pcm` is OpenAI's raw format (24 kHz s16le mono); the G.711 formats are what a telephony client
 * asks for (8 kHz, one byte per sample, no header) so it can send them to the call without converting.
 */
export type SpeechFormat = "pcm" | "wav" | "mulaw" | "alaw";

export interface FormatSpec {
  format: SpeechFormat;
  contentType: string;
  sampleRate: number;
  bytesPerSample: number;
  /** sox output arguments (after the input spec), writing to stdout. */
  soxOutput: string[];
}

const PCM_S16 = ["-e", "signed-integer", "-b", "16", "-c", "1"];

export const FORMAT_SPECS: Readonly<Record<SpeechFormat, FormatSpec>> = {
  pcm: {
    format: "pcm",
    contentType: "audio/pcm",
    sampleRate: 24000,
    bytesPerSample: 2,
    soxOutput: ["-t", "raw", "-r", "24000", ...PCM_S16, "-L", "-"],
  },
  // WAV is produced as 24 kHz PCM and given an exact header once synthesis ends (see synthesizer).
  wav: {
    format: "wav",
    contentType: "audio/wav",
    sampleRate: 24000,
    bytesPerSample: 2,
    soxOutput: ["-t", "raw", "-r", "24000", ...PCM_S16, "-L", "-"],
  },
  mulaw: {
    format: "mulaw",
    contentType: "audio/basic",
    sampleRate: 8000,
    bytesPerSample: 1,
    soxOutput: ["-t", "ul", "-r", "8000", "-c", "1", "-"],
  },
  alaw: {
    format: "alaw",
    contentType: "audio/x-alaw-basic",
    sampleRate: 8000,
    bytesPerSample: 1,
    soxOutput: ["-t", "al", "-r", "8000", "-c", "1", "-"],
  },
};

/** Accepted `response_format` spellings (OpenAI's plus the telephony aliases) → format. */
export const FORMAT_ALIASES: Readonly<Record<string, SpeechFormat>> = {
  pcm: "pcm",
  wav: "wav",
  mulaw: "mulaw",
  ulaw: "mulaw",
  g711_ulaw: "mulaw",
  pcmu: "mulaw",
  alaw: "alaw",
  g711_alaw: "alaw",
  pcma: "alaw",
};

/** A canonical 44-byte WAV header for PCM16 mono. */
export function wavHeader(dataBytes: number, sampleRate: number): Buffer {
  const header = Buffer.alloc(44);
  header.write("RIFF", 0, "ascii");
  header.writeUInt32LE(36 + dataBytes, 4);
  header.write("WAVE", 8, "ascii");
  header.write("fmt ", 12, "ascii");
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36, "ascii");
  header.writeUInt32LE(dataBytes, 40);
  return header;
}
