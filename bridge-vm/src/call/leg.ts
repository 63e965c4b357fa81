/**
 * SipLeg: one SIP call leg from the moment it has a dialog to its end, whichever side set the dialog up
 * (RFC 3261 §12–15, RFC 3264, RFC 4028, RFC 3515/4488/5589). InboundCall (./call.ts) is the UAS of an
 * INVITE and OutboundLeg (../outbound/leg.ts) its UAC; each adds only how its dialog comes to be. What
 * happens inside a dialog is written once, here, and serves both:
 *
 * - re-INVITE and UPDATE answered (same-session refresh → the same answer; hold, resume and a new
 *   address applied to media; SDP-less offers: we offer in the 2xx, the ACK answers; 491 on glare with
 *   our own refresh; 500 + Retry-After while one is still open), the 2xx retransmitted until its ACK;
 * - RFC 4028 session timers in both roles: the refresher refreshes at SE/2 (UPDATE if the peer allows
 *   it, else a same-SDP re-INVITE; 422 → retry with the peer's Min-SE; 491 → retry later), the other
 *   side sends BYE at SE − min(32, SE/3) without a refresh;
 * - INFO DTMF, OPTIONS, NOTIFY, REFER from the peer refused (603), 481 once the leg has ended;
 * - blind transfer (REFER with NOTIFY sipfrag progress, BYE only after the final 2xx NOTIFY);
 * - BYE either way; every request we send is answered once with digest credentials on 401/407;
 * - the call-length limit and the media timeout.
 *
 * The leg owns its Dialog and its CallMedia and ends exactly once with a cause (`ended`).
 * Time comes from the injected Clock; SIP goes through the UA core and transaction layer.
 */
import type { Logger } from "../logging";
import type { CallMedia, MediaParams } from "../media/types";
import { DigestClient } from "../sip/auth";
import type { Dialog, DialogId } from "../sip/dialog/dialog";
import { createResponse, parseCSeq } from "../sip/message";
import type { SipRequest, SipResponse, SipUri } from "../sip/message/types";
import { answerOffer, isSameSession, parseAnswer } from "../sip/sdp";
import type { Clock, Timer } from "../sip/transaction/clock";
import type { InviteServerTransaction, ServerTransaction } from "../sip/transaction/server";
import type { BaseTimers } from "../sip/transaction/timers";
import type { Endpoint, TransportProtocol } from "../sip/transport/types";
import { ALLOW_HEADER, type DialogUser, SUPPORTED_HEADER, type UaCore } from "../sip/ua/ua";
import {
  negotiateAsUac,
  negotiateAsUas,
  type Refresher,
  refreshRequestHeaders,
  type SessionTimerConfig,
  sessionTimerPlan,
  uasResponseHeaders,
} from "./session-timer";
import type { CallDtmf, CallEndCause, CallEnded, CallEvents } from "./types";

export type LegState = "starting" | "ringing" | "answering" | "confirmed" | "ended";

export interface LegSettings extends SessionTimerConfig {
  maxCallS: number;
  /** The address we put in SDP c= (public address behind NAT). */
  mediaAddress: string;
  /** SIP domain for transfer targets given as bare numbers ("2001" → sip:2001@domain). */
  domain?: string;
}

export interface LegDeps {
  ua: UaCore;
  clock: Clock;
  logger: Logger;
  settings: LegSettings;
  timers: BaseTimers;
  /** Digest credentials for challenges to our in-dialog requests (BYE, UPDATE, re-INVITE, REFER). */
  credentials?: { username: string; password: string };
}

/** What every leg reports (InboundCall's CallEvents); OutboundLeg adds `progress`. */
export type LegEvents = CallEvents;

/** A blind transfer that did not complete; the call is still up and the agent carries on. */
export class TransferError extends Error {
  override readonly name = "TransferError";
  constructor(
    message: string,
    /** The SIP status that explains it: the REFER's response or the NOTIFY sipfrag's. */
    readonly sipStatus?: number,
  ) {
    super(message);
  }
}

export interface TransferOptions {
  /** How long to wait for the final NOTIFY (default 30 s). */
  timeoutMs?: number;
  /**
   * A ready Refer-To URI used as is instead of turning `target` into one, e.g. a consultation target
   * with `?Replaces=…` (build it with `uriWithHeaders`). Must be a sip:/sips: URI without spaces or
   * angle brackets; header values in it must already be escaped (RFC 3261 §19.1.1).
   */
  referTo?: string;
}

