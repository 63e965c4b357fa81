/**
 * Fake Deepgram: live STT v1 (/v1/listen), Flux v2 (/v2/listen) and Aura TTS (/v1/speak), plus the
 * same STT protocols as the Workers AI binding's WebSocket mode serves them (/workers-ai/@cf/deepgram/*,
 * no auth header: the binding authenticates itself). Message shapes from
 * https://developers.deepgram.com/reference/speech-to-text/listen-streaming,
 * https://developers.deepgram.com/docs/flux/state, https://developers.deepgram.com/reference/text-to-speech/speak-streaming.
 */
import { decodeG711, type G711Codec } from "@patchbay/shared/audio";
import type { WebSocket } from "ws";
import { classify, g711For, Listener, readPcmLe } from "./audio";
import { authRefusal, type FakeRequest, FakeServer, sleep } from "./server";

type Encoding = "mulaw" | "alaw" | "linear16";

function codecOf(encoding: string): G711Codec | undefined {
  return encoding === "mulaw" ? "PCMU" : encoding === "alaw" ? "PCMA" : undefined;
}

export class FakeDeepgram extends FakeServer {
  constructor() {
    super("deepgram");
  }

  protected refuseUpgrade(request: FakeRequest) {
    if (request.scenario === "flaky" && this.count(`flaky:${request.path}`) === 1) {
      return { status: 503, body: JSON.stringify({ err_code: "INTERNAL", err_msg: "try again" }) };
    }
    if (request.path.startsWith("/workers-ai/")) return undefined;
    if (!["/v1/listen", "/v2/listen", "/v1/speak"].includes(request.path)) {
      return { status: 404, body: "{}" };
    }
    return authRefusal(request.headers.authorization, (key) => `Token ${key}`);
  }

  protected handleSocket(socket: WebSocket, request: FakeRequest): void {
    this.count(`connect:${request.path}`);
    switch (request.path) {
      case "/v1/listen":
      case "/workers-ai/@cf/deepgram/nova-3":
        this.live(socket, request);
        return;
      case "/v2/listen":
      case "/workers-ai/@cf/deepgram/flux":
        this.flux(socket, request);
        return;
      case "/v1/speak":
        this.speak(socket, request);
        return;
      default:
        this.rejectSocket(socket, `unknown path ${request.path}`);
    }
  }

  /** Splits incoming audio into 20 ms frames of PCM according to the declared encoding. */
  private framer(socket: WebSocket, encoding: string, rate: number, onFrame: (pcm: Int16Array) => void) {
    const codec = codecOf(encoding);
    const bytesPerFrame = (rate / 50) * (codec ? 1 : 2);
    let pending = Buffer.alloc(0);
    return (data: Buffer) => {
      pending = Buffer.concat([pending, data]);
      while (pending.length >= bytesPerFrame) {
        const frame = pending.subarray(0, bytesPerFrame);
        pending = pending.subarray(bytesPerFrame);
        onFrame(codec ? decodeG711(codec, new Uint8Array(frame)) : readPcmLe(Buffer.from(frame)));
      }
      if (encoding !== "mulaw" && encoding !== "alaw" && encoding !== "linear16") {
        this.rejectSocket(socket, `unsupported encoding ${encoding}`);
      }
    };
  }

  private checkQuery(socket: WebSocket, query: URLSearchParams, expected: Record<string, RegExp>): boolean {
    for (const [name, pattern] of Object.entries(expected)) {
      const value = query.get(name);
      if (value === null || !pattern.test(value)) {
        this.rejectSocket(socket, `query ${name}=${String(value)} does not match ${pattern}`);
        return false;
      }
    }
    return true;
  }

