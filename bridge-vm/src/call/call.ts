/**
 * One inbound call: the UAS side of an INVITE (RFC 3261 §13–15, RFC 3264, RFC 4028): 100 Trying → 180 →
 * 200 OK with our SDP answer, 2xx retransmitted until ACK (BYE after 64·T1 without one), CANCEL, the
 * answer gate and delay, and refusals (420, 422, 400, 488, 503 …). Once the dialog exists, everything
 * inside it — re-INVITE/UPDATE (hold, resume, new address, session refresh, SDP-less offers), INFO DTMF,
 * session timers in both roles, REFER transfer, BYE either way, the call-length limit — is SipLeg's
 * (./leg.ts), the same code an outbound call's UAC leg runs.
 *
 * The call owns its Dialog and its CallMedia and closes both when it ends (exactly once, with a cause).
 * Time comes from the injected Clock; SIP goes through the UA core and transaction layer.
 */
import { randomUUID } from "node:crypto";
import { type CallMedia, type MediaEngine, type MediaParams, MediaUnavailableError } from "../media/types";
import { Dialog } from "../sip/dialog/dialog";
import { createResponse, generateTag, parseCSeq } from "../sip/message";
import type { SipRequest } from "../sip/message/types";
import { answerOffer, createOffer } from "../sip/sdp";
import type { InviteServerTransaction } from "../sip/transaction/server";
import type { InboundMessage } from "../sip/transport/types";
import { allowsUpdate, type LegDeps, type LegSettings, SipLeg } from "./leg";
import { negotiateAsUas, uasResponseHeaders } from "./session-timer";
import type { CallEndCause, CallEvents, CallInfo } from "./types";

export {
  parseDtmfRelay,
  referTarget,
  sipfragStatus,
  TransferError,
  type TransferOptions,
  uriWithHeaders,
} from "./leg";

export interface CallSettings extends LegSettings {
  sendRinging: boolean;
  answerDelayMs: number;
  forwardHeaders: readonly string[];
}

/** What the answer gate decided: answer, or refuse with a final response (e.g. 503 so the PBX fails over). */
export type AnswerDecision =
  | { ok: true }
  | { ok: false; status: number; reason: string; retryAfterS?: number };

export interface CallDeps extends LegDeps {
  /**
   * Runs after 180 Ringing, alongside the answer delay, with the call's media open: the 200 OK waits
   * for it. The bridge opens the agent's socket here, so a Worker that cannot be reached becomes a
   * 503 the PBX can fail over on, and the greeting is already queued when the call connects.
   */
  beforeAnswer?: (call: InboundCall, media: CallMedia) => Promise<AnswerDecision>;
  media: MediaEngine;
  settings: CallSettings;
}

export class InboundCall extends SipLeg<CallEvents> {
  readonly info: CallInfo;
  protected readonly remoteHangupCause: CallEndCause = "caller-hangup";
  protected readonly localTag = generateTag();
  /** The IP the INVITE came from (our allow-listed PBX). */
  private readonly signallingSource: string;
  private initialTimerHeaders: Array<[string, string]> = [];

  constructor(
    private readonly invite: SipRequest,
    readonly transaction: InviteServerTransaction,
    inbound: InboundMessage,
    protected override readonly deps: CallDeps,
  ) {
    const sipCallId = invite.headers.get("Call-ID") ?? "";
    const id = randomUUID();
    super(deps, deps.logger.child({ callId: id, sipCallId }), inbound.source.protocol);
    const headers: Record<string, string> = {};
    for (const name of deps.settings.forwardHeaders) {
      const value = invite.headers.get(name);
      if (value !== undefined) headers[name] = value.slice(0, 512);
    }
    this.info = {
      id,
      sipCallId,
      from: invite.headers.get("From") ?? "",
      to: invite.headers.get("To") ?? "",
      headers,
      remote: `${inbound.source.address}:${inbound.source.port}`,
    };
    this.signallingSource = inbound.source.address;
    this.peerAllowsUpdate = allowsUpdate(invite.headers.getAll("Allow"));
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

  protected override recordRouteFor(request: SipRequest): readonly string[] {
    return request === this.invite ? this.invite.headers.getAll("Record-Route") : [];
  }

  // ---------------------------------------------------------------------------------------------------
  // Ending before the dialog is confirmed

  /** CANCEL arrived before our final response (the CANCEL itself was answered 200 by the UA core). */
  cancel(): void {
    if (this.state === "ended" || this.state === "answering" || this.state === "confirmed") return;
    this.transaction.respond(createResponse(this.invite, 487, undefined, { toTag: this.localTag }));
    this.logger.info("call cancelled by caller");
    void this.finish("cancelled", 487);
  }

  /** Before our 200 OK: 480 to the INVITE. */
  protected async hangupBeforeAnswer(cause: CallEndCause): Promise<void> {
    this.transaction.respond(createResponse(this.invite, 480, undefined, { toTag: this.localTag }));
    await this.finish(cause, 480);
  }

  private reject(status: number, headers: Array<[string, string]>, detail: string): void {
    this.transaction.respond(
      createResponse(this.invite, status, undefined, headers, { toTag: this.localTag }),
    );
    this.logger.info({ status, detail }, "call refused");
    void this.finish("rejected", status, detail);
  }
}

/** "sip:+1555@pbx;user=phone" / "\"Ann\" <sip:200@pbx>" → "+1555" / "200": for recording file names. */
function userPart(uri: string): string {
  return /sips?:([^@;>]+)@/i.exec(uri)?.[1] ?? "unknown";
}
