/**
 * One inbound call, from INVITE to the end (RFC 3261 §13–15, RFC 3264, RFC 4028): 100 Trying → 180 →
 * 200 OK with our SDP answer, 2xx retransmitted until ACK (BYE after 64·T1 without one), BYE either way,
 * CANCEL, re-INVITE/UPDATE (hold, resume, new address, session refresh, SDP-less offers), INFO DTMF,
 * session timers in both roles, and the call-length limit.
 *
 * The call owns its Dialog and its CallMedia and closes both when it ends (exactly once, with a cause).
 * Time comes from the injected Clock; SIP goes through the UA core and transaction layer.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "../logging";
import { type CallMedia, type MediaEngine, type MediaParams, MediaUnavailableError } from "../media/types";
import { DigestClient } from "../sip/auth";
import { Dialog } from "../sip/dialog/dialog";
import { createResponse, generateTag, parseCSeq } from "../sip/message";
import type { SipRequest, SipResponse } from "../sip/message/types";
import { answerOffer, createOffer, isSameSession, parseAnswer } from "../sip/sdp";
import type { Clock, Timer } from "../sip/transaction/clock";
import type { InviteServerTransaction, ServerTransaction } from "../sip/transaction/server";
import type { BaseTimers } from "../sip/transaction/timers";
import type { InboundMessage, TransportProtocol } from "../sip/transport/types";
import { ALLOW_HEADER, type DialogUser, SUPPORTED_HEADER, type UaCore } from "../sip/ua/ua";
import {
  negotiateAsUas,
  type Refresher,
  refreshRequestHeaders,
  type SessionTimerConfig,
  sessionTimerPlan,
  uasResponseHeaders,
} from "./session-timer";
import type { CallDtmf, CallEndCause, CallEnded, CallEvents, CallInfo } from "./types";

export interface CallSettings extends SessionTimerConfig {
  sendRinging: boolean;
  answerDelayMs: number;
  maxCallS: number;
  /** The address we put in SDP c= (public address behind NAT). */
  mediaAddress: string;
  forwardHeaders: readonly string[];
  /** SIP domain for transfer targets given as bare numbers ("2001" → sip:2001@domain). */
  domain?: string;
}

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

/** The status line of a message/sipfrag NOTIFY body ("SIP/2.0 200 OK"). */
export function sipfragStatus(body: string): number | undefined {
  const match = /^SIP\/2\.0\s+(\d{3})/.exec(body.trimStart());
  return match ? Number(match[1]) : undefined;
}

interface PendingTransfer {
  target: string;
  settle(error?: TransferError): void;
}

/** What the answer gate decided: answer, or refuse with a final response (e.g. 503 so the PBX fails over). */
export type AnswerDecision =
  | { ok: true }
  | { ok: false; status: number; reason: string; retryAfterS?: number };

export interface CallDeps {
  ua: UaCore;
  /**
   * Runs after 180 Ringing, alongside the answer delay, with the call's media open: the 200 OK waits
   * for it. The bridge opens the agent's socket here, so a Worker that cannot be reached becomes a
   * 503 the PBX can fail over on, and the greeting is already queued when the call connects.
   */
  beforeAnswer?: (call: InboundCall, media: CallMedia) => Promise<AnswerDecision>;
  /** Digest credentials for challenges to our in-dialog requests (BYE, UPDATE, re-INVITE). */
  credentials?: { username: string; password: string };
  clock: Clock;
  logger: Logger;
  media: MediaEngine;
  settings: CallSettings;
  timers: BaseTimers;
}

type CallState = "starting" | "ringing" | "answering" | "confirmed" | "ended";

const SDP = "application/sdp";
const decoder = new TextDecoder();

/** A 2xx to an INVITE (initial or re-INVITE) we retransmit until its ACK arrives (§13.3.1.4). */
interface Pending2xx {
  transaction: InviteServerTransaction;
  cseq: number;
  /** Our offer in a 2xx to an SDP-less INVITE: the ACK carries the answer. */
  offer?: string;
  timer?: Timer;
  giveUp: Timer;
}

