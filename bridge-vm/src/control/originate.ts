/**
 * OriginateHandler: what the bridge does with an `originate` from the control channel.
 *
 * Order matters for toll-fraud protection: destination policy first, then the concurrency and rate
 * limits, and only then SIP. A refusal is returned at once (the ack carries the reason) and nothing is
 * sent to the PBX. An accepted request is started after the token bucket's delay, and its progress is
 * reported (ringing, answered, completed with SIP cause / failed with reason). The slot it took is
 * given back when the call fails or, once answered, when the call layer says it ended.
 *
 * The SIP leg is injected (`dial`), so this is tested without sockets; the service passes a function
 * that builds an OutboundInvite (src/outbound).
 */
import type { OriginateMessage, OutboundCallState } from "@patchbay/shared/protocol";
import type { Clock } from "../sip/transaction/clock";
import type { OriginateDecision } from "./client";
import type { Destination, DestinationPolicy, OutboundLimits } from "./policy";

/** The slice of an outbound INVITE this handler drives (OutboundInvite satisfies it). */
export interface DialAttempt<Result extends DialResult = DialResult> {
  on(
    event: "progress",
    listener: (progress: { state: "trying" | "ringing"; sipStatus: number }) => void,
  ): unknown;
  start(): Promise<Result>;
}

export type DialResult =
  | { outcome: "answered"; sipStatus: number }
  | { outcome: "failed"; reason: string; sipStatus?: number; detail?: string };

export interface OriginateHandlerOptions<Result extends DialResult> {
  policy: DestinationPolicy;
  limits: OutboundLimits;
  clock: Clock;
  /** Builds the SIP leg for an accepted request (not started yet). */
  dial(request: OriginateMessage, destination: Destination): DialAttempt<Result>;
  /** Progress to the Worker (ControlClient.reportProgress). */
  report(callId: string, state: OutboundCallState, details?: { sipStatus?: number; reason?: string }): void;
  /** An answered call, for the call layer to attach media and the cloud link. */
  onAnswered(request: OriginateMessage, result: Extract<Result, { outcome: "answered" }>): void;
  /** Capacity changed (ControlClient.reportCapacity). */
  onCapacityChange?(): void;
  logger: { info(o: object, m?: string): void; warn(o: object, m?: string): void };
}

export class OriginateHandler<Result extends DialResult = DialResult> {
  private readonly live = new Set<string>();

  constructor(private readonly options: OriginateHandlerOptions<Result>) {}

  get activeCalls(): number {
    return this.options.limits.activeCalls;
  }

  /** For ControlClient.onOriginate: decides now, dials later. */
  async handle(request: OriginateMessage): Promise<OriginateDecision> {
    const { policy, limits, clock, logger } = this.options;
    const check = policy.check(request.to);
    if (!check.ok) {
      logger.warn(
        { callId: request.callId, detail: check.detail },
        "originate refused by destination policy",
      );
      return { accepted: false, reason: check.reason };
    }
    const admission = limits.admit(clock.now());
    if (!admission.ok) {
      logger.warn({ callId: request.callId, reason: admission.reason }, "originate refused by limits");
      return { accepted: false, reason: admission.reason };
    }
    this.live.add(request.callId);
    clock.schedule(admission.startDelayMs, () => {
      void this.run(request, check.destination);
    });
    this.options.onCapacityChange?.();
    return { accepted: true };
  }

  /** The call layer reports the end of an answered call: completed, slot released. */
  callEnded(callId: string, reason: string, sipStatus?: number): void {
    if (!this.live.delete(callId)) return;
    this.options.report(callId, "completed", { reason, ...(sipStatus === undefined ? {} : { sipStatus }) });
    this.release();
  }

  private async run(request: OriginateMessage, destination: Destination): Promise<void> {
    const { callId } = request;
    let ringing = false;
    let result: Result;
    try {
      const attempt = this.options.dial(request, destination);
      attempt.on("progress", (progress) => {
        if (progress.state !== "ringing" || ringing) return;
        ringing = true;
        this.options.report(callId, "ringing", { sipStatus: progress.sipStatus });
      });
      result = await attempt.start();
    } catch (error) {
      this.options.logger.warn({ callId, error: (error as Error).message }, "outbound dial failed");
      this.live.delete(callId);
      this.options.report(callId, "failed", { reason: "internal" });
      this.release();
      return;
    }
    if (result.outcome === "answered") {
      this.options.report(callId, "answered", { sipStatus: result.sipStatus });
      this.options.onAnswered(request, result as Extract<Result, { outcome: "answered" }>);
      return;
    }
    this.live.delete(callId);
    this.options.report(callId, "failed", {
      reason: result.reason,
      ...(result.sipStatus === undefined ? {} : { sipStatus: result.sipStatus }),
    });
    this.release();
  }

  private release(): void {
    this.options.limits.release();
    this.options.onCapacityChange?.();
  }
}
