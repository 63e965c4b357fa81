/**
 * Fake OpenAI Realtime (GA) WebSocket. Shapes from
 * https://developers.openai.com/api/reference/resources/realtime/client-events and …/server-events.
 * Script: session.created on connect; the first client event must be session.update (validated:
 * type realtime, audio.input/output formats audio/pcmu|pcma, server_vad, function tools), answered
 * with session.updated. Caller tone then silence → speech_started/stopped, committed, transcription,
 * then a response: the first one calls get_weather (the client must send function_call_output and then
 * response.create), later ones speak. response.create from the client speaks the greeting.
 */
import { decodeG711, type G711Codec } from "@patchbay/shared/audio";
import type { WebSocket } from "ws";
import { classify, g711For, Listener } from "./audio";
import { authRefusal, type FakeRequest, FakeServer, sleep } from "./server";

type Json = Record<string, unknown>;

export class FakeOpenAiRealtime extends FakeServer {
  constructor() {
    super("openai-realtime");
  }

  protected refuseUpgrade(request: FakeRequest) {
    if (request.path !== "/v1/realtime") return { status: 404, body: "{}" };
    return authRefusal(request.headers.authorization, (key) => `Bearer ${key}`);
  }

  protected handleSocket(socket: WebSocket, request: FakeRequest): void {
    if (!request.query.get("model")) {
      this.rejectSocket(socket, "no model query parameter");
      return;
    }
    const send = (event: Json) => socket.send(JSON.stringify({ event_id: `evt_${Math.random()}`, ...event }));
    send({ type: "session.created", session: { type: "realtime", id: "sess_fake" } });
    let configured = false;
    let codec: G711Codec = "PCMU";
    let responses = 0;
    let items = 0;
    let activeResponse = false;
    const pendingCalls = new Set<string>();
    const answeredCalls = new Set<string>();
    const audioMs = new Map<string, number>();
    let work = Promise.resolve();
    let hasWeatherTool = false;

    const speak = (text: string) => {
      const responseId = `resp_${++responses}`;
      const itemId = `item_a${++items}`;
      activeResponse = true;
      work = work.then(async () => {
        send({ type: "response.created", response: { id: responseId, status: "in_progress" } });
        send({
          type: "response.output_item.added",
          response_id: responseId,
          item: { id: itemId, type: "message" },
        });
        const audio = g711For(text, codec);
        for (let offset = 0; offset < audio.length; offset += 800) {
          const chunk = audio.subarray(offset, offset + 800);
          audioMs.set(itemId, (audioMs.get(itemId) ?? 0) + chunk.length / 8);
          send({
            type: "response.output_audio.delta",
            response_id: responseId,
            item_id: itemId,
            output_index: 0,
            content_index: 0,
            delta: Buffer.from(chunk).toString("base64"),
          });
          if (request.scenario === "drop") {
            socket.terminate();
            return;
          }
          await sleep(2);
        }
        send({
          type: "response.output_audio_transcript.delta",
          response_id: responseId,
          item_id: itemId,
          delta: text.slice(0, 5),
        });
        send({
          type: "response.output_audio_transcript.delta",
          response_id: responseId,
          item_id: itemId,
          delta: text.slice(5),
        });
        send({
          type: "response.output_audio_transcript.done",
          response_id: responseId,
          item_id: itemId,
          transcript: text,
        });
        activeResponse = false;
        send({ type: "response.done", response: { id: responseId, status: "completed" } });
      });
    };
    const callTool = () => {
      const responseId = `resp_${++responses}`;
      const callId = `call_${responses}`;
      activeResponse = true;
      pendingCalls.add(callId);
      work = work.then(async () => {
        send({ type: "response.created", response: { id: responseId, status: "in_progress" } });
        send({
          type: "response.function_call_arguments.delta",
          response_id: responseId,
          call_id: callId,
          delta: '{"city":',
        });
        send({
          type: "response.function_call_arguments.done",
          response_id: responseId,
          item_id: `item_f${++items}`,
          call_id: callId,
          name: "get_weather",
          arguments: '{"city":"Paris"}',
        });
        activeResponse = false;
        send({ type: "response.done", response: { id: responseId, status: "completed" } });
      });
    };

    const listener = new Listener(25, {
      started: () =>
        send({ type: "input_audio_buffer.speech_started", audio_start_ms: 0, item_id: `item_u${items + 1}` }),
      interim: () => {},
      silence: (frames, words) => {
        if (frames !== 25) return;
        const itemId = `item_u${++items}`;
        send({ type: "input_audio_buffer.speech_stopped", audio_end_ms: 1000, item_id: itemId });
        send({ type: "input_audio_buffer.committed", item_id: itemId });
        send({
          type: "conversation.item.input_audio_transcription.completed",
          item_id: itemId,
          content_index: 0,
          transcript: words,
        });
        listener.reset();
        if (hasWeatherTool && answeredCalls.size === 0) callTool();
        else speak("Bravo, understood.");
      },
    });

    socket.on("message", (data, isBinary) => {
      if (isBinary) return this.rejectSocket(socket, "binary frame (audio must be base64 JSON)");
      const event = JSON.parse(String(data)) as Json;
      if (!configured && event.type !== "session.update") {
        return this.rejectSocket(socket, `first event must be session.update, got ${String(event.type)}`);
      }
      switch (event.type) {
        case "session.update": {
          const session = event.session as Json | undefined;
          const audio = session?.audio as Json | undefined;
          const input = audio?.input as Json | undefined;
          const output = audio?.output as Json | undefined;
          const inFormat = (input?.format as Json | undefined)?.type;
          const outFormat = (output?.format as Json | undefined)?.type;
          if (session?.type !== "realtime")
            return this.rejectSocket(socket, "session.type must be realtime (GA)");
          if ((inFormat !== "audio/pcmu" && inFormat !== "audio/pcma") || outFormat !== inFormat) {
            return this.rejectSocket(socket, `formats ${String(inFormat)}/${String(outFormat)}`);
          }
          if ((input?.turn_detection as Json | undefined)?.type !== "server_vad")
            return this.rejectSocket(socket, "no server_vad");
          for (const tool of (session.tools as Json[] | undefined) ?? []) {
            if (tool.type !== "function" || typeof tool.name !== "string")
              return this.rejectSocket(socket, "bad tool");
            if (tool.name === "get_weather") hasWeatherTool = true;
          }
          codec = inFormat === "audio/pcmu" ? "PCMU" : "PCMA";
          configured = true;
          send({ type: "session.updated", session });
          return;
        }
        case "input_audio_buffer.append": {
          const bytes = Buffer.from(String(event.audio), "base64");
          for (let offset = 0; offset + 160 <= bytes.length; offset += 160) {
            const kind = classify(decodeG711(codec, new Uint8Array(bytes.subarray(offset, offset + 160))));
            if (!listener.frame(kind))
              return this.rejectSocket(socket, "caller audio is not in the declared format");
          }
          return;
        }
        case "conversation.item.truncate": {
          const itemId = String(event.item_id);
          const played = audioMs.get(itemId);
          if (played === undefined) return this.rejectSocket(socket, `truncate of unknown item ${itemId}`);
          if (
            event.content_index !== 0 ||
            typeof event.audio_end_ms !== "number" ||
            event.audio_end_ms > played
          ) {
            return this.rejectSocket(socket, `bad truncate ${String(data)} (item has ${played} ms)`);
          }
          this.count("truncate");
          send({
            type: "conversation.item.truncated",
            item_id: itemId,
            content_index: 0,
            audio_end_ms: event.audio_end_ms,
          });
          return;
        }
        case "conversation.item.create": {
          const item = event.item as Json | undefined;
          if (
            item?.type !== "function_call_output" ||
            !pendingCalls.has(String(item.call_id)) ||
            typeof item.output !== "string"
          ) {
            return this.rejectSocket(socket, `unexpected item ${String(data)}`);
          }
          pendingCalls.delete(String(item.call_id));
          answeredCalls.add(String(item.call_id));
          return;
        }
        case "response.create":
          if (activeResponse) return this.rejectSocket(socket, "response.create while a response is active");
          if (pendingCalls.size > 0)
            return this.rejectSocket(socket, "response.create before all tool outputs");
          this.count("response.create");
          speak(
            answeredCalls.size > 0 && responses > 0
              ? "Charlie says it is sunny."
              : "Alpha, welcome to the fake line.",
          );
          return;
        default:
          this.rejectSocket(socket, `unknown client event ${String(event.type)}`);
      }
    });
  }
}
