/**
 * The voice agent's conversation loop for one call: caller audio → STT → turn-taking → LLM (with tools)
 * → clause chunker → TTS → agent audio + marks, with barge-in. It owns the provider sessions and the
 * per-turn AbortController; it does no I/O of its own: audio and control messages go out through
 * `host.output`, persistence through `host.store`, time through `host.clock`. The Durable Object is a
 * thin adapter around it, and the benchmark drives it with fake providers and a real clock.
 *
 * What "heard" means: the agent's reply is spoken clause by clause; after each clause's audio the
 * bridge gets a `mark`, and acknowledges it with `mark_played` once the clause's last sample has been
 * played to the caller. A clause counts as heard only when its mark comes back, so on barge-in the
 * history keeps whole clauses the caller heard and drops the clause that was cut off (clause-level
 * granularity: at most one clause of lost words, never words the caller did not hear).
 */
import { BYTES_PER_FRAME, FRAME_MS } from "@patchbay/shared/audio";
import type { HangupCause, WorkerMessage } from "@patchbay/shared/protocol";
import type { AgentDefinition, WebhookToolDefinition } from "../agents/schema";
import type {
  AudioFormat,
  ChatMessage,
  LlmProvider,
  ProviderError,
  SttProvider,
  SttSession,
  ToolCall,
  ToolSpec,
  TtsProvider,
  TtsSession,
} from "../providers/types";
import { ClauseChunker } from "./chunker";
import type { Clock, TimerHandle } from "./clock";
import { parseToolArguments, runWebhookTool, toolSpecsFor, type WebhookDeps } from "./tools";
import {
  PendingTransfer,
  refuseTransferTarget,
  type TransferOutcome,
  type TransferState,
  transferFailure,
  transferSummary,
} from "./transfer";
import { EnergyVad } from "./vad";

// ---- What the conversation keeps and reports -------------------------------------------------

export interface HistoryEntry {
  /** Position in the conversation (0, 1, 2…), stable across restarts. */
  id: number;
  turn: number;
  message: ChatMessage;
  /** Assistant messages: the clauses the caller has heard so far (see the file comment). */
  heard?: string;
  /** Assistant messages: false while its audio may still be playing; true once settled. */
  complete: boolean;
  /** The turn was cut short by barge-in (or a reconnect); `message.content` is what was heard. */
  interrupted?: boolean;
  atMs: number;
}

/** Per-turn timestamps (host clock, ms). Absent where the stage did not happen. */
export interface TurnTimestamps {
  callerSpeechEndAt?: number;
  finalizeAt?: number;
  endOfTurnAt?: number;
  llmStartAt?: number;
  llmFirstTokenAt?: number;
  firstSpeakAt?: number;
  ttsFirstAudioAt?: number;
  firstFrameSentAt?: number;
}

export interface TurnRecord {
  turn: number;
  source: "greeting" | "caller" | "dtmf";
  userText?: string;
  startedAt: number;
  endedAt?: number;
  interrupted: boolean;
  timestamps: TurnTimestamps;
  /** The durations sent to the bridge as `turn_timing`. */
  timing: Omit<Extract<WorkerMessage, { type: "turn_timing" }>, "type" | "turn">;
}

export interface ConversationStore {
  appendMessage(entry: HistoryEntry): void;
  updateMessage(entry: HistoryEntry): void;
  saveTurn(turn: TurnRecord): void;
}

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface ConversationHost {
  output: {
    /** Agent audio in the call's codec, any length (the adapter frames it). */
    sendAudio(audio: Uint8Array): void;
    send(message: WorkerMessage): void;
  };
  store: ConversationStore;
  clock: Clock;
  webhook: WebhookDeps;
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void;
  /** The conversation decided the call is over (end_call done, transfer completed, fatal provider error). */
  onCallEnd(cause: HangupCause, reason?: string): void;
}

/** What the Durable Object drives: the pipeline Conversation or the speech-to-speech RealtimeConversation. */
export interface CallAgent {
  readonly agentTalking: boolean;
  readonly history: readonly HistoryEntry[];
  start(): Promise<void>;
  pushCallerAudio(audio: Uint8Array): void;
  markPlayed(name: string): void;
  callerDtmf(digit: string): void;
  transferResult(result: { ok: boolean; target: string; reason?: string; sipStatus?: number }): void;
  /** Warm transfer progress (PROTOCOL.md §9). */
  transferProgress(progress: { target: string; state: TransferState }): void;
  onReconnected(): void;
  close(): Promise<void>;
}

export interface ConversationOptions {
  callId: string;
  agent: AgentDefinition;
  format: AudioFormat;
  providers: { stt: SttProvider; llm: LlmProvider; tts: TtsProvider };
  /** The conversation so far (a resumed call); empty for a new call. */
  history?: HistoryEntry[];
  /** Whether to speak the agent's greeting when started (new calls only). */
  greet: boolean;
  /** Upper bound on waiting for playout before hanging up / transferring. */
  drainTimeoutMs?: number;
  /** Blind transfer: how long to wait for the bridge's transfer_result (default 40 s). */
  transferTimeoutMs?: number;
  /** Warm transfer: give up this long after the last transfer_progress (default 60 s). */
  warmTransferIdleMs?: number;
  /** Model ↔ tool round trips per caller turn. */
  maxToolRounds?: number;
}

// ---- Internal turn state ---------------------------------------------------------------------

interface Clause {
  text: string;
  mark: string;
  /** Audio and mark sent to the bridge (the TTS flushed it). */
  sent: boolean;
  played: boolean;
}

/** One assistant message within a turn: the model's text of one LLM round (plus its tool calls). */
interface Segment {
  clauses: Clause[];
  entry?: HistoryEntry;
  /** A warm transfer's summary, spoken to the human: never part of the caller's conversation. */
  toHuman?: boolean;
}

