/**
 * OutboundInvite: the UAC side of one outbound call up to the moment it is answered (or not).
 *
 * Sends an INVITE with our SDP offer through the registrar / outbound proxy over H1b's transaction
 * layer, answers 401/407 with the registration credentials (new branch, CSeq + 1, same Call-ID and
 * From tag), reports 18x (183 with SDP = early media), ACKs the 2xx itself (RFC 3261 §13.2.2.4: the
 * 2xx ACK is the TU's, the transaction only ACKs non-2xx) and re-ACKs 2xx retransmissions, classifies
 * 3xx-6xx into a stable failure reason with the SIP status, and CANCELs on ring timeout — but only
 * after a provisional response (§9.1). Glare of CANCEL and 200 (the callee answered as we gave up): the
 * 2xx is ACKed and the dialog BYEd at once, and the call counts as not answered.
 *
 * What it does NOT do: media, the dialog once answered, and the cloud link. `answered` hands over an
 * OutboundDialog (the shared Dialog, next hop, the SDP answer, the 2xx) for OutboundLeg (./leg.ts) to run
 * like any confirmed dialog.
 */
import { EventEmitter } from "node:events";
import type { OutboundFailure } from "@patchbay/shared/protocol";
import type { Logger } from "../logging";
import { DigestClient as Digest, type DigestClient, type DigestCredentials } from "../sip/auth";
import { createHeaders, generateCallId, generateTag, parseNameAddr } from "../sip/message";
import type { SipRequest, SipResponse } from "../sip/message/types";
import type { ClientFailure } from "../sip/transaction/client";
import type { Clock, Timer } from "../sip/transaction/clock";
import type { ClientTransaction, TransactionLayer } from "../sip/transaction/layer";
import type { Endpoint } from "../sip/transport/types";
import { OutboundDialog } from "./dialog";

export { endpointFor } from "./route";

export interface OutboundInviteOptions {
  layer: TransactionLayer;
  clock: Clock;
  logger: Logger;
  /** The registrar / outbound proxy: where the INVITE (and CANCEL) physically go. */
  proxy: Endpoint;
  /** From policy: sip:<number>@<domain> or an allowed SIP URI. */
  requestUri: string;
  /** Our AOR, e.g. sip:1050@pbx.example.com (the registered extension). */
  fromUri: string;
  /** Display name for From (caller id name); digits in fromUri stay the registered extension. */
  displayName?: string;
  contactUri: string;
  sdpOffer: string;
  credentials?: DigestCredentials;
  ringTimeoutMs: number;
  /** Extra headers, e.g. X-Patchbay-Call-Id for correlation on the PBX. */
  headers?: ReadonlyArray<readonly [string, string]>;
  /** Give up waiting for a final answer this long after a CANCEL (the PBX lost it). Default 32 s. */
  cancelGuardMs?: number;
  /**
   * RFC 4028: ask for a session timer (Session-Expires + Min-SE; `Supported: timer` is always sent). A
   * 422 answer raises the interval to its Min-SE and retries once per raise (§7.4 of RFC 4028).
   */
  sessionTimer?: { intervalS: number; minSE: number };
}

export type OutboundProgress =
  | { state: "trying"; sipStatus: 100 }
  | { state: "ringing"; sipStatus: number; earlyMediaSdp?: string };

export type OutboundResult =
  | {
      outcome: "answered";
      sipStatus: number;
      answerSdp: string;
      dialog: OutboundDialog;
      /** The 2xx itself (Session-Expires, Allow, Supported for the call layer). */
      response: SipResponse;
    }
  | {
      outcome: "failed";
      reason: OutboundFailure;
      sipStatus?: number;
      detail?: string;
      /** 3xx: where the callee says to go instead (not followed unless configured). */
      redirectTo?: string[];
    };

export interface OutboundInviteEvents {
  progress: [progress: OutboundProgress];
}

export const OUTBOUND_ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER, NOTIFY";

