/**
 * In-process fake providers implementing our own provider interfaces with scripted behaviour and
 * fixed latencies. They stand in for vendors in the pipeline/Durable Object tests and the benchmark
 * (vendor wire protocols are tested against local fake servers in test/providers/, owned elsewhere).
 * Deterministic: what they say comes from queues the test fills; latency is a fixed number of ms (0 =
 * next macrotask). Runtime-neutral (timers only), so the same fakes run in workerd and Node.
 */
import { frameLevelDb } from "../../src/pipeline/vad";
import type {
  RealtimeConnectOptions,
  RealtimeEvents,
  RealtimeProvider,
  RealtimeSession,
} from "../../src/providers/realtime-types";
import type {
  AudioFormat,
  ChatEvent,
  ChatMessage,
  ChatRequest,
  LlmProvider,
  SttCapabilities,
  SttEvents,
  SttProvider,
  SttSession,
  ToolCall,
  TtsEvents,
  TtsProvider,
  TtsSession,
} from "../../src/providers/types";

const later = (ms: number, callback: () => void) => setTimeout(callback, ms);

// ---- STT ----------------------------------------------------------------------------------------

export interface FakeSttOptions {
  capabilities?: Partial<SttCapabilities>;
  /** Silence after speech before the fake's own end-of-turn fires (providers with endOfTurn). */
  endOfTurnSilenceMs?: number;
  /** Delay between finalize() and the final transcript (providers without endOfTurn). */
  latencyMs?: number;
}

/**
 * Listens to energy like a real STT: loud frames are "speech" (onSpeechStarted, then one interim), and
 * after `endOfTurnSilenceMs` of quiet it ends the turn with the next scripted transcript.
 */
export class FakeStt implements SttProvider {
  readonly name = "fake-stt";
  readonly capabilities: SttCapabilities;
  readonly sessions: FakeSttSession[] = [];

  constructor(
    readonly hub: FakeHub,
    private readonly options: FakeSttOptions = {},
  ) {
    this.capabilities = {
      endOfTurn: true,
      eagerEndOfTurn: false,
      interimResults: true,
      speechStarted: true,
      ...options.capabilities,
    };
  }

  async connect(options: { format: AudioFormat }, events: SttEvents): Promise<SttSession> {
    const session = new FakeSttSession(this.hub, this.capabilities, options.format, events, this.options);
    this.sessions.push(session);
    this.hub.stt = session;
    return session;
  }
}

export class FakeSttSession implements SttSession {
  bytesReceived = 0;
  finalizeCalls = 0;
  closed = false;
  #inSpeech = false;
  #quietMs = 0;

  constructor(
    readonly hub: FakeHub,
    readonly capabilities: SttCapabilities,
    readonly format: AudioFormat,
    readonly events: SttEvents,
    private readonly options: FakeSttOptions,
  ) {}