  private live(socket: WebSocket, request: FakeRequest): void {
    const binding = request.path.startsWith("/workers-ai/");
    const ok = this.checkQuery(socket, request.query, {
      ...(binding ? {} : { model: /^nova-3/ }),
      encoding: binding ? /^mulaw$/ : /^(mulaw|alaw)$/,
      sample_rate: /^8000$/,
      interim_results: /^true$/,
      endpointing: /^\d+$/,
      utterance_end_ms: /^\d+$/,
      vad_events: /^true$/,
    });
    if (!ok) return;
    const encoding = request.query.get("encoding") as Encoding;
    const endpointingFrames = Math.max(1, Math.round(Number(request.query.get("endpointing")) / 20));
    let audioFrames = 0;
    let garbledReported = false;
    let spokenSinceFinal = false;
    const results = (transcript: string, isFinal: boolean, speechFinal: boolean, fromFinalize = false) => ({
      type: "Results",
      channel_index: [0, 1],
      duration: 0.5,
      start: 0,
      is_final: isFinal,
      speech_final: speechFinal,
      ...(fromFinalize ? { from_finalize: true } : {}),
      channel: { alternatives: [{ transcript, confidence: 0.98, words: [] }] },
      metadata: { request_id: "fake", model_info: { name: "nova-3" } },
    });
    const listener = new Listener(endpointingFrames, {
      started: () => socket.send(JSON.stringify({ type: "SpeechStarted", channel: [0], timestamp: 0.1 })),
      interim: (words) => {
        spokenSinceFinal = true;
        socket.send(JSON.stringify(results(words, false, false)));
      },
      silence: (frames, words) => {
        if (frames === endpointingFrames) {
          socket.send(JSON.stringify(results(words, true, true)));
          socket.send(JSON.stringify({ type: "UtteranceEnd", channel: [0, 1], last_word_end: 1.0 }));
          spokenSinceFinal = false;
          listener.reset();
        }
      },
    });
    const feed = this.framer(socket, encoding, 8000, (pcm) => {
      audioFrames++;
      if (!listener.frame(classify(pcm)) && !garbledReported) {
        garbledReported = true;
        this.rejectSocket(socket, `audio frames are neither tone nor silence: encoding is not ${encoding}?`);
        return;
      }
      if (request.scenario === "drop" && audioFrames === 10) socket.terminate();
    });
    socket.on("message", (data, isBinary) => {
      if (isBinary) {
        feed(data as Buffer);
        return;
      }
      let message: { type?: unknown };
      try {
        message = JSON.parse(String(data)) as { type?: unknown };
      } catch {
        this.rejectSocket(socket, `text frame is not JSON: ${String(data).slice(0, 40)}`);
        return;
      }
      switch (message.type) {
        case "KeepAlive":
          this.count("KeepAlive");
          return;
        case "Finalize":
          this.count("Finalize");
          if (listener.inSpeech || spokenSinceFinal) {
            socket.send(JSON.stringify(results(listener.words(), true, false, true)));
            spokenSinceFinal = false;
            listener.reset();
          }
          return;
        case "CloseStream":
          this.count("CloseStream");
          socket.send(JSON.stringify({ type: "Metadata", request_id: "fake", duration: audioFrames * 0.02 }));
          socket.close(1000);
          return;
        default:
          this.rejectSocket(socket, `unknown control message ${JSON.stringify(message)}`);
      }
    });
  }

