/**
 * A TtsSession for request/response TTS APIs (OpenAI /audio/speech, Workers AI Aura REST): one HTTP
 * request per queued sentence, audio delivered strictly in order, onFlushed once everything queued
 * before the flush has been delivered. The next sentence's request starts while the current one
 * streams (look-ahead of one) so there is no gap between sentences. clear() aborts every request
 * in flight and bumps a generation counter, so a late chunk of an aborted request is never delivered.
 */
import type { ProviderError, TtsEvents, TtsSession } from "../types";
import { toProviderError } from "./errors";

/** Synthesize one sentence, yielding audio already in the call's G.711 format. */
export type Synthesize = (text: string, signal: AbortSignal) => AsyncIterable<Uint8Array>;

/** Sentences waiting (text) are capped so a runaway producer cannot exhaust memory. */
export const MAX_QUEUED_ITEMS = 256;
const LOOKAHEAD = 2;

interface SpeechItem {
  kind: "speech";
  text: string;
  started: boolean;
  chunks: Uint8Array[];
  finished: boolean;
  error: ProviderError | undefined;
  wake: (() => void) | undefined;
  controller: AbortController;
}

type QueueItem = SpeechItem | { kind: "flush" };

export class SpeechQueue implements TtsSession {
  private items: QueueItem[] = [];
  private pumping = false;
  private closed = false;
  private generation = 0;

  constructor(
    private readonly provider: string,
    private readonly synthesize: Synthesize,
    private readonly events: TtsEvents,
  ) {}

  speak(text: string): void {
    if (this.closed || text.trim() === "") return;
    if (this.items.length >= MAX_QUEUED_ITEMS) {
      this.events.onError(toProviderError(this.provider, new Error("speech queue full"), "bad-request"));
      return;
    }
    this.items.push({
      kind: "speech",
      text,
      started: false,
      chunks: [],
      finished: false,
      error: undefined,
      wake: undefined,
      controller: new AbortController(),
    });
    // Start the request now if it is within the look-ahead window, even while the head is playing.
    this.startLookahead();
    this.pump();
  }

  flush(): void {
    if (this.closed) return;
    this.items.push({ kind: "flush" });
    this.pump();
  }

  clear(): void {
    this.generation++;
    for (const item of this.items) {
      if (item.kind === "speech") {
        item.controller.abort();
        item.wake?.();
      }
    }
    this.items = [];
  }

  async close(): Promise<void> {
    this.closed = true;
    this.clear();
  }

  private startLookahead(): void {
    let started = 0;
    for (const item of this.items) {
      if (item.kind !== "speech") continue;
      if (!item.started) this.start(item);
      if (++started >= LOOKAHEAD) break;
    }
  }

  private start(item: SpeechItem): void {
    item.started = true;
    const run = async () => {
      try {
        for await (const chunk of this.synthesize(item.text, item.controller.signal)) {
          if (item.controller.signal.aborted) break;
          item.chunks.push(chunk);
          item.wake?.();
        }
      } catch (error) {
        if (!item.controller.signal.aborted) item.error = toProviderError(this.provider, error);
      } finally {
        item.finished = true;
        item.wake?.();
      }
    };
    void run();
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    void this.drain().finally(() => {
      this.pumping = false;
    });
  }

  private async drain(): Promise<void> {
    while (!this.closed && this.items.length > 0) {
      this.startLookahead();
      const generation = this.generation;
      const head = this.items[0]!;
      if (head.kind === "flush") {
        this.items.shift();
        this.events.onFlushed();
        continue;
      }
      while (generation === this.generation) {
        const chunk = head.chunks.shift();
        if (chunk) {
          this.events.onAudio(chunk);
          continue;
        }
        if (head.finished) break;
        await new Promise<void>((resolve) => {
          head.wake = resolve;
        });
        head.wake = undefined;
      }
      if (generation !== this.generation) continue; // cleared: items were replaced
      this.items.shift();
      if (head.error) this.events.onError(head.error);
    }
  }
}
