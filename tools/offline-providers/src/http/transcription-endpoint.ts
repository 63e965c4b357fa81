/** POST /v1/audio/transcriptions: a WAV upload decoded by the tuned PocketSphinx recognizer. */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { PocketSphinxRecognizer } from "../speech/recognizer";
import { isWavError, parseWav } from "../speech/wav";
import { readMultipart } from "./body";
import { badRequest } from "./errors";
import { delay, latencyOverride, type StageLatency } from "./latency";

/** Longer uploads are refused: PocketSphinx would hold a core for as long again. */
export const MAX_TRANSCRIPTION_SECONDS = 120;
const RESPONSE_FORMATS = ["json", "text", "verbose_json"] as const;
type TranscriptionFormat = (typeof RESPONSE_FORMATS)[number];

function isResponseFormat(value: string): value is TranscriptionFormat {
  return (RESPONSE_FORMATS as readonly string[]).includes(value);
}

function textField(form: FormData, name: string): string | undefined {
  const value = form.get(name);
  return typeof value === "string" ? value : undefined;
}

export async function handleTranscription(
  request: IncomingMessage,
  response: ServerResponse,
  recognizer: PocketSphinxRecognizer,
  latency: StageLatency,
  signal: AbortSignal,
): Promise<void> {
  const form = await readMultipart(request);
  const file = form.get("file");
  if (!(file instanceof Blob))
    throw badRequest("Missing required parameter: 'file'.", "file", "missing_required_parameter");
  const model = textField(form, "model");
  if (!model) throw badRequest("Missing required parameter: 'model'.", "model", "missing_required_parameter");
  const responseFormat = textField(form, "response_format") ?? "json";
  if (!isResponseFormat(responseFormat)) {
    throw badRequest(
      `Unsupported response_format '${responseFormat}' (offline providers return: ${RESPONSE_FORMATS.join(", ")}).`,
      "response_format",
      "invalid_value",
    );
  }
  const language = textField(form, "language") ?? "en";
  if (!language.toLowerCase().startsWith("en")) {
    throw badRequest(`Offline recognizer only knows English, got language '${language}'.`, "language");
  }

  const wav = parseWav(new Uint8Array(await file.arrayBuffer()));
  if (isWavError(wav)) {
    throw badRequest(
      `Invalid file format (${wav.code}: ${wav.detail}). Supported formats: ['wav']`,
      "file",
      "invalid_value",
    );
  }
  if (wav.durationSeconds > MAX_TRANSCRIPTION_SECONDS) {
    throw badRequest(
      `Audio too long: got ${wav.durationSeconds.toFixed(1)} s > limit ${MAX_TRANSCRIPTION_SECONDS} s.`,
      "file",
    );
  }

  const text = wav.data.length === 0 ? "" : await recognizer.transcribe(wav, signal);
  await delay(latencyOverride(request) ?? latency.sttMs, signal);

  if (responseFormat === "text") {
    response.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
    response.end(`${text}\n`);
    return;
  }
  const payload =
    responseFormat === "json"
      ? { text }
      : { task: "transcribe", language: "english", duration: wav.durationSeconds, text, segments: [] };
  response.writeHead(200, { "content-type": "application/json" });
  response.end(JSON.stringify(payload));
}
