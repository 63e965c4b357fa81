/**
 * The outbound side of the bridge, assembled: control channel → policy → limits → OutboundCall.
 * app.ts (the integrator's) calls `startOutbound(...)` once after the SIP service is up and `close()`
 * on drain; nothing else needs to know these pieces exist.
 */
import type { BridgeConfig } from "../config/index";
import type { Logger } from "../logging";
import type { MediaEngine } from "../media/types";
import type { BridgeMetrics } from "../ops/index";
import { OutboundCall, type OutboundCallResult } from "../outbound/call";
import { uriText } from "../sip/dialog/dialog";
import { type Clock, systemClock, type Timer } from "../sip/transaction/clock";
import type { Endpoint } from "../sip/transport/types";
import type { UaCore } from "../sip/ua/ua";
import type { TransferDesk } from "../transfer/index";
import { ControlClient } from "./client";
import type { OutboundConfig } from "./config";
import { OriginateHandler } from "./originate";
import { DestinationPolicy, OutboundLimits } from "./policy";

export { ControlClient, controlSocketUrl, type OriginateDecision } from "./client";
export { OUTBOUND_ENV_KEYS, type OutboundConfig, outboundConfigSchema } from "./config";
export { type DialResult, OriginateHandler } from "./originate";
export { DestinationPolicy, OutboundLimits, TokenBucket, TransferPolicy } from "./policy";

export interface StartOutboundOptions {
  outbound: OutboundConfig;
  cloud: BridgeConfig["cloud"];
  sip: {
    /** The SIP domain (config.sip.domain ?? registrar host). */
    domain: string;
    username: string;
    authUsername?: string;
    password: string;
    /** The resolved registrar / outbound proxy. */
    proxy: Endpoint;
    /** Address for our SDP c= (public address, or the one the registrar sees). */
    rtpAddress: string;
    /** RFC 4028 (config sip.sessionExpiresS / sip.minSessionExpiresS). */
    sessionExpiresS?: number;
    minSessionExpiresS?: number;
  };
  /** The agent's transfers on outbound calls (the same desk and policy inbound calls use). */
  transfers: TransferDesk;
  metrics?: BridgeMetrics;
  ua: UaCore;
  media: MediaEngine;
  logger: Logger;
  bridgeId: string;
  bridgeVersion: string;
  /** Maximum calls of this bridge as a whole (inbound + outbound), reported as capacity. */
  maxCalls: number;
  /** Calls in progress right now (inbound + outbound), reported as capacity. */
  activeCalls: () => number;
  health: () => "ok" | "degraded" | "draining";
  clock?: Clock;
  /** Rate limit for capacity reports caused by inbound calls (default CAPACITY_REPORT_INTERVAL_MS). */
  capacityReportIntervalMs?: number;
}

export interface RunningOutbound {
  client: ControlClient;
  handler: OriginateHandler<OutboundCallResult>;
  /** Outbound calls in progress (ringing or answered), for drain, capacity and stats. */
  calls(): OutboundCall[];
  /** Stop taking originates and close the control socket (calls in progress continue). Idempotent. */
  close(): void;
  /** End every outbound call in progress: BYE when answered, CANCEL while ringing (shutdown). */
  hangupAll(): Promise<void>;
  /**
   * Something else changed the bridge's load (an inbound call started or ended): report capacity,
   * at most once per `capacityReportIntervalMs` (a trailing report carries the last change).
   */
  capacityChanged(): void;
}

/** Inbound calls coming and going report capacity at most this often (the last change is never lost). */
export const CAPACITY_REPORT_INTERVAL_MS = 1000;

/**
 * `run` at most once per `intervalMs`: the first call runs at once, calls inside the interval fold into
 * one trailing run at its end (so the last change is always reported). `cancel()` drops a pending one.
 */
export function coalesce(
  clock: Clock,
  intervalMs: number,
  run: () => void,
): (() => void) & { cancel(): void } {
  let lastRunAt = Number.NEGATIVE_INFINITY;
  let trailing: Timer | undefined;
  const fire = () => {
    trailing = undefined;
    lastRunAt = clock.now();
    run();
  };
  const call = () => {
    if (trailing) return; // a run is already due: it carries this change too
    const wait = lastRunAt + intervalMs - clock.now();
    if (wait <= 0) fire();
    else trailing = clock.schedule(wait, fire);
  };
  return Object.assign(call, { cancel: () => trailing?.cancel() });
}

