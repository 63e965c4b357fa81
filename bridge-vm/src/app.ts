/**
 * The whole bridge, assembled: SIP service (src/service.ts) + RTP media engine + a cloud link per
 * answered call + metrics and health on the ops port, with a graceful drain.
 *
 * Drain (SIGTERM from systemd or a deploy): stop taking new calls (un-REGISTER so the PBX routes
 * elsewhere; new INVITEs get 503), let live calls finish for up to `drainTimeoutS`, then hang up the
 * rest cleanly. A second SIGTERM ends at once.
 */
import { randomBytes } from "node:crypto";
import { CloudBinder } from "./bridge/call-binding";
import { uriWithHeaders } from "./call/leg";
import type { BridgeConfig } from "./config/index";
import { type RunningOutbound, startOutbound, TransferPolicy } from "./control/index";
import type { Logger } from "./logging";
import { createMediaEngine } from "./media/engine";
import type { MediaStats } from "./media/types";
import { BridgeMetrics, cloudReachabilityProbe, type OpsServer, startOpsServer } from "./ops/index";
import { OutboundLeg } from "./outbound/leg";
import { BridgeService } from "./service";
import { systemClock } from "./sip/transaction/clock";
import { TransferDesk } from "./transfer/index";

export const BRIDGE_VERSION = "0.1.0";

export interface RunningBridge {
  service: BridgeService;
  metrics: BridgeMetrics;
  ops: OpsServer;
  /** Stop taking calls, wait for live ones (bounded), then stop everything. Idempotent. */
  drain(): Promise<void>;
  /** Stop now: hang up every call. Idempotent. */
  stop(): Promise<void>;
}

