/**
 * The call manager: the UA core's invite handler. Enforces the concurrent-call cap, creates an
 * InboundCall per accepted INVITE, routes CANCELs to it, and tells the service about each new call so
 * it can attach the cloud link (on the call's `answered`) and metrics.
 */
import type { Logger } from "../logging";
import type { MediaEngine } from "../media/types";
import { createResponse, generateTag } from "../sip/message";
import type { SipRequest } from "../sip/message/types";
import type { Clock } from "../sip/transaction/clock";
import type { InviteServerTransaction } from "../sip/transaction/server";
import type { BaseTimers } from "../sip/transaction/timers";
import type { InboundMessage } from "../sip/transport/types";
import type { InviteHandler, UaCore } from "../sip/ua/ua";
import { type CallDeps, type CallSettings, InboundCall } from "./call";
import type { CallEndCause } from "./types";

export interface CallManagerOptions {
  ua: UaCore;
  clock: Clock;
  logger: Logger;
  media: MediaEngine;
  settings: CallSettings;
  timers: BaseTimers;
  maxConcurrentCalls: number;
  /** Digest credentials for challenged in-dialog requests. */
  credentials?: { username: string; password: string };
  /** Gate before each 200 OK (see CallDeps.beforeAnswer). */
  beforeAnswer?: CallDeps["beforeAnswer"];
}

export interface CallManagerCounters {
  offered: number;
  refusedBusy: number;
  ended: number;
}

export class CallManager implements InviteHandler {
  readonly counters: CallManagerCounters = { offered: 0, refusedBusy: 0, ended: 0 };
  private readonly calls = new Map<string, InboundCall>();
  private readonly byTransaction = new Map<InviteServerTransaction, InboundCall>();
  private readonly callListeners = new Set<(call: InboundCall) => void>();
  private draining = false;

  constructor(private readonly options: CallManagerOptions) {
    options.ua.setInviteHandler(this);
  }

  /** A new call was accepted for handling (before it is answered): attach listeners here. */
  onCall(listener: (call: InboundCall) => void): void {
    this.callListeners.add(listener);
  }

  get active(): number {
    return this.calls.size;
  }

  list(): InboundCall[] {
    return [...this.calls.values()];
  }

  get(id: string): InboundCall | undefined {
    return this.calls.get(id);
  }

  onInvite(request: SipRequest, transaction: InviteServerTransaction, inbound: InboundMessage): void {
    this.counters.offered++;
    if (this.draining) {
      transaction.respond(
        createResponse(request, 503, undefined, [["Retry-After", "60"]], { toTag: generateTag() }),
      );
      return;
    }
    if (this.calls.size >= this.options.maxConcurrentCalls) {
      this.counters.refusedBusy++;
      this.options.logger.warn({ active: this.calls.size }, "concurrent call limit reached; 486");
      transaction.respond(createResponse(request, 486, undefined, { toTag: generateTag() }));
      return;
    }
    const call = new InboundCall(request, transaction, inbound, this.options);
    this.calls.set(call.info.id, call);
    this.byTransaction.set(transaction, call);
    call.on("ended", () => {
      this.counters.ended++;
      this.calls.delete(call.info.id);
      this.byTransaction.delete(transaction);
    });
    for (const listener of this.callListeners) {
      try {
        listener(call);
      } catch (error) {
        call.logger.error({ err: error }, "call listener threw");
      }
    }
    void call.begin().catch((error: unknown) => {
      call.logger.error({ err: error }, "call setup failed");
      void call.hangup("error");
    });
  }

  onCancel(invite: InviteServerTransaction): void {
    this.byTransaction.get(invite)?.cancel();
  }

  /** Drain: answer new INVITEs with 503 + Retry-After from now on; calls in progress continue. */
  refuseNewCalls(): void {
    this.draining = true;
  }

  /** Refuse new calls from now on (503) and hang up the ones in progress. */
  async hangupAll(cause: CallEndCause = "shutdown"): Promise<void> {
    this.draining = true;
    await Promise.all(this.list().map((call) => call.hangup(cause)));
  }
}