export class InboundCall implements DialogUser {
  readonly info: CallInfo;
  state: CallState = "starting";
  params: MediaParams | undefined;
  media: CallMedia | undefined;
  dialog: Dialog | undefined;
  readonly logger: Logger;
  private pendingTransfer: PendingTransfer | undefined;
  /** The IP the INVITE came from (our allow-listed PBX). */
  private readonly signallingSource: string;
  private readonly localTag = generateTag();
  private readonly protocol: TransportProtocol;
  private readonly startedAt: number;
  private readonly sessionId = String(Date.now() * 1000 + Math.floor(Math.random() * 1000));
  private sessionVersion = 1;
  /** The last SDP we sent and the last the peer sent (same-session refreshes get the same answer). */
  private localSdp: string | undefined;
  private remoteSdp: string | undefined;
  private pending2xx: Pending2xx | undefined;
  private incomingReinvitePending = false;
  private outgoingRefreshPending = false;
  private readonly timers = new Set<Timer>();
  private sessionTimer: Timer | undefined;
  private sessionInterval: { intervalS: number; refresher: Refresher } | undefined;
  private peerAllowsUpdate: boolean;
  private initialTimerHeaders: Array<[string, string]> = [];
  private digest: DigestClient | undefined;
  /** hangup() asked for while our 2xx awaited its ACK. */
  private hangupAfterAck: CallEndCause | undefined;
  private endedInfo: CallEnded | undefined;
  private readonly listeners: { [E in keyof CallEvents]: Set<CallEvents[E]> } = {
    answered: new Set(),
    mediaUpdated: new Set(),
    dtmf: new Set(),
    ended: new Set(),
  };

  constructor(
    private readonly invite: SipRequest,
    readonly transaction: InviteServerTransaction,
    inbound: InboundMessage,
    private readonly deps: CallDeps,
  ) {
    const sipCallId = invite.headers.get("Call-ID") ?? "";
    const headers: Record<string, string> = {};
    for (const name of deps.settings.forwardHeaders) {
      const value = invite.headers.get(name);
      if (value !== undefined) headers[name] = value.slice(0, 512);
    }
    this.info = {
      id: randomUUID(),
      sipCallId,
      from: invite.headers.get("From") ?? "",
      to: invite.headers.get("To") ?? "",
      headers,
      remote: `${inbound.source.address}:${inbound.source.port}`,
    };
    this.protocol = inbound.source.protocol;
    this.signallingSource = inbound.source.address;
    this.startedAt = deps.clock.now();
    this.logger = deps.logger.child({ callId: this.info.id, sipCallId });
    this.peerAllowsUpdate = invite.headers.getAll("Allow").some((m) => m.trim().toUpperCase() === "UPDATE");
  }

  // ---------------------------------------------------------------------------------------------------
  // Events

  on<E extends keyof CallEvents>(event: E, listener: CallEvents[E]): void {
    (this.listeners[event] as Set<CallEvents[E]>).add(listener);
  }

  off<E extends keyof CallEvents>(event: E, listener: CallEvents[E]): void {
    (this.listeners[event] as Set<CallEvents[E]>).delete(listener);
  }

  private emit<E extends keyof CallEvents>(event: E, ...args: Parameters<CallEvents[E]>): void {
    for (const listener of this.listeners[event] as Set<(...a: Parameters<CallEvents[E]>) => void>) {
      try {
        listener(...args);
      } catch (error) {
        this.logger.error({ err: error, event }, "call listener threw");
      }
    }
  }

  get ended(): CallEnded | undefined {
    return this.endedInfo;
  }

  // ---------------------------------------------------------------------------------------------------
  // Setup: INVITE → 100 → (180) → 200

