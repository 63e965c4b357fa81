/**
 * A typed listener registry where one listener's exception never reaches the emitter (a bug in the
 * cloud link must not stop a call's RTP). Smaller than EventEmitter and typed by an event map.
 */
import type { MediaLogger } from "./logger";

// biome-ignore lint/suspicious/noExplicitAny: listener parameter lists vary per event; the map types them.
type AnyListener = (...args: any[]) => void;

export class Listeners<Events extends { [K in keyof Events]: AnyListener }> {
  private readonly sets = new Map<keyof Events, Set<AnyListener>>();
  private readonly logger: MediaLogger;

  constructor(logger: MediaLogger) {
    this.logger = logger;
  }

  on<E extends keyof Events>(event: E, listener: Events[E]): void {
    let set = this.sets.get(event);
    if (!set) {
      set = new Set();
      this.sets.set(event, set);
    }
    set.add(listener);
  }

  off<E extends keyof Events>(event: E, listener: Events[E]): void {
    this.sets.get(event)?.delete(listener);
  }

  emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    const set = this.sets.get(event);
    if (!set) return;
    for (const listener of set) {
      try {
        listener(...args);
      } catch (error) {
        this.logger.error({ err: error, event: String(event) }, "media listener threw");
      }
    }
  }
}
