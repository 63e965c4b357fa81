/**
 * Client transactions (RFC 3261 §17.1), one method per RFC state so the code reads next to the figures:
 * INVITE client (Figure 5, with RFC 6026's Accepted state) and non-INVITE client (Figure 6).
 * No sockets here: `send` is injected, time comes from the Clock.
 */
import { createHeaders } from "../message";
import type { SipRequest, SipResponse } from "../message/types";
import type { Clock, Timer } from "./clock";
import type { TransactionTimers } from "./timers";

export type ClientFailure = "timeout" | "transport-error";

export interface ClientTransactionUser {
  /** Every response the TU should see (provisional, final, and 2xx retransmissions for INVITE). */
  onResponse(response: SipResponse): void;
  /** Timer B/F fired or the transport failed: no (further) response will come. */
  onFailure(reason: ClientFailure, error?: Error): void;
}

export interface ClientTransactionContext {
  clock: Clock;
  timers: TransactionTimers;
  reliable: boolean;
  /** Sends bytes to the transaction's destination; rejection = transport error. */
  send(message: SipRequest): Promise<void>;
  onTerminated(): void;
}

abstract class ClientTransactionBase {
  protected readonly timers = new Set<Timer>();
  protected terminated = false;

  constructor(
    readonly request: SipRequest,
    protected readonly user: ClientTransactionUser,
    protected readonly context: ClientTransactionContext,
  ) {}

  protected after(delayMs: number, callback: () => void): Timer {
    const timer = this.context.clock.schedule(delayMs, () => {
      this.timers.delete(timer);
      if (!this.terminated) callback();
    });
    this.timers.add(timer);
    return timer;
  }

  protected transmit(message: SipRequest): void {
    this.context.send(message).catch((error: unknown) => this.transportError(error));
  }

  protected transportError(error: unknown): void {
    if (this.terminated) return;
    this.terminate();
    this.user.onFailure("transport-error", error instanceof Error ? error : new Error(String(error)));
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
}

type InviteClientState = "calling" | "proceeding" | "accepted" | "completed" | "terminated";

export class InviteClientTransaction extends ClientTransactionBase {
  state: InviteClientState = "calling";
  private timerA: Timer | undefined;
  private timerB: Timer | undefined;
  private ack: SipRequest | undefined;

  start(): void {
    const { timers, reliable } = this.context;
    this.transmit(this.request);
    if (!reliable) this.scheduleTimerA(timers.timerA);
    this.timerB = this.after(timers.timerB, () => this.onTimerB());
  }

  private scheduleTimerA(interval: number): void {
    this.timerA = this.after(interval, () => {
      if (this.state !== "calling") return;
      this.transmit(this.request);
      this.scheduleTimerA(interval * 2);
    });
  }

  private onTimerB(): void {
    if (this.state !== "calling") return;
    this.terminate();
    this.user.onFailure("timeout");
  }

  receiveResponse(response: SipResponse): void {
    switch (this.state) {
      case "calling":
      case "proceeding":
        this.inCallingOrProceeding(response);
        return;
      case "accepted":
        this.inAccepted(response);
        return;
      case "completed":
        this.inCompleted(response);
        return;
      case "terminated":
        return;
    }
  }

  private inCallingOrProceeding(response: SipResponse): void {
    this.timerA?.cancel();
    if (response.status < 200) {
      this.state = "proceeding";
      this.timerB?.cancel();
      this.user.onResponse(response);
      return;
    }
    this.timerB?.cancel();
    if (response.status < 300) {
      // RFC 6026 §7.2: Accepted; 2xx retransmissions keep flowing to the TU, which ACKs them.
      this.state = "accepted";
      this.after(this.context.timers.timerM, () => this.terminate());
      this.user.onResponse(response);
      return;
    }
    this.state = "completed";
    this.ack = buildNon2xxAck(this.request, response);
    this.transmit(this.ack);
    this.after(this.context.timers.timerD, () => this.terminate());
    this.user.onResponse(response);
  }

  private inAccepted(response: SipResponse): void {
    if (response.status >= 200 && response.status < 300) this.user.onResponse(response);
  }

  private inCompleted(response: SipResponse): void {
    // A retransmitted final response: our ACK was lost, send it again; the TU already knows.
    if (response.status >= 300 && this.ack) this.transmit(this.ack);
  }
}

/**
 * RFC 3261 §17.1.1.3: the ACK for a non-2xx final response belongs to the transaction: same Request-URI,
 * Call-ID, From, CSeq number and top Via (branch) as the INVITE, To from the response, Route copied.
 */
export function buildNon2xxAck(invite: SipRequest, response: SipResponse): SipRequest {
  const headers = createHeaders();
  const via = invite.headers.getAll("Via")[0];
  if (via !== undefined) headers.append("Via", via);
  for (const route of invite.headers.getAll("Route")) headers.append("Route", route);
  headers.set("Max-Forwards", "70");
  headers.set("From", invite.headers.get("From") ?? "");
  headers.set("To", response.headers.get("To") ?? invite.headers.get("To") ?? "");
  headers.set("Call-ID", invite.headers.get("Call-ID") ?? "");
  const seq = (invite.headers.get("CSeq") ?? "1").trim().split(/\s+/)[0] ?? "1";
  headers.set("CSeq", `${seq} ACK`);
  headers.set("Content-Length", "0");
  return { kind: "request", method: "ACK", uri: invite.uri, headers, body: new Uint8Array() };
}

type NonInviteClientState = "trying" | "proceeding" | "completed" | "terminated";

export class NonInviteClientTransaction extends ClientTransactionBase {
  state: NonInviteClientState = "trying";
  private timerE: Timer | undefined;

  start(): void {
    const { timers, reliable } = this.context;
    this.transmit(this.request);
    if (!reliable) this.scheduleTimerE(timers.timerE);
    this.after(timers.timerF, () => this.onTimerF());
  }

  /** Timer E doubles from T1 up to T2 in Trying; in Proceeding it stays at T2 (§17.1.2.2). */
  private scheduleTimerE(interval: number): void {
    this.timerE = this.after(interval, () => {
      if (this.state !== "trying" && this.state !== "proceeding") return;
      this.transmit(this.request);
      const next =
        this.state === "proceeding" ? this.context.timers.t2 : Math.min(interval * 2, this.context.timers.t2);
      this.scheduleTimerE(next);
    });
  }

  private onTimerF(): void {
    if (this.state !== "trying" && this.state !== "proceeding") return;
    this.terminate();
    this.user.onFailure("timeout");
  }

  receiveResponse(response: SipResponse): void {
    if (this.state === "completed" || this.state === "terminated") return; // absorb retransmissions
    if (response.status < 200) {
      this.state = "proceeding";
      this.user.onResponse(response);
      return;
    }
    this.state = "completed";
    this.timerE?.cancel();
    for (const timer of this.timers) timer.cancel();
    this.timers.clear();
    this.user.onResponse(response);
    this.after(this.context.timers.timerK, () => this.terminate());
  }
}