export function startOutbound(options: StartOutboundOptions): RunningOutbound | undefined {
  const { outbound, cloud, sip, logger } = options;
  if (!outbound.enabled) return undefined;
  if (!cloud.url || !cloud.secret) {
    logger.warn("outbound calls enabled but CLOUD_URL/CLOUD_SECRET missing: no control channel");
    return undefined;
  }
  const clock = options.clock ?? systemClock;
  const policy = new DestinationPolicy(outbound, sip.domain);
  const live = new Set<OutboundCall>();
  const credentials = { username: sip.authUsername ?? sip.username, password: sip.password };
  let client: ControlClient | undefined;
  const handler: OriginateHandler<OutboundCallResult> = new OriginateHandler<OutboundCallResult>({
    policy,
    limits: new OutboundLimits(outbound, clock.now()),
    clock,
    dial: (request, destination) => {
      const call = new OutboundCall(request, destination, {
        ua: options.ua,
        clock,
        logger,
        media: options.media,
        proxy: sip.proxy,
        fromUri: `sip:${sip.username}@${sip.domain}`,
        rtpAddress: sip.rtpAddress,
        sip: {
          domain: sip.domain,
          ...(sip.sessionExpiresS ? { sessionExpiresS: sip.sessionExpiresS } : {}),
          ...(sip.minSessionExpiresS ? { minSessionExpiresS: sip.minSessionExpiresS } : {}),
        },
        transfers: options.transfers,
        ...(options.metrics ? { metrics: options.metrics } : {}),
        credentials,
        cloud,
        bridgeId: options.bridgeId,
        bridgeVersion: options.bridgeVersion,
        defaults: { ringTimeoutS: outbound.ringTimeoutS, maxDurationS: outbound.maxDurationS },
        ...(outbound.followRedirects
          ? {
              followRedirect: (contacts: readonly string[]) => {
                for (const contact of contacts) {
                  const check = policy.check(uriText(contact));
                  if (check.ok) return check.destination;
                }
                return undefined;
              },
            }
          : {}),
      });
      call.once("ended", ({ reason }) => {
        live.delete(call);
        handler.callEnded(request.callId, reason);
      });
      const start = call.start.bind(call);
      call.start = async () => {
        // Live from the first INVITE: a ringing call holds capacity, and shutdown must CANCEL it too.
        live.add(call);
        const result = await start();
        if (result.outcome !== "answered") live.delete(call);
        return result;
      };
      return call;
    },
    report: (callId, state, details) => client?.reportProgress(callId, state, details),
    onAnswered: () => {},
    onCapacityChange: () => client?.reportCapacity(),
    logger,
  });
  client = new ControlClient({
    url: cloud.url,
    secret: cloud.secret,
    bridgeId: options.bridgeId,
    version: options.bridgeVersion,
    // The registry computes free = maxCalls - activeCalls; report the tighter of the bridge's overall
    // room and the outbound cap's room.
    capacity: () => {
      const active = options.activeCalls();
      const free = Math.max(0, Math.min(outbound.maxCalls - handler.activeCalls, options.maxCalls - active));
      return { maxCalls: active + free, activeCalls: active };
    },
    health: options.health,
    onOriginate: async (request) => {
      const decision = await handler.handle(request);
      // Refused before any SIP (policy, limits): still an outbound call attempt operators should see.
      if (!decision.accepted)
        options.metrics?.callNotAnswered({ direction: "outbound", outcome: decision.reason });
      return decision;
    },
    logger: logger.child({ component: "control" }),
  });
  const capacityChanged = coalesce(
    clock,
    options.capacityReportIntervalMs ?? CAPACITY_REPORT_INTERVAL_MS,
    () => client?.reportCapacity(),
  );
  client.on("registered", ({ reconnect }) => {
    if (reconnect) options.metrics?.controlReconnected();
  });
  client.start();
  return {
    client,
    handler,
    calls: () => [...live],
    close: () => {
      capacityChanged.cancel();
      client?.close();
    },
    capacityChanged,
    hangupAll: async () => {
      await Promise.all([...live].map((call) => call.hangup("shutdown")));
    },
  };
}
