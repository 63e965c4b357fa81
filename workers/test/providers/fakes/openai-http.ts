/**
 * Fake OpenAI-compatible HTTP API: /v1/chat/completions (SSE, https://platform.openai.com/docs/api-reference/chat-streaming),
 * /v1/audio/transcriptions (multipart, https://platform.openai.com/docs/api-reference/audio/createTranscription),
 * /v1/audio/speech (pcm 24 kHz s16le or wav, https://platform.openai.com/docs/api-reference/audio/createSpeech),
 * plus the Workers AI binding's HTTP-shaped results at /workers-ai/run/<model> (the fake `Ai` object in
 * the tests forwards run() here): chat streams in Workers AI's native `{response, tool_calls}` SSE shape
 * and Aura raw μ-law.
 *
 * Chat is scripted by the last message: "weather" → a get_weather tool call streamed in fragments;
 * a tool result → "It is sunny in Paris."; "long" → a slow endless-ish stream (abort test); "drop" →
 * connection destroyed mid-stream; anything else → "Hello! How can I help you today?".
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { encodeG711, type G711Codec } from "@patchbay/shared/audio";
import type { WebSocket } from "ws";
import { classify, pcmLe, readPcmLe, speechFor, wordsFor } from "./audio";
import { BAD_KEY, BUSY_KEY, type FakeRequest, FakeServer, GOOD_KEY, sleep } from "./server";

type Json = Record<string, unknown>;

const HELLO = ["Hello!", " How can", " I help", " you today?"];
const SUNNY = ["It is", " sunny in", " Paris."];
const WEATHER_ARGS = ['{"ci', 'ty": "Pa', 'ris"}'];

export class FakeOpenAiHttp extends FakeServer {
  constructor() {
    super("openai-http");
  }

  protected refuseUpgrade() {
    return { status: 404, body: "{}" };
  }

  protected handleSocket(socket: WebSocket): void {
    this.rejectSocket(socket, "no sockets here");
  }

  protected override async handleHttp(
    request: FakeRequest,
    body: Buffer,
    res: ServerResponse,
    raw: IncomingMessage,
  ): Promise<void> {
    if (request.path.startsWith("/workers-ai/run/")) {
      await this.workersAi(request, body, res, raw);
      return;
    }
    const auth = request.headers.authorization;
    if (auth !== `Bearer ${GOOD_KEY}`) {
      const status = auth === `Bearer ${BUSY_KEY}` ? 429 : 401;
      if (auth !== `Bearer ${BAD_KEY}` && auth !== `Bearer ${BUSY_KEY}`)
        this.violation(`bad auth header ${auth}`);
      res.writeHead(status, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          error: {
            message: status === 401 ? "Incorrect API key provided" : "Rate limit reached",
            type: "invalid_request_error",
          },
        }),
      );
      return;
    }
    if (request.scenario === "flaky" && this.count(`flaky:${request.path}`) === 1) {
      res.writeHead(503).end("try again");
      return;
    }
    if (request.method !== "POST") {
      this.violation(`${request.method} ${request.path}`);
      res.writeHead(405).end();
      return;
    }
    switch (request.path) {
      case "/v1/chat/completions":
        await this.chat(JSON.parse(body.toString()) as Json, res, raw, "openai");
        return;
      case "/v1/audio/transcriptions":
        await this.transcribe(body, raw, res);
        return;
      case "/v1/audio/speech":
        await this.speech(request, JSON.parse(body.toString()) as Json, res);
        return;
      default:
        this.violation(`unknown path ${request.path}`);
        res.writeHead(404).end();
    }
  }

  private checkChatRequest(body: Json, format: "openai" | "workers-ai"): boolean {
    const fail = (message: string) => {
      this.violation(`chat request: ${message}`);
      return false;
    };
    if (format === "openai" && (typeof body.model !== "string" || body.model === "")) return fail("no model");
    if (body.stream !== true) return fail("stream is not true");
    if (!Array.isArray(body.messages) || body.messages.length === 0) return fail("no messages");
    const callIds = new Set<string>();
    for (const message of body.messages as Json[]) {
      if (!["system", "user", "assistant", "tool"].includes(String(message.role)))
        return fail(`role ${message.role}`);
      if (message.role === "assistant" && Array.isArray(message.tool_calls)) {
        for (const call of message.tool_calls as Json[]) {
          const fn = call.function as Json | undefined;
          if (call.type !== "function" || typeof call.id !== "string" || typeof fn?.arguments !== "string") {
            return fail(`assistant tool_calls entry ${JSON.stringify(call)}`);
          }
          callIds.add(call.id);
        }
      }
      if (message.role === "tool" && !callIds.has(String(message.tool_call_id))) {
        return fail(`tool message answers unknown tool_call_id ${message.tool_call_id}`);
      }
      if (message.role !== "assistant" && typeof message.content !== "string")
        return fail("content not a string");
    }
    if (body.tools !== undefined) {
      for (const tool of body.tools as Json[]) {
        const fn = tool.function as Json | undefined;
        if (tool.type !== "function" || typeof fn?.name !== "string" || typeof fn.parameters !== "object") {
          return fail(`tool ${JSON.stringify(tool)}`);
        }
      }
    }
    return true;
  }

  private async chat(
    body: Json,
    res: ServerResponse,
    raw: IncomingMessage,
    format: "openai" | "workers-ai",
  ): Promise<void> {
    if (!this.checkChatRequest(body, format)) {
      res.writeHead(400).end(JSON.stringify({ error: { message: "bad request" } }));
      return;
    }
    const messages = body.messages as Json[];
    const last = messages[messages.length - 1]!;
    const lastText = String(last.content ?? "");
    let aborted = false;
    // res "close" before the response finished = the client went away (req "close" fires on body end).
    res.on("close", () => {
      if (!res.writableFinished) {
        aborted = true;
        this.count("chat:client-aborted");
      }
    });
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    const send = (chunk: Json | "[DONE]") => {
      res.write(`data: ${chunk === "[DONE]" ? chunk : JSON.stringify(chunk)}\n\n`);
    };
    const openAiChunk = (delta: Json, finish: string | null) => ({
      id: "chatcmpl-fake",
      object: "chat.completion.chunk",
      created: 1,
      model: body.model,
      choices: [{ index: 0, delta, finish_reason: finish }],
    });
    const text = (piece: string) =>
      format === "openai" ? openAiChunk({ content: piece }, null) : { response: piece, p: "abc" };
    const finish = (reason: string) =>
      format === "openai"
        ? openAiChunk({}, reason)
        : { response: "", finish_reason: reason, usage: { prompt_tokens: 5 } };

    if (last.role === "tool") {
      for (const piece of SUNNY) send(text(piece));
      send(finish("stop"));
    } else if (/weather/i.test(lastText)) {
      const hasTool = (body.tools as Json[] | undefined)?.some(
        (t) => (t.function as Json).name === "get_weather",
      );
      if (!hasTool) this.violation("weather asked but get_weather tool not offered");
      if (format === "openai") {
        send(openAiChunk({ role: "assistant", content: null }, null));
        send(
          openAiChunk(
            {
              tool_calls: [
                {
                  index: 0,
                  id: "call_w1",
                  type: "function",
                  function: { name: "get_weather", arguments: "" },
                },
              ],
            },
            null,
          ),
        );
        for (const fragment of WEATHER_ARGS) {
          send(openAiChunk({ tool_calls: [{ index: 0, function: { arguments: fragment } }] }, null));
        }
        send(openAiChunk({}, "tool_calls"));
      } else {
        // Workers AI native streaming of tool calls, incl. the all-null finalization sentinel
        // (as handled in cloudflare/ai packages/workers-ai-provider/src/streaming.ts).
        send({
          response: "",
          tool_calls: [
            { id: "chatcmpl-tool-1", type: "function", index: 0, function: { name: "get_weather" } },
          ],
        });
        for (const fragment of WEATHER_ARGS)
          send({ response: "", tool_calls: [{ index: 0, function: { arguments: fragment } }] });
        send({
          response: "",
          tool_calls: [{ id: null, type: null, index: 0, function: { name: null, arguments: null } }],
        });
      }
    } else if (/long/i.test(lastText)) {
      for (let i = 0; i < 500 && !aborted; i++) {
        send(text(`word${i} `));
        await sleep(5);
      }
      if (!aborted) send(finish("length"));
    } else if (/drop/i.test(lastText)) {
      send(text("Partial"));
      send(text(" answer"));
      await sleep(5);
      raw.socket.destroy();
      return;
    } else {
      for (const piece of HELLO) send(text(piece));
      send(finish("stop"));
    }
    if (aborted) return;
    send("[DONE]");
    res.end();
  }

  private async transcribe(body: Buffer, raw: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = await new Request("http://fake/", {
      method: "POST",
      headers: { "content-type": String(raw.headers["content-type"]) },
      body,
    }).formData();
    const file = form.get("file");
    const fail = (message: string) => {
      this.violation(`transcription: ${message}`);
      res.writeHead(400).end(JSON.stringify({ error: { message } }));
    };
    if (!(file instanceof Blob)) return fail("no file part");
    if (typeof form.get("model") !== "string") return fail("no model");
    if (!/^[a-z]{2}$/.test(String(form.get("language")))) return fail(`language ${form.get("language")}`);
    if (form.get("response_format") !== "json") return fail("response_format not json");
    const wav = Buffer.from(await file.arrayBuffer());
    if (wav.toString("ascii", 0, 4) !== "RIFF" || wav.toString("ascii", 8, 12) !== "WAVE")
      return fail("not a WAV");
    const format = wav.readUInt16LE(20);
    const channels = wav.readUInt16LE(22);
    const rate = wav.readUInt32LE(24);
    const bits = wav.readUInt16LE(34);
    if (format !== 1 || channels !== 1 || rate !== 8000 || bits !== 16) {
      return fail(
        `WAV is format ${format} ${channels}ch ${rate} Hz ${bits} bit, want PCM mono 8000 Hz 16 bit`,
      );
    }
    if (wav.toString("ascii", 36, 40) !== "data" || wav.readUInt32LE(40) !== wav.length - 44)
      return fail("bad data chunk");
    const pcm = readPcmLe(wav.subarray(44));
    let speechFrames = 0;
    for (let offset = 0; offset + 160 <= pcm.length; offset += 160) {
      const kind = classify(pcm.subarray(offset, offset + 160));
      if (kind === "garbled") return fail("audio is neither tone nor silence: wrong G.711 law decoded?");
      if (kind === "speech") speechFrames++;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ text: speechFrames === 0 ? "" : ` ${wordsFor(speechFrames * 20)} ` }));
  }

  private async speech(request: FakeRequest, body: Json, res: ServerResponse): Promise<void> {
    const fail = (message: string) => {
      this.violation(`speech: ${message}`);
      res.writeHead(400).end(JSON.stringify({ error: { message } }));
    };
    if (typeof body.model !== "string" || typeof body.voice !== "string") return fail("model/voice missing");
    if (typeof body.input !== "string" || body.input === "") return fail("input missing");
    if (body.response_format !== "pcm" && body.response_format !== "wav")
      return fail(`format ${body.response_format}`);
    this.count("speech:requests");
    res.on("close", () => {
      if (!res.writableFinished) this.count("speech:client-aborted");
    });
    const pcm = pcmLe(speechFor(body.input, 24000));
    let payload = pcm;
    if (body.response_format === "wav") {
      const header = Buffer.alloc(44);
      header.write("RIFF", 0, "ascii");
      header.writeUInt32LE(0xffffffff, 4); // streamed: size unknown, as real servers do
      header.write("WAVE", 8, "ascii");
      header.write("fmt ", 12, "ascii");
      header.writeUInt32LE(16, 16);
      header.writeUInt16LE(1, 20);
      header.writeUInt16LE(1, 22);
      header.writeUInt32LE(24000, 24);
      header.writeUInt32LE(48000, 28);
      header.writeUInt16LE(2, 32);
      header.writeUInt16LE(16, 34);
      header.write("data", 36, "ascii");
      header.writeUInt32LE(0xffffffff, 40);
      payload = Buffer.concat([header, pcm]);
    }
    res.writeHead(200, { "content-type": body.response_format === "wav" ? "audio/wav" : "audio/pcm" });
    // Odd-sized chunks: the client must carry half samples across chunk boundaries.
    for (let offset = 0; offset < payload.length; offset += 1001) {
      if (res.destroyed) return;
      res.write(payload.subarray(offset, offset + 1001));
      if (request.scenario === "drop" && offset > 0) {
        res.socket?.destroy();
        return;
      }
      await sleep(2);
    }
    res.end();
  }

  /** What the Workers AI binding returns, served over HTTP for the fake `Ai` object to pass through. */
  private async workersAi(
    request: FakeRequest,
    body: Buffer,
    res: ServerResponse,
    raw: IncomingMessage,
  ): Promise<void> {
    const model = decodeURIComponent(request.path.slice("/workers-ai/run/".length));
    const inputs = JSON.parse(body.toString()) as Json;
    if (request.scenario === "unauthorized") {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ errors: [{ code: 10000, message: "Authentication error" }] }));
      return;
    }
    if (request.scenario === "busy") {
      res.writeHead(429, { "content-type": "application/json" });
      res.end(JSON.stringify({ errors: [{ code: 3040, message: "Capacity temporarily exceeded" }] }));
      return;
    }
    if (model.startsWith("@cf/deepgram/aura")) {
      const fail = (message: string) => {
        this.violation(`aura: ${message}`);
        res.writeHead(400).end(JSON.stringify({ errors: [{ code: 5006, message }] }));
      };
      if (typeof inputs.text !== "string" || inputs.text === "") return fail("text missing");
      if (inputs.encoding !== "mulaw" || inputs.sample_rate !== 8000 || inputs.container !== "none") {
        return fail(`wants raw mulaw 8000, got ${inputs.encoding}/${inputs.sample_rate}/${inputs.container}`);
      }
      const audio = encodeG711("PCMU" as G711Codec, speechFor(inputs.text, 8000));
      res.writeHead(200, { "content-type": "audio/basic" });
      for (let offset = 0; offset < audio.length; offset += 800) {
        if (res.destroyed) return;
        res.write(audio.subarray(offset, offset + 800));
        await sleep(2);
      }
      res.end();
      return;
    }
    await this.chat(inputs, res, raw, "workers-ai");
  }
}