  /** Runs the UAS side of the initial INVITE. Never throws: failures end the call with a cause. */
  async begin(): Promise<void> {
    const { settings } = this.deps;
    this.transaction.respond(createResponse(this.invite, 100));
    this.logger.info({ from: this.info.from, to: this.info.to, remote: this.info.remote }, "incoming call");

    // RFC 3261 §8.2.2.3: an extension we do not implement in Require (e.g. 100rel) → 420 + Unsupported.
    const unsupported = this.invite.headers
      .getAll("Require")
      .map((option) => option.trim().toLowerCase())
      .filter((option) => option !== "" && option !== "timer");
    if (unsupported.length > 0) {
      this.reject(420, [["Unsupported", unsupported.join(", ")]], "unsupported extension required");
      return;
    }
    const timer = negotiateAsUas(this.invite.headers, settings);
    if (timer.kind === "too-small") {
      this.reject(422, [["Min-SE", String(timer.minSE)]], "session interval too small");
      return;
    }
    if (timer.kind === "on")
      this.sessionInterval = { intervalS: timer.intervalS, refresher: timer.refresher };
    this.initialTimerHeaders = uasResponseHeaders(timer);

    // Checked before any port is taken: an INVITE that cannot form a dialog is refused outright.
    const dialog = Dialog.fromInvite(this.invite, this.localTag);
    if (!dialog) {
      this.reject(400, [], "INVITE lacks Contact, From tag or CSeq");
      return;
    }

    const offer = this.bodyText(this.invite);
    let params: MediaParams;
    if (offer) {
      // First pass with a placeholder port: reject a hopeless offer before reserving ports.
      const probe = answerOffer(offer, this.localMedia(9));
      if (!probe.ok) {
        this.reject(probe.status, [["Warning", `304 patchbay "${probe.reason}"`]], probe.reason);
        return;
      }
      params = probe.params;
      this.remoteSdp = offer;
    } else {
      // Delayed offer (RFC 3261 §13.2.1): we offer in the 200, the ACK carries the answer.
      params = {
        codec: "PCMU",
        payloadType: 0,
        remoteAddress: "0.0.0.0",
        remotePort: 9,
        direction: "inactive",
        ptimeMs: 20,
      };
    }

    try {
      this.media = await this.deps.media.open({
        callId: this.info.id,
        params,
        from: userPart(this.info.from),
        to: userPart(this.info.to),
        // A PBX behind NAT often advertises a private c= address while its RTP arrives from the same
        // public IP its SIP came from: let that address latch too (still only after probation).
        extraMediaAddresses: [this.signallingSource],
      });
    } catch (error) {
      const unavailable = error instanceof MediaUnavailableError;
      this.logger.error({ err: error }, "could not open media");
      this.reject(503, [], unavailable ? "no media ports" : "media error");
      return;
    }
    this.media.on("timeout", () => void this.hangup("media-timeout"));
    if (this.state === "ended") {
      // CANCELled while the ports were being bound.
      await this.media.close("cancelled");
      return;
    }

    if (offer) {
      const answer = answerOffer(offer, this.localMedia(this.media.localPort));
      if (!answer.ok) {
        this.reject(answer.status, [], answer.reason);
        return;
      }
      this.localSdp = answer.answer;
      this.params = answer.params;
    } else {
      this.localSdp = createOffer(this.localMedia(this.media.localPort));
      this.params = params;
    }

    this.dialog = dialog;
    this.deps.ua.registerDialog(dialog.key, this);

    this.state = "ringing";
    if (settings.sendRinging) {
      this.transaction.respond(
        createResponse(this.invite, 180, undefined, [["Contact", this.contactHeader()]], {
          toTag: this.localTag,
        }),
      );
    }
    const media = this.media;
    const gate: Promise<AnswerDecision> = this.deps.beforeAnswer
      ? this.deps.beforeAnswer(this, media).catch((error: unknown) => {
          this.logger.error({ err: error }, "answer gate failed");
          return { ok: false, status: 500, reason: "internal error" };
        })
      : Promise.resolve({ ok: true });
    const delay =
      settings.answerDelayMs > 0
        ? new Promise<void>((resolve) => this.after(settings.answerDelayMs, resolve))
        : Promise.resolve();
    const [decision] = await Promise.all([gate, delay]);
    if (this.state !== "ringing") return; // CANCELled or hung up while we waited
    if (!decision.ok) {
      const headers: Array<[string, string]> =
        decision.retryAfterS === undefined ? [] : [["Retry-After", String(decision.retryAfterS)]];
      this.reject(decision.status, headers, decision.reason);
      return;
    }
    this.answer();
  }

  private answer(): void {
    if (this.state !== "ringing" || !this.localSdp) return;
    const response = this.buildResponse(this.invite, 200, this.initialTimerHeaders, this.localSdp);
    this.state = "answering";
    this.transaction.respond(response);
    const cseq = parseCSeq(this.invite.headers.get("CSeq") ?? "")?.seq ?? 0;
    this.await2xxAck(this.transaction, cseq, this.remoteSdp === undefined ? this.localSdp : undefined);
    this.logger.info(
      {
        codec: this.params?.codec,
        remote: this.params && `${this.params.remoteAddress}:${this.params.remotePort}`,
      },
      "answered",
    );
  }

