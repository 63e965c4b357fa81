/**
 * OutboundCall: one accepted originate = an OutboundLeg (./leg.ts: the SIP leg, its media and its
 * mid-dialog behaviour) + the agent's cloud link. It ends exactly once.
 *
 *   leg.dial() → answered: the call's cloud link opens to its Durable Object with direction
 *   "outbound", the agent and the variables; hold/resume and SIP INFO DTMF go to the agent; the agent's
 *   hangup and transfer requests come back (transfers through the bridge's transfer policy, reported as
 *   transfer_result, exactly like an inbound call's in ../bridge/call-binding.ts).
 *
 * The differences from an inbound call: no "fallback transfer" (an unreachable agent hangs up), and the
 * agent speaks second (the callee says hello). Metrics: outbound calls counted like inbound ones
 * (active while answered; total by outcome and SIP status, failures included).
 */
import { EventEmitter } from "node:events";
import type { HangupCause, OriginateMessage, OutboundFailure } from "@patchbay/shared/protocol";
import type { LegSettings } from "../call/leg";
import type { CallEndCause, CallEnded } from "../call/types";
import type { CloudLink } from "../cloud/index";
import { openCloudLink } from "../cloud/index";
import type { BridgeConfig } from "../config/index";
import type { Destination } from "../control/policy";
import type { Logger } from "../logging";
import type { CallMedia, MediaEngine } from "../media/types";
import type { BridgeMetrics } from "../ops/index";
import type { DigestCredentials } from "../sip/auth";
import type { Clock } from "../sip/transaction/clock";
import type { Endpoint } from "../sip/transport/types";
import type { UaCore } from "../sip/ua/ua";
import { DuplexRouter, type TransferDesk } from "../transfer/index";
import { OutboundLeg } from "./leg";
import type { OutboundProgress } from "./uac";

export interface OutboundCallDeps {
  ua: UaCore;
  clock: Clock;
  logger: Logger;
  media: MediaEngine;
  /** Registrar / outbound proxy. */
  proxy: Endpoint;
  /** Our AOR (registered extension), e.g. sip:1050@pbx.example.com. */
  fromUri: string;
  /** The address the callee must send RTP to (public address or the bound one). */
  rtpAddress: string;
  /** Session timers (sip.sessionExpiresS / minSessionExpiresS) and the SIP domain for transfers. */
  sip?: Partial<Pick<LegSettings, "sessionExpiresS" | "minSessionExpiresS" | "domain">>;
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
  /** Carries out the agent's transfers, blind and warm, after the transfer policy. */
  transfers: TransferDesk;
  metrics?: BridgeMetrics;
}

export type OutboundEndReason =
  | "callee-hangup"
  | "agent-hangup"
  | "max-duration"
  | "media-timeout"
  | "session-expired"
  | "transferred"
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
  "session-expired": "error",
  transferred: "transferred",
  "cloud-unreachable": "cloud-unreachable",
  shutdown: "normal",
  error: "error",
};

/** What the leg's end cause means for an outbound call (our own reasons win when we set them). */
function reasonFor(cause: CallEndCause): OutboundEndReason {
  switch (cause) {
    case "callee-hangup":
    case "caller-hangup":
      return "callee-hangup";
    case "agent-hangup":
    case "max-duration":
    case "media-timeout":
    case "session-expired":
    case "transferred":
    case "shutdown":
      return cause;
    default:
      return "error";
  }
}

const LEG_CAUSE: Record<OutboundEndReason, CallEndCause> = {
  "callee-hangup": "callee-hangup",
  "agent-hangup": "agent-hangup",
  "max-duration": "max-duration",
  "media-timeout": "media-timeout",
  "session-expired": "session-expired",
  transferred: "transferred",
  "cloud-unreachable": "error",
  shutdown: "shutdown",
  error: "error",
};

export class OutboundCall extends EventEmitter<OutboundCallEvents> {
  readonly log: Logger;
  /** The SIP leg: dialog ids, media, mid-dialog behaviour. */
  readonly leg: OutboundLeg;
  private link: CloudLink | undefined;
  private endReason: OutboundEndReason | undefined;
  private answeredAt = 0;

