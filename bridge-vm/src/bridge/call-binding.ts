/**
 * Joins an answered SIP call to its cloud agent: opens the call's media socket on the media duplex,
 * carries the agent's hangup/transfer requests to the SIP call, and the SIP call's events (hold,
 * SIP INFO DTMF, end) to the agent. Also the one place that maps call outcomes into metrics.
 * Imports the call, cloud and ops layers; none of them imports this.
 */
import type { CallMetadata, HangupCause } from "@patchbay/shared/protocol";
import type { InboundCall } from "../call/call";
import type { CallEndCause } from "../call/types";
import { type CloudLink, openCloudLink } from "../cloud/index";
import type { BridgeConfig } from "../config/index";
import type { Logger } from "../logging";
import type { CallMedia } from "../media/types";
import type { BridgeMetrics } from "../ops/index";

export interface CallBindingDeps {
  config: BridgeConfig;
  logger: Logger;
  metrics?: BridgeMetrics;
  bridgeId: string;
  bridgeVersion: string;
}

const HANGUP_CAUSE: Record<CallEndCause, HangupCause> = {
  "caller-hangup": "caller-hangup",
  "agent-hangup": "agent-hangup",
  "max-duration": "max-duration",
  "media-timeout": "media-timeout",
  cancelled: "caller-hangup",
  "no-ack": "error",
  "session-expired": "error",
  rejected: "rejected",
  transferred: "transferred",
  shutdown: "normal",
  error: "error",
};

export function callMetadata(call: InboundCall, media: CallMedia): CallMetadata {
  const { info } = call;
  const agent = Object.entries(info.headers).find(([name]) => name.toLowerCase() === "x-patchbay-agent")?.[1];
  return {
    sipCallId: info.sipCallId.slice(0, 256),
    direction: "inbound",
    from: info.from.slice(0, 512),
    to: info.to.slice(0, 512),
    headers: info.headers,
    codec: media.duplex.codec,
    sampleRate: 8000,
    frameMs: 20,
    ...(agent ? { agent: agent.slice(0, 64) } : {}),
  };
}

/** Watches one inbound call: from answer to end, it has a cloud link (or the fallback ran). */
export function bindCallToCloud(call: InboundCall, deps: CallBindingDeps): void {
  const { config, metrics } = deps;
  const logger = call.logger;
  let link: CloudLink | undefined;
  let answeredAt = 0;
  let callMedia: CallMedia | undefined;

  call.on("answered", (media) => {
    answeredAt = performance.now();
    callMedia = media;
    metrics?.callStarted("inbound");
    void connect(media);
  });

  call.on("mediaUpdated", (params) => {
    link?.callState(params.direction === "sendrecv" ? "resumed" : "hold", performance.now() - answeredAt);
  });

  call.on("dtmf", (event) => {
    link?.reportDtmf({
      digit: event.digit,
      durationMs: event.durationMs,
      atMs: performance.now() - answeredAt,
    });
  });

  call.on("ended", (info) => {
    if (answeredAt > 0) {
      metrics?.callEnded({
        direction: "inbound",
        outcome: info.cause,
        ...(info.status ? { sipStatus: info.status } : {}),
        ...(callMedia ? { media: callMedia.duplex.stats() } : {}),
      });
    } else {
      metrics?.callNotAnswered({
        direction: "inbound",
        outcome: info.cause,
        ...(info.status ? { sipStatus: info.status } : {}),
      });
    }
    const by = info.cause === "caller-hangup" || info.cause === "cancelled" ? "caller" : "bridge";
    link?.hangup(HANGUP_CAUSE[info.cause], by, info.status);
  });

  async function connect(media: CallMedia): Promise<void> {
    if (!config.cloud.url || !config.cloud.secret) {
      logger.warn("no cloud configured (CLOUD_URL/CLOUD_SECRET): the call has media but no agent");
      return;
    }
    const outcome = await openCloudLink({
      callId: call.info.id,
      metadata: callMetadata(call, media),
      duplex: media.duplex,
      logger,
      bridgeId: deps.bridgeId,
      bridgeVersion: deps.bridgeVersion,
      cloud: config.cloud,
    });
    if (call.ended) {
      if (outcome.ok) outcome.link.hangup(HANGUP_CAUSE[call.ended.cause], "caller");
      return;
    }
    if (!outcome.ok) {
      metrics?.cloudLinkLost(outcome.error.reason);
      logger.error(
        { reason: outcome.error.reason, err: outcome.error.message },
        "agent unreachable; applying fallback",
      );
      if (outcome.fallback.action === "transfer") {
        call.transfer(outcome.fallback.target).catch(() => void call.hangup("error"));
      } else {
        void call.hangup("error");
      }
      return;
    }
    link = outcome.link;
    link.callState("answered", performance.now() - answeredAt);
    link.on("connected", ({ reconnect }) => {
      if (reconnect) metrics?.cloudReconnected();
    });
    link.on("hangupRequested", (cause) => {
      logger.info({ cause }, "agent ended the call");
      void call.hangup(cause === "max-duration" ? "max-duration" : "agent-hangup");
    });
    link.on("transferRequested", (target, mode) => {
      logger.info({ target, mode }, "agent asked for a transfer");
      call
        .transfer(target)
        .then(() => link?.reportTransferResult({ ok: true, target }))
        .catch((error: Error) =>
          link?.reportTransferResult({ ok: false, target, reason: error.message.slice(0, 256) }),
        );
    });
    link.on("turnTiming", (timing) => metrics?.turnTiming(timing));
    link.on("lost", (reason) => {
      metrics?.cloudLinkLost(reason);
      if (reason === "call-ended") {
        void call.hangup("agent-hangup");
        return;
      }
      logger.error({ reason }, "lost the agent for good; hanging up");
      void call.hangup("error");
    });
  }
}
