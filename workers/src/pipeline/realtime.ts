/**
 * Speech-to-speech mode (agent.mode = "realtime", OpenAI Realtime): one provider session hears the
 * caller and answers with audio, doing its own VAD, turn-taking and tool calls. This class adapts it to
 * the same call surface as Conversation, so the Durable Object does not care which mode runs.
 *
 * What was heard: agent audio is followed by a mark every ~250 ms of audio (`r<item>.<bytes>`); on
 * barge-in (the provider's speech_started while audio is unplayed) we send `clear` and tell the
 * provider to truncate the item at the last acknowledged position, so its history matches what the
 * caller heard to within 250 ms. Our own transcript keeps the provider's text, flagged interrupted.
 */
import { BYTES_PER_FRAME } from "@patchbay/shared/audio";
import type { AgentDefinition } from "../agents/schema";
import type { RealtimeProvider, RealtimeSession } from "../providers/realtime-types";
import type { AudioFormat, ChatMessage, ToolCall } from "../providers/types";
import type { TimerHandle } from "./clock";
import type { CallAgent, ConversationHost, HistoryEntry, TurnRecord } from "./conversation";
import { parseToolArguments, runWebhookTool, toolSpecsFor } from "./tools";
import {
  PendingTransfer,
  refuseTransferTarget,
  type TransferState,
  transferFailure,
  transferSummary,
} from "./transfer";

/** Bytes of G.711 per ms at 8 kHz. */
const BYTES_PER_MS = BYTES_PER_FRAME / 20;
const MARK_EVERY_BYTES = 250 * BYTES_PER_MS;
const DRAIN_TIMEOUT_MS = 15_000;

interface RealtimeTransfer {
  pending: PendingTransfer;
  summaryRequested: boolean;
  /** The provider's item that speaks the summary. */
  summaryItem?: string;
  joined: boolean;
  joinTimer?: TimerHandle;
}

interface ItemPlayout {
  itemId: string;
  index: number;
  bytesSent: number;
  bytesMarked: number;
  bytesPlayed: number;
}

export interface RealtimeOptions {
  callId: string;
  agent: AgentDefinition;
  format: AudioFormat;
  provider: RealtimeProvider;
  history?: HistoryEntry[];
  greet: boolean;
}

export class RealtimeConversation implements CallAgent {
  readonly #options: RealtimeOptions;
  readonly #host: ConversationHost;
  readonly #history: HistoryEntry[];
  #session?: RealtimeSession;
  #items = new Map<string, ItemPlayout>();
  #itemCount = 0;
  #current?: ItemPlayout;
  #turn: number;
  #turnStartedAt?: number;
  #firstAudioSent = false;
  /**
   * The transfer in flight. Caller audio is not forwarded meanwhile: the provider's own VAD would
   * start a new response to the caller (or, warm, to the human). Warm: `summaryItem` is the
   * response that speaks the summary; transfer_join follows once it is done.
   */
  #transfer?: RealtimeTransfer;
  /** Audio of this item is dropped (a summary still streaming after its transfer failed). */
  #mutedItem?: string;
  /** The summary was requested but had not started when its transfer failed: drop it when it does. */
  #muteNextItem = false;
  #ending = false;
  #drainWaiters: (() => void)[] = [];
  #closed = false;

  constructor(options: RealtimeOptions, host: ConversationHost) {
    this.#options = options;
    this.#host = host;
    this.#history = options.history ? [...options.history] : [];
    this.#turn = this.#history.reduce((max, entry) => Math.max(max, entry.turn + 1), 0);
  }

  get history(): readonly HistoryEntry[] {
    return this.#history;
  }