  constructor(
    readonly request: OriginateMessage,
    public destination: Destination,
    private readonly deps: OutboundCallDeps,
  ) {
    super();
    this.log = deps.logger.child({ callId: request.callId, component: "outbound-call" });
    const followRedirect = deps.followRedirect;
    this.leg = new OutboundLeg({
      id: request.callId,
      ua: deps.ua,
      clock: deps.clock,
      logger: deps.logger,
      media: deps.media,
      timers: deps.ua.layer.timers,
      proxy: deps.proxy,
      requestUri: destination.requestUri,
      fromUri: deps.fromUri,
      ...(request.callerId ? { displayName: request.callerId } : {}),
      ringTimeoutMs: (request.ringTimeoutS ?? deps.defaults.ringTimeoutS) * 1000,
      headers: [["X-Patchbay-Call-Id", request.callId]],
      ...(deps.credentials ? { credentials: deps.credentials } : {}),
      settings: {
        sessionExpiresS: deps.sip?.sessionExpiresS ?? 1800,
        minSessionExpiresS: deps.sip?.minSessionExpiresS ?? 90,
        maxCallS: request.maxDurationS ?? deps.defaults.maxDurationS,
        mediaAddress: deps.rtpAddress,
        ...(deps.sip?.domain ? { domain: deps.sip.domain } : {}),
      },
      ...(followRedirect
        ? {
            followRedirect: (contacts: readonly string[]) => {
              const redirect = followRedirect(contacts);
              if (redirect) this.destination = redirect;
              return redirect?.requestUri;
            },
          }
        : {}),
    });
    this.leg.on("progress", (progress) => this.emit("progress", progress));
    this.leg.on("answered", (media) => this.onAnswered(media));
    this.leg.on("mediaUpdated", (params) => {
      this.link?.callState(params.direction === "sendrecv" ? "resumed" : "hold", this.sinceAnswer());
    });
    this.leg.on("dtmf", (event) => {
      this.link?.reportDtmf({ digit: event.digit, durationMs: event.durationMs, atMs: this.sinceAnswer() });
    });
    this.leg.on("ended", (info) => this.onLegEnded(info));
  }

  /** Why the answered call ended (undefined while it is up or was never answered). */
  get ended(): OutboundEndReason | undefined {
    return this.answeredAt > 0 && this.leg.ended ? this.endReason : undefined;
  }

  /** Dials; resolves once answered (the agent joins in the background) or failed. */
  async start(): Promise<OutboundCallResult> {
    const result = await this.leg.dial();
    if (result.outcome === "failed") {
      this.deps.metrics?.callNotAnswered({
        direction: "outbound",
        outcome: result.reason,
        ...(result.sipStatus === undefined ? {} : { sipStatus: result.sipStatus }),
      });
    }
    return result;
  }

  /** Ends the call from our side (BYE once answered, CANCEL while ringing). Idempotent. */
  async hangup(reason: OutboundEndReason): Promise<void> {
    if (this.leg.ended) return;
    this.endReason ??= reason;
    await this.leg.hangup(LEG_CAUSE[reason]);
  }

  private sinceAnswer(): number {
    return this.answeredAt === 0 ? 0 : performance.now() - this.answeredAt;
  }

  private onAnswered(media: CallMedia): void {
    this.answeredAt = performance.now();
    this.deps.metrics?.callStarted("outbound");
    void this.connectAgent(media);
  }

  private onLegEnded(info: CallEnded): void {
    const { metrics } = this.deps;
    if (this.answeredAt === 0) return; // never answered: start()'s result carries (and counts) the failure
    this.endReason ??= reasonFor(info.cause);
    const reason = this.endReason;
    metrics?.callEnded({
      direction: "outbound",
      outcome: reason,
      ...(info.status ? { sipStatus: info.status } : {}),
      ...(this.leg.media ? { media: this.leg.media.duplex.stats() } : {}),
    });
    this.link?.hangup(LINK_CAUSE[reason], reason === "callee-hangup" ? "caller" : "bridge", info.status);
    this.log.info({ reason, durationMs: Math.round(this.sinceAnswer()) }, "outbound call ended");
    this.emit("ended", { reason });
  }

  private async connectAgent(media: CallMedia): Promise<void> {
    const { deps, request } = this;
    if (!deps.cloud?.url || !deps.cloud.secret) {
      this.log.warn("no cloud configured: the outbound call has media but no agent");
      return;
    }
    const router = new DuplexRouter(media.duplex);
    const outcome = await openCloudLink({
      callId: request.callId,
      metadata: {
        sipCallId: this.leg.sipCallId?.slice(0, 256) ?? "",
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
      duplex: router,
      logger: this.log,
      bridgeId: deps.bridgeId,
      bridgeVersion: deps.bridgeVersion,
      cloud: deps.cloud,
    });
    if (this.leg.ended) {
      if (outcome.ok) outcome.link.hangup(LINK_CAUSE[this.endReason ?? "error"], "bridge");
      return;
    }
    if (!outcome.ok) {
      deps.metrics?.cloudLinkLost(outcome.error.reason);
      this.log.error({ reason: outcome.error.reason }, "agent unreachable for an outbound call; hanging up");
      void this.hangup("cloud-unreachable");
      return;
    }
    const link = outcome.link;
    this.link = link;
    link.callState("answered", this.sinceAnswer());
    link.on("connected", ({ reconnect }) => {
      if (reconnect) deps.metrics?.cloudReconnected();
    });
    link.on(
      "hangupRequested",
      (cause) => void this.hangup(cause === "max-duration" ? "max-duration" : "agent-hangup"),
    );
    deps.transfers.bind(link, this.leg, router, this.log);
    link.on("turnTiming", (timing) => deps.metrics?.turnTiming(timing));
    link.on("lost", (reason) => {
      deps.metrics?.cloudLinkLost(reason);
      void this.hangup(reason === "call-ended" ? "agent-hangup" : "cloud-unreachable");
    });
  }
}
