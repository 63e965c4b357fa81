/** Event recorders implementing the provider event interfaces, for assertions. */
import type { ProviderError, SttEvents, TtsEvents } from "../../src/providers/types";

export class SttRecorder implements SttEvents {
  speechStarted = 0;
  interims: string[] = [];
  finals: string[] = [];
  turns: { transcript: string; eager: boolean; confidence?: number }[] = [];
  resumed = 0;
  errors: ProviderError[] = [];
  /** Event names in arrival order. */
  log: string[] = [];

  onSpeechStarted(): void {
    this.speechStarted++;
    this.log.push("speech");
  }
  onInterim(text: string): void {
    this.interims.push(text);
    this.log.push("interim");
  }
  onFinal(text: string): void {
    this.finals.push(text);
    this.log.push("final");
  }
  onEndOfTurn(transcript: string, details: { eager: boolean; confidence?: number }): void {
    this.turns.push({ transcript, ...details });
    this.log.push(details.eager ? "eager-eot" : "eot");
  }
  onTurnResumed(): void {
    this.resumed++;
    this.log.push("resumed");
  }
  onError(error: ProviderError): void {
    this.errors.push(error);
    this.log.push(`error:${error.code}`);
  }

  get endedTurns() {
    return this.turns.filter((turn) => !turn.eager);
  }
}

export class TtsRecorder implements TtsEvents {
  chunks: Uint8Array[] = [];
  flushed = 0;
  errors: ProviderError[] = [];
  log: ("audio" | "flushed" | "error")[] = [];

  onAudio(audio: Uint8Array): void {
    this.chunks.push(audio.slice());
    if (this.log[this.log.length - 1] !== "audio") this.log.push("audio");
  }
  onFlushed(): void {
    this.flushed++;
    this.log.push("flushed");
  }
  onError(error: ProviderError): void {
    this.errors.push(error);
    this.log.push("error");
  }

  get bytes(): number {
    return this.chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  }

  audio(fromChunk = 0): Uint8Array {
    const chunks = this.chunks.slice(fromChunk);
    const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
    let offset = 0;
    for (const chunk of chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}
