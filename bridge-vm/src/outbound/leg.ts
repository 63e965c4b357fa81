/**
 * OutboundLeg: one outbound SIP call leg with no agent attached — what OutboundCall puts its cloud link
 * on, and what a warm transfer's consultation call to a human is by itself.
 *
 *   dial(): RTP ports → SDP offer (PCMU, PCMA, telephone-event) → INVITE through the registrar/proxy
 *   (401/407 answered, 18x reported as `progress`, one configured 3xx hop, ring timeout → CANCEL) →
 *   2xx: the answer retargets media, the dialog joins the UA core, RFC 4028 as the 2xx granted it →
 *   `answered`. From then on it is a SipLeg (../call/leg.ts), the same code as an inbound call: re-INVITE
 *   and UPDATE (hold, resume, new address, refreshes), session timers in both roles, INFO DTMF, OPTIONS,
 *   REFER transfer, BYE either way with digest retry, 481 after the end.
 *
 * API: `dial()` resolves once with answered | failed; `abandon()` CANCELs while ringing; `hangup(cause)`
 * BYEs (or CANCELs before the answer); `transfer(target, { referTo })` REFERs; `media` (CallMedia and its
 * duplex) from the start of dial(); `dialogId` {callId, localTag, remoteTag} once answered. Events:
 * `progress`, `answered`, `mediaUpdated`, `dtmf`, `ended` (exactly once, answered or not).
 */
import { randomUUID } from "node:crypto";
import type { OutboundFailure } from "@patchbay/shared/protocol";
import { type LegDeps, type LegEvents, SipLeg } from "../call/leg";
import type { CallEndCause } from "../call/types";
import type { MediaEngine, MediaParams } from "../media/types";
import { parseCSeq } from "../sip/message";
import type { SipResponse, SipUri } from "../sip/message/types";
import { createOffer, parseAnswer } from "../sip/sdp";
import type { Endpoint } from "../sip/transport/types";
import { endpointForUri } from "./route";
import { OutboundInvite, type OutboundProgress, type OutboundResult } from "./uac";

export interface OutboundLegOptions extends LegDeps {
  media: MediaEngine;
  /** Registrar / outbound proxy: where the INVITE goes, and in-dialog requests to host names. */
  proxy: Endpoint;
  /** The Request-URI, already through the destination policy. */
  requestUri: string;
  /** Our AOR (the registered extension), e.g. sip:1050@pbx.example.com. */
  fromUri: string;
  /** Caller-id display name for From. */
  displayName?: string;
  ringTimeoutMs: number;
  /** Extra INVITE headers, e.g. X-Patchbay-Call-Id. */
  headers?: ReadonlyArray<readonly [string, string]>;
  /** Our id for logs, the media session and recordings (default: a UUID). */
  id?: string;
  /** When a 3xx comes back: the Request-URI to try instead, once (it must pass the same policy), or undefined. */
  followRedirect?: (contacts: readonly string[]) => string | undefined;
}

export type DialOutcome =
  | { outcome: "answered"; sipStatus: number }
  | { outcome: "failed"; reason: OutboundFailure; sipStatus?: number; detail?: string };

export interface OutboundLegEvents extends LegEvents {
  /** 100 Trying, then 18x (183 with SDP = early media, not played yet). */
  progress: (progress: OutboundProgress) => void;
}

export class OutboundLeg extends SipLeg<OutboundLegEvents> {
  readonly id: string;
  protected readonly remoteHangupCause: CallEndCause = "callee-hangup";
  protected localTag = "";
  /** The Request-URI dialled last (a followed redirect changes it). */
  requestUri: string;
  private invite: OutboundInvite | undefined;
  private initialCSeq: number | undefined;
  private abandoned: CallEndCause | undefined;
  private dialing: Promise<DialOutcome> | undefined;

  constructor(private readonly options: OutboundLegOptions) {
    const id = options.id ?? randomUUID();
    super(options, options.logger.child({ callId: id, component: "outbound-leg" }), options.proxy.protocol);
    this.id = id;
    this.requestUri = options.requestUri;
  }

  /** The SIP Call-ID (known from the first INVITE on). */
  get sipCallId(): string | undefined {
    return this.dialog?.id.callId ?? this.invite?.callId;
  }

  /** Places the call. Resolves once (calling it again returns the same promise); never throws. */
  dial(): Promise<DialOutcome> {
    this.dialing ??= this.run();
    return this.dialing;
  }

  /** Gives up while it rings (CANCEL once a provisional response came, RFC 3261 §9.1). Idempotent. */
  abandon(why = "abandoned"): void {
    if (this.state !== "starting" && this.state !== "ringing") return;
    this.abandoned ??= "cancelled";
    this.logger.info({ why }, "abandoning the outbound leg");
    this.invite?.abandon(why);
  }

  protected async hangupBeforeAnswer(cause: CallEndCause): Promise<void> {
    this.abandoned = cause;
    this.invite?.abandon(cause);
    await this.dial();
  }

