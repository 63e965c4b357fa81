/** A CallAudioDuplex for link tests: our own boundary, scripted from the test. */
import { EventEmitter } from "node:events";
import type { G711Codec } from "@patchbay/shared/audio";
import type { CallAudioDuplex, CallAudioDuplexEvents, MediaStats } from "../../src/media/types";

export class FakeDuplex implements CallAudioDuplex {
  readonly agentAudio: Uint8Array[] = [];
  readonly marks: string[] = [];
  readonly dtmfSent: string[] = [];
  clears = 0;
  private readonly events = new EventEmitter();
  private seq = 0;
  private readonly frame = new Uint8Array(160);

  constructor(readonly codec: G711Codec = "PCMU") {}

  on<E extends keyof CallAudioDuplexEvents>(event: E, listener: CallAudioDuplexEvents[E]): void {
    this.events.on(event, listener);
  }

  off<E extends keyof CallAudioDuplexEvents>(event: E, listener: CallAudioDuplexEvents[E]): void {
    this.events.off(event, listener);
  }

  listenerCount(event: keyof CallAudioDuplexEvents): number {
    return this.events.listenerCount(event);
  }

  /** Emits `count` caller frames; each frame's bytes are its sequence number (mod 256). */
  emitCallerFrames(count: number): void {
    for (let i = 0; i < count; i++) {
      const seq = this.seq++;
      this.frame.fill(seq & 0xff); // the same buffer every time, as the real jitter buffer does
      this.events.emit("callerFrame", this.frame, seq, seq * 20);
    }
  }

  emitDtmf(digit: string): void {
    this.events.emit("dtmf", { digit, durationMs: 120, atMs: 1000 });
  }

  emitMarkPlayed(name: string): void {
    this.events.emit("markPlayed", name, 2000);
  }

  enqueueAgentAudio(audio: Uint8Array): void {
    this.agentAudio.push(audio.slice());
  }

  clearAgentAudio(): { discardedMs: number } {
    this.clears++;
    return { discardedMs: 240 };
  }

  mark(name: string): void {
    this.marks.push(name);
  }

  async sendDtmf(digits: string): Promise<void> {
    this.dtmfSent.push(digits);
  }

  stats(): MediaStats {
    return {
      packetsReceived: this.seq,
      packetsSent: 0,
      packetsLost: 0,
      lossPercent: 0,
      jitterMs: 1.5,
      late: 0,
      reordered: 0,
      duplicates: 0,
      concealed: 0,
      droppedNotRtp: 0,
      droppedWrongPayloadType: 0,
      droppedWrongSource: 0,
      playoutQueuedMs: 0,
      playoutUnderruns: 0,
    };
  }
}
