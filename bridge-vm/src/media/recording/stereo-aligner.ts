/**
 * Time alignment for the two-channel call recording: a pure core.
 *
 * Each channel writes 20 ms frames at a sample position derived from the call's frame grid
 * (left = caller as it left the jitter buffer, right = agent as it went on the wire). Positions are
 * followed per channel with a cursor, so sub-10 ms wobble does not tear frames apart or leave
 * clicks; a cursor more than `resyncSamples` away from the given position jumps there, and the
 * skipped span stays zero: gaps are silence, both channels stay on one timeline.
 * `drainUntil` hands out interleaved little-endian-ready PCM16 for everything before a position.
 */

export class StereoAligner {
  private readonly capacity: number;
  private staging: Int16Array;
  /** Absolute sample index of staging[0]. */
  private base = 0;
  private readonly cursors = [0, 0];
  private readonly resyncSamples: number;
  /** Highest position written so far (either channel). */
  private end = 0;

  constructor(capacitySamples = 16000, resyncSamples = 80) {
    this.capacity = capacitySamples;
    this.staging = new Int16Array(capacitySamples * 2);
    this.resyncSamples = resyncSamples;
  }

  /**
   * Write one channel's samples at (about) `atSample`. `emit` receives any span that had to be
   * drained to make room (a channel ran more than the capacity ahead of the drain point).
   */
  write(
    channel: 0 | 1,
    samples: Int16Array,
    atSample: number,
    emit: (interleaved: Int16Array) => void,
  ): void {
    let position = this.cursors[channel]!;
    if (Math.abs(atSample - position) > this.resyncSamples) position = atSample;
    const length = samples.length;
    this.cursors[channel] = position + length;
    if (position + length > this.base + this.capacity)
      this.drainUntil(position + length - this.capacity, emit);
    let from = 0;
    if (position < this.base) {
      from = this.base - position;
      if (from >= length) return;
    }
    let index = (position + from - this.base) * 2 + channel;
    for (let i = from; i < length; i++, index += 2) this.staging[index] = samples[i]!;
    if (position + length > this.end) this.end = position + length;
  }

  /** Emit interleaved samples for [base, untilSample) and forget them. */
  drainUntil(untilSample: number, emit: (interleaved: Int16Array) => void): void {
    const count = Math.min(Math.floor(untilSample) - this.base, this.capacity);
    if (count <= 0) return;
    emit(this.staging.slice(0, count * 2));
    this.staging.copyWithin(0, count * 2);
    this.staging.fill(0, (this.capacity - count) * 2);
    this.base += count;
    if (untilSample > this.base) {
      // Nothing was written in the rest of the span (both channels silent): emit zeros for it too.
      let rest = Math.floor(untilSample) - this.base;
      while (rest > 0) {
        const chunk = Math.min(rest, this.capacity);
        emit(new Int16Array(chunk * 2));
        this.base += chunk;
        rest -= chunk;
      }
    }
  }

  /** Everything written so far. */
  get endSample(): number {
    return this.end;
  }

  get drainedSample(): number {
    return this.base;
  }
}
