/**
 * OutboundCall: one accepted originate, from RTP ports to hang-up. It owns the call's media, its SIP
 * leg (OutboundInvite, then the OutboundDialog) and its cloud link, and ends exactly once.
 *
 *   open RTP ports → SDP offer (PCMU, PCMA, telephone-event) → INVITE → answered: media retargeted to
 *   the answer and started, dialog registered with the UA core (the callee's BYE reaches us), cloud link
 *   opened to the call's Durable Object with direction "outbound", the agent and variables.
 *
 * It mirrors what src/bridge/call-binding.ts does for an answered inbound call (same CloudLink, same
 * duplex contract); the differences are that an outbound call has no "fallback transfer" (nobody to
 * transfer to: an unreachable agent hangs up) and that the agent speaks second (the callee says hello).
 * Not yet here (see the report): re-INVITE/UPDATE (hold, session-timer refresh) inside the outbound
 * dialog, early-media playout on 183, and the agent's transfer request.
 */
import { EventEmitter } from "node:events";
import type { HangupCause, OriginateMessage, OutboundFailure } from "@patchbay/shared/protocol";
import type { CloudLink } from "../cloud/index";
import { openCloudLink } from "../cloud/index";
import type { BridgeConfig } from "../config/index";
import type { Destination } from "../control/policy";
import type { Logger } from "../logging";
import type { CallMedia, MediaEngine, MediaParams } from "../media/types";
import type { DigestCredentials } from "../sip/auth";
import { createOffer, parseAnswer } from "../sip/sdp";
import type { Clock, Timer } from "../sip/transaction/clock";
import type { Endpoint } from "../sip/transport/types";
import type { UaCore } from "../sip/ua/ua";
import type { OutboundDialog } from "./dialog";
import { OutboundInvite, type OutboundProgress } from "./uac";

export interface OutboundCallDeps {
  ua: UaCore;
  clock: Clock;
  logger: Logger;
  media: MediaEngine;
  /** Registrar / outbound proxy. */
  proxy: Endpoint;
  /** Our AOR (registered extension) and Contact. */
  fromUri: string;
  contactUri: string;
  /** The address the callee must send RTP to (public address or the bound one). */
  rtpAddress: string;
  credentials?: DigestCredentials;
  cloud?: BridgeConfig["cloud"];
  bridgeId: string;
  bridgeVersion: string;
  defaults: { ringTimeoutS: number; maxDurationS: number };
  /**
   * When set (outbound.followRedirects), a 3xx is followed ONCE to the first Contact this accepts; it
   * must run the same destination policy, so a redirect cannot reach what a request could not.
   */
  followRedirect?: (contacts: readonly string[]) => Destination | undefined;
}

export type OutboundEndReason =
  | "callee-hangup"
  | "agent-hangup"
  | "max-duration"
  | "media-timeout"
  | "cloud-unreachable"
  | "shutdown"
  | "error";

export type OutboundCallResult =
  | { outcome: "answered"; sipStatus: number }
  | { outcome: "failed"; reason: OutboundFailure; sipStatus?: number; detail?: string };

export interface OutboundCallEvents {
  progress: [progress: OutboundProgress];
  /** Only after an answer. */
  ended: [details: { reason: OutboundEndReason }];
}

const LINK_CAUSE: Record<OutboundEndReason, HangupCause> = {
  "callee-hangup": "caller-hangup",
  "agent-hangup": "agent-hangup",
  "max-duration": "max-duration",
  "media-timeout": "media-timeout",
  "cloud-unreachable": "cloud-unreachable",
  shutdown: "normal",
  error: "error",
};

export class OutboundCall extends EventEmitter<OutboundCallEvents> {
  readonly log: Logger;
  private media: CallMedia | undefined;
  private dialog: OutboundDialog | undefined;
  private link: CloudLink | undefined;
  private maxDurationTimer: Timer | undefined;
  private endReason: OutboundEndReason | undefined;
  private answeredAt = 0;

  constructor(
    readonly request: OriginateMessage,
    public destination: Destination,
    private readonly deps: OutboundCallDeps,
  ) {
    super();
    this.log = deps.logger.child({ callId: request.callId, component: "outbound-call" });
  }

  get ended(): OutboundEndReason | undefined {
    return this.endReason;
  }