/** "2001" or "+15551230000" → sip:…@domain; SIP/tel URIs pass through. */
export function referTarget(target: string, domain: string | undefined): string {
  const trimmed = target.trim().replace(/^<|>$/g, "");
  if (/^(sips?|tel):/i.test(trimmed)) return trimmed;
  if (!domain)
    throw new TransferError(`cannot turn "${trimmed.slice(0, 64)}" into a SIP URI without a domain`);
  if (!/^[+\w.*#-]{1,64}$/.test(trimmed))
    throw new TransferError(`"${trimmed.slice(0, 64)}" is not a valid target`);
  return `sip:${trimmed}@${domain}`;
}

/** Characters a header name or value may carry unescaped in a SIP URI (RFC 3261 §25.1 hnv-unreserved + unreserved). */
const HEADER_SAFE = /[A-Za-z0-9\-_.!~*'()[\]/?:+$]/;

/**
 * A SIP URI with URI headers (`sip:2001@pbx?Replaces=…`), each name and value escaped per RFC 3261
 * §19.1.1: everything but unreserved and hnv-unreserved characters becomes %XX (UTF-8), so `@`, `;`,
 * `=` and `&` inside a Replaces value cannot end the header or the URI.
 */
export function uriWithHeaders(uri: string, headers: Readonly<Record<string, string>>): string {
  const percentEncode = (text: string) =>
    [...new TextEncoder().encode(text)]
      .map((byte) => {
        const char = String.fromCharCode(byte);
        return byte < 0x80 && HEADER_SAFE.test(char)
          ? char
          : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
      })
      .join("");
  const query = Object.entries(headers)
    .map(([name, value]) => `${percentEncode(name)}=${percentEncode(value)}`)
    .join("&");
  return query ? `${uri}${uri.includes("?") ? "&" : "?"}${query}` : uri;
}

/** A ready Refer-To URI we accept as is: sip:/sips:, printable, no spaces, quotes or angle brackets. */
const READY_REFER_TO = /^sips?:[\x21-\x7e]{1,1024}$/i;

/** The status line of a message/sipfrag NOTIFY body ("SIP/2.0 200 OK"). */
export function sipfragStatus(body: string): number | undefined {
  const match = /^SIP\/2\.0\s+(\d{3})/.exec(body.trimStart());
  return match ? Number(match[1]) : undefined;
}

const DTMF_DIGIT = /^[0-9*#A-Da-d]$/;

/** application/dtmf-relay ("Signal=5\r\nDuration=160") or application/dtmf ("5"). */
export function parseDtmfRelay(body: string, type: string): CallDtmf | undefined {
  if (type === "application/dtmf") {
    const digit = body.trim();
    return DTMF_DIGIT.test(digit)
      ? { digit: digit.toUpperCase(), durationMs: 250, source: "sip-info" }
      : undefined;
  }
  const signal = /^\s*signal\s*=\s*(\S+)\s*$/im.exec(body)?.[1];
  const duration = Number(/^\s*duration\s*=\s*(\d+)\s*$/im.exec(body)?.[1] ?? "250");
  if (!signal || !DTMF_DIGIT.test(signal)) return undefined;
  return { digit: signal.toUpperCase(), durationMs: Math.min(duration, 10_000), source: "sip-info" };
}

interface PendingTransfer {
  target: string;
  settle(error?: TransferError): void;
}

/** A 2xx to an INVITE (initial or re-INVITE) we retransmit until its ACK arrives (§13.3.1.4). */
interface Pending2xx {
  transaction: InviteServerTransaction;
  cseq: number;
  /** Our offer in a 2xx to an SDP-less INVITE: the ACK carries the answer. */
  offer?: string;
  timer?: Timer;
  giveUp: Timer;
}

export const SDP = "application/sdp";
const decoder = new TextDecoder();

type AnyListener = (...args: unknown[]) => void;
type ArgsOf<F> = F extends (...args: infer A) => void ? A : never;

export abstract class SipLeg<Events extends LegEvents = LegEvents> implements DialogUser {
  state: LegState = "starting";
  params: MediaParams | undefined;
  media: CallMedia | undefined;
  dialog: Dialog | undefined;
  readonly logger: Logger;
  /** The cause a BYE from the peer ends the leg with ("caller-hangup" inbound, "callee-hangup" outbound). */
  protected abstract readonly remoteHangupCause: CallEndCause;
  protected readonly startedAt: number;
  protected readonly sessionId = String(Date.now() * 1000 + Math.floor(Math.random() * 1000));
  protected sessionVersion = 1;
  /** The last SDP we sent and the last the peer sent (same-session refreshes get the same answer). */
  protected localSdp: string | undefined;
  protected remoteSdp: string | undefined;
  protected sessionInterval: { intervalS: number; refresher: Refresher } | undefined;
  /** PJSIP refreshes with UPDATE when our Allow has it; we do the same when the peer's has it. */
  protected peerAllowsUpdate = false;
  private pending2xx: Pending2xx | undefined;
  private incomingReinvitePending = false;
  private outgoingRefreshPending = false;
  private pendingTransfer: PendingTransfer | undefined;
  private readonly timers = new Set<Timer>();
  private sessionTimer: Timer | undefined;
  private digest: DigestClient | undefined;
  /** hangup() asked for while our 2xx awaited its ACK. */
  private hangupAfterAck: CallEndCause | undefined;
  private endedInfo: CallEnded | undefined;
  private readonly listeners = new Map<PropertyKey, Set<AnyListener>>();

  protected constructor(
    protected readonly deps: LegDeps,
    logger: Logger,
    /** The transport our Contact names and in-dialog requests default to. */
    protected readonly protocol: TransportProtocol,
  ) {
    this.logger = logger;
    this.startedAt = deps.clock.now();
  }

  // ---------------------------------------------------------------------------------------------------
  // Events

  on<E extends keyof Events>(event: E, listener: Events[E]): void {
    this.listenersOf(event).add(listener as unknown as AnyListener);
  }

  off<E extends keyof Events>(event: E, listener: Events[E]): void {
    this.listenersOf(event).delete(listener as unknown as AnyListener);
  }

  /** For subclasses' own events (their Events type is concrete, so the arguments are checked). */
  protected emit<E extends keyof Events>(event: E, ...args: ArgsOf<Events[E]>): void {
    this.dispatch(event, args);
  }

  private emitLeg<E extends keyof LegEvents>(event: E, ...args: Parameters<LegEvents[E]>): void {
    this.dispatch(event, args);
  }

  private dispatch(event: PropertyKey, args: unknown[]): void {
    for (const listener of this.listenersOf(event)) {
      try {
        listener(...args);
      } catch (error) {
        this.logger.error({ err: error, event: String(event) }, "call listener threw");
      }
    }
  }

  private listenersOf(event: PropertyKey): Set<AnyListener> {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    return set;
  }

  get ended(): CallEnded | undefined {
    return this.endedInfo;
  }

  /**
   * The dialog's identifiers once it exists: Call-ID, our tag and the peer's (what a Replaces header
   * or a Refer-To with `?Replaces=` names). Undefined before the dialog forms.
   */
  get dialogId(): DialogId | undefined {
    return this.dialog ? { ...this.dialog.id } : undefined;
  }

  // ---------------------------------------------------------------------------------------------------
  // Confirmation

  /** §13.3.1.4: retransmit the 2xx at T1, 2·T1 … capped at T2 until the ACK; give up after 64·T1. */
  protected await2xxAck(transaction: InviteServerTransaction, cseq: number, offer?: string): void {
    const { t1, t2 } = this.deps.timers;
    const pending: Pending2xx = {
      transaction,
      cseq,
      giveUp: this.after(64 * t1, () => this.onNoAck()),
    };
    if (offer !== undefined) pending.offer = offer;
    const retransmit = (interval: number) => {
      pending.timer = this.after(interval, () => {
        if (this.pending2xx !== pending) return;
        transaction.retransmit2xx();
        retransmit(Math.min(interval * 2, t2));
      });
    };
    retransmit(t1);
    this.pending2xx = pending;
  }

  private onNoAck(): void {
    this.logger.warn("no ACK for our 200 OK within 64*T1; hanging up");
    this.pending2xx = undefined;
    this.incomingReinvitePending = false;
    void this.hangup("no-ack");
  }

  private onAck(request: SipRequest): void {
    const pending = this.pending2xx;
    const cseq = parseCSeq(request.headers.get("CSeq") ?? "")?.seq;
    if (!pending || cseq !== pending.cseq) return; // a retransmitted ACK, or one for an old 2xx
    pending.timer?.cancel();
    pending.giveUp.cancel();
    this.pending2xx = undefined;
    if (pending.offer !== undefined) {
      const body = this.bodyText(request);
      const result = body ? parseAnswer(body, pending.offer) : undefined;
      if (result?.ok) {
        this.remoteSdp = body;
        this.applyParams(result.params);
      } else {
        this.logger.warn(
          { reason: result && !result.ok ? result.reason : "ACK without SDP" },
          "bad answer in ACK",
        );
      }
    }
    if (this.state === "answering") this.confirm();
    else this.incomingReinvitePending = false;
  }

  /**
   * The dialog is confirmed: media starts, the call-length limit and the session timer run, and
   * `answered` fires. UAS: on the ACK for our 2xx; UAC: once the 2xx is ACKed.
   */
  protected confirm(): void {
    this.state = "confirmed";
    if (this.dialog) this.dialog.state = "confirmed";
    if (this.hangupAfterAck) {
      void this.hangup(this.hangupAfterAck);
      return;
    }
    this.media?.start();
    this.after(this.deps.settings.maxCallS * 1000, () => {
      this.logger.info({ maxCallS: this.deps.settings.maxCallS }, "call length limit reached");
      void this.hangup("max-duration");
    });
    this.restartSessionTimer();
    if (this.media) this.emitLeg("answered", this.media);
  }

  /** UAC: the session timer the 2xx to our INVITE granted (RFC 4028 §7.2), before confirm(). */
  protected adoptSessionTimer(response: SipResponse): void {
    this.sessionInterval = negotiateAsUac(response.headers);
    this.peerAllowsUpdate = allowsUpdate(response.headers.getAll("Allow"));
  }

  // ---------------------------------------------------------------------------------------------------
  // In-dialog requests

  handleRequest(request: SipRequest, transaction: ServerTransaction | undefined): void {
    if (request.method === "ACK") {
      this.onAck(request);
      return;
    }
    if (!transaction || !this.dialog) return;
    if (this.state === "ended") {
      this.respond(transaction, request, 481);
      return;
    }
    if (this.dialog.checkRemoteCSeq(request) === "out-of-order") {
      this.respond(transaction, request, 500, [], "CSeq out of order");
      return;
    }
    switch (request.method) {
      case "BYE":
        this.respond(transaction, request, 200);
        void this.finish(this.remoteHangupCause, 200);
        return;
      case "INVITE":
        this.onReinvite(request, transaction as InviteServerTransaction);
        return;
      case "UPDATE":
        this.onUpdate(request, transaction);
        return;
      case "INFO":
        this.onInfo(request, transaction);
        return;
      case "OPTIONS":
        this.respond(transaction, request, 200, [
          ["Allow", ALLOW_HEADER],
          ["Accept", SDP],
        ]);
        return;
      case "NOTIFY":
        this.respond(transaction, request, 200);
        this.onReferNotify(request);
        return;
      case "REFER":
        // Transfers are driven by the agent (transfer()), not accepted from the PBX side.
        this.respond(transaction, request, 603);
        return;
      case "CANCEL":
        // A CANCEL for a re-INVITE: we answer re-INVITEs at once, so there is nothing left to cancel.
        this.respond(transaction, request, 200);
        return;
      default:
        this.respond(transaction, request, 501);
    }
  }

  private onReinvite(request: SipRequest, transaction: InviteServerTransaction): void {
    if (this.outgoingRefreshPending) {
      // RFC 3261 §14.2: glare with our own re-INVITE/UPDATE.
      this.respond(transaction, request, 491);
      return;
    }
    if (this.state !== "confirmed" || this.incomingReinvitePending) {
      // §14.2: an INVITE while one of ours is unanswered or unACKed: 500 with Retry-After 0–10 s.
      this.respond(transaction, request, 500, [["Retry-After", String(Math.floor(Math.random() * 10))]]);
      return;
    }
    const negotiated = this.negotiateRefresh(request, transaction);
    if (!negotiated) return;
    this.dialog?.refreshTarget(request);
    const offer = this.bodyText(request);
    let body: string;
    let ourOffer: string | undefined;
    if (offer) {
      const answer = this.answerMidCall(offer, request, transaction);
      if (answer === undefined) return;
      body = answer;
    } else {
      // SDP-less re-INVITE: we offer (our current SDP, version unchanged), the ACK answers.
      body = this.localSdp ?? "";
      ourOffer = body;
    }
    this.incomingReinvitePending = true;
    transaction.respond(this.buildResponse(request, 200, negotiated, body));
    const cseq = parseCSeq(request.headers.get("CSeq") ?? "")?.seq ?? 0;
    this.await2xxAck(transaction, cseq, ourOffer);
    this.restartSessionTimer();
  }

  private onUpdate(request: SipRequest, transaction: ServerTransaction): void {
    if (this.outgoingRefreshPending && this.bodyText(request)) {
      this.respond(transaction, request, 491);
      return;
    }
    const negotiated = this.negotiateRefresh(request, transaction);
    if (!negotiated) return;
    this.dialog?.refreshTarget(request);
    const offer = this.bodyText(request);
    if (offer) {
      const answer = this.answerMidCall(offer, request, transaction);
      if (answer === undefined) return;
      transaction.respond(this.buildResponse(request, 200, negotiated, answer));
    } else {
      transaction.respond(this.buildResponse(request, 200, negotiated));
    }
    this.restartSessionTimer();
  }

  /** Session-timer negotiation for a refresh request; undefined when we answered 422. */
  private negotiateRefresh(
    request: SipRequest,
    transaction: ServerTransaction,
  ): Array<[string, string]> | undefined {
    const decision = negotiateAsUas(request.headers, this.deps.settings);
    if (decision.kind === "too-small") {
      this.respond(transaction, request, 422, [["Min-SE", String(decision.minSE)]]);
      return undefined;
    }
    if (decision.kind === "on")
      this.sessionInterval = { intervalS: decision.intervalS, refresher: decision.refresher };
    else if (this.sessionInterval) {
      // RFC 4028 §9: a refresh without Session-Expires turns the timer off.
      this.sessionInterval = undefined;
    }
    return uasResponseHeaders(decision);
  }

  /**
   * Answer a mid-call offer. Same o= session and version → the same answer as before (RFC 3264 §8, the
   * session-refresh case); otherwise a fresh answer with our version incremented, applied to media.
   * An offer we cannot answer is refused here (488 & co. with a Warning): then undefined.
   */
  private answerMidCall(
    offer: string,
    request: SipRequest,
    transaction: ServerTransaction,
  ): string | undefined {
    if (this.remoteSdp && this.localSdp && isSameSession(this.remoteSdp, offer)) return this.localSdp;
    const port = this.media?.localPort ?? 9;
    const result = answerOffer(offer, { ...this.localMedia(port), sessionVersion: this.sessionVersion + 1 });
    if (!result.ok) {
      this.respond(transaction, request, result.status, [["Warning", `304 patchbay "${result.reason}"`]]);
      return undefined;
    }
    this.sessionVersion += 1;
    this.localSdp = result.answer;
    this.remoteSdp = offer;
    this.applyParams(result.params);
    return result.answer;
  }

  protected applyParams(params: MediaParams): void {
    const before = this.params;
    this.params = params;
    this.media?.update(params);
    const changed =
      !before ||
      before.direction !== params.direction ||
      before.remoteAddress !== params.remoteAddress ||
      before.remotePort !== params.remotePort ||
      before.codec !== params.codec;
    if (changed) {
      this.logger.info(
        {
          direction: params.direction,
          remote: `${params.remoteAddress}:${params.remotePort}`,
          codec: params.codec,
        },
        "media updated",
      );
      this.emitLeg("mediaUpdated", params);
    }
  }

  private onInfo(request: SipRequest, transaction: ServerTransaction): void {
    const type = request.headers.get("Content-Type")?.split(";")[0]?.trim().toLowerCase();
    if (type === "application/dtmf-relay" || type === "application/dtmf") {
      const dtmf = parseDtmfRelay(this.bodyText(request) ?? "", type);
      this.respond(transaction, request, 200);
      if (dtmf) {
        this.logger.debug({ digit: dtmf.digit }, "DTMF via INFO");
        this.emitLeg("dtmf", dtmf);
      }
      return;
    }
    this.respond(transaction, request, 200);
  }

  // ---------------------------------------------------------------------------------------------------
  // Session timer (RFC 4028 §10)

  private restartSessionTimer(): void {
    this.sessionTimer?.cancel();
    this.sessionTimer = undefined;
    if (!this.sessionInterval || this.state !== "confirmed") return;
    const { intervalS, refresher } = this.sessionInterval;
    const plan = sessionTimerPlan(intervalS, refresher);
    this.sessionTimer = this.after(plan.afterMs, () => {
      if (plan.action === "refresh") this.sendRefresh();
      else {
        this.logger.warn({ intervalS }, "session not refreshed in time; hanging up");
        void this.hangup("session-expired");
      }
    });
  }

  /** We are the refresher: UPDATE if the peer allows it (what PJSIP does), else a same-SDP re-INVITE. */
  private sendRefresh(): void {
    if (!this.dialog || this.state !== "confirmed" || !this.sessionInterval) return;
    if (this.incomingReinvitePending || this.pending2xx) {
      this.after(2000, () => this.sendRefresh());
      return;
    }
    const method = this.peerAllowsUpdate ? "UPDATE" : "INVITE";
    const request = this.dialog.createRequest(method);
    request.headers.set("Contact", this.contactHeader());
    request.headers.set("Allow", ALLOW_HEADER);
    for (const [name, value] of refreshRequestHeaders(
      this.sessionInterval.intervalS,
      this.deps.settings.minSessionExpiresS,
    ))
      request.headers.set(name, value);
    if (method === "INVITE" && this.localSdp) {
      request.headers.set("Content-Type", SDP);
      request.body = new TextEncoder().encode(this.localSdp);
    }
    this.outgoingRefreshPending = true;
    this.sendInDialog(request, (response) => {
      if (response.status < 200) return;
      this.outgoingRefreshPending = false;
      if (response.status < 300) {
        if (method === "INVITE") this.ack2xx(response);
        const decision = negotiateAsUac(response.headers);
        if (decision && this.sessionInterval) this.sessionInterval = decision;
        this.restartSessionTimer();
        return;
      }
      if (response.status === 422) {
        const minSE = Number(response.headers.get("Min-SE")?.split(";")[0]);
        if (this.sessionInterval && Number.isFinite(minSE) && minSE > this.sessionInterval.intervalS) {
          this.sessionInterval.intervalS = minSE;
          this.sendRefresh();
          return;
        }
      }
      if (response.status === 491) {
        this.after(2100 + Math.random() * 2000, () => this.sendRefresh());
        return;
      }
      this.logger.warn({ status: response.status }, "session refresh refused; hanging up");
      void this.hangup("session-expired");
    });
  }

  /** ACK for a 2xx to a re-INVITE we sent (§13.2.2.4): new branch, same CSeq number, sent end to end. */
  private ack2xx(response: SipResponse): void {
    if (!this.dialog) return;
    const cseq = parseCSeq(response.headers.get("CSeq") ?? "")?.seq;
    if (cseq === undefined) return;
    const ack = this.dialog.createRequest("ACK", { cseq });
    void this.resolveNextHop().then((destination) =>
      destination ? this.deps.ua.layer.sendStateless(ack, destination).catch(() => undefined) : undefined,
    );
  }

  handleStrayResponse(response: SipResponse): void {
    // A retransmitted 2xx to our re-INVITE: our ACK was lost, send it again.
    if (response.status >= 200 && response.status < 300) this.ack2xx(response);
  }

  // ---------------------------------------------------------------------------------------------------
  // Ending

  /** Ends the leg before any dialog is confirmed (UAS: an error response; UAC: CANCEL). */
  protected abstract hangupBeforeAnswer(cause: CallEndCause): Promise<void>;

  /**
   * End the call from our side: BYE once the dialog is up, else whatever the side does before an
   * answer. The cloud link calls this with "agent-hangup"; limits call it with their own causes.
   * Idempotent.
   */
  async hangup(cause: CallEndCause = "agent-hangup"): Promise<void> {
    if (this.state === "ended") return;
    if (this.state === "starting" || this.state === "ringing") {
      await this.hangupBeforeAnswer(cause);
      return;
    }
    if (this.state === "answering" && cause !== "no-ack") {
      // §15: no BYE before the ACK for our 2xx (or its timeout); tear down as soon as it comes.
      this.hangupAfterAck ??= cause;
      this.logger.info({ cause }, "hangup requested before ACK; waiting for it");
      await new Promise<void>((resolve) => this.listenersOf("ended").add(() => resolve()));
      return;
    }
    if (this.dialog) {
      const bye = this.dialog.createRequest("BYE");
      this.sendInDialog(bye, (response) => {
        if (response.status >= 200) this.logger.debug({ status: response.status }, "BYE answered");
      });
    }
    this.logger.info({ cause }, "hanging up");
    await this.finish(cause, 200);
  }

  /**
   * Blind transfer on the agent's request (RFC 3515, progress per RFC 4488/5589): REFER the peer to
   * `target` (or to `options.referTo` as is), follow the NOTIFY sipfrag progress, and send BYE only
   * after the final 2xx NOTIFY (a transferor that hangs up earlier makes some PBXs drop the
   * transferee). Rejects with a TransferError when the REFER is refused, the target fails, or no final
   * NOTIFY arrives in time; the call is then still up and the agent tells the caller.
   * Which targets are allowed is the caller's business (the bridge's destination policy).
   */
  transfer(target: string, options: TransferOptions = {}): Promise<void> {
    if (this.state !== "confirmed" || !this.dialog) {
      return Promise.reject(new TransferError("the call is not answered"));
    }
    if (this.pendingTransfer) return Promise.reject(new TransferError("a transfer is already in progress"));
    let referTo: string;
    if (options.referTo !== undefined) {
      if (!READY_REFER_TO.test(options.referTo) || /[<>"]/.test(options.referTo))
        return Promise.reject(new TransferError("referTo is not a plain sip:/sips: URI"));
      referTo = options.referTo;
    } else {
      try {
        referTo = referTarget(target, this.deps.settings.domain);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const refer = this.dialog.createRequest("REFER");
    refer.headers.set("Refer-To", `<${referTo}>`);
    const user = this.deps.credentials?.username;
    const domain = this.deps.settings.domain;
    if (user && domain) refer.headers.set("Referred-By", `<sip:${user}@${domain}>`);
    refer.headers.set("Contact", this.contactHeader());
    this.logger.info({ target: referTo }, "transferring (REFER)");
    return new Promise<void>((resolve, reject) => {
      const timer = this.after(options.timeoutMs ?? 30_000, () =>
        pending.settle(new TransferError("no final transfer NOTIFY within the time limit", 408)),
      );
      const pending: PendingTransfer = {
        target: referTo,
        settle: (error) => {
          if (this.pendingTransfer !== pending) return;
          this.pendingTransfer = undefined;
          timer.cancel();
          if (error) {
            this.logger.warn(
              { target: referTo, status: error.sipStatus, err: error.message },
              "transfer failed",
            );
            reject(error);
            return;
          }
          this.logger.info({ target: referTo }, "transfer succeeded; leaving the call");
          resolve();
          // After the caller's reactions to the resolved promise (the agent's transfer_result), so the
          // Worker hears the result before the hang-up that closes its socket (PROTOCOL.md order).
          queueMicrotask(() => void this.hangup("transferred"));
        },
      };
      this.pendingTransfer = pending;
      this.sendInDialog(refer, (response) => {
        if (response.status >= 300)
          pending.settle(new TransferError(`REFER refused: ${response.status}`, response.status));
      });
    });
  }

  private onReferNotify(request: SipRequest): void {
    const pending = this.pendingTransfer;
    const event = request.headers.get("Event") ?? request.headers.get("o") ?? "";
    if (!pending || !/^refer\b/i.test(event.trim())) return;
    const status = sipfragStatus(decoder.decode(request.body));
    const terminated = /^terminated/i.test(request.headers.get("Subscription-State") ?? "");
    if (status !== undefined && status >= 200 && status < 300) pending.settle();
    else if (status !== undefined && status >= 300)
      pending.settle(new TransferError(`transfer target answered ${status}`, status));
    else if (terminated)
      pending.settle(new TransferError("transfer subscription ended without a final status"));
  }

  /** The one way a leg ends: timers stopped, dialog forgotten, media closed, `ended` once. */
  protected async finish(cause: CallEndCause, status: number | undefined, detail?: string): Promise<void> {
    if (this.state === "ended") return;
    this.state = "ended";
    for (const timer of this.timers) timer.cancel();
    this.timers.clear();
    this.pending2xx = undefined;
    if (this.dialog) {
      this.dialog.state = "terminated";
      this.deps.ua.unregisterDialog(this.dialog.key, this);
    }
    const info: CallEnded = { cause, durationMs: this.deps.clock.now() - this.startedAt };
    if (status !== undefined) info.status = status;
    if (detail !== undefined) info.detail = detail;
    this.endedInfo = info;
    this.logger.info({ cause, status, durationMs: info.durationMs }, "call ended");
    const media = this.media;
    const closing = media
      ? media.close(cause).catch((error: unknown) => this.logger.warn({ err: error }, "media close failed"))
      : undefined;
    this.emitLeg("ended", info);
    await closing;
  }

  // ---------------------------------------------------------------------------------------------------
  // Helpers

  /**
   * Send a request inside the dialog along the route set. A 401/407 (Asterisk challenges in-dialog
   * requests too) is answered once with digest credentials: same request, CSeq + 1, new branch.
   */
  protected sendInDialog(
    request: SipRequest,
    onResponse: (response: SipResponse) => void,
    authorized = false,
  ): void {
    void this.resolveNextHop().then((destination) => {
      if (!destination) {
        this.logger.warn({ method: request.method }, "no route for in-dialog request");
        if (request.method !== "BYE") onResponse(createResponse(request, 408));
        return;
      }
      this.deps.ua.layer.sendRequest(request, destination, {
        onResponse: (response) => {
          if (
            (response.status === 401 || response.status === 407) &&
            !authorized &&
            this.retryWithAuth(request, response, onResponse)
          )
            return;
          onResponse(response);
        },
        onFailure: (reason) => {
          this.logger.warn({ method: request.method, reason }, "in-dialog request failed");
          if (request.method !== "BYE") onResponse(createResponse(request, 408));
        },
      });
    });
  }

  private retryWithAuth(
    request: SipRequest,
    challenge: SipResponse,
    onResponse: (response: SipResponse) => void,
  ): boolean {
    const credentials = this.deps.credentials;
    if (!credentials || !this.dialog) return false;
    this.digest ??= new DigestClient(credentials);
    const decision = this.digest.respondToChallenge(challenge, request);
    if (decision.action !== "retry") {
      this.logger.warn(
        { method: request.method, reason: decision.reason },
        "in-dialog request challenged; cannot authenticate",
      );
      return false;
    }
    const headers = request.headers.clone();
    headers.delete("Via");
    headers.set("CSeq", `${this.dialog.nextLocalSeq()} ${request.method}`);
    headers.set(decision.headerName, decision.headerValue);
    this.sendInDialog({ ...request, headers }, onResponse, true);
    return true;
  }

  private async resolveNextHop(): Promise<Endpoint | undefined> {
    const uri = this.dialog?.nextHopUri();
    if (!uri) return undefined;
    try {
      return await this.nextHop(uri);
    } catch {
      return undefined;
    }
  }

  /** Where a request to `uri` physically goes. Default: the URI's host (DNS for names). */
  protected nextHop(uri: SipUri): Promise<Endpoint | undefined> {
    return this.deps.ua.resolve(uri, this.protocol);
  }

  /** Our tag in responses we send (the To tag of the dialog's requests to us). */
  protected abstract readonly localTag: string;

  protected buildResponse(
    request: SipRequest,
    status: number,
    extra: Array<[string, string]>,
    sdp?: string,
  ): SipResponse {
    const headers: Array<[string, string]> = [
      ["Contact", this.contactHeader()],
      ["Allow", ALLOW_HEADER],
      ["Supported", SUPPORTED_HEADER],
      ...extra,
    ];
    if (sdp !== undefined) headers.push(["Content-Type", SDP]);
    for (const rr of this.recordRouteFor(request)) headers.push(["Record-Route", rr]);
    return createResponse(request, status, undefined, headers, {
      toTag: this.localTag,
      ...(sdp !== undefined ? { body: sdp } : {}),
    });
  }

  /** Record-Route is copied into 2xx responses to dialog-creating requests only (§12.1.1). */
  protected recordRouteFor(_request: SipRequest): readonly string[] {
    return [];
  }

  protected respond(
    transaction: ServerTransaction,
    request: SipRequest,
    status: number,
    headers: Array<[string, string]> = [],
    reason?: string,
  ): void {
    transaction.respond(createResponse(request, status, reason, headers, { toTag: this.localTag }));
  }

  protected contactHeader(): string {
    return `<${this.deps.ua.contactUri(this.protocol)}>`;
  }

  protected localMedia(port: number) {
    return {
      address: this.deps.settings.mediaAddress,
      port,
      sessionId: this.sessionId,
      sessionVersion: this.sessionVersion,
    };
  }

  protected bodyText(request: SipRequest): string | undefined {
    if (request.body.length === 0) return undefined;
    const type = request.headers.get("Content-Type")?.split(";")[0]?.trim().toLowerCase();
    if (type !== undefined && type !== SDP && request.method !== "INFO") return undefined;
    return decoder.decode(request.body);
  }

  protected after(delayMs: number, callback: () => void): Timer {
    const timer = this.deps.clock.schedule(delayMs, () => {
      this.timers.delete(timer);
      if (this.state !== "ended") callback();
    });
    this.timers.add(timer);
    return timer;
  }
}

/** Does an Allow header list UPDATE? */
export function allowsUpdate(allow: readonly string[]): boolean {
  return allow.some((value) => value.split(",").some((m) => m.trim().toUpperCase() === "UPDATE"));
}
