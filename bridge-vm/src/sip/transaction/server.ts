/**
 * Server transactions (RFC 3261 §17.2): INVITE server (Figure 7, with RFC 6026's Accepted state) and
 * non-INVITE server (Figure 8). Retransmitted requests are absorbed and the last response replayed.
 * No sockets here: `send` is injected, time comes from the Clock.
 */
import type { SipRequest, SipResponse } from "../message/types";
import type { Clock, Timer } from "./clock";
import type { TransactionTimers } from "./timers";

export interface ServerTransactionContext {
  clock: Clock;
  timers: TransactionTimers;
  reliable: boolean;
  /** Sends a response to where the request came from (connection or Via-routed address). */
  send(response: SipResponse): Promise<void>;
  onTerminated(): void;
  /** Timer H fired: a non-2xx final response was never ACKed. */
  onAckTimeout?(): void;
  onTransportError?(error: Error): void;
}

abstract class ServerTransactionBase {
  protected readonly timers = new Set<Timer>();
  protected terminated = false;
  protected lastResponse: SipResponse | undefined;

  constructor(
    readonly request: SipRequest,
    protected readonly context: ServerTransactionContext,
  ) {}

  protected after(delayMs: number, callback: () => void): Timer {
    const timer = this.context.clock.schedule(delayMs, () => {
      this.timers.delete(timer);
      if (!this.terminated) callback();
    });
    this.timers.add(timer);
    return timer;
  }

  protected transmit(response: SipResponse): void {
    this.context.send(response).catch((error: unknown) => {
      // §17.2.4: a transport failure on a response terminates the transaction.
      this.context.onTransportError?.(error instanceof Error ? error : new Error(String(error)));
      this.terminate();
    });
  }

  /** Idempotent; cancels every timer. */
  terminate(): void {
    if (this.terminated) return;
    this.terminated = true;
    for (const timer of this.timers) timer.cancel();
    this.timers.clear();
    this.context.onTerminated();
  }

  get isTerminated(): boolean {
    return this.terminated;
  }

  get finalStatus(): number | undefined {
    return this.lastResponse && this.lastResponse.status >= 200 ? this.lastResponse.status : undefined;
  }
}

type InviteServerState = "proceeding" | "accepted" | "completed" | "confirmed" | "terminated";

export class InviteServerTransaction extends ServerTransactionBase {
  state: InviteServerState = "proceeding";

  /** The TU's response. Responses after a final one are ignored (returns false). */
  respond(response: SipResponse): boolean {
    if (this.state !== "proceeding") return false;
    this.lastResponse = response;
    this.transmit(response);
    if (response.status < 200) return true;
    if (response.status < 300) {
      // RFC 6026 §7.1: Accepted; the UA core retransmits the 2xx until the ACK arrives.
      this.state = "accepted";
      this.after(this.context.timers.timerL, () => this.terminate());
      return true;
    }
    this.state = "completed";
    const { timers, reliable } = this.context;
    if (!reliable) this.scheduleTimerG(timers.timerG);
    this.after(timers.timerH, () => this.onTimerH());
    return true;
  }

  /** Timer G: retransmit the final response, doubling up to T2. */
  private scheduleTimerG(interval: number): void {
    this.after(interval, () => {
      if (this.state !== "completed" || !this.lastResponse) return;
      this.transmit(this.lastResponse);
      this.scheduleTimerG(Math.min(interval * 2, this.context.timers.t2));
    });
  }

  private onTimerH(): void {
    if (this.state !== "completed") return;
    this.terminate();
    this.context.onAckTimeout?.();
  }

  /**
   * RFC 6026 §7.1: in Accepted, the UA core's 2xx retransmissions (RFC 3261 §13.3.1.4) still go out
   * through the transaction, which knows where the INVITE came from.
   */
  retransmit2xx(): void {
    if (this.state === "accepted" && this.lastResponse) this.transmit(this.lastResponse);
  }

  /** A retransmission of the INVITE (same branch). */
  receiveRetransmission(): void {
    if ((this.state === "proceeding" || this.state === "completed") && this.lastResponse)
      this.transmit(this.lastResponse);
  }

  /** ACK matching this transaction: only meaningful for a non-2xx final response. */
  receiveAck(): void {
    if (this.state !== "completed") return;
    this.state = "confirmed";
    for (const timer of this.timers) timer.cancel();
    this.timers.clear();
    this.after(this.context.timers.timerI, () => this.terminate());
  }

  override terminate(): void {
    this.state = "terminated";
    super.terminate();
  }
}

type NonInviteServerState = "trying" | "proceeding" | "completed" | "terminated";

export class NonInviteServerTransaction extends ServerTransactionBase {
  state: NonInviteServerState = "trying";

  respond(response: SipResponse): boolean {
    if (this.state === "completed" || this.state === "terminated") return false;
    this.lastResponse = response;
    this.transmit(response);
    if (response.status < 200) {
      this.state = "proceeding";
      return true;
    }
    this.state = "completed";
    this.after(this.context.timers.timerJ, () => this.terminate());
    return true;
  }

  /** Trying: absorb; Proceeding/Completed: replay the last response. */
  receiveRetransmission(): void {
    if (this.state !== "trying" && this.lastResponse) this.transmit(this.lastResponse);
  }

  override terminate(): void {
    this.state = "terminated";
    super.terminate();
  }
}

export type ServerTransaction = InviteServerTransaction | NonInviteServerTransaction;