/** Map a final non-2xx status to a stable reason (the status itself travels alongside). */
export function failureForStatus(status: number): OutboundFailure {
  if (status >= 300 && status < 400) return "redirected";
  if (status === 486 || status === 600) return "busy";
  if (status === 408 || status === 480 || status === 487) return "no-answer";
  if (status === 401 || status === 407) return "unauthorized";
  return "rejected";
}

export class OutboundInvite extends EventEmitter<OutboundInviteEvents> {
  readonly callId = generateCallId();
  readonly fromTag = generateTag();
  private readonly digest: DigestClient | undefined;
  private readonly log: Logger;
  private cseq = 1;
  private sessionTimer: { intervalS: number; minSE: number } | undefined;
  /** The credentials of the last challenge, kept for a 422 retry. */
  private lastAuth: readonly [string, string] | undefined;
  private invite: SipRequest | undefined;
  private transaction: ClientTransaction | undefined;
  private provisional = false;
  private cancelWanted = false;
  private cancelSent = false;
  private ringTimer: Timer | undefined;
  private cancelGuard: Timer | undefined;
  private settle: ((result: OutboundResult) => void) | undefined;
  private done = false;
  /** The ACK we sent for the 2xx, resent when the 2xx is retransmitted. */
  private ack: { request: SipRequest; destination: Endpoint; toTag: string } | undefined;

  constructor(readonly options: OutboundInviteOptions) {
    super();
    this.digest = options.credentials ? new Digest(options.credentials) : undefined;
    this.sessionTimer = options.sessionTimer ? { ...options.sessionTimer } : undefined;
    this.log = options.logger.child({ component: "outbound", sipCallId: this.callId });
  }

  /** Sends the INVITE; resolves once with the outcome. */
  start(): Promise<OutboundResult> {
    const result = new Promise<OutboundResult>((resolve) => {
      this.settle = resolve;
    });
    this.ringTimer = this.options.clock.schedule(this.options.ringTimeoutMs, () =>
      this.abandon("ring timeout"),
    );
    this.send(this.buildInvite());
    return result;
  }

  /** Give up ringing (ring timeout, or the originate was withdrawn). Idempotent. */
  abandon(why: string): void {
    if (this.done || this.cancelWanted) return;
    this.cancelWanted = true;
    this.log.info({ why, provisional: this.provisional }, "abandoning outbound call");
    // §9.1: a CANCEL before any provisional response could overtake the INVITE; wait for the 1xx.
    if (this.provisional) this.sendCancel();
  }

  /** A response no transaction owns any more (a 2xx retransmitted after Timer M): re-ACK it. */
  handleStrayResponse(response: SipResponse): void {
    if (!this.ack || response.status < 200 || response.status >= 300) return;
    const toTag = parseNameAddr(response.headers.get("To") ?? "")?.params.get("tag");
    if (toTag === this.ack.toTag) void this.sendAck();
  }

  private buildInvite(auth?: readonly [string, string]): SipRequest {
    const { options } = this;
    const headers = createHeaders();
    headers.set("Max-Forwards", "70");
    const display = options.displayName ? `"${options.displayName.replace(/["\\\r\n]/g, "")}" ` : "";
    headers.set("From", `${display}<${options.fromUri}>;tag=${this.fromTag}`);
    headers.set("To", `<${options.requestUri}>`);
    headers.set("Call-ID", this.callId);
    headers.set("CSeq", `${this.cseq} INVITE`);
    headers.set("Contact", `<${options.contactUri}>`);
    headers.set("Allow", OUTBOUND_ALLOW);
    headers.set("Supported", "timer");
    if (this.sessionTimer) {
      headers.set("Session-Expires", String(this.sessionTimer.intervalS));
      headers.set("Min-SE", String(this.sessionTimer.minSE));
    }
    for (const [name, value] of options.headers ?? []) headers.append(name, value);
    if (auth) headers.set(auth[0], auth[1]);
    headers.set("Content-Type", "application/sdp");
    return {
      kind: "request",
      method: "INVITE",
      uri: options.requestUri,
      headers,
      body: new TextEncoder().encode(options.sdpOffer),
    };
  }