  sendAudio(audio: Uint8Array): void {
    if (this.closed) return;
    this.bytesReceived += audio.length;
    const loud = frameLevelDb(this.format.codec, audio) > -35;
    if (loud) {
      this.#quietMs = 0;
      if (!this.#inSpeech) {
        this.#inSpeech = true;
        if (this.capabilities.speechStarted) this.events.onSpeechStarted();
        if (this.capabilities.interimResults) this.events.onInterim(this.hub.peekUtterance() ?? "…");
      }
      return;
    }
    if (!this.#inSpeech || !this.capabilities.endOfTurn) return;
    this.#quietMs += Math.max(20, (audio.length / 160) * 20);
    if (this.#quietMs >= (this.options.endOfTurnSilenceMs ?? 200)) {
      this.#inSpeech = false;
      this.endTurn(this.hub.takeUtterance() ?? "");
    }
  }

  /** Test control: end the caller's turn now with this transcript. */
  endTurn(transcript: string, eager = false): void {
    this.events.onFinal(transcript);
    this.events.onEndOfTurn(transcript, { eager });
  }

  finalize(): void {
    this.finalizeCalls++;
    this.#inSpeech = false;
    const transcript = this.hub.takeUtterance() ?? "";
    later(this.options.latencyMs ?? 0, () => {
      if (!this.closed) this.events.onFinal(transcript);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

// ---- LLM ----------------------------------------------------------------------------------------

export type ScriptedReply = { text?: string; toolCalls?: ToolCall[] };

/** Streams the next scripted reply word by word, `tokenLatencyMs` apart, after `firstTokenMs`. */
export class FakeLlm implements LlmProvider {
  readonly name = "fake-llm";
  readonly requests: ChatMessage[][] = [];

  constructor(
    readonly hub: FakeHub,
    private readonly latency: { firstTokenMs: number; tokenMs: number } = { firstTokenMs: 0, tokenMs: 0 },
  ) {
    hub.lastLlm = this;
  }

  async *stream(request: ChatRequest): AsyncIterable<ChatEvent> {
    this.requests.push(request.messages.map((message) => ({ ...message })));
    this.hub.llmCalls.push({ atMs: now(), messages: request.messages.length });
    const reply = this.hub.replies.shift() ?? { text: "I'm not sure." };
    await sleep(this.latency.firstTokenMs, request.signal);
    const words = (reply.text ?? "").split(/(?<=\s)/).filter(Boolean);
    for (const [index, word] of words.entries()) {
      if (request.signal.aborted) return;
      if (index > 0) await sleep(this.latency.tokenMs, request.signal);
      if (request.signal.aborted) return;
      this.hub.tokens.push(now());
      yield { type: "text", delta: word };
    }
    for (const call of reply.toolCalls ?? []) yield { type: "tool_call", call };
    yield { type: "done", finishReason: reply.toolCalls?.length ? "tool_calls" : "stop" };
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = later(ms, resolve);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

// ---- TTS ----------------------------------------------------------------------------------------

/** Bytes of fake audio per character of text: 8 bytes (1 ms) per char, at least one frame. */
export const FAKE_TTS_BYTES_PER_CHAR = 8;

/**
 * Each speak() produces audio (length proportional to the text) after `latencyMs`, in two chunks
 * (bytes 0x40+2n and 0x41+2n for the n-th utterance); each flush() is answered with onFlushed after the audio before it. clear() drops
 * everything pending, and nothing of it is delivered afterwards.
 */
export class FakeTts implements TtsProvider {
  readonly name = "fake-tts";
  readonly sessions: FakeTtsSession[] = [];

  constructor(
    readonly hub: FakeHub,
    private readonly latencyMs = 0,
  ) {}

  async connect(options: { format: AudioFormat; voice: string }, events: TtsEvents): Promise<TtsSession> {
    const session = new FakeTtsSession(this.hub, events, this.latencyMs, options.voice);
    this.sessions.push(session);
    this.hub.tts = session;
    return session;
  }
}

export class FakeTtsSession implements TtsSession {
  readonly spoken: string[] = [];
  clears = 0;
  closed = false;
  #pending = new Set<ReturnType<typeof setTimeout>>();
  /** Work is serialized so audio and flush acknowledgements stay in order. */
  #chain: { run: () => void }[] = [];
  #busy = false;

  constructor(
    readonly hub: FakeHub,
    readonly events: TtsEvents,
    readonly latencyMs: number,
    readonly voice: string,
  ) {}

  speak(text: string): void {
    this.spoken.push(text);
    this.hub.speakCalls.push(now());
    const bytes = Math.max(160, text.length * FAKE_TTS_BYTES_PER_CHAR);
    // Each half of each utterance has its own byte value, so a test can tell chunks apart.
    const marker = 0x40 + (((this.spoken.length - 1) * 2) % 64);
    this.#enqueue(() => {
      const half = Math.floor(bytes / 2);
      const audio = new Uint8Array(bytes).fill(marker, 0, half).fill(marker + 1, half);
      this.hub.audioEmitted.push(now());
      this.events.onAudio(audio.subarray(0, half));
      this.events.onAudio(audio.subarray(half));
    });
  }

  flush(): void {
    this.#enqueue(() => this.events.onFlushed());
  }

  clear(): void {
    this.clears++;
    for (const timer of this.#pending) clearTimeout(timer);
    this.#pending.clear();
    this.#chain = [];
    this.#busy = false;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.clear();
  }

  #enqueue(run: () => void): void {
    this.#chain.push({ run });
    this.#pump();
  }

  #pump(): void {
    if (this.#busy || this.closed) return;
    const next = this.#chain.shift();
    if (!next) return;
    this.#busy = true;
    const timer = later(this.latencyMs, () => {
      this.#pending.delete(timer);
      this.#busy = false;
      if (this.closed) return;
      next.run();
      this.#pump();
    });
    this.#pending.add(timer);
  }
}

// ---- Speech to speech ----------------------------------------------------------------------------

/**
 * A realtime (speech-to-speech) provider the test drives directly: requestResponse() answers with the
 * scripted audio length for a new item; the test calls speechStarted() / toolCall() to play the model.
 */
export class FakeRealtime implements RealtimeProvider {
  readonly name = "fake-realtime";
  constructor(readonly hub: FakeHub) {}

  async connect(options: RealtimeConnectOptions, events: RealtimeEvents): Promise<RealtimeSession> {
    const session = new FakeRealtimeSession(options, events);
    this.hub.realtime = session;
    return session;
  }
}

export class FakeRealtimeSession implements RealtimeSession {
  bytesReceived = 0;
  readonly requests: (string | undefined)[] = [];
  readonly truncations: { itemId: string; audioEndMs: number }[] = [];
  readonly toolResults: { callId: string; output: string }[] = [];
  closed = false;
  #items = 0;
  /** Bytes of audio each response speaks. */
  responseBytes = 4000;

  constructor(
    readonly options: RealtimeConnectOptions,
    readonly events: RealtimeEvents,
  ) {}

  sendAudio(audio: Uint8Array): void {
    this.bytesReceived += audio.length;
  }

  requestResponse(instructions?: string): void {
    this.requests.push(instructions);
    later(0, () => this.respond("Hello from the realtime model."));
  }

  /** Test control: the model speaks a response item of `responseBytes` in 500-byte deltas. */
  respond(transcript: string): string {
    const itemId = `item_${this.#items++}`;
    for (let sent = 0; sent < this.responseBytes; sent += 500) {
      this.events.onAudio(new Uint8Array(Math.min(500, this.responseBytes - sent)).fill(0x55), itemId);
    }
    this.events.onTranscript("assistant", transcript, true);
    this.events.onResponseDone();
    return itemId;
  }

  truncate(itemId: string, audioEndMs: number): void {
    this.truncations.push({ itemId, audioEndMs });
  }

  sendToolResult(callId: string, output: string): void {
    this.toolResults.push({ callId, output });
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

// ---- The hub: scripts in, observations out ------------------------------------------------------

const now = (): number => (typeof performance !== "undefined" ? performance.now() : Date.now());

/** Shared by the fakes of one test: what the caller "says", what the model "answers", what happened. */
export class FakeHub {
  utterances: string[] = [];
  replies: ScriptedReply[] = [];
  stt?: FakeSttSession;
  tts?: FakeTtsSession;
  lastLlm?: FakeLlm;
  realtime?: FakeRealtimeSession;
  llmCalls: { atMs: number; messages: number }[] = [];
  tokens: number[] = [];
  speakCalls: number[] = [];
  audioEmitted: number[] = [];

  peekUtterance(): string | undefined {
    return this.utterances[0];
  }

  takeUtterance(): string | undefined {
    return this.utterances.shift();
  }

  reset(): void {
    this.utterances = [];
    this.replies = [];
    this.stt = undefined;
    this.tts = undefined;
    this.lastLlm = undefined;
    this.realtime = undefined;
    this.llmCalls = [];
    this.tokens = [];
    this.speakCalls = [];
    this.audioEmitted = [];
  }
}
