/**
 * Joins each inbound SIP call to its cloud agent. The agent's media socket opens while the call
 * rings (the call layer's answer gate), so:
 *   - a Worker that cannot be reached becomes a 503 the PBX fails over on (or, if configured, the
 *     call is answered and transferred to a human), instead of an answered call with nobody there;
 *   - the agent's greeting is already queued when the caller hears the call connect.
 * After answer it carries the agent's hangup requests to the SIP call, hands its transfer requests to
 * the transfer desk (../transfer: policy, blind and warm), carries the call's hold, SIP INFO DTMF and
 * end to the agent, and maps inbound call outcomes into metrics (outbound calls: ../outbound/call.ts).
 * Imports the call, cloud, transfer and ops layers; none of them imports this.
 */
import type { CallMetadata, HangupCause } from "@patchbay/shared/protocol";
import type { AnswerDecision, InboundCall } from "../call/call";
import type { CallEndCause } from "../call/types";
import { type CloudLink, openCloudLink } from "../cloud/index";
import type { BridgeConfig } from "../config/index";
import type { Logger } from "../logging";
import type { CallMedia } from "../media/types";
import type { BridgeMetrics } from "../ops/index";
import { DuplexRouter, type TransferDesk } from "../transfer/index";

export interface CallBindingDeps {
  config: BridgeConfig;
  /** Carries out the agent's transfers, blind and warm, after the transfer policy. */
  transfers: TransferDesk;
  logger: Logger;
  metrics?: BridgeMetrics;
  bridgeId: string;
  bridgeVersion: string;
}

const HANGUP_CAUSE: Record<CallEndCause, HangupCause> = {
  "caller-hangup": "caller-hangup",
  "callee-hangup": "caller-hangup",
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

const ANSWER: AnswerDecision = { ok: true };

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

/** Hooks for the call manager: `attach` on every new call, `beforeAnswer` as its answer gate. */
export class CloudBinder {
  private readonly bindings = new WeakMap<InboundCall, CallBinding>();

  constructor(private readonly deps: CallBindingDeps) {}

  readonly attach = (call: InboundCall): void => {
    this.bindings.set(call, new CallBinding(call, this.deps));
  };

  readonly beforeAnswer = (call: InboundCall, media: CallMedia): Promise<AnswerDecision> =>
    this.bindings.get(call)?.connect(media) ?? Promise.resolve(ANSWER);
}

class CallBinding {
  private link: CloudLink | undefined;
  private answeredAt = 0;
  private media: CallMedia | undefined;
  /** Fallback when the agent is unreachable and the deployment says "transfer": done once answered. */
  private fallbackTarget: string | undefined;

  constructor(
    private readonly call: InboundCall,
    private readonly deps: CallBindingDeps,
  ) {
    call.on("answered", (media) => this.onAnswered(media));
    call.on("mediaUpdated", (params) => {
      this.link?.callState(params.direction === "sendrecv" ? "resumed" : "hold", this.sinceAnswer());
    });
    call.on("dtmf", (event) => {
      this.link?.reportDtmf({ digit: event.digit, durationMs: event.durationMs, atMs: this.sinceAnswer() });
    });
    call.on("ended", (info) => {
      const { metrics } = this.deps;
      const outcome = {
        direction: "inbound" as const,
        outcome: info.cause,
        ...(info.status ? { sipStatus: info.status } : {}),
      };
      if (this.answeredAt > 0) {
        metrics?.callEnded({ ...outcome, ...(this.media ? { media: this.media.duplex.stats() } : {}) });
      } else {
        metrics?.callNotAnswered(outcome);
      }
      const by = info.cause === "caller-hangup" || info.cause === "cancelled" ? "caller" : "bridge";
      this.link?.hangup(HANGUP_CAUSE[info.cause], by, info.status);
    });
  }

  private sinceAnswer(): number {
    return this.answeredAt === 0 ? 0 : performance.now() - this.answeredAt;
  }

  private onAnswered(media: CallMedia): void {
    this.answeredAt = performance.now();
    this.media = media;
    this.deps.metrics?.callStarted("inbound");
    this.link?.callState("answered", 0);
    const target = this.fallbackTarget;
    if (target) {
      this.call.transfer(target).catch((error: Error) => {
        this.call.logger.error({ target, err: error.message }, "fallback transfer failed; hanging up");
        void this.call.hangup("error");
      });
    }
  }

  /** The answer gate: open the agent's socket while the call rings. */
  async connect(media: CallMedia): Promise<AnswerDecision> {
    const { config, metrics } = this.deps;
    const call = this.call;
    const logger = call.logger;
    if (!config.cloud.url || !config.cloud.secret) {
      logger.warn("no cloud configured (CLOUD_URL/CLOUD_SECRET): the call has media but no agent");
      return ANSWER;
    }
    // The link talks to a router, not the media itself, so a warm transfer can point the agent at the human.
    const router = new DuplexRouter(media.duplex);
    const outcome = await openCloudLink({
      callId: call.info.id,
      metadata: callMetadata(call, media),
      duplex: router,
      logger,
      bridgeId: this.deps.bridgeId,
      bridgeVersion: this.deps.bridgeVersion,
      cloud: config.cloud,
    });
    if (call.ended) {
      if (outcome.ok) outcome.link.hangup(HANGUP_CAUSE[call.ended.cause], "caller");
      return ANSWER;
    }
    if (!outcome.ok) {
      metrics?.cloudLinkLost(outcome.error.reason);
      logger.error(
        { reason: outcome.error.reason, err: outcome.error.message, fallback: outcome.fallback.action },
        "agent unreachable; applying fallback",
      );
      if (outcome.fallback.action === "transfer") {
        this.fallbackTarget = outcome.fallback.target;
        return ANSWER;
      }
      return { ok: false, status: outcome.fallback.sipStatus, reason: "agent unavailable", retryAfterS: 30 };
    }
    this.link = outcome.link;
    this.listen(outcome.link, router);
    return ANSWER;
  }

  private listen(link: CloudLink, router: DuplexRouter): void {
    const { metrics } = this.deps;
    const call = this.call;
    const logger = call.logger;
    link.on("connected", ({ reconnect }) => {
      if (reconnect) metrics?.cloudReconnected();
    });
    link.on("hangupRequested", (cause) => {
      logger.info({ cause }, "agent ended the call");
      void call.hangup(cause === "max-duration" ? "max-duration" : "agent-hangup");
    });
    this.deps.transfers.bind(link, call, router, logger);
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
