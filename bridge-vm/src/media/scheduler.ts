/**
 * One pacing timer for every call, instead of a timer per call.
 *
 * The 20 ms frame period is split into `phases` slots (default 4 × 5 ms); each call lives in the
 * least-loaded slot and is ticked when its slot comes round. That spreads 500 calls' packets over
 * the period instead of one burst, and costs 200 timer wake-ups a second in total rather than 50
 * per call. Wake times are computed from a fixed epoch (`epoch + n × slot`), so the timer's own
 * lateness never accumulates.
 */
import { FRAME_MS } from "@patchbay/shared/audio";

export interface Tickable {
  /** `nowMs` is the real monotonic time; `scheduledMs` the slot's ideal wake time. */
  tick(nowMs: number, scheduledMs: number): void;
}

export interface SchedulerStats {
  wakeups: number;
  /** How late the timer woke, in ms, over the last wake-ups (for the benchmark). */
  lateness: Float64Array;
  latenessCount: number;
}

export class PacingScheduler {
  private readonly buckets: Set<Tickable>[];
  private readonly slotMs: number;
  private readonly clock: () => number;
  private readonly onError: (error: unknown) => void;
  private timer: NodeJS.Timeout | undefined;
  private epoch = 0;
  private slotIndex = 0;
  private running = 0;
  private readonly where = new Map<Tickable, number>();
  readonly stats: SchedulerStats = { wakeups: 0, lateness: new Float64Array(4096), latenessCount: 0 };

  constructor(clock: () => number, onError: (error: unknown) => void, phases = 4) {
    this.clock = clock;
    this.onError = onError;
    this.slotMs = FRAME_MS / phases;
    this.buckets = Array.from({ length: phases }, () => new Set<Tickable>());
  }

  add(session: Tickable): void {
    if (this.where.has(session)) return;
    let best = 0;
    for (let i = 1; i < this.buckets.length; i++) {
      if (this.buckets[i]!.size < this.buckets[best]!.size) best = i;
    }
    this.buckets[best]!.add(session);
    this.where.set(session, best);
    this.running++;
    if (!this.timer) {
      this.epoch = this.clock();
      this.slotIndex = 0;
      this.arm();
    }
  }

  remove(session: Tickable): void {
    const bucket = this.where.get(session);
    if (bucket === undefined) return;
    this.where.delete(session);
    this.buckets[bucket]!.delete(session);
    this.running--;
    if (this.running === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  get size(): number {
    return this.running;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    const scheduled = this.epoch + this.slotIndex * this.slotMs;
    const delay = Math.max(0, scheduled - this.clock());
    this.timer = setTimeout(this.wake, delay);
  }

  private readonly wake = (): void => {
    this.timer = undefined;
    const now = this.clock();
    let scheduled = this.epoch + this.slotIndex * this.slotMs;
    // A long stall: jump to the current slot rather than running every missed one back to back
    // (the pacers catch up on their own grids).
    if (now - scheduled > FRAME_MS * 5) {
      const skipped = Math.floor((now - scheduled) / this.slotMs);
      this.slotIndex += skipped;
      scheduled = this.epoch + this.slotIndex * this.slotMs;
    }
    const stats = this.stats;
    stats.lateness[stats.latenessCount++ % stats.lateness.length] = now - scheduled;
    stats.wakeups++;
    const bucket = this.buckets[this.slotIndex % this.buckets.length]!;
    // setTimeout measures from libuv's cached loop time, which can be a few ms stale after a busy
    // iteration, so a wake-up may come slightly BEFORE the slot. Treat it as on time: skipping the
    // slot would push its frames 20 ms later and then send two at once.
    const tickNow = Math.max(now, scheduled);
    for (const session of bucket) {
      try {
        session.tick(tickNow, scheduled);
      } catch (error) {
        this.onError(error);
      }
    }
    this.slotIndex++;
    if (this.running > 0) this.arm();
  };
}

/**
 * The alternative the shared scheduler is measured against (`bench:media --timers per-call`): one
 * drift-free setTimeout chain per call. Same interface, same lateness statistics.
 */
export class PerCallTimers {
  private readonly timers = new Map<
    Tickable,
    { timer: NodeJS.Timeout | undefined; epoch: number; index: number }
  >();
  private readonly clock: () => number;
  private readonly onError: (error: unknown) => void;
  readonly stats: SchedulerStats = { wakeups: 0, lateness: new Float64Array(4096), latenessCount: 0 };

  constructor(clock: () => number, onError: (error: unknown) => void) {
    this.clock = clock;
    this.onError = onError;
  }

  add(session: Tickable): void {
    if (this.timers.has(session)) return;
    const state = { timer: undefined as NodeJS.Timeout | undefined, epoch: this.clock(), index: 0 };
    this.timers.set(session, state);
    const wake = () => {
      const scheduled = state.epoch + state.index * FRAME_MS;
      const now = this.clock();
      this.stats.lateness[this.stats.latenessCount++ % this.stats.lateness.length] = now - scheduled;
      this.stats.wakeups++;
      try {
        session.tick(Math.max(now, scheduled), scheduled);
      } catch (error) {
        this.onError(error);
      }
      state.index++;
      if (this.timers.get(session) !== state) return;
      const next = state.epoch + state.index * FRAME_MS;
      state.timer = setTimeout(wake, Math.max(0, next - this.clock()));
    };
    state.timer = setTimeout(wake, 0);
  }

  remove(session: Tickable): void {
    const state = this.timers.get(session);
    if (!state) return;
    clearTimeout(state.timer);
    this.timers.delete(session);
  }

  get size(): number {
    return this.timers.size;
  }

  stop(): void {
    for (const state of this.timers.values()) clearTimeout(state.timer);
    this.timers.clear();
  }
}
