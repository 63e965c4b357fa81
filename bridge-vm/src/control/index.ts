/**
 * The outbound side of the bridge, assembled: control channel → policy → limits → OutboundCall.
 * app.ts (the integrator's) calls `startOutbound(...)` once after the SIP service is up and `close()`
 * on drain; nothing else needs to know these pieces exist.
 */
import type { BridgeConfig } from "../config/index";
import type { Logger } from "../logging";
import type { MediaEngine } from "../media/types";
import { OutboundCall, type OutboundCallResult } from "../outbound/call";
import { uriText } from "../sip/dialog/dialog";
import { type Clock, systemClock } from "../sip/transaction/clock";
import type { Endpoint } from "../sip/transport/types";
import type { UaCore } from "../sip/ua/ua";
import { ControlClient } from "./client";
import type { OutboundConfig } from "./config";
import { OriginateHandler } from "./originate";
import { DestinationPolicy, OutboundLimits } from "./policy";

export { ControlClient, controlSocketUrl, type OriginateDecision } from "./client";
export { OUTBOUND_ENV_KEYS, type OutboundConfig, outboundConfigSchema } from "./config";
export { type DialResult, OriginateHandler } from "./originate";
export { DestinationPolicy, OutboundLimits, TokenBucket } from "./policy";

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
  };
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
}

export interface RunningOutbound {
  client: ControlClient;
  handler: OriginateHandler<OutboundCallResult>;
  /** Live answered outbound calls, for drain / stats. */
  calls(): OutboundCall[];
  /** Stop taking originates and close the control socket (calls in progress continue). Idempotent. */
  close(): void;
  /** Hang up every answered outbound call (shutdown). */
  hangupAll(): Promise<void>;
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
        contactUri: options.ua.contactUri(sip.proxy.protocol),
        rtpAddress: sip.rtpAddress,
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
        const result = await start();
        if (result.outcome === "answered") live.add(call);
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
    onOriginate: (request) => handler.handle(request),
    logger: logger.child({ component: "control" }),
  });
  client.start();
  return {
    client,
    handler,
    calls: () => [...live],
    close: () => client?.close(),
    hangupAll: async () => {
      await Promise.all([...live].map((call) => call.hangup("shutdown")));
    },
  };
}