  async start(): Promise<OutboundCallResult> {
    const { deps, request } = this;
    try {
      // Ports first: the offer must name them. The remote side is unknown until the answer.
      this.media = await deps.media.open({ callId: request.callId, params: placeholderParams(deps.proxy) });
    } catch (error) {
      this.log.error({ err: error }, "no RTP ports for an outbound call");
      return { outcome: "failed", reason: "media-failed", detail: (error as Error).message };
    }
    const offer = createOffer({
      address: deps.rtpAddress,
      port: this.media.localPort,
      sessionId: String(Math.floor(Math.random() * 1e9)),
      sessionVersion: 1,
    });
    const invite = new OutboundInvite({
      layer: deps.ua.layer,
      clock: deps.clock,
      logger: this.log,
      proxy: deps.proxy,
      requestUri: this.destination.requestUri,
      fromUri: deps.fromUri,
      ...(request.callerId ? { displayName: request.callerId } : {}),
      contactUri: deps.contactUri,
      sdpOffer: offer,
      ringTimeoutMs: (request.ringTimeoutS ?? deps.defaults.ringTimeoutS) * 1000,
      headers: [["X-Patchbay-Call-Id", request.callId]],
      ...(deps.credentials ? { credentials: deps.credentials } : {}),
    });
    invite.on("progress", (progress) => this.emit("progress", progress));
    let result = await invite.start();
    const redirect =
      result.outcome === "failed" && result.reason === "redirected" && result.redirectTo
        ? deps.followRedirect?.(result.redirectTo)
        : undefined;
    if (redirect) {
      this.log.info({ to: redirect.requestUri }, "following a redirect (configured)");
      this.destination = redirect;
      const again = new OutboundInvite({ ...invite.options, requestUri: redirect.requestUri });
      again.on("progress", (progress) => this.emit("progress", progress));
      result = await again.start();
    }
    if (result.outcome === "failed") {
      await this.media.close("not answered");
      const { outcome, reason, sipStatus, detail } = result;
      return {
        outcome,
        reason,
        ...(sipStatus === undefined ? {} : { sipStatus }),
        ...(detail ? { detail } : {}),
      };
    }
    const answer = parseAnswer(result.answerSdp, offer);
    if (!answer.ok) {
      this.log.warn({ reason: answer.reason }, "unusable SDP answer; hanging up");
      await result.dialog.bye();
      await this.media.close("bad answer");
      return {
        outcome: "failed",
        reason: "media-failed",
        sipStatus: result.sipStatus,
        detail: answer.reason,
      };
    }
    this.answered(result.dialog, answer.params);
    return { outcome: "answered", sipStatus: result.sipStatus };
  }

  /** Ends an answered call from our side. Idempotent. */
  async hangup(reason: OutboundEndReason): Promise<void> {
    if (this.endReason || !this.dialog) return;
    this.endReason = reason;
    this.maxDurationTimer?.cancel();
    this.deps.ua.unregisterDialog(this.dialog.key, this.dialog);
    this.link?.hangup(LINK_CAUSE[reason], reason === "callee-hangup" ? "caller" : "bridge");
    this.log.info(
      { reason, durationMs: Math.round(performance.now() - this.answeredAt) },
      "outbound call ended",
    );
    if (reason !== "callee-hangup") await this.dialog.bye();
    await this.media?.close(reason);
    this.emit("ended", { reason });
  }

  private answered(dialog: OutboundDialog, params: MediaParams): void {
    const media = this.media;
    if (!media) return;
    this.dialog = dialog;
    this.answeredAt = performance.now();
    this.deps.ua.registerDialog(dialog.key, dialog);
    dialog.on("ended", () => void this.hangup("callee-hangup"));
    media.update(params);
    media.start();
    media.on("timeout", () => void this.hangup("media-timeout"));
    const maxS = this.request.maxDurationS ?? this.deps.defaults.maxDurationS;
    this.maxDurationTimer = this.deps.clock.schedule(maxS * 1000, () => void this.hangup("max-duration"));
    void this.connectAgent(media);
  }

  private async connectAgent(media: CallMedia): Promise<void> {
    const { deps, request } = this;
    if (!deps.cloud?.url || !deps.cloud.secret) {
      this.log.warn("no cloud configured: the outbound call has media but no agent");
      return;
    }
    const outcome = await openCloudLink({
      callId: request.callId,
      metadata: {
        sipCallId: this.dialog?.callId.slice(0, 256) ?? "",
        direction: "outbound",
        from: deps.fromUri.slice(0, 512),
        to: this.destination.requestUri.slice(0, 512),
        headers: {},
        codec: media.duplex.codec,
        sampleRate: 8000,
        frameMs: 20,
        ...(request.agent ? { agent: request.agent } : {}),
        ...(request.variables ? { variables: request.variables } : {}),
      },
      duplex: media.duplex,
      logger: this.log,
      bridgeId: deps.bridgeId,
      bridgeVersion: deps.bridgeVersion,
      cloud: deps.cloud,
    });
    if (this.endReason) {
      if (outcome.ok) outcome.link.hangup(LINK_CAUSE[this.endReason], "bridge");
      return;
    }
    if (!outcome.ok) {
      this.log.error({ reason: outcome.error.reason }, "agent unreachable for an outbound call; hanging up");
      void this.hangup("cloud-unreachable");
      return;
    }
    this.link = outcome.link;
    this.link.callState("answered", performance.now() - this.answeredAt);
    this.link.on(
      "hangupRequested",
      (cause) => void this.hangup(cause === "max-duration" ? "max-duration" : "agent-hangup"),
    );
    this.link.on(
      "lost",
      (reason) => void this.hangup(reason === "call-ended" ? "agent-hangup" : "cloud-unreachable"),
    );
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