  /** §13.3.1.4: retransmit the 2xx at T1, 2·T1 … capped at T2 until the ACK; give up after 64·T1. */
  private await2xxAck(transaction: InviteServerTransaction, cseq: number, offer?: string): void {
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
    if (this.state === "answering") {
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
      if (this.media) this.emit("answered", this.media);
    } else {
      this.incomingReinvitePending = false;
    }
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
        void this.finish("caller-hangup", 200);
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
      const answered = this.answerMidCall(offer);
      if (!answered.ok) {
        this.respond(transaction, request, answered.status, [
          ["Warning", `304 patchbay "${answered.reason}"`],
        ]);
        return;
      }
      body = answered.sdp;
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
      const answered = this.answerMidCall(offer);
      if (!answered.ok) {
        this.respond(transaction, request, answered.status, [
          ["Warning", `304 patchbay "${answered.reason}"`],
        ]);
        return;
      }
      transaction.respond(this.buildResponse(request, 200, negotiated, answered.sdp));
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
   */
  private answerMidCall(
    offer: string,
  ): { ok: true; sdp: string } | { ok: false; status: number; reason: string } {
    if (this.remoteSdp && this.localSdp && isSameSession(this.remoteSdp, offer))
      return { ok: true, sdp: this.localSdp };
    const port = this.media?.localPort ?? 9;
    const result = answerOffer(offer, { ...this.localMedia(port), sessionVersion: this.sessionVersion + 1 });
    if (!result.ok) return { ok: false, status: result.status, reason: result.reason };
    this.sessionVersion += 1;
    this.localSdp = result.answer;
    this.remoteSdp = offer;
    this.applyParams(result.params);
    return { ok: true, sdp: result.answer };
  }

  private applyParams(params: MediaParams): void {
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
      this.emit("mediaUpdated", params);
    }
  }

