/**
 * ControlClient: the bridge's one control socket to the Worker's BridgeRegistry.
 *
 * Same resilience approach as the per-call CloudLink (src/cloud): a fresh short-lived token per
 * connection attempt, reconnect with backoff after any drop, liveness by ping, messages that could not
 * be sent kept (bounded) and sent after the next registration. Unlike a call's link, the control
 * channel never gives up: a bridge without it only loses outbound calls, so it keeps trying.
 *
 * Exactly-once originate: the registry may send the same originate more than once (it re-sends
 * anything unacknowledged after a reconnect). The client remembers every request id it has seen in a
 * bounded LRU together with its acknowledgement (or the promise of one), calls the handler once per
 * request id, and answers duplicates with the same acknowledgement and call id.
 */
import { EventEmitter } from "node:events";
import {
  type BridgeCapacity,
  type BridgeHealth,
  CONTROL_PING,
  CONTROL_PONG,
  CONTROL_PROTOCOL_VERSION,
  ControlCloseCode,
  controlTokenSubject,
  type OriginateMessage,
  type OutboundCallState,
  type OutboundFailure,
  parseWorkerControlMessage,
} from "@patchbay/shared/protocol";
import { signCallToken } from "@patchbay/shared/token";
import WebSocket from "ws";
import type { LinkLogger } from "../cloud";
import { BoundedLru } from "./lru";

export type OriginateDecision = { accepted: true } | { accepted: false; reason: OutboundFailure };

export interface ControlClientOptions {
  /** Worker base URL (http, https, ws or wss). */
  url: string;
  secret: string;
  bridgeId: string;
  version: string;
  capacity: () => BridgeCapacity;
  health: () => BridgeHealth;
  /** Called once per request id; must decide quickly (policy), not wait for the call to connect. */
  onOriginate: (request: OriginateMessage) => Promise<OriginateDecision>;
  logger: LinkLogger;
  reconnectDelaysMs?: readonly number[];
  connectTimeoutMs?: number;
  /** Request ids remembered for deduplication. */
  rememberRequests?: number;
  /** Messages kept while disconnected (acks, progress, capacity). */
  maxPending?: number;
}

export interface ControlClientEvents {
  registered: [details: { reconnect: boolean }];
  disconnected: [details: { code: number; reason: string }];
  closed: [];
}

export interface ControlClientCounters {
  connects: number;
  originatesReceived: number;
  duplicateOriginates: number;
  malformedMessages: number;
  pendingDropped: number;
}

type AckMessage = {
  type: "originate_ack";
  requestId: string;
  accepted: boolean;
  callId?: string;
  reason?: OutboundFailure;
};

const DEFAULT_RECONNECT_DELAYS_MS = [0, 250, 500, 1000, 2000, 5000] as const;