interface Turn {
  record: TurnRecord;
  controller: AbortController;
  segments: Segment[];
  /** Clauses held back until a speculative (eager end-of-turn) turn is confirmed. */
  held: { segment: Segment; text: string }[];
  speculative: boolean;
  speculativeTranscript?: string;
  /** The LLM / tool loop is over (no more clauses will be added). */
  generationDone: boolean;
  settled: boolean;
  clauseCount: number;
  timingSent: boolean;
  /** Set while a speculative turn's generation waits for the caller's turn to be confirmed. */
  waitConfirmed?: () => void;
}

interface ActiveTransfer {
  pending: PendingTransfer;
  /** The turn whose transfer_call is waiting. */
  turn: Turn;
  /** Warm: the summary's clauses, once the human answered. */
  summary?: Segment;
}

interface DrainWaiter {
  turn: Turn;
  finish(): void;
}

interface QueuedClause {
  turn: Turn;
  clause: Clause;
}

const DEFAULT_DRAIN_TIMEOUT_MS = 15_000;
const DEFAULT_MAX_TOOL_ROUNDS = 5;
const STOP = Symbol("stop");

export class Conversation implements CallAgent {
  readonly #options: ConversationOptions;
  readonly #host: ConversationHost;
  readonly #agent: AgentDefinition;
  readonly #tools: ToolSpec[];
  readonly #vad: EnergyVad;
  readonly #history: HistoryEntry[];
  #stt?: SttSession;
  #tts?: TtsSession;
  #turn?: Turn;
  #nextTurnIndex: number;
  /** Clauses spoken to the TTS and waiting for onFlushed, in order. */
  #ttsQueue: QueuedClause[] = [];
  #marks = new Map<string, { turn: Turn; clause: Clause }>();
  /** Marks of the turn a reconnect interrupted: the bridge replays acknowledgements queued while down. */
  #lateMarks = new Map<string, { turn: Turn; clause: Clause }>();
  #finals: string[] = [];
  #finalizePending = false;
  #sttSpeechAt?: number;
  #sttWordsSinceSpeech = false;
  #pendingCallerText?: string;
  #dtmfDigits = "";
  #dtmfTimer?: TimerHandle;
  /** The transfer in flight: caller input starts no turns and does not barge in meanwhile. */
  #transfer?: ActiveTransfer;
  /** Called on every TTS flush (a warm transfer waits for its summary to be sent). */
  #onFlush?: () => void;
  #drainWaiters = new Set<DrainWaiter>();
  /** Own-VAD turn ends: when the caller stopped, and when we asked the STT to finalize. */
  #pendingSpeechEndAt?: number;
  #finalizeAt?: number;
  #closed = false;
  #ending = false;

