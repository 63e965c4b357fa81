/**
 * Which source address may feed a call's RTP, and where we send: symmetric RTP with latching.
 *
 * Pure. Defends against RTP bleed (AST-2017-005): only addresses we expect (the SDP address, plus
 * any extra ones the call layer names, e.g. the PBX's signalling address when it sits behind NAT)
 * may ever be latched, and only after `probation` (≥ 4) sequential packets from one ip:port. Once
 * latched, packets from any other source are ignored until a renegotiation (`reset`) reopens the
 * learning window. Until then only the exact SDP ip:port is accepted.
 */

export interface Endpoint {
  address: string;
  port: number;
}

export interface LatchOptions {
  expected: Endpoint;
  /** IPs besides expected.address from which media may come (NAT'd PBX). */
  extraAddresses?: readonly string[];
  latch: boolean;
  probation?: number;
}

export class SourceLatch {
  private expected: Endpoint;
  private allowed: Set<string>;
  private readonly latchEnabled: boolean;
  private readonly probation: number;
  private latched: Endpoint | undefined;
  private candidate: (Endpoint & { lastSeq: number; count: number }) | undefined;
  switches = 0;

  constructor(options: LatchOptions) {
    this.latchEnabled = options.latch;
    this.probation = Math.max(4, options.probation ?? 4);
    this.expected = options.expected;
    this.allowed = new Set([options.expected.address, ...(options.extraAddresses ?? [])]);
  }

  /** A renegotiation (re-INVITE with a new c=/port, or direct_media): learn again. */
  reset(expected: Endpoint, extraAddresses: readonly string[] = []): void {
    this.expected = expected;
    this.allowed = new Set([expected.address, ...extraAddresses]);
    this.latched = undefined;
    this.candidate = undefined;
  }

  /** Should an RTP packet from this source with this sequence number be processed? */
  accept(address: string, port: number, sequenceNumber: number): boolean {
    if (!this.allowed.has(address)) return false;
    if (!this.latchEnabled) return true;
    if (this.latched) return address === this.latched.address && port === this.latched.port;
    const candidate = this.candidate;
    if (
      candidate &&
      candidate.address === address &&
      candidate.port === port &&
      sequenceNumber === ((candidate.lastSeq + 1) & 0xffff)
    ) {
      candidate.count++;
      candidate.lastSeq = sequenceNumber;
    } else {
      this.candidate = { address, port, lastSeq: sequenceNumber, count: 1 };
    }
    if (this.candidate!.count >= this.probation) {
      this.latched = { address, port };
      if (address !== this.expected.address || port !== this.expected.port) this.switches++;
      this.candidate = undefined;
      return true;
    }
    return address === this.expected.address && port === this.expected.port;
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
