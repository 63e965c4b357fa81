/**
 * Fake ElevenLabs stream-input and Cartesia TTS WebSockets.
 * ElevenLabs (https://elevenlabs.io/docs/api-reference/text-to-speech/v-1-text-to-speech-voice-id-stream-input):
 *   first message {"text":" ", voice_settings?}, then text chunks ending in a space, {"flush":true}
 *   generates what is buffered, {"text":""} ends: remaining audio, {"isFinal":true}, server closes.
 *   Audio: {"audio":"<b64 ulaw_8000>","isFinal":null,"normalizedAlignment":null}.
 * Cartesia (https://docs.cartesia.ai/api-reference/tts/websocket): generation requests per context_id
 *   with continue, {"context_id","cancel":true}; answers {"type":"chunk","data"}, {"type":"done"}.
 */
import type { G711Codec } from "@patchbay/shared/audio";
import type { WebSocket } from "ws";
import { g711For } from "./audio";
import { authRefusal, type FakeRequest, FakeServer, sleep } from "./server";

type Json = Record<string, unknown>;

export class FakeElevenLabs extends FakeServer {
  constructor() {
    super("elevenlabs");
  }

  protected refuseUpgrade(request: FakeRequest) {
    if (!/^\/v1\/text-to-speech\/[^/]+\/stream-input$/.test(request.path)) return { status: 404, body: "{}" };
    return authRefusal(request.headers["xi-api-key"], (key) => key);
  }

  protected handleSocket(socket: WebSocket, request: FakeRequest): void {
    this.count("connect");
    if (request.query.get("output_format") !== "ulaw_8000" || !request.query.get("model_id")) {
      this.rejectSocket(socket, `query ${request.query.toString()}`);
      return;
    }
    let first = true;
    let buffered = "";
    let work = Promise.resolve();
    let ended = false;
    const generate = (text: string) => {
      work = work.then(async () => {
        const audio = g711For(text, "PCMU");
        for (let offset = 0; offset < audio.length; offset += 800) {
          if (socket.readyState !== socket.OPEN) return;
          const chunk = Buffer.from(audio.subarray(offset, offset + 800)).toString("base64");
          socket.send(
            JSON.stringify({ audio: chunk, isFinal: null, normalizedAlignment: null, alignment: null }),
          );
          if (request.scenario === "drop") {
            socket.terminate();
            return;
          }
          await sleep(2);
        }
      });
    };
    socket.on("message", (data, isBinary) => {
      if (isBinary) return this.rejectSocket(socket, "binary frame");
      const message = JSON.parse(String(data)) as Json;
      if (typeof message.text !== "string")
        return this.rejectSocket(socket, `message without text ${String(data)}`);
      if (ended) return this.rejectSocket(socket, "message after end of stream");
      if (first) {
        first = false;
        if (message.text !== " ")
          this.rejectSocket(socket, "first message must be the begin-of-stream {text:' '}");
        return;
      }
      if (message.text === "") {
        ended = true;
        if (buffered.trim() !== "") generate(buffered.trim());
        buffered = "";
        work = work.then(() => {
          if (socket.readyState !== socket.OPEN) return;
          socket.send(JSON.stringify({ isFinal: true }));
          socket.close(1000);
        });
        return;
      }
      if (!message.text.endsWith(" "))
        this.rejectSocket(socket, `text chunk must end with a space: ${message.text}`);
      buffered += message.text;
      if (message.flush === true) {
        // One generation per sentence keeps the frequency-per-sentence mapping of the fake audio.
        for (const sentence of buffered.split(/(?<=[.!?])\s+/).filter((s) => s.trim() !== "")) {
          generate(sentence.trim());
        }
        buffered = "";
      }
    });
  }
}

export class FakeCartesia extends FakeServer {
  constructor() {
    super("cartesia");
  }

  protected refuseUpgrade(request: FakeRequest) {
    if (request.path !== "/tts/websocket") return { status: 404, body: "{}" };
    return authRefusal(request.headers["x-api-key"], (key) => key);
  }

  protected handleSocket(socket: WebSocket, request: FakeRequest): void {
    this.count("connect");
    if (!request.query.get("cartesia_version") || !request.headers["cartesia-version"]) {
      this.rejectSocket(socket, "missing Cartesia version");
      return;
    }
    const cancelled = new Set<string>();
    const contexts = new Map<string, Promise<void>>();
    socket.on("message", (data, isBinary) => {
      if (isBinary) return this.rejectSocket(socket, "binary frame");
      const message = JSON.parse(String(data)) as Json;
      const context = message.context_id;
      if (typeof context !== "string" || context === "") return this.rejectSocket(socket, "no context_id");
      if (message.cancel === true) {
        cancelled.add(context);
        return;
      }
      const format = message.output_format as Json | undefined;
      const voice = message.voice as Json | undefined;
      if (typeof message.model_id !== "string" || voice?.mode !== "id" || typeof voice.id !== "string") {
        return this.rejectSocket(socket, `bad generation request ${String(data)}`);
      }
      if (format?.container !== "raw" || format.sample_rate !== 8000)
        return this.rejectSocket(socket, "bad output_format");
      if (format.encoding !== "pcm_mulaw" && format.encoding !== "pcm_alaw") {
        return this.rejectSocket(socket, `encoding ${String(format.encoding)}`);
      }
      if (typeof message.transcript !== "string" || typeof message.continue !== "boolean") {
        return this.rejectSocket(socket, "transcript/continue missing");
      }
      const codec: G711Codec = format.encoding === "pcm_mulaw" ? "PCMU" : "PCMA";
      const text = message.transcript.trim();
      const more = message.continue;
      const previous = contexts.get(context) ?? Promise.resolve();
      const next = previous.then(async () => {
        if (text !== "") {
          const audio = g711For(text, codec);
          for (let offset = 0; offset < audio.length; offset += 800) {
            if (cancelled.has(context) || socket.readyState !== socket.OPEN) return;
            const chunk = Buffer.from(audio.subarray(offset, offset + 800)).toString("base64");
            socket.send(
              JSON.stringify({
                type: "chunk",
                data: chunk,
                done: false,
                status_code: 206,
                step_time: 1,
                context_id: context,
              }),
            );
            if (request.scenario === "drop") {
              socket.terminate();
              return;
            }
            await sleep(2);
          }
        }
        if (!more && !cancelled.has(context) && socket.readyState === socket.OPEN) {
          socket.send(JSON.stringify({ type: "done", done: true, status_code: 200, context_id: context }));
        }
      });
      contexts.set(context, next);
    });
  }
}