  constructor(options: ConversationOptions, host: ConversationHost) {
    this.#options = options;
    this.#host = host;
    this.#agent = options.agent;
    this.#tools = toolSpecsFor(options.agent);
    this.#vad = new EnergyVad(options.format.codec, {
      speechThresholdDb: options.agent.turn.speechThresholdDb,
      minSpeechFrames: options.agent.turn.minSpeechFrames,
      silenceMs: options.agent.turn.silenceMs,
    });
    this.#history = options.history ? [...options.history] : [];
    this.#nextTurnIndex = this.#history.reduce((max, entry) => Math.max(max, entry.turn + 1), 0);
  }

  get history(): readonly HistoryEntry[] {
    return this.#history;
  }

  /** Whether agent audio is being generated or may still be playing. */
  get agentTalking(): boolean {
    const turn = this.#turn;
    return turn !== undefined && !turn.settled;
  }

  /** Opens the provider sessions (in parallel) and plays the greeting. */
  async start(): Promise<void> {
    const { providers, format, agent } = this.#options;
    const [stt, tts] = await Promise.all([
      providers.stt.connect(
        { format, language: agent.language },
        {
          onSpeechStarted: () => this.#onSttSpeechStarted(),
          onInterim: (text) => this.#onSttInterim(text),
          onFinal: (text) => this.#onSttFinal(text),
          onEndOfTurn: (transcript, details) => this.#onSttEndOfTurn(transcript, details.eager),
          onTurnResumed: () => this.#onSttTurnResumed(),
          onError: (error) => this.#onProviderError("stt", error),
        },
      ),
      providers.tts.connect(
        { format, voice: agent.voice, model: agent.tts.model, language: agent.language },
        {
          onAudio: (audio) => this.#onTtsAudio(audio),
          onFlushed: () => this.#onTtsFlushed(),
          onError: (error) => this.#onProviderError("tts", error),
        },
      ),
    ]);
    if (this.#closed) {
      await Promise.allSettled([stt.close(), tts.close()]);
      return;
    }
    this.#stt = stt;
    this.#tts = tts;
    if (this.#options.greet && agent.greeting) this.#speakGreeting(agent.greeting);
  }

  // ---- Inputs from the bridge -----------------------------------------------------------------

  /** Caller audio (whole 20 ms frames of the call's codec). Hot path: no allocation beyond the VAD's. */
  pushCallerAudio(audio: Uint8Array): void {
    if (this.#closed) return;
    this.#stt?.sendAudio(audio);
    const now = this.#host.clock.now();
    // A frame arrives once its last sample was captured: it began one frame duration earlier.
    const startedAt = now - FRAME_MS * Math.max(1, Math.floor(audio.length / BYTES_PER_FRAME));
    for (const event of this.#vad.push(audio, startedAt)) {
      if (event.type === "speech-end") this.#onVadSpeechEnd(event.atMs);
    }
    this.#checkBargeIn(now);
  }

  /** `mark_played`: the caller has heard the clause this mark closes. */
  markPlayed(name: string): void {
    const found = this.#marks.get(name);
    if (!found) {
      this.#lateMarkPlayed(name);
      return;
    }
    this.#marks.delete(name);
    found.clause.played = true;
    this.#updateHeard(found.turn);
    this.#maybeSettle(found.turn);
  }

  /** Caller pressed a key: collected for `dtmfDebounceMs`, then given to the model as a user message. */
  callerDtmf(digit: string): void {
    if (this.#closed) return;
    if (this.#transfer) {
      // The caller hears silence (or, warm, these keys are the human's): nobody is there to answer them.
      this.#host.log("debug", "dtmf ignored during a transfer", { digit });
      return;
    }
    if (this.agentTalking && this.#agent.bargeIn.enabled) this.#interrupt("dtmf");
    this.#dtmfDigits += digit;
    this.#dtmfTimer?.cancel();
    this.#dtmfTimer = this.#host.clock.setTimer(this.#agent.turn.dtmfDebounceMs, () => {
      const digits = this.#dtmfDigits;
      this.#dtmfDigits = "";
      this.#dtmfTimer = undefined;
      if (digits) this.#startCallerTurn(`[caller pressed ${digits.split("").join(" ")}]`, "dtmf");
    });
  }

  transferResult(result: { ok: boolean; target: string; reason?: string; sipStatus?: number }): void {
    this.#transfer?.pending.settle(result);
  }

  /** The human answered a warm transfer (`consulting`): tell them the summary, then join the legs. */
  transferProgress(progress: { target: string; state: TransferState }): void {
    const transfer = this.#transfer;
    if (!transfer || this.#closed) return;
    this.#host.log("info", "transfer progress", { state: progress.state, target: progress.target });
    if (transfer.pending.progress(progress.state)) void this.#speakSummary(transfer);
  }

  /**
   * The bridge's socket was replaced (reconnect). Audio and marks sent while it was down are lost, so a
   * turn in flight is interrupted as by barge-in (without `clear`: what the bridge had queued plays
   * out). The bridge replays the mark_played it could not deliver; those still extend what was heard.
   */
  onReconnected(): void {
    const turn = this.#turn;
    if (!turn || turn.settled) return;
    // The bridge carries a transfer across its reconnect; its result arrives on the new socket.
    if (this.#transfer) return;
    this.#lateMarks.clear();
    for (const [name, value] of this.#marks) if (value.turn === turn) this.#lateMarks.set(name, value);
    this.#interrupt("reconnect");
  }

  #lateMarkPlayed(name: string): void {
    const found = this.#lateMarks.get(name);
    if (!found) return;
    this.#lateMarks.delete(name);
    found.clause.played = true;
    for (const segment of found.turn.segments) {
      const entry = segment.entry;
      if (entry?.message.role !== "assistant") continue;
      const heard = heardText(segment);
      if (heard.length > (entry.heard ?? "").length) {
        const complete = segment.clauses.every((clause) => clause.played);
        entry.message = { ...entry.message, content: heard };
        entry.heard = heard;
        if (complete) entry.interrupted = false;
        this.#host.store.updateMessage(entry);
      }
    }
  }

  /** Stops everything; idempotent. Closes provider sessions. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#dtmfTimer?.cancel();
    const turn = this.#turn;
    if (turn && !turn.settled) {
      turn.controller.abort(new Error("call ended"));
      this.#truncateToHeard(turn);
      this.#settle(turn, true);
    }
    this.#transfer?.pending.settle({ ok: false, reason: "call ended" });
    const sessions = [this.#stt?.close(), this.#tts?.close()];
    this.#stt = undefined;
    this.#tts = undefined;
    await Promise.allSettled(sessions);
  }

  // ---- STT events -----------------------------------------------------------------------------

  #onSttSpeechStarted(): void {
    this.#sttSpeechAt ??= this.#host.clock.now();
  }

  #onSttInterim(text: string): void {
    if (text.trim()) {
      this.#sttSpeechAt ??= this.#host.clock.now();
      this.#sttWordsSinceSpeech = true;
      this.#checkBargeIn(this.#host.clock.now());
    }
  }

  #onSttFinal(text: string): void {
    if (text.trim()) this.#finals.push(text.trim());
    // Providers without turn detection: the final that answers our finalize() ends the turn.
    if (!this.#options.providers.stt.capabilities.endOfTurn && this.#finalizePending) {
      this.#finalizePending = false;
      const transcript = this.#finals.join(" ");
      this.#finals = [];
      if (transcript) this.#callerTurnEnded(transcript, false);
    }
  }

  #onSttEndOfTurn(transcript: string, eager: boolean): void {
    if (!this.#options.providers.stt.capabilities.endOfTurn) return;
    const text = transcript.trim() || this.#finals.join(" ");
    if (!eager) this.#finals = [];
    if (text) this.#callerTurnEnded(text, eager);
  }

  #onSttTurnResumed(): void {
    const turn = this.#turn;
    if (turn?.speculative && !turn.settled) {
      this.#host.log("debug", "speculative turn cancelled: caller resumed", { turn: turn.record.turn });
      turn.controller.abort(new Error("turn resumed"));
      this.#discardSpeculative(turn);
    }
  }

  #onVadSpeechEnd(atMs: number): void {
    // Our VAD decides the end of turn only when the provider cannot.
    if (this.#options.providers.stt.capabilities.endOfTurn || !this.#stt) return;
    this.#finalizePending = true;
    this.#pendingSpeechEndAt = atMs;
    this.#finalizeAt = this.#host.clock.now();
    this.#stt.finalize();
  }

  // ---- Turn-taking ----------------------------------------------------------------------------

  #callerTurnEnded(transcript: string, eager: boolean): void {
    if (this.#transfer) {
      // Waiting for a transfer, nobody answers the caller; once the human is on (warm), the words
      // are theirs. Either way they start no turn and are not carried into a later one.
      this.#host.log("debug", "speech ignored during a transfer", { chars: transcript.length });
      this.#finals = [];
      this.#pendingSpeechEndAt = undefined;
      this.#finalizeAt = undefined;
      return;
    }
    const now = this.#host.clock.now();
    const current = this.#turn;
    if (current?.speculative && !current.settled) {
      if (!eager && current.speculativeTranscript === transcript) {
        this.#confirmSpeculative(current, now);
        return;
      }
      current.controller.abort(new Error("transcript changed"));
      this.#discardSpeculative(current);
    }
    const speechEnd = this.#pendingSpeechEndAt ?? this.#vadLastSpeechEnd(now);
    const timestamps: TurnTimestamps = {
      callerSpeechEndAt: speechEnd,
      endOfTurnAt: now,
      ...(this.#finalizeAt !== undefined ? { finalizeAt: this.#finalizeAt } : {}),
    };
    this.#pendingSpeechEndAt = undefined;
    this.#finalizeAt = undefined;
    this.#sttSpeechAt = undefined;
    this.#sttWordsSinceSpeech = false;
    if (eager) {
      // Speculate only while the agent is silent: a turn still playing must not be replaced behind the
      // caller's back (with barge-in disabled it has to finish first; with it enabled, barge-in or the
      // confirmed end of turn interrupts it). The confirmed end of turn then takes the normal path.
      if (this.#closed || this.#ending || this.agentTalking) return;
      this.#startTurn("caller", transcript, timestamps, { speculative: true });
      return;
    }
    this.#startCallerTurn(transcript, "caller", timestamps);
  }

  #vadLastSpeechEnd(now: number): number {
    return this.#vad.speaking ? now : (this.#vad.lastSpeechEndMs ?? now);
  }

  #startCallerTurn(text: string, source: "caller" | "dtmf", timestamps: TurnTimestamps = {}): void {
    if (this.#closed || this.#ending || this.#transfer) return;
    if (this.agentTalking) {
      if (this.#agent.bargeIn.enabled || this.#turn?.speculative) {
        this.#interrupt(source === "dtmf" ? "dtmf" : "caller-turn");
      } else {
        // Barge-in disabled: the caller's words wait until the agent has finished.
        this.#pendingCallerText = this.#pendingCallerText ? `${this.#pendingCallerText} ${text}` : text;
        return;
      }
    }
    this.#startTurn(source, text, timestamps, { speculative: false });
  }

  #startTurn(
    source: "caller" | "dtmf",
    userText: string,
    timestamps: TurnTimestamps,
    options: { speculative: boolean },
  ): void {
    const turn = this.#newTurn(source, userText, timestamps);
    turn.speculative = options.speculative;
    if (options.speculative) turn.speculativeTranscript = userText;
    else this.#appendMessage(turn.record.turn, { role: "user", content: userText }, true);
    this.#turn = turn;
    this.#runInBackground(this.#generate(turn), turn);
  }

  #newTurn(source: TurnRecord["source"], userText: string | undefined, timestamps: TurnTimestamps): Turn {
    const now = this.#host.clock.now();
    return {
      record: {
        turn: this.#nextTurnIndex++,
        source,
        ...(userText !== undefined ? { userText } : {}),
        startedAt: now,
        interrupted: false,
        timestamps,
        timing: {},
      },
      controller: new AbortController(),
      segments: [],
      held: [],
      speculative: false,
      generationDone: false,
      settled: false,
      clauseCount: 0,
      timingSent: false,
    };
  }

  #confirmSpeculative(turn: Turn, now: number): void {
    turn.speculative = false;
    turn.record.timestamps.endOfTurnAt = now;
    // A speculative turn writes nothing to history before confirmation, so the user message comes first.
    this.#appendMessage(turn.record.turn, { role: "user", content: turn.speculativeTranscript ?? "" }, true);
    const held = turn.held;
    turn.held = [];
    for (const { segment, text } of held) this.#sendClauseToTts(turn, segment, text);
    if (turn.waitConfirmed) {
      const resolve = turn.waitConfirmed;
      turn.waitConfirmed = undefined;
      resolve();
    }
  }

  #discardSpeculative(turn: Turn): void {
    turn.held = [];
    turn.settled = true;
    // A speculative turn never wrote to history (its tool calls wait for confirmation).
    for (let index = this.#history.length - 1; index >= 0; index--) {
      if (this.#history[index]!.turn === turn.record.turn) this.#history.splice(index, 1);
    }
    if (this.#turn === turn) this.#turn = undefined;
  }

  // ---- Generation: LLM rounds, tools, clauses ---------------------------------------------------

  async #generate(turn: Turn): Promise<void> {
    const maxRounds = this.#options.maxToolRounds ?? DEFAULT_MAX_TOOL_ROUNDS;
    const signal = turn.controller.signal;
    for (let round = 0; round < maxRounds && !signal.aborted; round++) {
      const segment: Segment = { clauses: [] };
      turn.segments.push(segment);
      const chunker = new ClauseChunker();
      let text = "";
      const toolCalls: ToolCall[] = [];
      if (round === 0) turn.record.timestamps.llmStartAt = this.#host.clock.now();
      const stream = this.#options.providers.llm.stream({
        model: this.#agent.llm.model,
        messages: this.#llmMessages(turn),
        tools: this.#tools,
        ...(this.#agent.llm.temperature !== undefined ? { temperature: this.#agent.llm.temperature } : {}),
        ...(this.#agent.llm.maxTokens !== undefined ? { maxTokens: this.#agent.llm.maxTokens } : {}),
        signal,
      });
      for await (const event of stream) {
        if (signal.aborted) return;
        if (event.type === "text") {
          turn.record.timestamps.llmFirstTokenAt ??= this.#host.clock.now();
          text += event.delta;
          for (const clause of chunker.push(event.delta)) this.#speakClause(turn, segment, clause);
        } else if (event.type === "tool_call") {
          turn.record.timestamps.llmFirstTokenAt ??= this.#host.clock.now();
          toolCalls.push(event.call);
        } else if (event.type === "done") {
          break;
        }
      }
      if (signal.aborted) return;
      const rest = chunker.flush();
      if (rest) this.#speakClause(turn, segment, rest);
      // Side effects (history, tools) of a speculative turn wait until the caller's turn is confirmed.
      if (turn.speculative) await this.#waitConfirmed(turn);
      if (signal.aborted) return;
      segment.entry = this.#appendMessage(
        turn.record.turn,
        { role: "assistant", content: text.trim(), ...(toolCalls.length > 0 ? { toolCalls } : {}) },
        false,
      );
      this.#updateHeard(turn);
      if (toolCalls.length === 0) break;
      const next = await this.#runTools(turn, toolCalls);
      if (next === "stop") break;
    }
    this.#finishGeneration(turn);
  }

  /** Resolves when a speculative turn is confirmed (or never, if it is aborted: the caller returns on abort). */
  #waitConfirmed(turn: Turn): Promise<void> {
    if (!turn.speculative) return Promise.resolve();
    return new Promise((resolve) => {
      turn.waitConfirmed = resolve;
      turn.controller.signal.addEventListener("abort", () => resolve(), { once: true });
    });
  }

  #finishGeneration(turn: Turn): void {
    turn.generationDone = true;
    // A turn that spoke reports its timing at its first audio frame (TTS figures included); only a
    // turn that produced no speech (tool calls only) reports here, when the model is done.
    const { firstFrameSentAt, firstSpeakAt } = turn.record.timestamps;
    if (firstFrameSentAt === undefined && firstSpeakAt === undefined) this.#sendTiming(turn);
    this.#maybeSettle(turn);
  }

  async #runTools(turn: Turn, calls: ToolCall[]): Promise<"continue" | "stop"> {
    let outcome: "continue" | "stop" = "continue";
    for (const call of calls) {
      if (turn.controller.signal.aborted) return "stop";
      const result = outcome === "stop" ? "skipped: the call is ending" : await this.#runTool(turn, call);
      // Interrupted while the tool ran: the interruption already answered the dangling calls.
      if (turn.controller.signal.aborted) return "stop";
      if (result === STOP) {
        outcome = "stop";
        continue;
      }
      this.#appendMessage(turn.record.turn, { role: "tool", toolCallId: call.id, content: result }, true);
    }
    return outcome;
  }

  async #runTool(turn: Turn, call: ToolCall): Promise<string | typeof STOP> {
    const definition = this.#agent.tools.find((tool) => tool.name === call.name);
    const spec = this.#tools.find((tool) => tool.name === call.name);
    if (!definition || !spec) return `error: there is no tool named ${call.name}`;
    const args = parseToolArguments(call.arguments, spec.parameters);
    if (!args.ok) return `error: ${args.error}`;
    this.#host.log("info", "tool call", { tool: call.name, turn: turn.record.turn });
    if (definition.type === "webhook") return this.#runWebhook(turn, definition, args.value, call.id);
    switch (definition.name) {
      case "end_call":
        await this.#endCall(
          turn,
          call.id,
          typeof args.value.reason === "string" ? args.value.reason : undefined,
        );
        return STOP;
      case "transfer_call": {
        const outcome = await this.#runTransfer(turn, String(args.value.target ?? ""), args.value.summary);
        if (!outcome.ended) return outcome.content;
        // The call is over: record the result, and no further model round.
        this.#appendMessage(
          turn.record.turn,
          { role: "tool", toolCallId: call.id, content: outcome.content },
          true,
        );
        return STOP;
      }
      case "send_dtmf": {
        const digits = String(args.value.digits ?? "");
        if (!/^[0-9*#A-D]{1,32}$/.test(digits)) return "error: digits must be 1-32 of 0-9 * # A-D";
        this.#host.output.send({ type: "send_dtmf", digits });
        return `sent ${digits}`;
      }
    }
  }

  async #runWebhook(
    turn: Turn,
    tool: WebhookToolDefinition,
    args: Record<string, unknown>,
    toolCallId: string,
  ): Promise<string> {
    if (tool.fillerText) {
      const segment: Segment = { clauses: [] };
      turn.segments.push(segment);
      this.#speakClause(turn, segment, tool.fillerText);
    }
    return runWebhookTool(
      tool,
      args,
      { callId: this.#options.callId, agentId: this.#agent.id, toolCallId },
      this.#host.webhook,
      turn.controller.signal,
    );
  }

  async #endCall(turn: Turn, toolCallId: string, reason: string | undefined): Promise<void> {
    this.#ending = true;
    this.#appendMessage(turn.record.turn, { role: "tool", toolCallId, content: "the call is ending" }, true);
    const saidSomething = turn.segments.some((segment) => segment.clauses.length > 0);
    if (!saidSomething) {
      const segment: Segment = { clauses: [] };
      turn.segments.push(segment);
      this.#speakClause(turn, segment, this.#agent.goodbye);
      segment.entry = this.#appendMessage(
        turn.record.turn,
        { role: "assistant", content: this.#agent.goodbye },
        false,
      );
    }
    await this.#drain(turn);
    if (this.#closed) return;
    turn.generationDone = true;
    this.#maybeSettle(turn);
    this.#host.output.send({
      type: "hangup",
      cause: "normal",
      ...(reason ? { reason: reason.slice(0, 256) } : {}),
    });
    this.#host.onCallEnd("normal", reason ?? "agent ended the call");
  }

  /**
   * transfer_call. Blind: `transfer` once "I'll transfer you" has been played, then wait for
   * transfer_result. Warm (PROTOCOL.md §9): the same, with a summary; when the human answers
   * (transfer_progress consulting) the summary is spoken to them, then `transfer_join`. Until the
   * result, caller speech, keys and barge-in are ignored. Success ends the call as transferred; a
   * failure goes back to the model (the caller is with the agent again) with the reason.
   */
  async #runTransfer(
    turn: Turn,
    target: string,
    modelSummary: unknown,
  ): Promise<{ content: string; ended: boolean }> {
    const refused = refuseTransferTarget(target, this.#agent.transferTargets);
    if (refused) return { content: refused, ended: false };
    // Let the caller hear "I'll transfer you" before the leg moves.
    await this.#drain(turn);
    if (turn.controller.signal.aborted || this.#closed) return { content: "cancelled", ended: false };
    const mode = this.#agent.transfer.mode;
    const summary = mode === "warm" ? transferSummary(modelSummary, this.#lastCallerWords()) : undefined;
    const pending = new PendingTransfer(
      target,
      mode,
      summary,
      this.#host.clock,
      { blindMs: this.#options.transferTimeoutMs, warmIdleMs: this.#options.warmTransferIdleMs },
      () => {
        if (mode === "warm") this.#host.output.send({ type: "transfer_cancel" });
      },
    );
    const transfer: ActiveTransfer = { pending, turn };
    this.#transfer = transfer;
    this.#host.output.send({ type: "transfer", target, mode, ...(summary ? { summary } : {}) });
    this.#host.log("info", "transfer requested", { target, mode });
    const outcome: TransferOutcome = await pending.promise;
    this.#transfer = undefined;
    this.#onFlush?.(); // a summary still waiting to be sent stops waiting (the transfer is over)
    if (outcome.ok && !this.#closed) {
      this.#ending = true;
      this.#host.onCallEnd("transferred", `transferred to ${target}${mode === "warm" ? " (warm)" : ""}`);
      return { content: `transferred to ${target}`, ended: true };
    }
    this.#dropSummary(transfer);
    this.#finals = [];
    this.#pendingCallerText = undefined;
    this.#host.log("info", "transfer failed", { target, mode, reason: outcome.reason });
    return { content: transferFailure(target, outcome), ended: false };
  }

  /** Speaks the warm transfer's summary to the human (clauses with marks), then sends transfer_join. */
  async #speakSummary(transfer: ActiveTransfer): Promise<void> {
    const { pending, turn } = transfer;
    const segment: Segment = { clauses: [], toHuman: true };
    turn.segments.push(segment);
    transfer.summary = segment;
    const chunker = new ClauseChunker();
    const clauses = [...chunker.push(pending.summary ?? ""), chunker.flush()].filter(
      (text): text is string => text !== undefined && text !== "",
    );
    for (const clause of clauses) this.#sendClauseToTts(turn, segment, clause);
    // transfer_join means "join once the audio queued before this has played": the summary's audio
    // must all have been sent first. A TTS that never finishes does not keep the human waiting.
    await new Promise<void>((resolve) => {
      const timer = this.#host.clock.setTimer(this.#options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS, () =>
        finish(),
      );
      const finish = () => {
        timer.cancel();
        if (this.#onFlush === check) this.#onFlush = undefined;
        resolve();
      };
      const check = () => {
        if (pending.done || segment.clauses.every((clause) => clause.sent)) finish();
      };
      this.#onFlush = check;
      check();
    });
    if (pending.done || this.#closed) return;
    this.#host.output.send({ type: "transfer_join" });
  }

  /**
   * After a failed warm transfer the caller hears the agent again: summary audio still queued for the
   * human must not reach them, and its clauses must not hold the turn open (their marks may never
   * come back once the human's leg is gone).
   */
  #dropSummary(transfer: ActiveTransfer): void {
    const segment = transfer.summary;
    if (!segment) return;
    const unplayed = segment.clauses.some((clause) => !clause.played);
    if (segment.clauses.some((clause) => !clause.sent)) {
      this.#tts?.clear();
      this.#ttsQueue = this.#ttsQueue.filter((queued) => !segment.clauses.includes(queued.clause));
    }
    if (unplayed) this.#host.output.send({ type: "clear" });
    for (const clause of segment.clauses) this.#marks.delete(clause.mark);
    transfer.turn.segments = transfer.turn.segments.filter((other) => other !== segment);
  }

  #lastCallerWords(): string | undefined {
    for (let index = this.#history.length - 1; index >= 0; index--) {
      const message = this.#history[index]!.message;
      if (message.role === "user" && !message.content.startsWith("[caller pressed")) return message.content;
    }
    return undefined;
  }

  /**
   * System prompt + the most recent `llm.maxHistoryMessages` messages, starting at a user message so
   * the window never opens on a tool result whose call was cut off. Keeps a long call's per-turn cost
   * flat; the stored history stays complete.
   */
  #llmMessages(turn: Turn): ChatMessage[] {
    const all = this.#history.map((entry) => entry.message);
    // A speculative turn's words reach the history only once the end of turn is confirmed (so a
    // TurnResumed leaves nothing behind), but the model must answer them: the request carries them.
    if (turn.speculative && turn.speculativeTranscript !== undefined) {
      all.push({ role: "user", content: turn.speculativeTranscript });
    }
    const limit = this.#agent.llm.maxHistoryMessages;
    let start = Math.max(0, all.length - limit);
    while (start > 0 && start < all.length && all[start]!.role !== "user") start++;
    if (start === all.length) {
      // One turn longer than the window (many tool rounds): keep that whole turn.
      start = all.findLastIndex((message) => message.role === "user");
      if (start < 0) start = 0;
    }
    return [{ role: "system", content: this.#agent.systemPrompt }, ...all.slice(start)];
  }

  // ---- Speaking ---------------------------------------------------------------------------------

  #speakGreeting(greeting: string): void {
    const turn = this.#newTurn("greeting", undefined, {});
    this.#turn = turn;
    const segment: Segment = { clauses: [] };
    turn.segments.push(segment);
    const chunker = new ClauseChunker();
    for (const clause of chunker.push(greeting)) this.#speakClause(turn, segment, clause);
    const rest = chunker.flush();
    if (rest) this.#speakClause(turn, segment, rest);
    segment.entry = this.#appendMessage(turn.record.turn, { role: "assistant", content: greeting }, false);
    this.#updateHeard(turn);
    this.#finishGeneration(turn);
  }

  #speakClause(turn: Turn, segment: Segment, text: string): void {
    if (turn.controller.signal.aborted) return;
    if (turn.speculative) {
      turn.held.push({ segment, text });
      return;
    }
    this.#sendClauseToTts(turn, segment, text);
  }

  #sendClauseToTts(turn: Turn, segment: Segment, text: string): void {
    const tts = this.#tts;
    if (!tts) return;
    const clause: Clause = {
      text,
      mark: `t${turn.record.turn}.c${turn.clauseCount++}`,
      sent: false,
      played: false,
    };
    segment.clauses.push(clause);
    this.#ttsQueue.push({ turn, clause });
    turn.record.timestamps.firstSpeakAt ??= this.#host.clock.now();
    // Each clause is its own TTS utterance so its end (onFlushed) tells us where to put its mark.
    tts.speak(text);
    tts.flush();
  }

  #onTtsAudio(audio: Uint8Array): void {
    const head = this.#ttsQueue[0];
    if (!head || head.turn.controller.signal.aborted || audio.length === 0) return;
    const timestamps = head.turn.record.timestamps;
    if (timestamps.ttsFirstAudioAt === undefined) timestamps.ttsFirstAudioAt = this.#host.clock.now();
    this.#host.output.sendAudio(audio);
    if (timestamps.firstFrameSentAt === undefined) {
      timestamps.firstFrameSentAt = this.#host.clock.now();
      this.#sendTiming(head.turn);
    }
  }

  #onTtsFlushed(): void {
    const head = this.#ttsQueue.shift();
    if (!head || head.turn.controller.signal.aborted) return;
    head.clause.sent = true;
    this.#marks.set(head.clause.mark, head);
    this.#host.output.send({ type: "mark", name: head.clause.mark });
    this.#onFlush?.();
  }

  // ---- Barge-in -------------------------------------------------------------------------------

  /**
   * Barge-in needs caller sound that began after the agent's turn started (so the tail of the caller's
   * own last sentence never counts) and has lasted minSpeechMs: a burst of energy from our VAD, or the
   * STT's speech-started followed by words.
   */
  #checkBargeIn(now: number): void {
    const turn = this.#turn;
    if (!turn || turn.settled || turn.speculative || !this.#agent.bargeIn.enabled || this.#transfer) return;
    const since = turn.record.startedAt;
    const minimum = this.#agent.bargeIn.minSpeechMs;
    const burst = this.#vad.burstStartMs;
    // A burst whose first frame ended after the turn began overlaps the turn: it counts.
    const vadSpeech = burst !== undefined && burst + FRAME_MS >= since && now - burst >= minimum;
    const sttStart = this.#sttSpeechAt;
    const sttSpeech =
      sttStart !== undefined && sttStart >= since && this.#sttWordsSinceSpeech && now - sttStart >= minimum;
    if (vadSpeech || sttSpeech) this.#interrupt("barge-in");
  }

  /** Stops the agent mid-turn: clear first (the caller must stop hearing us now), then abort and truncate. */
  #interrupt(why: "barge-in" | "dtmf" | "caller-turn" | "reconnect"): void {
    const turn = this.#turn;
    if (!turn || turn.settled) return;
    if (turn.speculative) {
      // Nothing of it was played or stored: drop it without a clear.
      turn.controller.abort(new Error(why));
      this.#discardSpeculative(turn);
      return;
    }
    if (why !== "reconnect") this.#host.output.send({ type: "clear" });
    turn.controller.abort(new Error(why));
    this.#tts?.clear();
    this.#ttsQueue = this.#ttsQueue.filter((queued) => queued.turn !== turn);
    this.#truncateToHeard(turn);
    this.#host.log("info", "agent interrupted", { why, turn: turn.record.turn });
    this.#settle(turn, true);
    // Words that arrived while this turn was talking are not carried into the next turn.
    this.#pendingCallerText = undefined;
  }

  /** Rewrites this turn's assistant messages to what was heard, and answers dangling tool calls. */
  #truncateToHeard(turn: Turn): void {
    for (const segment of turn.segments) {
      if (segment.toHuman) continue;
      const heard = heardText(segment);
      const entry = segment.entry;
      if (!entry) {
        if (heard) {
          segment.entry = this.#appendMessage(turn.record.turn, { role: "assistant", content: heard }, true);
          segment.entry.interrupted = true;
          segment.entry.heard = heard;
          this.#host.store.updateMessage(segment.entry);
        }
        continue;
      }
      if (entry.message.role !== "assistant") continue;
      const fullyHeard = segment.clauses.every((clause) => clause.played);
      if (!fullyHeard) {
        entry.message = { ...entry.message, content: heard };
        entry.interrupted = true;
      }
      entry.heard = heard;
      entry.complete = true;
      this.#host.store.updateMessage(entry);
      // A model message with tool calls must be followed by one result per call.
      for (const call of entry.message.toolCalls ?? []) {
        const answered = this.#history.some(
          (other) => other.message.role === "tool" && other.message.toolCallId === call.id,
        );
        if (!answered) {
          this.#appendMessage(
            turn.record.turn,
            { role: "tool", toolCallId: call.id, content: "cancelled: the caller interrupted" },
            true,
          );
        }
      }
    }
  }

  // ---- Turn completion --------------------------------------------------------------------------

  #maybeSettle(turn: Turn): void {
    if (turn.settled || !turn.generationDone) return;
    if (this.#ttsQueue.some((queued) => queued.turn === turn)) return;
    const unplayed = turn.segments.some((segment) => segment.clauses.some((clause) => !clause.played));
    if (unplayed) return;
    for (const segment of turn.segments) {
      if (segment.entry && !segment.entry.complete) {
        segment.entry.complete = true;
        segment.entry.heard = heardText(segment);
        this.#host.store.updateMessage(segment.entry);
      }
    }
    this.#settle(turn, false);
  }

  #settle(turn: Turn, interrupted: boolean): void {
    if (turn.settled) return;
    turn.settled = true;
    turn.record.interrupted = interrupted;
    turn.record.endedAt = this.#host.clock.now();
    if (!turn.timingSent) turn.record.timing = timingOf(turn.record.timestamps);
    this.#host.store.saveTurn(turn.record);
    this.#wakeDrainWaiters(turn);
    for (const [name, value] of this.#marks) if (value.turn === turn) this.#marks.delete(name);
    if (this.#turn === turn) this.#turn = undefined;
    const pending = this.#pendingCallerText;
    if (pending && !interrupted && !this.#closed) {
      this.#pendingCallerText = undefined;
      this.#startCallerTurn(pending, "caller");
    }
  }

  /** Resolves once everything this turn has said so far was played (or on timeout / abort / settle). */
  #drain(turn: Turn): Promise<void> {
    if (turn.settled || this.#allPlayed(turn)) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter: DrainWaiter = {
        turn,
        finish: () => {
          if (!this.#drainWaiters.delete(waiter)) return;
          timer.cancel();
          resolve();
        },
      };
      const timer = this.#host.clock.setTimer(
        this.#options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS,
        waiter.finish,
      );
      this.#drainWaiters.add(waiter);
    });
  }

  #allPlayed(turn: Turn): boolean {
    return (
      !this.#ttsQueue.some((queued) => queued.turn === turn) &&
      turn.segments.every((segment) => segment.clauses.every((clause) => clause.played))
    );
  }

  #wakeDrainWaiters(turn: Turn): void {
    for (const waiter of [...this.#drainWaiters]) {
      if (waiter.turn === turn && (turn.settled || this.#allPlayed(turn))) waiter.finish();
    }
  }

  #updateHeard(turn: Turn): void {
    for (const segment of turn.segments) {
      const entry = segment.entry;
      if (!entry || entry.complete) continue;
      const heard = heardText(segment);
      if (heard !== (entry.heard ?? "")) {
        entry.heard = heard;
        this.#host.store.updateMessage(entry);
      }
    }
    this.#wakeDrainWaiters(turn);
  }

  #sendTiming(turn: Turn): void {
    if (turn.timingSent) return;
    turn.timingSent = true;
    turn.record.timing = timingOf(turn.record.timestamps);
    this.#host.output.send({ type: "turn_timing", turn: turn.record.turn, ...turn.record.timing });
    this.#host.store.saveTurn(turn.record);
  }

  // ---- History ----------------------------------------------------------------------------------

  #makeEntry(turn: number, message: ChatMessage, complete: boolean): HistoryEntry {
    const last = this.#history[this.#history.length - 1];
    return { id: last ? last.id + 1 : 0, turn, message, complete, atMs: this.#host.clock.now() };
  }

  #appendMessage(turn: number, message: ChatMessage, complete: boolean): HistoryEntry {
    const entry = this.#makeEntry(turn, message, complete);
    this.#history.push(entry);
    this.#host.store.appendMessage(entry);
    return entry;
  }

  // ---- Errors -----------------------------------------------------------------------------------

  #onProviderError(stage: "stt" | "tts", error: ProviderError): void {
    this.#host.log("error", "provider error", {
      stage,
      provider: error.provider,
      code: error.code,
      message: error.message,
    });
    if (this.#closed) return;
    this.#host.output.send({
      type: "error",
      code: "provider-failure",
      message: `${stage}: ${error.message}`.slice(0, 1024),
    });
    if (!error.retryable) this.#host.onCallEnd("error", `${stage} provider failed: ${error.code}`);
  }

  #runInBackground(work: Promise<void>, turn: Turn): void {
    work.catch((error: unknown) => {
      if (turn.controller.signal.aborted || this.#closed) return;
      const message = error instanceof Error ? error.message : String(error);
      this.#host.log("error", "turn failed", { turn: turn.record.turn, message });
      this.#host.output.send({
        type: "error",
        code: "provider-failure",
        message: `llm: ${message}`.slice(0, 1024),
      });
      this.#finishGeneration(turn);
    });
  }
}

