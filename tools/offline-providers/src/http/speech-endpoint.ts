/** POST /v1/audio/speech: espeak-ng synthesis, streamed in the requested format as it is produced. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { FORMAT_ALIASES, FORMAT_SPECS, wavHeader } from "../speech/formats";
import { synthesize } from "../speech/synthesizer";
import { espeakVoiceFor, wordsPerMinuteFor } from "../speech/voices";
import { readJson } from "./body";
import { badRequest } from "./errors";
import { delay, latencyOverride, type StageLatency } from "./latency";
import { parseBody, speechRequestSchema } from "./schemas";

/** OpenAI's default is mp3, which espeak/sox here cannot produce; WAV is the self-describing fallback. */
const DEFAULT_FORMAT = "wav";

export async function handleSpeech(
  request: IncomingMessage,
  response: ServerResponse,
  latency: StageLatency,
  signal: AbortSignal,
): Promise<void> {
  const body = parseBody(speechRequestSchema, await readJson(request));
  const requested = (body.response_format ?? DEFAULT_FORMAT).toLowerCase();
  const format = FORMAT_ALIASES[requested];
  if (!format) {
    throw badRequest(
      `Unsupported response_format '${requested}' (offline providers produce: ${Object.keys(FORMAT_ALIASES).join(", ")}).`,
      "response_format",
      "invalid_value",
    );
  }
  const voice = espeakVoiceFor(body.voice);
  if (!voice) throw badRequest(`Unknown voice '${body.voice}'.`, "voice", "invalid_value");
  const spec = FORMAT_SPECS[format];

  await delay(latencyOverride(request) ?? latency.ttsFirstByteMs, signal);

  const synthesis = synthesize({
    text: body.input,
    voice,
    wordsPerMinute: wordsPerMinuteFor(body.speed ?? 1),
    spec,
  });
  signal.addEventListener("abort", synthesis.kill, { once: true });
  try {
    if (format === "wav") {
      // A WAV header carries the data length, so WAV waits for the whole synthesis (a short wait:
      // espeak runs ~50x real time); the headerless formats stream.
      const chunks: Buffer[] = [];
      for await (const chunk of synthesis.audio) chunks.push(chunk as Buffer);
      await synthesis.done;
      const data = Buffer.concat(chunks);
      response.writeHead(200, { "content-type": spec.contentType, "content-length": 44 + data.length });
      response.end(Buffer.concat([wavHeader(data.length, spec.sampleRate), data]));
      return;
    }
    response.writeHead(200, {
      "content-type": spec.contentType,
      "x-audio-sample-rate": String(spec.sampleRate),
    });
    response.flushHeaders();
    let carry: Buffer | undefined;
    for await (const chunk of synthesis.audio) {
      let bytes = chunk as Buffer;
      // Keep every write whole samples so a client may decode each chunk on its own.
      if (carry) {
        bytes = Buffer.concat([carry, bytes]);
        carry = undefined;
      }
      const odd = bytes.length % spec.bytesPerSample;
      if (odd > 0) {
        carry = bytes.subarray(bytes.length - odd);
        bytes = bytes.subarray(0, bytes.length - odd);
      }
      if (bytes.length > 0 && !response.write(bytes)) {
        // A slow reader: stop pulling from sox (which then pauses espeak) until the socket drains.
        await drainedOrClosed(response);
      }
    }
    await synthesis.done;
    response.end();
  } finally {
    signal.removeEventListener("abort", synthesis.kill);
    synthesis.kill();
  }
}

/** Resolves when the response can take more data or is gone; removes both listeners either way. */
function drainedOrClosed(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const settle = (): void => {
      response.off("drain", settle);
      response.off("close", settle);
      resolve();
    };
    response.on("drain", settle);
    response.on("close", settle);
  });
}