export function controlSocketUrl(baseUrl: string, bridgeId: string): string {
  const url = new URL(baseUrl);
  url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:";
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/v1/bridges/${encodeURIComponent(bridgeId)}/control`;
  return url.toString();
}

export class ControlClient extends EventEmitter<ControlClientEvents> {
  readonly counters: ControlClientCounters = {
    connects: 0,
    originatesReceived: 0,
    duplicateOriginates: 0,
    malformedMessages: 0,
    pendingDropped: 0,
  };
  private readonly seen: BoundedLru<string, Promise<AckMessage>>;
  private readonly pending: string[] = [];
  private readonly reconnectDelaysMs: readonly number[];
  private socket: WebSocket | undefined;
  private registered = false;
  private stopped = false;
  private everRegistered = false;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private lastHeardAt = 0;

  constructor(private readonly options: ControlClientOptions) {
    super();
    this.seen = new BoundedLru(options.rememberRequests ?? 4096);
    this.reconnectDelaysMs = options.reconnectDelaysMs ?? DEFAULT_RECONNECT_DELAYS_MS;
  }

  get isRegistered(): boolean {
    return this.registered;
  }

  /** Starts connecting; returns at once. The client keeps (re)connecting until close(). */
  start(): void {
    if (this.stopped || this.socket) return;
    void this.connect();
  }

  reportProgress(
    callId: string,
    state: OutboundCallState,
    details: { sipStatus?: number; reason?: string } = {},
  ): void {
    this.sendOrKeep({ type: "call_progress", callId, state, ...details });
  }

  reportCapacity(): void {
    this.sendOrKeep({ type: "capacity", capacity: this.options.capacity(), health: this.options.health() });
  }

  /** Idempotent. Closes the socket normally and stops reconnecting. */
  close(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.registered = false;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeatTimer);
    const socket = this.socket;
    this.socket = undefined;
    if (socket?.readyState === WebSocket.OPEN) socket.close(ControlCloseCode.normal, "bridge stopping");
    else socket?.terminate();
    this.emit("closed");
  }

  // ---- connection -------------------------------------------------------------------------------

  private async connect(): Promise<void> {
    const { secret, bridgeId, logger } = this.options;
    this.attempt++;
    let token: string;
    try {
      token = await signCallToken(secret, controlTokenSubject(bridgeId), { ttlSeconds: 300 });
    } catch (error) {
      logger.error({ bridgeId, error: (error as Error).message }, "cannot sign the control token");
      this.scheduleReconnect();
      return;
    }
    if (this.stopped) return;
    const socket = new WebSocket(controlSocketUrl(this.options.url, bridgeId), {
      headers: { Authorization: `Bearer ${token}` },
      handshakeTimeout: this.options.connectTimeoutMs ?? 5000,
      perMessageDeflate: false,
    });
    this.socket = socket;
    socket.on("unexpected-response", (_request, response) => {
      const status = response.statusCode ?? 0;
      response.resume();
      logger.warn({ bridgeId, status }, "Worker refused the control socket");
      socket.terminate();
    });
    socket.on("error", (error) => logger.warn({ bridgeId, error: error.message }, "control socket error"));
    socket.on("open", () => {
      this.lastHeardAt = performance.now();
      socket.send(
        JSON.stringify({
          type: "register",
          protocol: CONTROL_PROTOCOL_VERSION,
          bridgeId,
          version: this.options.version,
          capacity: this.options.capacity(),
          health: this.options.health(),
        }),
      );
    });
    socket.on("message", (data, isBinary) => {
      if (socket !== this.socket) return;
      this.lastHeardAt = performance.now();
      if (isBinary) {
        this.counters.malformedMessages++;
        return;
      }
      this.onText(socket, data.toString());
    });
    socket.on("close", (code, reason) => this.onClosed(socket, code, reason.toString()));
  }

  private onClosed(socket: WebSocket, code: number, reason: string): void {
    if (socket !== this.socket || this.stopped) return;
    this.socket = undefined;
    this.registered = false;
    clearInterval(this.heartbeatTimer);
    this.emit("disconnected", { code, reason });
    if (code === ControlCloseCode.superseded) {
      // Another process registered with our bridge id: two bridges fighting over one id would flap.
      this.options.logger.error(
        { bridgeId: this.options.bridgeId },
        "control socket superseded; not reconnecting",
      );
      this.close();
      return;
    }
    this.options.logger.warn(
      { bridgeId: this.options.bridgeId, code, reason },
      "control socket dropped; reconnecting",
    );
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const delays = this.reconnectDelaysMs;
    const base = delays[Math.min(this.attempt, delays.length - 1)] ?? 1000;
    // Jitter so a fleet of bridges does not reconnect in lock-step after a Worker deploy.
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
  }

  private onRegistered(socket: WebSocket, heartbeatIntervalMs: number): void {
    const reconnect = this.everRegistered;
    this.everRegistered = true;
    this.registered = true;
    this.attempt = 0;
    this.counters.connects++;
    this.options.logger.info({ bridgeId: this.options.bridgeId, reconnect }, "control channel registered");
    for (const text of this.pending.splice(0)) socket.send(text);
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => {
      if (socket !== this.socket || socket.readyState !== WebSocket.OPEN) return;
      if (performance.now() - this.lastHeardAt > heartbeatIntervalMs * 3) {
        this.options.logger.warn({ bridgeId: this.options.bridgeId }, "control socket silent; reconnecting");
        socket.terminate();
        return;
      }
      socket.send(CONTROL_PING);
    }, heartbeatIntervalMs);
    this.heartbeatTimer.unref();
    this.emit("registered", { reconnect });
  }

  // ---- messages ---------------------------------------------------------------------------------

  private onText(socket: WebSocket, text: string): void {
    if (text === CONTROL_PONG) return;
    const parsed = parseWorkerControlMessage(text);
    if (!parsed.ok) {
      this.counters.malformedMessages++;
      this.options.logger.error(
        { bridgeId: this.options.bridgeId, error: parsed.error },
        "malformed control message",
      );
      return;
    }
    const message = parsed.message;
    switch (message.type) {
      case "registered":
        this.onRegistered(socket, message.heartbeatIntervalMs);
        break;
      case "originate":
        this.onOriginate(message);
        break;
      case "error":
        this.options.logger.warn(
          { bridgeId: this.options.bridgeId, code: message.code, error: message.message },
          "registry reported an error",
        );
        break;
    }
  }

  private onOriginate(request: OriginateMessage): void {
    this.counters.originatesReceived++;
    const known = this.seen.get(request.requestId);
    if (known) {
      this.counters.duplicateOriginates++;
      void known.then((ack) => this.sendOrKeep(ack));
      return;
    }
    const ack = this.decide(request);
    this.seen.set(request.requestId, ack);
    void ack.then((message) => {
      this.sendOrKeep(message);
      if (message.accepted) this.reportCapacity();
    });
  }

  private async decide(request: OriginateMessage): Promise<AckMessage> {
    const base = { type: "originate_ack" as const, requestId: request.requestId };
    try {
      const decision = await this.options.onOriginate(request);
      return decision.accepted
        ? { ...base, accepted: true, callId: request.callId }
        : { ...base, accepted: false, reason: decision.reason };
    } catch (error) {
      this.options.logger.error(
        { bridgeId: this.options.bridgeId, callId: request.callId, error: (error as Error).message },
        "originate handler failed",
      );
      return { ...base, accepted: false, reason: "internal" };
    }
  }

  private sendOrKeep(message: object): void {
    const text = JSON.stringify(message);
    const socket = this.socket;
    if (this.registered && socket?.readyState === WebSocket.OPEN) {
      socket.send(text);
      return;
    }
    if (this.stopped) return;
    if (this.pending.length >= (this.options.maxPending ?? 1024)) {
      this.pending.shift();
      this.counters.pendingDropped++;
    }
    this.pending.push(text);
  }
}