export async function startBridge(config: BridgeConfig, logger: Logger): Promise<RunningBridge> {
  const metrics = new BridgeMetrics();
  const bindAddress = ["", "0.0.0.0", "::"].includes(config.sip.localAddress)
    ? "0.0.0.0"
    : config.sip.localAddress;
  const media = createMediaEngine(
    {
      ...config.rtp,
      recording: config.recording,
      bindAddress,
      ...(config.sip.publicAddress ? { publicAddress: config.sip.publicAddress } : {}),
    },
    logger.child({ component: "media" }),
  );
  const bridgeId = config.cloud.bridgeId ?? `bridge-${randomBytes(4).toString("hex")}`;
  const domain = config.sip.domain ?? config.sip.registrar.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  // Toll-fraud guard for REFER: the agent's transfer targets pass an allow-list (inbound and outbound).
  const transferPolicy = new TransferPolicy(config.outbound, domain);
  if (!transferPolicy.configured)
    logger.warn(
      "no TRANSFER_ALLOWED_DESTINATIONS (nor OUTBOUND_ALLOWED_DESTINATIONS): agent transfers are refused",
    );
  // Declared before the service starts; the consultation leg is only built once a call is up.
  let service: BridgeService | undefined;
  const transfers = new TransferDesk({
    policy: transferPolicy,
    warmMethod: config.outbound.transferWarmMethod,
    uriWithHeaders,
    clock: systemClock,
    consultLeg: (requestUri, callLogger) => {
      const sip = service;
      const ua = sip?.ua;
      const proxy = sip?.registrarEndpoint;
      if (!sip || !ua || !proxy) return { refused: "no registrar to call the transfer target through" };
      return new OutboundLeg({
        ua,
        clock: systemClock,
        logger: callLogger,
        media,
        timers: ua.layer.timers,
        proxy,
        requestUri,
        fromUri: `sip:${config.sip.username}@${domain}`,
        ringTimeoutMs: config.outbound.ringTimeoutS * 1000,
        credentials: {
          username: config.sip.authUsername ?? config.sip.username,
          password: config.sip.password,
        },
        settings: {
          sessionExpiresS: config.sip.sessionExpiresS,
          minSessionExpiresS: config.sip.minSessionExpiresS,
          maxCallS: config.sip.maxCallS,
          mediaAddress: sip.mediaAddress,
          domain,
        },
      });
    },
  });
  const binder = new CloudBinder({
    config,
    logger,
    metrics,
    bridgeId,
    bridgeVersion: BRIDGE_VERSION,
    transfers,
  });
  service = await BridgeService.start({
    config,
    logger,
    mediaEngine: media,
    beforeAnswer: binder.beforeAnswer,
  });
  const calls = service.calls!;
  calls.onCall(binder.attach);

  metrics.setLiveStatsSource(function* () {
    for (const call of calls.list()) {
      const stats: MediaStats | undefined = call.media?.duplex.stats();
      if (stats) yield { media: stats };
    }
  });
  metrics.setEdgeStatsSource(() => {
    const policy = service.policy?.counters;
    const transports = Object.values(service.stats().transports);
    return {
      "source-not-allowed": policy?.refusedSource ?? 0,
      "wrong-request-uri": policy?.refusedRequestUri ?? 0,
      "rate-limited": policy?.rateLimited ?? 0,
      malformed: transports.reduce((sum, stats) => sum + stats.rejected, 0),
      dropped: transports.reduce((sum, stats) => sum + stats.dropped, 0),
    };
  });
  const registration = service.registration;
  registration?.on("registered", () => metrics.setRegistrationState("registered"));
  registration?.on("failed", ({ reason }) => {
    metrics.setRegistrationState("failed");
    metrics.registrationFailed(reason);
  });

  let draining = false;
  const outbound: RunningOutbound | undefined = service.registrarEndpoint
    ? startOutbound({
        outbound: config.outbound,
        cloud: config.cloud,
        sip: {
          domain,
          username: config.sip.username,
          ...(config.sip.authUsername ? { authUsername: config.sip.authUsername } : {}),
          password: config.sip.password,
          proxy: service.registrarEndpoint,
          rtpAddress: service.mediaAddress,
          sessionExpiresS: config.sip.sessionExpiresS,
          minSessionExpiresS: config.sip.minSessionExpiresS,
        },
        transfers,
        metrics,
        ua: service.ua!,
        media,
        logger: logger.child({ component: "outbound" }),
        bridgeId,
        bridgeVersion: BRIDGE_VERSION,
        maxCalls: config.sip.maxConcurrentCalls,
        activeCalls: () => calls.active + (outbound?.calls().length ?? 0),
        health: () => (draining ? "draining" : "ok"),
      })
    : undefined;
  if (outbound) {
    logger.info({ bridgeId }, "outbound calls enabled: control channel to the Worker");
    // Inbound calls use the same room: the registry's spreading by free capacity must see them too.
    calls.onCall((call) => {
      outbound.capacityChanged();
      call.on("ended", () => outbound.capacityChanged());
    });
  }
  const cloudReachable = cloudReachabilityProbe(config.cloud.url);
  const ops = await startOpsServer({
    host: config.http.host,
    port: config.http.port,
    metrics,
    health: async () => ({
      registered: registration ? registration.state === "registered" : true,
      cloudReachable: await cloudReachable(),
      draining,
      activeCalls: calls.active,
    }),
  });
  logger.info({ url: ops.url }, "ops endpoint listening (/healthz, /metrics)");

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      outbound?.close();
      await outbound?.hangupAll();
      await service.stop();
      await media.close();
      await ops.close();
    })();
    return stopping;
  };

  let drainingPromise: Promise<void> | undefined;
  const drain = () => {
    drainingPromise ??= (async () => {
      draining = true;
      calls.refuseNewCalls();
      outbound?.close();
      await registration?.stop();
      const deadline = performance.now() + config.drainTimeoutS * 1000;
      logger.info(
        { activeCalls: calls.active, drainTimeoutS: config.drainTimeoutS },
        "draining: no new calls",
      );
      const active = () => calls.active + (outbound?.calls().length ?? 0);
      while (active() > 0 && performance.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      if (calls.active > 0)
        logger.warn({ activeCalls: calls.active }, "drain time is up; hanging up the rest");
      await stop();
    })();
    return drainingPromise;
  };

  return { service, metrics, ops, drain, stop };
}
