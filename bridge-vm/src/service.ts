/**
 * Assembles the bridge from its config: transports → transaction layer → UA core (policy) → call
 * manager → registration + keepalive. One owner for everything it creates; `stop()` un-registers,
 * hangs up calls and closes sockets, and is idempotent.
 *
 * Hooks for what lands later: `calls.onCall(call => call.on("answered", media => …))` is where the cloud
 * link (src/cloud) attaches; `mediaEngine` is injected (the real RTP engine, or the port-reserving
 * stand-in by default).
 */
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { CallDeps } from "./call/call";
import { CallManager } from "./call/manager";
import { PortReservingMediaEngine } from "./call/port-reserving-media";
import type { BridgeConfig } from "./config";
import type { Logger } from "./logging";
import type { MediaEngine } from "./media/types";
import { Keepalive } from "./sip/registration/keepalive";
import { type BackoffPolicy, Registration } from "./sip/registration/registration";
import { type Clock, systemClock } from "./sip/transaction/clock";
import { TransactionLayer } from "./sip/transaction/layer";
import { type BaseTimers, RFC3261_TIMERS } from "./sip/transaction/timers";
import { TcpTransport } from "./sip/transport/tcp";
import type { Endpoint, Transport, TransportProtocol } from "./sip/transport/types";
import { UdpTransport } from "./sip/transport/udp";
import { SourceAllowList } from "./sip/ua/cidr";
import { CallPolicy } from "./sip/ua/policy";
import { UaCore } from "./sip/ua/ua";

export interface ServiceOptions {
  config: BridgeConfig;
  logger: Logger;
  mediaEngine?: MediaEngine;
  clock?: Clock;
  timers?: BaseTimers;
  registrationBackoff?: BackoffPolicy;
  /**
   * Also accept INVITEs addressed to our extension number (not only the Contact token), for direct
   * calls from allowed sources (tests, trunks that dial the extension). Off by default.
   */
  acceptExtensionUser?: boolean;
  /** Gate before each 200 OK: the app opens the agent's socket here (503 when it cannot). */
  beforeAnswer?: CallDeps["beforeAnswer"];
  /** Skip REGISTER (direct-call tests without a registrar). */
  register?: boolean;
}

/** 128 random bits, base64url: the Contact user part that only the registrar learns. */
export function generateContactToken(): string {
  return randomBytes(16).toString("base64url");
}

export class BridgeService {
  readonly contactToken = generateContactToken();
  private advertised: { host: string; port: number } = { host: "", port: 0 };
  private transports: Transport[] = [];
  private layer: TransactionLayer | undefined;
  ua: UaCore | undefined;
  /** Who may call: its counters feed patchbay_sip_rejected_total. */
  policy: CallPolicy | undefined;
  calls: CallManager | undefined;
  registration: Registration | undefined;
  /** The resolved registrar, which is also the outbound proxy for calls we place. */
  registrarEndpoint: Endpoint | undefined;
  /** The address in our SDP c= lines. */
  mediaAddress = "";
  private keepalive: Keepalive | undefined;
  private stopping: Promise<void> | undefined;
  private readonly clock: Clock;

  private constructor(private readonly options: ServiceOptions) {
    this.clock = options.clock ?? systemClock;
  }

  static async start(options: ServiceOptions): Promise<BridgeService> {
    const service = new BridgeService(options);
    try {
      await service.boot();
    } catch (error) {
      await service.stop();
      throw error;
    }
    return service;
  }

  /** The Contact URI for a transport: sip:<token>@<advertised host>:<port>[;transport=tcp]. */
  contactUri(protocol: TransportProtocol): string {
    const { host, port } = this.advertised;
    const hostText = isIP(host) === 6 ? `[${host}]` : host;
    return `sip:${this.contactToken}@${hostText}:${port}${protocol === "tcp" ? ";transport=tcp" : ""}`;
  }

