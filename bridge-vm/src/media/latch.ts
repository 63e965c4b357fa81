/**
 * Which source address may feed a call's RTP, and where we send: symmetric RTP with latching.
 *
 * Pure (injected clock). Defends against RTP bleed (AST-2017-005, sip-interop.md §3.3). Rules:
 * 1. Only the SDP address and the extra addresses the call layer names (the PBX's signalling IP when it
 *    sits behind NAT) are ever heard; everything else is dropped.
 * 2. The exact SDP ip:port is always accepted. `probation` (≥ 4) sequential packets from it lock onto it,
 *    and if the latch had moved elsewhere they move it back, at any time.
 * 3. Any other allowed ip:port (NAT: a private SDP address, or the right IP with a rewritten port) may
 *    lock only after probation, only while the learning window is open, and only once the SDP ip:port
 *    has been silent for `sdpPreferenceMs`. That silence starts counting at media start (the answer;
 *    before it we send nothing) and again at every packet from the SDP ip:port: so packets sprayed from
 *    the PBX's IP on another port in the gap between our 200 OK and the PBX's first RTP cannot win,
 *    and while the PBX streams from its SDP port nothing else can lock.
 * 4. The learning window closes `learningWindowMs` after media start (or after a renegotiation that
 *    happens after it). From then on only the latched source and the exact SDP ip:port are accepted.
 * A renegotiation (`reset`) forgets the latch and reopens the window.
 *
 * Cost of rule 3: a NAT'd PBX is heard, and hears us, only `sdpPreferenceMs` after media start.
 */

export interface Endpoint {
  address: string;
  port: number;
}

/** When a source other than the exact SDP ip:port may be learned (see rules 3 and 4 above). */
export interface LatchTiming {
  /** How long after media start another source may still be learned (default 5 s). */
  learningWindowMs?: number;
  /** How long the SDP ip:port must have been silent before another source may lock (default 1 s). */
  sdpPreferenceMs?: number;
}

export interface LatchOptions extends LatchTiming {
  expected: Endpoint;
  /** IPs besides expected.address from which media may come (NAT'd PBX). */
  extraAddresses?: readonly string[];
  latch: boolean;
  probation?: number;
  /** Monotonic milliseconds. */
  clock: () => number;
}

const DEFAULT_LEARNING_WINDOW_MS = 5_000;
const DEFAULT_SDP_PREFERENCE_MS = 1_000;

/** Consecutive sequence numbers seen from one ip:port. */
interface Run extends Endpoint {
  lastSeq: number;
  count: number;
}

function sameEndpoint(a: Endpoint, address: string, port: number): boolean {
  return a.address === address && a.port === port;
}

/** Extend `run` if this packet follows it from the same source, else start a new run. */
function advanceRun(run: Run | undefined, address: string, port: number, seq: number): Run {
  if (run && sameEndpoint(run, address, port) && seq === ((run.lastSeq + 1) & 0xffff)) {
    return { address, port, lastSeq: seq, count: run.count + 1 };
  }
  return { address, port, lastSeq: seq, count: 1 };
}

export class SourceLatch {
  private expected: Endpoint;
  private allowed: Set<string>;
  private readonly latchEnabled: boolean;
  private readonly probation: number;
  private readonly clock: () => number;
  private readonly learningWindowMs: number;
  private readonly sdpPreferenceMs: number;
  private latched: Endpoint | undefined;
  /** Probation of the exact SDP ip:port, kept apart so interleaved sprays cannot reset it. */
  private sdpRun: Run | undefined;
  /** Probation of the one other source currently trying. */
  private otherRun: Run | undefined;
  private mediaStarted = false;
  /** Undefined until media start: the window stays open while the call is being answered. */
  private learningClosesAtMs: number | undefined;
  /** Before media start no other source may lock: nothing is sent yet, so there is nothing to learn. */
  private otherMayLockAtMs = Number.POSITIVE_INFINITY;
  /** How many times the send target moved (to a NAT'd source, or back to the SDP ip:port). */
  switches = 0;

  constructor(options: LatchOptions) {
    this.latchEnabled = options.latch;
    this.probation = Math.max(4, options.probation ?? 4);
    this.clock = options.clock;
    this.learningWindowMs = options.learningWindowMs ?? DEFAULT_LEARNING_WINDOW_MS;
    this.sdpPreferenceMs = options.sdpPreferenceMs ?? DEFAULT_SDP_PREFERENCE_MS;
    this.expected = options.expected;
    this.allowed = new Set([options.expected.address, ...(options.extraAddresses ?? [])]);
  }

  /** The call is answered and media flows: the learning window closes `learningWindowMs` from now. */
  startMedia(): void {
    if (this.mediaStarted) return;
    this.mediaStarted = true;
    const now = this.clock();
    this.learningClosesAtMs = now + this.learningWindowMs;
    this.otherMayLockAtMs = now + this.sdpPreferenceMs;
  }

  /** A renegotiation (re-INVITE with a new c=/port, or direct_media): learn again. */
  reset(expected: Endpoint, extraAddresses: readonly string[] = []): void {
    const now = this.clock();
    this.expected = expected;
    this.allowed = new Set([expected.address, ...extraAddresses]);
    this.latched = undefined;
    this.sdpRun = undefined;
    this.otherRun = undefined;
    this.learningClosesAtMs = this.mediaStarted ? now + this.learningWindowMs : undefined;
    this.otherMayLockAtMs = this.mediaStarted ? now + this.sdpPreferenceMs : Number.POSITIVE_INFINITY;
  }

  /** Should an RTP packet from this source with this sequence number be processed? */
  accept(address: string, port: number, sequenceNumber: number): boolean {
    if (!this.allowed.has(address)) return false;
    if (!this.latchEnabled) return true;
    const now = this.clock();
    if (sameEndpoint(this.expected, address, port)) {
      this.acceptFromSdp(address, port, sequenceNumber, now);
      return true;
    }
    if (this.latched) return sameEndpoint(this.latched, address, port);
    if (!this.learningOpen(now)) return false;
    this.otherRun = advanceRun(this.otherRun, address, port, sequenceNumber);
    if (this.otherRun.count < this.probation || now < this.otherMayLockAtMs) return false;
    this.latched = { address, port };
    this.switches++;
    this.otherRun = undefined;
    return true;
  }

  private acceptFromSdp(address: string, port: number, sequenceNumber: number, now: number): void {
    this.preferSdpFrom(now);
    if (this.latched && sameEndpoint(this.latched, address, port)) return;
    this.sdpRun = advanceRun(this.sdpRun, address, port, sequenceNumber);
    if (this.sdpRun.count < this.probation) return;
    if (this.latched) this.switches++; // back from a NAT'd source
    this.latched = { address, port };
    this.sdpRun = undefined;
    this.otherRun = undefined;
  }

  private preferSdpFrom(now: number): void {
    this.otherMayLockAtMs = Math.max(this.otherMayLockAtMs, now + this.sdpPreferenceMs);
  }

  private learningOpen(now: number): boolean {
    return this.learningClosesAtMs === undefined || now < this.learningClosesAtMs;
  }

  /** Is this an address RTCP may come from? (RTCP is not latched separately.) */
  isAllowedAddress(address: string): boolean {
    return this.allowed.has(address);
  }

  /** Where our RTP goes: the latched source once learned, else what the SDP said. */
  get target(): Endpoint {
    return this.latched ?? this.expected;
  }

  get isLatched(): boolean {
    return this.latched !== undefined;
  }
}
