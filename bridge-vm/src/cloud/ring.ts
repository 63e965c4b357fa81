/**
 * A fixed-size ring of 20 ms caller frames, filled while the media socket is down and drained after
 * the Worker welcomes us back. Preallocated once per call: buffering during an outage allocates
 * nothing, and when the outage outlasts the ring the oldest audio is dropped (and counted) rather
 * than memory growing without bound.
 */
import { BYTES_PER_FRAME } from "@patchbay/shared/audio";

export interface BufferedFrame {
  payload: Uint8Array;
  seq: number;
  timeMs: number;
}

export class FrameRing {
  private readonly slots: BufferedFrame[];
  private start = 0;
  private count = 0;
  dropped = 0;

  constructor(readonly capacity: number) {
    this.slots = Array.from({ length: capacity }, () => ({
      payload: new Uint8Array(BYTES_PER_FRAME),
      seq: 0,
      timeMs: 0,
    }));
  }

  get size(): number {
    return this.count;
  }

  push(payload: Uint8Array, seq: number, timeMs: number): void {
    if (this.capacity === 0) {
      this.dropped++;
      return;
    }
    if (this.count === this.capacity) {
      this.start = (this.start + 1) % this.capacity;
      this.count--;
      this.dropped++;
    }
    const slot = this.slots[(this.start + this.count) % this.capacity]!;
    slot.payload.set(payload.subarray(0, BYTES_PER_FRAME));
    slot.seq = seq;
    slot.timeMs = timeMs;
    this.count++;
  }

  /** Hands each buffered frame, oldest first, to `visit`, then empties the ring. */
  drain(visit: (frame: BufferedFrame, index: number) => void): void {
    for (let index = 0; index < this.count; index++)
      visit(this.slots[(this.start + index) % this.capacity]!, index);
    this.start = 0;
    this.count = 0;
  }
}