  get agentTalking(): boolean {
    for (const item of this.#items.values()) if (item.bytesPlayed < item.bytesSent) return true;
    return false;
  }

  async start(): Promise<void> {
    const { agent, format, provider } = this.#options;
    const session = await provider.connect(
      {
        format,
        instructions: withHistory(agent.systemPrompt, this.#history),
        voice: agent.voice,
        model: agent.llm.model,
        language: agent.language,
        tools: toolSpecsFor(agent),
      },
      {
        onAudio: (audio, itemId) => this.#onAudio(audio, itemId),
        onSpeechStarted: () => this.#onSpeechStarted(),
        onTranscript: (role, text, final) => {
          if (final && text.trim()) this.#record(role, text.trim());
        },
        onToolCall: (call) => {
          this.#runTool(call).catch((error: unknown) => {
            this.#host.log("error", "realtime tool failed", { tool: call.name, error: String(error) });
          });
        },
        onResponseDone: () => {
          // The summary response is the only one that can be pending here: once it is done, a later
          // item (the model's answer to the failed transfer) must be heard.
          this.#muteNextItem = false;
          this.#markTo(this.#current, true);
          const transfer = this.#transfer;
          if (transfer?.summaryItem !== undefined) this.#join();
        },
        onError: (error) => {
          this.#host.log("error", "realtime provider error", { code: error.code, message: error.message });
          if (this.#closed) return;
          this.#host.output.send({
            type: "error",
            code: "provider-failure",
            message: `realtime: ${error.message}`.slice(0, 1024),
          });
          if (!error.retryable) this.#host.onCallEnd("error", `realtime provider failed: ${error.code}`);
        },
      },
    );
    if (this.#closed) {
      await session.close();
      return;
    }
    this.#session = session;
    if (this.#options.greet && agent.greeting) {
      this.#turnStartedAt = this.#host.clock.now();
      session.requestResponse(`Greet the caller by saying exactly: "${agent.greeting}"`);
    }
  }

  pushCallerAudio(audio: Uint8Array): void {
    if (!this.#closed && !this.#transfer) this.#session?.sendAudio(audio);
  }

  markPlayed(name: string): void {
    const match = /^r(\d+)\.(\d+)$/.exec(name);
    if (!match) return;
    for (const item of this.#items.values()) {
      if (item.index === Number(match[1])) item.bytesPlayed = Math.max(item.bytesPlayed, Number(match[2]));
    }
    if (!this.agentTalking) for (const resolve of this.#drainWaiters.splice(0)) resolve();
  }

  callerDtmf(digit: string): void {
    if (this.#transfer) return; // nobody to answer them while the transfer is under way
    // The provider hears audio only; DTMF reaches the model as a one-off instruction.
    this.#session?.requestResponse(`The caller pressed the phone key ${digit}. Respond to it.`);
  }

  transferResult(result: { ok: boolean; target: string; reason?: string; sipStatus?: number }): void {
    this.#transfer?.pending.settle(result);
  }

  /**
   * Warm transfer: when the human answers, the provider is asked to speak the summary verbatim (a
   * response.create with one-off instructions, so the voice stays the call's); transfer_join follows
   * once that response is done, i.e. all its audio was sent. A provider that never answers does not
   * keep the human waiting: the join goes out after DRAIN_TIMEOUT_MS regardless.
   */
  transferProgress(progress: { target: string; state: TransferState }): void {
    const transfer = this.#transfer;
    if (!transfer || this.#closed) return;
    this.#host.log("info", "transfer progress", { state: progress.state, target: progress.target });
    if (!transfer.pending.progress(progress.state)) return;
    transfer.summaryRequested = true;
    transfer.joinTimer = this.#host.clock.setTimer(DRAIN_TIMEOUT_MS, () => this.#join());
    this.#session?.requestResponse(
      "You are transferring the caller to the person who just answered the phone. Say exactly the " +
        `following to them, word for word, and nothing else: "${transfer.pending.summary ?? ""}"`,
    );
  }

  #join(): void {
    const transfer = this.#transfer;
    if (!transfer || transfer.joined || transfer.pending.done || this.#closed) return;
    transfer.joined = true;
    transfer.joinTimer?.cancel();
    this.#markTo(this.#current, true);
    this.#host.output.send({ type: "transfer_join" });
  }

  onReconnected(): void {
    // Audio sent while the socket was down was never played: forget it, as after a clear.
    this.#items.clear();
    this.#current = undefined;
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#transfer?.pending.settle({ ok: false, reason: "call ended" });
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
    const session = this.#session;
    this.#session = undefined;
    await session?.close();
  }

  // ---- provider events --------------------------------------------------------------------------

  #onAudio(audio: Uint8Array, itemId: string): void {
    if (this.#closed || audio.length === 0 || itemId === this.#mutedItem) return;
    let item = this.#items.get(itemId);
    if (!item && this.#muteNextItem) {
      this.#muteNextItem = false;
      this.#mutedItem = itemId;
      return;
    }
    if (!item) {
      const transfer = this.#transfer;
      if (transfer?.summaryRequested && transfer.summaryItem === undefined) transfer.summaryItem = itemId;
      this.#markTo(this.#current, true);
      item = { itemId, index: this.#itemCount++, bytesSent: 0, bytesMarked: 0, bytesPlayed: 0 };
      this.#items.set(itemId, item);
      this.#current = item;
      // Bound memory: only recent items can still be playing.
      if (this.#items.size > 8) this.#items.delete(this.#items.keys().next().value as string);
    }
    this.#host.output.sendAudio(audio);
    item.bytesSent += audio.length;
    if (!this.#firstAudioSent) {
      this.#firstAudioSent = true;
      const now = this.#host.clock.now();
      const started = this.#turnStartedAt ?? now;
      this.#host.output.send({ type: "turn_timing", turn: this.#turn, totalMs: now - started });
    }
    this.#markTo(item, false);
  }

  #markTo(item: ItemPlayout | undefined, force: boolean): void {
    if (!item || item.bytesSent === item.bytesMarked) return;
    if (!force && item.bytesSent - item.bytesMarked < MARK_EVERY_BYTES) return;
    item.bytesMarked = item.bytesSent;
    this.#host.output.send({ type: "mark", name: `r${item.index}.${item.bytesSent}` });
  }

  #onSpeechStarted(): void {
    this.#turnStartedAt = this.#host.clock.now();
    this.#firstAudioSent = false;
    const item = this.#current;
    if (!item || !this.#options.agent.bargeIn.enabled || item.bytesPlayed >= item.bytesSent) return;
    this.#host.output.send({ type: "clear" });
    this.#session?.truncate(item.itemId, Math.floor(item.bytesPlayed / BYTES_PER_MS));
    this.#host.log("info", "agent interrupted", { why: "barge-in", itemId: item.itemId });
    const last = this.#history[this.#history.length - 1];
    if (last?.message.role === "assistant" && !last.interrupted) {
      last.interrupted = true;
      this.#host.store.updateMessage(last);
    }
    this.#items.clear();
    this.#current = undefined;
  }

  #record(role: "user" | "assistant", text: string): void {
    const last = this.#history[this.#history.length - 1];
    if (role === "user") this.#turn++;
    const entry: HistoryEntry = {
      id: last ? last.id + 1 : 0,
      turn: this.#turn,
      message: { role, content: text } as ChatMessage,
      complete: true,
      atMs: this.#host.clock.now(),
    };
    this.#history.push(entry);
    this.#host.store.appendMessage(entry);
    if (role === "assistant") {
      const record: TurnRecord = {
        turn: this.#turn,
        source: this.#turn === 0 ? "greeting" : "caller",
        startedAt: this.#turnStartedAt ?? entry.atMs,
        endedAt: entry.atMs,
        interrupted: false,
        timestamps: {},
        timing: {},
      };
      this.#host.store.saveTurn(record);
    }
  }

  // ---- tools ------------------------------------------------------------------------------------

  async #runTool(call: ToolCall): Promise<void> {
    const { agent } = this.#options;
    const definition = agent.tools.find((tool) => tool.name === call.name);
    const spec = toolSpecsFor(agent).find((tool) => tool.name === call.name);
    let output: string;
    if (!definition || !spec) output = `error: there is no tool named ${call.name}`;
    else {
      const args = parseToolArguments(call.arguments, spec.parameters);
      if (!args.ok) output = `error: ${args.error}`;
      else if (definition.type === "webhook") {
        output = await runWebhookTool(
          definition,
          args.value,
          { callId: this.#options.callId, agentId: agent.id, toolCallId: call.id },
          this.#host.webhook,
        );
      } else if (definition.name === "end_call") {
        await this.#drain();
        if (this.#closed) return;
        const reason = typeof args.value.reason === "string" ? args.value.reason.slice(0, 256) : undefined;
        this.#host.output.send({ type: "hangup", cause: "normal", ...(reason ? { reason } : {}) });
        this.#host.onCallEnd("normal", reason ?? "agent ended the call");
        return;
      } else if (definition.name === "transfer_call") {
        output = await this.#runTransfer(String(args.value.target ?? ""), args.value.summary);
      } else {
        const digits = String(args.value.digits ?? "");
        if (/^[0-9*#A-D]{1,32}$/.test(digits)) {
          this.#host.output.send({ type: "send_dtmf", digits });
          output = `sent ${digits}`;
        } else output = "error: digits must be 1-32 of 0-9 * # A-D";
      }
    }
    // A completed transfer ends the call: no result, or the model would answer into the void.
    if (!this.#closed && !this.#ending) this.#session?.sendToolResult(call.id, output);
  }

  /** transfer_call, as in the pipeline mode (see Conversation#runTransfer and PROTOCOL.md §9). */
  async #runTransfer(target: string, modelSummary: unknown): Promise<string> {
    const { agent } = this.#options;
    const refused = refuseTransferTarget(target, agent.transferTargets);
    if (refused) return refused;
    await this.#drain();
    if (this.#closed) return "cancelled";
    const mode = agent.transfer.mode;
    const summary = mode === "warm" ? transferSummary(modelSummary, this.#lastCallerWords()) : undefined;
    const pending = new PendingTransfer(target, mode, summary, this.#host.clock, {}, () => {
      if (mode === "warm") this.#host.output.send({ type: "transfer_cancel" });
    });
    const transfer: RealtimeTransfer = { pending, summaryRequested: false, joined: false };
    this.#transfer = transfer;
    this.#host.output.send({ type: "transfer", target, mode, ...(summary ? { summary } : {}) });
    const result = await pending.promise;
    this.#transfer = undefined;
    transfer.joinTimer?.cancel();
    if (result.ok && !this.#closed) {
      this.#ending = true;
      this.#host.onCallEnd("transferred", `transferred to ${target}${mode === "warm" ? " (warm)" : ""}`);
      return `transferred to ${target}`;
    }
    if (transfer.summaryRequested) {
      // The summary was for the human: none of it may reach the caller, who hears the agent again.
      if (transfer.summaryItem !== undefined) this.#mutedItem = transfer.summaryItem;
      else this.#muteNextItem = true;
      this.#host.output.send({ type: "clear" });
      this.#items.clear();
      this.#current = undefined;
    }
    return transferFailure(target, result);
  }

  #lastCallerWords(): string | undefined {
    for (let index = this.#history.length - 1; index >= 0; index--) {
      const message = this.#history[index]!.message;
      if (message.role === "user") return message.content;
    }
    return undefined;
  }

  #drain(): Promise<void> {
    this.#markTo(this.#current, true);
    if (!this.agentTalking) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = this.#host.clock.setTimer(DRAIN_TIMEOUT_MS, resolve);
      this.#drainWaiters.push(() => {
        timer.cancel();
        resolve();
      });
    });
  }
}

/** A resumed realtime call starts a new provider session: give it the conversation so far as context. */
function withHistory(systemPrompt: string, history: readonly HistoryEntry[]): string {
  const lines = history
    .filter((entry) => entry.message.role === "user" || entry.message.role === "assistant")
    .slice(-30)
    .map((entry) => `${entry.message.role === "user" ? "Caller" : "You"}: ${entry.message.content}`);
  if (lines.length === 0) return systemPrompt;
  return `${systemPrompt}\n\nThe call was briefly interrupted and has resumed. The conversation so far:\n${lines.join("\n")}\nContinue from here; do not greet again.`;
}