  private async boot(): Promise<void> {
    const { config, logger } = this.options;
    const sip = config.sip;
    const registrar = await resolveHostPort(sip.registrar, sip.transport);
    this.registrarEndpoint = registrar;
    const domain = sip.domain ?? sip.registrar.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");

    // Default allow-list: every address the registrar's name resolves to (a PBX may answer from any).
    const registrarAddresses = await resolveAll(sip.registrar, registrar.address);
    const allowedSources = sip.allowedSources.length > 0 ? sip.allowedSources : registrarAddresses;
    const allowList = new SourceAllowList(allowedSources);

    const transportOptions = {
      address: sip.localAddress,
      port: sip.localPort,
      logger,
      trace: sip.trace,
      // Malformed junk from strangers gets silence, like everything else from them.
      answerMalformedFrom: (source: Endpoint) => allowList.allows(source.address),
      // A stranger's TCP connection is closed at accept, so it cannot hold sockets (AST-2016-005).
      acceptFrom: (address: string) => allowList.allows(address),
    };
    const udp = new UdpTransport({ ...transportOptions, logger: logger.child({ component: "sip-udp" }) });
    await udp.listen();
    // TCP on the same port number as UDP, as a PBX expects of a SIP endpoint.
    const tcp = new TcpTransport({
      ...transportOptions,
      port: udp.local.port,
      logger: logger.child({ component: "sip-tcp" }),
    });
    this.transports = [udp];
    await tcp.listen();
    this.transports.push(tcp);
    for (const transport of this.transports) {
      transport.on("error", (error) =>
        logger.error({ err: error, protocol: transport.protocol }, "SIP socket error"),
      );
    }

    const host =
      sip.publicAddress ??
      (isWildcard(sip.localAddress) ? await routeAddressTo(registrar) : sip.localAddress);
    this.advertised = { host, port: udp.local.port };

    const layer = new TransactionLayer({
      transports: this.transports,
      clock: this.clock,
      logger: logger.child({ component: "sip-transaction" }),
      timers: this.options.timers ?? RFC3261_TIMERS,
      sentBy: () => {
        const { host: viaHost, port } = this.advertised;
        return `${isIP(viaHost) === 6 ? `[${viaHost}]` : viaHost}:${port}`;
      },
    });
    this.layer = layer;

    const policy = new CallPolicy({
      allowList,
      rejectMode: sip.rejectMode,
      contactToken: this.contactToken,
      ...(this.options.acceptExtensionUser ? { acceptExtensionUser: sip.username } : {}),
    });
    this.policy = policy;
    const ua = new UaCore({
      layer,
      policy,
      clock: this.clock,
      logger: logger.child({ component: "sip-ua" }),
      contactUri: (protocol) => this.contactUri(protocol),
    });
    this.ua = ua;

    const mediaAddress = sip.publicAddress ?? host;
    this.mediaAddress = mediaAddress;
    this.calls = new CallManager({
      ua,
      clock: this.clock,
      logger,
      media:
        this.options.mediaEngine ??
        new PortReservingMediaEngine({
          address: isWildcard(sip.localAddress) ? "0.0.0.0" : sip.localAddress,
          portMin: config.rtp.portMin,
          portMax: config.rtp.portMax,
        }),
      settings: {
        sendRinging: sip.sendRinging,
        answerDelayMs: sip.answerDelayMs,
        maxCallS: sip.maxCallS,
        sessionExpiresS: sip.sessionExpiresS,
        minSessionExpiresS: sip.minSessionExpiresS,
        mediaAddress,
        forwardHeaders: sip.forwardHeaders,
        domain,
      },
      timers: layer.timers,
      maxConcurrentCalls: sip.maxConcurrentCalls,
      ...(this.options.beforeAnswer ? { beforeAnswer: this.options.beforeAnswer } : {}),
      credentials: { username: sip.authUsername ?? sip.username, password: sip.password },
    });

    logger.info(
      {
        udp: `${udp.local.address}:${udp.local.port}`,
        tcp: `${tcp.local.address}:${tcp.local.port}`,
        advertised: `${this.advertised.host}:${this.advertised.port}`,
        registrar: `${registrar.protocol}:${registrar.address}:${registrar.port}`,
        allowedSources,
      },
      "SIP listening",
    );

    if (this.options.register === false) return;
    const protocol = registrar.protocol;
    this.registration = new Registration({
      layer,
      clock: this.clock,
      logger: logger.child({ component: "sip-registration" }),
      registrar,
      domain,
      username: sip.username,
      authUsername: sip.authUsername ?? sip.username,
      password: sip.password,
      contactUser: this.contactToken,
      contactUri: () => this.contactUri(protocol),
      requestedExpiresS: sip.registerExpiresS,
      ...(this.options.registrationBackoff ? { backoff: this.options.registrationBackoff } : {}),
      onAddressLearned: (address, port) => {
        // Behind NAT without a configured public address: advertise what the registrar sees.
        if (sip.publicAddress || protocol !== "udp") return false;
        if (address === this.advertised.host && port === this.advertised.port) return false;
        logger.info({ address, port }, "registrar sees us at a different address; updating Contact");
        this.advertised = { host: address, port };
        return true;
      },
    });
    this.keepalive = new Keepalive({
      mode: sip.keepalive,
      intervalS: sip.keepaliveIntervalS,
      layer,
      clock: this.clock,
      logger,
      target: registrar,
      domain,
      fromUri: `sip:${sip.username}@${domain}`,
    });
    const registration = this.registration;
    // RFC 5626 spirit: over TCP the registrar reaches us only through our connection; when it drops,
    // register again (the transaction layer's failures feed the usual backoff).
    tcp.on("disconnected", (remote) => {
      if (protocol !== "tcp" || remote.address !== registrar.address || remote.port !== registrar.port)
        return;
      if (registration.state !== "registered") return;
      logger.warn(
        { registrar: `${remote.address}:${remote.port}` },
        "connection to registrar lost; re-registering",
      );
      this.clock.schedule(1000, () => registration.registerNow());
    });
    registration.start();
    this.keepalive.start();
  }