  private flux(socket: WebSocket, request: FakeRequest): void {
    const binding = request.path.startsWith("/workers-ai/");
    const ok = this.checkQuery(socket, request.query, {
      ...(binding ? { encoding: /^linear16$/, sample_rate: /^(8000|16000)$/ } : {}),
      ...(binding ? {} : { model: /^flux-general-en$/, encoding: /^(mulaw|alaw)$/, sample_rate: /^8000$/ }),
      eot_threshold: /^0\.\d+$/,
    });
    if (!ok) return;
    const encoding = request.query.get("encoding") as Encoding;
    const rate = Number(request.query.get("sample_rate"));
    const eager = request.query.has("eager_eot_threshold");
    let turnIndex = 0;
    let garbledReported = false;
    let audioFrames = 0;
    const turnInfo = (event: string, transcript: string, confidence: number) =>
      JSON.stringify({
        type: "TurnInfo",
        event,
        turn_index: turnIndex,
        audio_window_start: 0,
        audio_window_end: 1,
        transcript,
        words: [],
        end_of_turn_confidence: confidence,
      });
    socket.send(JSON.stringify({ type: "Connected", request_id: "fake", sequence_id: 0 }));
    let resumedPending = false;
    const listener = new Listener(20, {
      started: () => socket.send(turnInfo("StartOfTurn", "", 0.01)),
      interim: (words) => socket.send(turnInfo("Update", words, 0.1)),
      silence: (frames, words) => {
        if (eager && frames === 10) {
          socket.send(turnInfo("EagerEndOfTurn", words, 0.6));
          resumedPending = true;
        }
        if (frames === 20) {
          resumedPending = false;
          socket.send(turnInfo("EndOfTurn", words, 0.9));
          turnIndex++;
          listener.reset();
        }
      },
    });
    const feed = this.framer(socket, encoding, rate, (pcm) => {
      audioFrames++;
      const kind = classify(pcm);
      // Tone again after an eager end of turn: the same turn resumes (words keep counting).
      if (kind === "speech" && resumedPending) {
        resumedPending = false;
        socket.send(turnInfo("TurnResumed", listener.words(), 0.2));
      }
      if (!listener.frame(kind) && !garbledReported) {
        garbledReported = true;
        this.rejectSocket(socket, `audio frames are neither tone nor silence: not ${encoding} at ${rate}?`);
        return;
      }
      if (request.scenario === "drop" && audioFrames === 10) socket.terminate();
    });
    socket.on("message", (data, isBinary) => {
      if (isBinary) {
        feed(data as Buffer);
        return;
      }
      const message = JSON.parse(String(data)) as { type?: unknown };
      if (message.type === "CloseStream") {
        this.count("CloseStream");
        socket.close(1000);
        return;
      }
      this.rejectSocket(socket, `unexpected Flux control message ${String(data)}`);
    });
  }

  private speak(socket: WebSocket, request: FakeRequest): void {
    const ok = this.checkQuery(socket, request.query, {
      model: /^aura/,
      encoding: /^(mulaw|alaw)$/,
      sample_rate: /^8000$/,
    });
    if (!ok) return;
    const codec = codecOf(request.query.get("encoding")!)!;
    let queued: string[] = [];
    let generation = 0;
    let sequence = 0;
    /** Serializes Flush handling so audio and Flushed keep their order. */
    let work = Promise.resolve();
    socket.on("message", (data, isBinary) => {
      if (isBinary) {
        this.rejectSocket(socket, "binary frame sent to a TTS socket");
        return;
      }
      const message = JSON.parse(String(data)) as { type?: unknown; text?: unknown };
      switch (message.type) {
        case "Speak":
          if (typeof message.text !== "string" || message.text === "") {
            this.rejectSocket(socket, "Speak without text");
            return;
          }
          queued.push(message.text);
          return;
        case "Flush": {
          const texts = queued;
          queued = [];
          const mine = generation;
          const id = sequence++;
          work = work.then(async () => {
            for (const text of texts) {
              const audio = g711For(text, codec);
              for (let offset = 0; offset < audio.length; offset += 800) {
                if (mine !== generation || socket.readyState !== socket.OPEN) return;
                socket.send(audio.subarray(offset, offset + 800));
                if (request.scenario === "drop") {
                  socket.terminate();
                  return;
                }
                await sleep(2);
              }
            }
            if (mine === generation) socket.send(JSON.stringify({ type: "Flushed", sequence_id: id }));
          });
          return;
        }
        case "Clear":
          generation++;
          queued = [];
          work = work.then(() => {
            socket.send(JSON.stringify({ type: "Cleared", sequence_id: sequence }));
          });
          return;
        case "Close":
          work = work.then(() => socket.close(1000));
          return;
        default:
          this.rejectSocket(socket, `unknown TTS message ${String(data)}`);
      }
    });
  }
}
