/**
 * RFC 3261 §17 timer values (Table 4), named as in the RFC. T1/T2/T4 are injectable so tests and
 * integration runs can shrink them; the defaults are the RFC's.
 */

export interface BaseTimers {
  /** RTT estimate. */
  t1: number;
  /** Maximum retransmit interval for non-INVITE requests and INVITE responses. */
  t2: number;
  /** Maximum duration a message remains in the network. */
  t4: number;
}

export const RFC3261_TIMERS: BaseTimers = Object.freeze({ t1: 500, t2: 4000, t4: 5000 });

/** Derived timers. `reliable` is true for TCP, where retransmission and wait timers collapse to 0. */
export function transactionTimers(base: BaseTimers, reliable: boolean) {
  const { t1, t2, t4 } = base;
  return {
    /** INVITE request retransmit, doubling (unreliable only). */
    timerA: t1,
    /** INVITE transaction timeout. */
    timerB: 64 * t1,
    /** Wait time for response retransmits in client INVITE Completed. */
    timerD: reliable ? 0 : Math.max(32_000, 64 * t1),
    /** non-INVITE request retransmit, doubling up to T2 (unreliable only). */
    timerE: t1,
    /** non-INVITE transaction timeout. */
    timerF: 64 * t1,
    /** INVITE response retransmit, doubling up to T2 (unreliable only). */
    timerG: t1,
    /** Wait time for ACK receipt. */
    timerH: 64 * t1,
    /** Wait time for ACK retransmits. */
    timerI: reliable ? 0 : t4,
    /** Wait time for non-INVITE request retransmits. */
    timerJ: reliable ? 0 : 64 * t1,
    /** Wait time for response retransmits in client non-INVITE Completed. */
    timerK: reliable ? 0 : t4,
    /** RFC 6026: how long an accepted INVITE server transaction absorbs INVITE retransmissions. */
    timerL: 64 * t1,
    /** RFC 6026: how long an accepted INVITE client transaction passes on 2xx retransmissions. */
    timerM: 64 * t1,
    t1,
    t2,
  };
}

export type TransactionTimers = ReturnType<typeof transactionTimers>;
