/**
 * Per-source reception statistics, straight from RFC 3550 appendix A:
 * A.1 sequence extension with probation-free resync on a big jump, A.3 expected/lost,
 * A.8 interarrival jitter. Pure: the arrival time is passed in, nothing is read from a clock.
 */

const SEQ_MOD = 65536;
/** RFC 3550 A.1 defaults: a jump beyond this many is a restart, not loss. */
const MAX_DROPOUT = 3000;
const MAX_MISORDER = 100;
/** How many recent extended sequence numbers we remember to recognise duplicates. */
const DUPLICATE_WINDOW = 512;

export type SequenceOutcome = "in-order" | "reordered" | "duplicate" | "jump-dropped" | "restarted";

export interface ReceptionReportFields {
  fractionLost: number;
  cumulativeLost: number;
  extendedHighestSequence: number;
  jitter: number;
}

export class ReceiveStats {
  private started = false;
  private maxSeq = 0;
  private cycles = 0;
  private baseExtSeq = 0;
  private badSeq = -1;
  private received = 0;
  private expectedPrior = 0;
  private receivedPrior = 0;
  /** Counts carried over from earlier sources (SSRC changes) so call totals stay cumulative. */
  private carriedExpected = 0;
  private carriedReceived = 0;
  private readonly recent = new Float64Array(DUPLICATE_WINDOW).fill(-1);
  private lastArrivalMs = 0;
  private lastTimestamp = 0;
  private hasTransit = false;
  /** Interarrival jitter in timestamp units, kept as a float (A.8 keeps it scaled by 16). */
  private jitterUnits = 0;
  private readonly unitsPerMs: number;
  duplicates = 0;
  reordered = 0;
  /** Extended sequence number of the last packet passed to `record` (valid unless duplicate/jump). */
  lastExtendedSeq = 0;

  constructor(clockRate = 8000) {
    this.unitsPerMs = clockRate / 1000;
  }

  /** Start a new source (first packet, or an SSRC change): keep totals, forget sequence state. */
  resetSource(): void {
    if (this.started) {
      this.carriedExpected += this.expectedOfSource();
      this.carriedReceived += this.received;
    }
    this.started = false;
    this.received = 0;
    this.expectedPrior = 0;
    this.receivedPrior = 0;
    this.badSeq = -1;
    this.hasTransit = false;
    this.recent.fill(-1);
  }

  private initSequence(seq: number): void {
    this.started = true;
    this.maxSeq = seq;
    this.cycles = 0;
    this.baseExtSeq = seq;
    this.badSeq = -1;
  }

  /** Account one packet's sequence number (A.1). Interarrival jitter is updated separately. */
  record(seq: number): SequenceOutcome {
    if (!this.started) {
      this.initSequence(seq);
      return this.accept(seq, "in-order");
    }
    const delta = (seq - this.maxSeq + SEQ_MOD) % SEQ_MOD;
    if (delta === 0) {
      this.lastExtendedSeq = this.cycles + seq;
      this.duplicates++;
      return "duplicate";
    }
    if (delta < MAX_DROPOUT) {
      if (seq < this.maxSeq) this.cycles += SEQ_MOD;
      this.maxSeq = seq;
      return this.accept(this.cycles + seq, "in-order");
    }
    if (delta <= SEQ_MOD - MAX_MISORDER) {
      // A big jump: either the sender restarted its sequence (buggy re-INVITE handling) or garbage.
      // Like A.1 we resync only when the next packet continues from the jump.
      if (seq === this.badSeq) {
        this.carriedExpected += this.expectedOfSource();
        this.carriedReceived += this.received;
        this.received = 0;
        this.expectedPrior = 0;
        this.receivedPrior = 0;
        this.recent.fill(-1);
        this.initSequence(seq);
        this.accept(seq, "in-order");
        return "restarted";
      }
      this.badSeq = (seq + 1) % SEQ_MOD;
      return "jump-dropped";
    }
    // Misordered: belongs just before maxSeq, possibly in the previous cycle.
    const extended = this.cycles + seq - (seq > this.maxSeq ? SEQ_MOD : 0);
    if (extended < this.baseExtSeq) {
      this.duplicates++;
      return "duplicate";
    }
    return this.accept(extended, "reordered");
  }

  private accept(extended: number, outcome: "in-order" | "reordered"): SequenceOutcome {
    this.lastExtendedSeq = extended;
    const slot = extended % DUPLICATE_WINDOW;
    if (this.recent[slot] === extended) {
      this.duplicates++;
      return "duplicate";
    }
    this.recent[slot] = extended;
    this.received++;
    if (outcome === "reordered") this.reordered++;
    return outcome;
  }

  /** RFC 3550 A.8: feed arrival time and RTP timestamp of each (non-duplicate) audio packet. */
  recordTransit(arrivalMs: number, timestamp: number): void {
    if (this.hasTransit) {
      const arrivalUnits = (arrivalMs - this.lastArrivalMs) * this.unitsPerMs;
      const timestampUnits = (timestamp - this.lastTimestamp) | 0;
      const difference = Math.abs(arrivalUnits - timestampUnits);
      this.jitterUnits += (difference - this.jitterUnits) / 16;
    }
    this.hasTransit = true;
    this.lastArrivalMs = arrivalMs;
    this.lastTimestamp = timestamp;
  }

  private expectedOfSource(): number {
    return this.started ? this.cycles + this.maxSeq - this.baseExtSeq + 1 : 0;
  }

  get expected(): number {
    return this.carriedExpected + this.expectedOfSource();
  }

  get receivedTotal(): number {
    return this.carriedReceived + this.received;
  }

  get lost(): number {
    return Math.max(0, this.expected - this.receivedTotal);
  }

  get lossPercent(): number {
    const expected = this.expected;
    return expected === 0 ? 0 : (this.lost / expected) * 100;
  }

  get jitterMs(): number {
    return this.jitterUnits / this.unitsPerMs;
  }

  get extendedHighestSequence(): number {
    return this.cycles + this.maxSeq;
  }

  get hasSource(): boolean {
    return this.started;
  }

  /** Fields for an RTCP report block about the current source; advances the "since last report" window. */
  takeReceptionReport(): ReceptionReportFields {
    const expected = this.expectedOfSource();
    const expectedInterval = expected - this.expectedPrior;
    const receivedInterval = this.received - this.receivedPrior;
    this.expectedPrior = expected;
    this.receivedPrior = this.received;
    const lostInterval = expectedInterval - receivedInterval;
    const fractionLost =
      expectedInterval <= 0 || lostInterval <= 0 ? 0 : Math.floor((lostInterval * 256) / expectedInterval);
    const cumulativeLost = Math.max(-0x800000, Math.min(0x7fffff, expected - this.received));
    return {
      fractionLost: Math.min(255, fractionLost),
      cumulativeLost,
      extendedHighestSequence: this.extendedHighestSequence >>> 0,
      jitter: Math.round(this.jitterUnits) >>> 0,
    };
  }
}