function heardText(segment: Segment): string {
  let text = "";
  for (const clause of segment.clauses) {
    if (!clause.played) break;
    text = text ? `${text} ${clause.text}` : clause.text;
  }
  return text;
}

export function timingOf(t: TurnTimestamps): TurnRecord["timing"] {
  const span = (from: number | undefined, to: number | undefined) =>
    from !== undefined && to !== undefined ? Math.max(0, to - from) : undefined;
  const timing: TurnRecord["timing"] = {};
  const endpointingMs = span(t.callerSpeechEndAt, t.finalizeAt ?? t.endOfTurnAt);
  const sttMs = span(t.finalizeAt, t.endOfTurnAt);
  const llmFirstTokenMs = span(t.llmStartAt, t.llmFirstTokenAt);
  const ttsFirstAudioMs = span(t.firstSpeakAt, t.ttsFirstAudioAt);
  const totalMs = span(t.callerSpeechEndAt ?? t.llmStartAt, t.firstFrameSentAt);
  if (endpointingMs !== undefined) timing.endpointingMs = endpointingMs;
  if (sttMs !== undefined) timing.sttMs = sttMs;
  if (llmFirstTokenMs !== undefined) timing.llmFirstTokenMs = llmFirstTokenMs;
  if (ttsFirstAudioMs !== undefined) timing.ttsFirstAudioMs = ttsFirstAudioMs;
  if (totalMs !== undefined) timing.totalMs = totalMs;
  return timing;
}