  private send(invite: SipRequest): void {
    this.invite = invite;
    this.provisional = false;
    this.cancelSent = false;
    this.transaction = this.options.layer.sendRequest(invite, this.options.proxy, {
      onResponse: (response) => this.onResponse(invite, response),
      onFailure: (failure, error) => this.onFailure(invite, failure, error),
    });
  }

  private onResponse(invite: SipRequest, response: SipResponse): void {
    const { status } = response;
    if (status >= 200 && status < 300) {
      this.onSuccess(response);
      return;
    }
    if (invite !== this.invite || this.done) return;
    if (status < 200) {
      this.provisional = true;
      if (status === 100) this.emitProgress({ state: "trying", sipStatus: 100 });
      else {
        const sdp = response.body.length > 0 ? new TextDecoder().decode(response.body) : undefined;
        this.emitProgress({ state: "ringing", sipStatus: status, ...(sdp ? { earlyMediaSdp: sdp } : {}) });
      }
      if (this.cancelWanted && !this.cancelSent) this.sendCancel();
      return;
    }
    if ((status === 401 || status === 407) && this.digest && !this.cancelWanted) {
      const decision = this.digest.respondToChallenge(response, invite);
      if (decision.action === "retry") {
        this.cseq += 1;
        this.log.debug({ status, stale: decision.stale }, "INVITE challenged; retrying with credentials");
        this.lastAuth = [decision.headerName, decision.headerValue];
        this.send(this.buildInvite(this.lastAuth));
        return;
      }
      this.finish({ outcome: "failed", reason: "unauthorized", sipStatus: status, detail: decision.reason });
      return;
    }
    if (status === 422 && this.sessionTimer && !this.cancelWanted) {
      // RFC 4028 §7.4: our interval is below the callee's (or a proxy's) minimum: ask again with it.
      const minSE = Number(response.headers.get("Min-SE")?.split(";")[0]);
      if (Number.isFinite(minSE) && minSE > this.sessionTimer.intervalS && minSE <= 86_400) {
        this.sessionTimer = { intervalS: minSE, minSE: Math.max(this.sessionTimer.minSE, minSE) };
        this.cseq += 1;
        this.log.debug({ minSE }, "422 Session Interval Too Small; retrying with the callee's Min-SE");
        this.send(this.buildInvite(this.lastAuth));
        return;
      }
    }
    if (this.cancelWanted && status === 487) {
      this.finish({ outcome: "failed", reason: "no-answer", sipStatus: 487, detail: "ring timeout" });
      return;
    }
    const contacts = status < 400 ? response.headers.getAll("Contact") : [];
    this.finish({
      outcome: "failed",
      reason: failureForStatus(status),
      sipStatus: status,
      detail: response.reason,
      ...(contacts.length > 0 ? { redirectTo: contacts } : {}),
    });
  }

  private onSuccess(response: SipResponse): void {
    this.digest?.succeeded();
    const toTag = parseNameAddr(response.headers.get("To") ?? "")?.params.get("tag") ?? "";
    if (this.ack) {
      // A retransmitted 2xx (our ACK was lost), or a second 2xx from a forking proxy's other branch.
      if (toTag === this.ack.toTag) void this.sendAck();
      else void this.ackAndBye(response, "second 2xx from another fork");
      return;
    }
    const invite = this.invite;
    if (!invite || this.done) return;
    const dialog = OutboundDialog.fromSuccess(invite, response, {
      layer: this.options.layer,
      proxy: this.options.proxy,
      logger: this.log,
      ...(this.options.credentials ? { credentials: this.options.credentials } : {}),
    });
    if (!dialog) {
      // A 2xx we cannot build a dialog from (no Contact or no To tag): ACK what we can and hang up.
      this.finish({
        outcome: "failed",
        reason: "rejected",
        sipStatus: response.status,
        detail: "malformed 2xx",
      });
      return;
    }
    this.ack = { request: dialog.buildAck(invite), destination: dialog.nextHop(), toTag };
    void this.sendAck();
    if (this.cancelWanted) {
      // Glare: the callee answered while our CANCEL was on its way. We gave up: end it cleanly.
      this.log.info({}, "answered after CANCEL; hanging up");
      void dialog.bye();
      this.finish({
        outcome: "failed",
        reason: "no-answer",
        sipStatus: response.status,
        detail: "answered after cancel",
      });
      return;
    }
    this.finish({
      outcome: "answered",
      sipStatus: response.status,
      answerSdp: new TextDecoder().decode(response.body),
      dialog,
      response,
    });
  }

