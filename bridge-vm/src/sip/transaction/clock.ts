/**
 * Time for the SIP cores. Every timer in the transaction, dialog, registration and call layers goes
 * through a Clock so tests drive them with ManualClock instead of waiting for real seconds.
 */

export interface Timer {
  /** Idempotent. */
  cancel(): void;
}

export interface Clock {
  now(): number;
  schedule(delayMs: number, callback: () => void): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  schedule(delayMs, callback) {
    const handle = setTimeout(callback, Math.max(0, delayMs));
    handle.unref?.();
    return { cancel: () => clearTimeout(handle) };
  },
};

/** A clock that only moves when told to; timers fire in due order inside advance(). */
export class ManualClock implements Clock {
  private current = 0;
  private sequence = 0;
  private readonly pending = new Map<number, { dueAt: number; callback: () => void }>();

  constructor(start = 0) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  schedule(delayMs: number, callback: () => void): Timer {
    const id = this.sequence++;
    this.pending.set(id, { dueAt: this.current + Math.max(0, delayMs), callback });
    return { cancel: () => this.pending.delete(id) };
  }

  /** Move time forward, firing every timer that falls due (including ones scheduled meanwhile). */
  advance(ms: number): void {
    const target = this.current + ms;
    for (;;) {
      let nextId: number | undefined;
      let nextDue = Number.POSITIVE_INFINITY;
      for (const [id, timer] of this.pending) {
        if (timer.dueAt <= target && timer.dueAt < nextDue) {
          nextDue = timer.dueAt;
          nextId = id;
        }
      }
      if (nextId === undefined) break;
      const timer = this.pending.get(nextId)!;
      this.pending.delete(nextId);
      this.current = timer.dueAt;
      timer.callback();
    }
    this.current = target;
  }

  get pendingTimers(): number {
    return this.pending.size;
  }
}