  private async run(): Promise<DialOutcome> {
    const { options } = this;
    try {
      // Ports first: the offer must name them. The remote side is unknown until the answer.
      this.media = await options.media.open({ callId: this.id, params: placeholderParams(options.proxy) });
    } catch (error) {
      this.logger.error({ err: error }, "no RTP ports for an outbound call");
      return this.failed({ outcome: "failed", reason: "media-failed", detail: (error as Error).message });
    }
    this.media.on("timeout", () => void this.hangup("media-timeout"));
    if (this.abandoned) return this.failed({ outcome: "failed", reason: "no-answer", detail: "abandoned" });
    const offer = createOffer(this.localMedia(this.media.localPort));
    this.localSdp = offer;
    this.state = "ringing";
    let result = await this.attempt(this.requestUri, offer);
    const redirect =
      result.outcome === "failed" && result.reason === "redirected" && result.redirectTo && !this.abandoned
        ? options.followRedirect?.(result.redirectTo)
        : undefined;
    if (redirect) {
      this.logger.info({ to: redirect }, "following a redirect (configured)");
      this.requestUri = redirect;
      result = await this.attempt(redirect, offer);
    }
    if (result.outcome === "failed") {
      const { reason, sipStatus, detail } = result;
      return this.failed({
        outcome: "failed",
        reason,
        ...(sipStatus === undefined ? {} : { sipStatus }),
        ...(detail ? { detail } : {}),
      });
    }
    const answer = parseAnswer(result.answerSdp, offer);
    if (!answer.ok) {
      this.logger.warn({ reason: answer.reason }, "unusable SDP answer; hanging up");
      await result.dialog.bye();
      return this.failed({
        outcome: "failed",
        reason: "media-failed",
        sipStatus: result.sipStatus,
        detail: answer.reason,
      });
    }
    this.answered(result, answer.params);
    if (this.abandoned) {
      // hangup() while the 2xx was on its way: the dialog is up, so end it with a BYE.
      void this.hangup(this.abandoned);
    }
    return { outcome: "answered", sipStatus: result.sipStatus };
  }

  private attempt(requestUri: string, offer: string): Promise<OutboundResult> {
    const { options } = this;
    const invite = new OutboundInvite({
      layer: options.ua.layer,
      clock: options.clock,
      logger: this.logger,
      proxy: options.proxy,
      requestUri,
      fromUri: options.fromUri,
      ...(options.displayName ? { displayName: options.displayName } : {}),
      contactUri: options.ua.contactUri(this.protocol),
      sdpOffer: offer,
      ringTimeoutMs: options.ringTimeoutMs,
      ...(options.headers ? { headers: options.headers } : {}),
      ...(options.credentials ? { credentials: options.credentials } : {}),
      sessionTimer: {
        intervalS: options.settings.sessionExpiresS,
        minSE: options.settings.minSessionExpiresS,
      },
    });
    this.invite = invite;
    invite.on("progress", (progress) => this.emit("progress", progress));
    if (this.abandoned) invite.abandon("abandoned");
    return invite.start();
  }

  private answered(result: Extract<OutboundResult, { outcome: "answered" }>, params: MediaParams): void {
    const dialog = result.dialog.dialog;
    this.dialog = dialog;
    this.localTag = dialog.id.localTag;
    this.initialCSeq = parseCSeq(result.response.headers.get("CSeq") ?? "")?.seq;
    // remoteSdp stays unset: our localSdp is the OFFER (every codec we have), not an answer, so the
    // callee's first re-offer must get a real answer even when its SDP version did not change.
    this.deps.ua.registerDialog(dialog.key, this);
    this.adoptSessionTimer(result.response);
    this.params = params;
    this.media?.update(params);
    this.logger.info(
      {
        sipStatus: result.sipStatus,
        codec: params.codec,
        remote: `${params.remoteAddress}:${params.remotePort}`,
        sessionTimer: this.sessionInterval,
      },
      "answered",
    );
    this.confirm();
  }

  private async failed(outcome: Extract<DialOutcome, { outcome: "failed" }>): Promise<DialOutcome> {
    const cause: CallEndCause = this.abandoned ?? (outcome.reason === "media-failed" ? "error" : "rejected");
    await this.finish(cause, outcome.sipStatus, outcome.detail ?? outcome.reason);
    return outcome;
  }

  override handleStrayResponse(response: SipResponse): void {
    // The 2xx to our INVITE again (our ACK was lost): its ACK carries the INVITE's credentials.
    const cseq = parseCSeq(response.headers.get("CSeq") ?? "")?.seq;
    if (cseq !== undefined && cseq === this.initialCSeq) this.invite?.handleStrayResponse(response);
    else super.handleStrayResponse(response);
  }

  /** In-dialog requests: IP literals directly, host names through the proxy (no DNS here). */
  protected override async nextHop(uri: SipUri): Promise<Endpoint> {
    return endpointForUri(uri, this.options.proxy);
  }
}

/** Until the answer arrives: our codec preference, and the proxy as the only expected media source. */
function placeholderParams(proxy: Endpoint): MediaParams {
  return {
    codec: "PCMU",
    payloadType: 0,
    dtmfPayloadType: 101,
    remoteAddress: proxy.address,
    remotePort: 9,
    direction: "sendrecv",
    ptimeMs: 20,
  };
}