  private async sendAck(): Promise<void> {
    if (!this.ack) return;
    try {
      const ack = this.ack.request;
      // Each (re)send gets a fresh top Via: drop the one the last send added.
      ack.headers.delete("Via");
      await this.options.layer.sendStateless(ack, this.ack.destination);
    } catch (error) {
      this.log.warn({ err: error }, "could not send ACK");
    }
  }

  private async ackAndBye(response: SipResponse, why: string): Promise<void> {
    const invite = this.invite;
    if (!invite) return;
    const extra = OutboundDialog.fromSuccess(invite, response, {
      layer: this.options.layer,
      proxy: this.options.proxy,
      logger: this.log,
      ...(this.options.credentials ? { credentials: this.options.credentials } : {}),
    });
    if (!extra) return;
    this.log.info({ why }, "ending an extra dialog");
    await this.options.layer.sendStateless(extra.buildAck(invite), extra.nextHop()).catch(() => {});
    await extra.bye();
  }

  private sendCancel(): void {
    const invite = this.invite;
    if (!invite || this.cancelSent || this.done) return;
    this.cancelSent = true;
    const branch = topBranch(invite);
    const headers = createHeaders();
    for (const route of invite.headers.getAll("Route")) headers.append("Route", route);
    headers.set("Max-Forwards", "70");
    headers.set("From", invite.headers.get("From") ?? "");
    headers.set("To", invite.headers.get("To") ?? "");
    headers.set("Call-ID", this.callId);
    headers.set("CSeq", `${this.cseq} CANCEL`);
    const cancel: SipRequest = {
      kind: "request",
      method: "CANCEL",
      uri: invite.uri,
      headers,
      body: new Uint8Array(),
    };
    this.options.layer.sendRequest(
      cancel,
      this.options.proxy,
      {
        onResponse: () => {},
        onFailure: (failure) => this.log.warn({ failure }, "CANCEL got no answer"),
      },
      branch ? { branch } : {},
    );
    this.cancelGuard = this.options.clock.schedule(this.options.cancelGuardMs ?? 32_000, () => {
      this.transaction?.terminate();
      this.finish({ outcome: "failed", reason: "no-answer", detail: "no final response after CANCEL" });
    });
  }

  private onFailure(invite: SipRequest, failure: ClientFailure, error?: Error): void {
    if (invite !== this.invite || this.done) return;
    this.finish({
      outcome: "failed",
      reason: this.cancelWanted ? "no-answer" : "unreachable",
      detail: error ? `${failure}: ${error.message}` : failure,
    });
  }

  private emitProgress(progress: OutboundProgress): void {
    try {
      this.emit("progress", progress);
    } catch (error) {
      this.log.error({ err: error }, "progress listener threw");
    }
  }

  private finish(result: OutboundResult): void {
    if (this.done) return;
    this.done = true;
    this.ringTimer?.cancel();
    this.cancelGuard?.cancel();
    this.log.info(
      result.outcome === "answered"
        ? { outcome: "answered", sipStatus: result.sipStatus }
        : { outcome: "failed", reason: result.reason, sipStatus: result.sipStatus, detail: result.detail },
      "outbound call settled",
    );
    this.settle?.(result);
  }
}

function topBranch(request: SipRequest): string | undefined {
  const via = request.headers.getAll("Via")[0] ?? "";
  return /;\s*branch=([^;,\s]+)/i.exec(via)?.[1];
}