  private onInfo(request: SipRequest, transaction: ServerTransaction): void {
    const type = request.headers.get("Content-Type")?.split(";")[0]?.trim().toLowerCase();
    if (type === "application/dtmf-relay" || type === "application/dtmf") {
      const dtmf = parseDtmfRelay(this.bodyText(request) ?? "", type);
      this.respond(transaction, request, 200);
      if (dtmf) {
        this.logger.debug({ digit: dtmf.digit }, "DTMF via INFO");
        this.emit("dtmf", dtmf);
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
        const decision = negotiateResponse(response, this.sessionInterval?.intervalS ?? 0);
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

  /** CANCEL arrived before our final response (the CANCEL itself was answered 200 by the UA core). */
  cancel(): void {
    if (this.state === "ended" || this.state === "answering" || this.state === "confirmed") return;
    this.transaction.respond(createResponse(this.invite, 487, undefined, { toTag: this.localTag }));
    this.logger.info("call cancelled by caller");
    void this.finish("cancelled", 487);
  }

  /**
   * End the call from our side: BYE once a 200 went out, else a final error response. The cloud link
   * calls this with "agent-hangup"; limits call it with their own causes. Idempotent.
   */
  async hangup(cause: CallEndCause = "agent-hangup"): Promise<void> {
    if (this.state === "ended") return;
    if (this.state === "starting" || this.state === "ringing") {
      this.transaction.respond(createResponse(this.invite, 480, undefined, { toTag: this.localTag }));
      await this.finish(cause, 480);
      return;
    }
    if (this.state === "answering" && cause !== "no-ack") {
      // §15: no BYE before the ACK for our 2xx (or its timeout); tear down as soon as it comes.
      this.hangupAfterAck ??= cause;
      this.logger.info({ cause }, "hangup requested before ACK; waiting for it");
      await new Promise<void>((resolve) => this.on("ended", () => resolve()));
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
   * Blind transfer on the agent's request (RFC 3515, progress per RFC 4488/5589): REFER the caller to
   * `target`, follow the NOTIFY sipfrag progress, and send BYE only after the final 2xx NOTIFY (a
   * transferor that hangs up earlier makes some PBXs drop the transferee). Rejects with a
   * TransferError when the REFER is refused, the target fails, or no final NOTIFY arrives in time;
   * the call is then still up and the agent tells the caller.
   */
  transfer(target: string, options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.state !== "confirmed" || !this.dialog) {
      return Promise.reject(new TransferError("the call is not answered"));
    }
    if (this.pendingTransfer) return Promise.reject(new TransferError("a transfer is already in progress"));
    let referTo: string;
    try {
      referTo = referTarget(target, this.deps.settings.domain);
    } catch (error) {
      return Promise.reject(error);
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
          void this.hangup("transferred");
          resolve();
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

  private reject(status: number, headers: Array<[string, string]>, detail: string): void {
    this.transaction.respond(
      createResponse(this.invite, status, undefined, headers, { toTag: this.localTag }),
    );
    this.logger.info({ status, detail }, "call refused");
    void this.finish("rejected", status, detail);
  }

  private async finish(cause: CallEndCause, status: number, detail?: string): Promise<void> {
    if (this.state === "ended") return;
    this.state = "ended";
    for (const timer of this.timers) timer.cancel();
    this.timers.clear();
    this.pending2xx = undefined;
    if (this.dialog) {
      this.dialog.state = "terminated";
      this.deps.ua.unregisterDialog(this.dialog.key, this);
    }
    const info: CallEnded = { cause, status, durationMs: this.deps.clock.now() - this.startedAt };
    if (detail !== undefined) info.detail = detail;
    this.endedInfo = info;
    this.logger.info({ cause, status, durationMs: info.durationMs }, "call ended");
    const media = this.media;
    const closing = media
      ? media.close(cause).catch((error: unknown) => this.logger.warn({ err: error }, "media close failed"))
      : undefined;
    this.emit("ended", info);
    await closing;
  }

  // ---------------------------------------------------------------------------------------------------
  // Helpers

  /**
   * Send a request inside the dialog along the route set. A 401/407 (Asterisk challenges in-dialog
   * requests too) is answered once with digest credentials: same request, CSeq + 1, new branch.
   */
  private sendInDialog(
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

  private async resolveNextHop() {
    const uri = this.dialog?.nextHopUri();
    if (!uri) return undefined;
    try {
      return await this.deps.ua.resolve(uri, this.protocol);
    } catch {
      return undefined;
    }
  }

  private buildResponse(
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
    // Record-Route is copied into 2xx responses to dialog-creating requests (§12.1.1).
    if (request === this.invite)
      for (const rr of request.headers.getAll("Record-Route")) headers.push(["Record-Route", rr]);
    return createResponse(request, status, undefined, headers, {
      toTag: this.localTag,
      ...(sdp !== undefined ? { body: sdp } : {}),
    });
  }

  private respond(
    transaction: ServerTransaction,
    request: SipRequest,
    status: number,
    headers: Array<[string, string]> = [],
    reason?: string,
  ): void {
    transaction.respond(createResponse(request, status, reason, headers, { toTag: this.localTag }));
  }

  private contactHeader(): string {
    return `<${this.deps.ua.contactUri(this.protocol)}>`;
  }

  private localMedia(port: number) {
    return {
      address: this.deps.settings.mediaAddress,
      port,
      sessionId: this.sessionId,
      sessionVersion: this.sessionVersion,
    };
  }

  private bodyText(request: SipRequest): string | undefined {
    if (request.body.length === 0) return undefined;
    const type = request.headers.get("Content-Type")?.split(";")[0]?.trim().toLowerCase();
    if (type !== undefined && type !== SDP && request.method !== "INFO") return undefined;
    return decoder.decode(request.body);
  }

  private after(delayMs: number, callback: () => void): Timer {
    const timer = this.deps.clock.schedule(delayMs, () => {
      this.timers.delete(timer);
      if (this.state !== "ended") callback();
    });
    this.timers.add(timer);
    return timer;
  }
}

/** Session-Expires in the 2xx to our refresh: the peer may have changed interval or refresher. */
function negotiateResponse(
  response: SipResponse,
  currentS: number,
): { intervalS: number; refresher: Refresher } | undefined {
  const value = response.headers.get("Session-Expires");
  if (!value) return undefined;
  const [delta = "", ...params] = value.split(";").map((part) => part.trim().toLowerCase());
  const intervalS = Number(delta) || currentS;
  // In the response to OUR request, "uac" is us.
  const refresher: Refresher = params.includes("refresher=uas") ? "peer" : "us";
  return { intervalS, refresher };
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

/** "sip:+1555@pbx;user=phone" / "\"Ann\" <sip:200@pbx>" → "+1555" / "200": for recording file names. */
function userPart(uri: string): string {
  return /sips?:([^@;>]+)@/i.exec(uri)?.[1] ?? "unknown";
}