  /** Counters for metrics and /healthz: transports, refusals, dialogs, calls, registration. */
  stats() {
    return {
      transports: Object.fromEntries(this.transports.map((t) => [t.protocol, t.stats()])),
      ua: this.ua ? { ...this.ua.counters, dialogs: this.ua.dialogCount } : undefined,
      calls: this.calls ? { ...this.calls.counters, active: this.calls.active } : undefined,
      registration: this.registration
        ? {
            state: this.registration.state,
            failures: this.registration.failures,
            grantedS: this.registration.grantedS,
          }
        : undefined,
    };
  }

  /** The local SIP port (UDP and TCP). */
  get sipPort(): number {
    return this.transports[0]?.local.port ?? 0;
  }

  /** Un-REGISTER, hang up calls, close sockets. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.keepalive?.stop();
      await this.calls?.hangupAll("shutdown");
      await this.registration?.stop();
      this.layer?.close();
      await Promise.all(this.transports.map((transport) => transport.close()));
    })();
    return this.stopping;
  }
}

async function resolveHostPort(hostPort: string, protocol: TransportProtocol): Promise<Endpoint> {
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hostPort);
  const host = (match?.[1] ?? hostPort).replace(/^\[|\]$/g, "");
  const port = match?.[2] ? Number(match[2]) : 5060;
  const address = isIP(host) ? host : (await lookup(host, { family: 4 })).address;
  return { protocol, address, port };
}

async function resolveAll(hostPort: string, fallback: string): Promise<string[]> {
  const host = (/^(\[[^\]]+\]|[^:]+)/.exec(hostPort)?.[1] ?? hostPort).replace(/^\[|\]$/g, "");
  if (isIP(host)) return [host];
  try {
    const all = await lookup(host, { all: true });
    return [...new Set([fallback, ...all.map((entry) => entry.address)])];
  } catch {
    return [fallback];
  }
}

function isWildcard(address: string): boolean {
  return address === "0.0.0.0" || address === "::" || address === "";
}

/** The local address the kernel would use toward `target` (no packet is sent: connect() on UDP). */
function routeAddressTo(target: Endpoint): Promise<string> {
  return new Promise((resolve) => {
    const socket = createSocket(isIP(target.address) === 6 ? "udp6" : "udp4");
    socket.on("error", () => {
      socket.close();
      resolve("127.0.0.1");
    });
    socket.connect(target.port, target.address, () => {
      const address = socket.address().address;
      socket.close();
      resolve(address);
    });
  });
}
