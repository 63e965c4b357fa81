/**
 * CloudLink: one call's media socket to its Durable Object, kept alive for the whole call.
 *
 * The socket is expected to break: a Worker deploy restarts every Durable Object and closes its
 * sockets, and networks blip. A break never drops the call. The link reconnects to the same call id
 * (so the same Durable Object) with a fresh token, resumes with the welcome's resume token, replays
 * caller audio buffered during the gap (bounded), and re-sends control messages it could not send.
 * Only a total outage longer than `maxOutageMs`, or a refusal that retrying cannot fix (401, call
 * ended, superseded), ends the link with `lost`, and the call layer decides what to do with the call.
 *
 * Hot path: caller frames are encoded into one preallocated buffer (ws copies it while masking);
 * agent audio is handed to the playout queue as the view ws gave us. No JSON per audio frame.
 */
import { EventEmitter } from "node:events";
import { BYTES_PER_FRAME, type G711Codec, transcodeG711 } from "@patchbay/shared/audio";
import {
  type CallMetadata,
  CloseCode,
  decodeAudioFrame,
  encodeAudioFrame,
  FrameFlag,
  FrameKind,
  type HangupCause,
  PROTOCOL_VERSION,
  parseWorkerMessage,
  type WorkerMessage,
} from "@patchbay/shared/protocol";
import { signCallToken } from "@patchbay/shared/token";
import WebSocket from "ws";
import type { CallAudioDuplex } from "../media/types";
import { FrameRing } from "./ring";

/** The slice of a pino logger the link uses (pino's Logger satisfies it). */
export interface LinkLogger {
  debug(object: object, message?: string): void;
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
}

export interface CloudLinkOptions {
  callId: string;
  metadata: CallMetadata;
  duplex: CallAudioDuplex;
  /** Worker base URL (http, https, ws or wss). */
  url: string;
  secret: string;
  bridgeId: string;
  bridgeVersion: string;
  connectTimeoutMs: number;
  logger: LinkLogger;
  /** Delays before successive reconnect attempts; the last one repeats. */
  reconnectDelaysMs?: readonly number[];
  /** Give up (emit `lost`) after the socket has been down this long. */
  maxOutageMs?: number;
  /** Caller audio kept while disconnected. */
  bufferMs?: number;
  statsIntervalMs?: number;
  /** Liveness: ping interval; a socket that misses two pongs is treated as broken. */
  pingIntervalMs?: number;
}

export type LinkState = "connecting" | "connected" | "reconnecting" | "closed";

export type LostReason =
  | "unauthorized"
  | "call-ended"
  | "superseded"
  | "outage"
  | "protocol-version"
  | "protocol-error";

/**
 * A Worker that closes with 4400 (it could not parse something we sent) is worth reconnecting to once
 * or twice: the call survives a one-off bad message. More than this many in one call is a bug that
 * would otherwise turn into an endless reconnect loop.
 */
const MAX_PROTOCOL_ERROR_CLOSES = 3;

export interface CloudLinkEvents {
  connected: [details: { resumed: boolean; agent: string; reconnect: boolean }];
  disconnected: [details: { code: number; reason: string }];
  hangupRequested: [cause: HangupCause, reason: string | undefined];
  transferRequested: [target: string, mode: "blind" | "warm", summary: string | undefined];
  /** Warm transfer: join the legs once the audio queued so far (the summary) has been played. */
  transferJoinRequested: [];
  /** Warm transfer: the agent gives up on the human; the caller stays. */
  transferCancelRequested: [];
  turnTiming: [timing: Extract<WorkerMessage, { type: "turn_timing" }>];
  /** The link cannot continue; the call layer should end or fall back. */
  lost: [reason: LostReason];
  closed: [];
}

export interface CloudLinkCounters {
  connects: number;
  reconnects: number;
  framesSent: number;
  framesReceived: number;
  framesBuffered: number;
  framesDroppedWhileDown: number;
  malformedMessages: number;
  agentBytesTranscoded: number;
}

const DEFAULT_RECONNECT_DELAYS_MS = [0, 100, 250, 500, 1000, 2000] as const;
const MAX_PENDING_CONTROL = 256;

export class CloudLinkError extends Error {
  override readonly name = "CloudLinkError";
  constructor(
    readonly reason: "unreachable" | "timeout" | "unauthorized" | "rejected",
    message: string,
  ) {
    super(message);
  }
}

export function mediaSocketUrl(baseUrl: string, callId: string): string {
  const url = new URL(baseUrl);
  url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:";
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/v1/media/${encodeURIComponent(callId)}`;
  return url.toString();
}

export class CloudLink extends EventEmitter<CloudLinkEvents> {
  readonly counters: CloudLinkCounters = {
    connects: 0,
    reconnects: 0,
    framesSent: 0,
    framesReceived: 0,
    framesBuffered: 0,
    framesDroppedWhileDown: 0,
    malformedMessages: 0,
    agentBytesTranscoded: 0,
  };

  private readonly options: Required<
    Pick<CloudLinkOptions, "maxOutageMs" | "bufferMs" | "statsIntervalMs" | "pingIntervalMs">
  > &
    CloudLinkOptions;
  private readonly reconnectDelaysMs: readonly number[];
  private readonly ring: FrameRing;
  private readonly sendBuffer = new Uint8Array(64 + BYTES_PER_FRAME);
  private readonly transcodeBuffer = new Uint8Array(8192);
  private readonly pendingControl: string[] = [];
  private socket: WebSocket | undefined;
  private linkState: LinkState = "connecting";
  private resumeToken: string | undefined;
  private lastAgentSeq: number | undefined;
  private outageStartedAt: number | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private missedPongs = 0;
  private attempt = 0;
  private protocolErrorCloses = 0;
  /** The first frame sent after a gap carries the discontinuity flag. */
  private discontinuity = false;

  constructor(options: CloudLinkOptions) {
    super();
    this.options = {
      maxOutageMs: 30_000,
      bufferMs: 2_000,
      statsIntervalMs: 5_000,
      pingIntervalMs: 5_000,
      ...options,
    };
    this.reconnectDelaysMs = options.reconnectDelaysMs ?? DEFAULT_RECONNECT_DELAYS_MS;
    this.ring = new FrameRing(Math.ceil(this.options.bufferMs / 20));
  }

  get state(): LinkState {
    return this.linkState;
  }

  /**
   * Opens the socket and waits for the Worker's welcome. Rejects with CloudLinkError when the Worker
   * cannot be reached within connectTimeoutMs: the call layer then applies the configured fallback.
   */
  async start(): Promise<void> {
    const { duplex } = this.options;
    duplex.on("callerFrame", this.onCallerFrame);
    duplex.on("dtmf", this.onDtmf);
    duplex.on("markPlayed", this.onMarkPlayed);
    try {
      await this.connect(false);
    } catch (error) {
      this.shutdown();
      throw error;
    }
    this.statsTimer = setInterval(this.sendStats, this.options.statsIntervalMs);
    this.statsTimer.unref();
  }

  callState(state: "answered" | "hold" | "resumed" | "ending", atMs: number): void {
    this.sendControl({ type: "call_state", state, atMs });
  }

  /** DTMF learned outside RTP (SIP INFO) travels the same way as RFC 4733 digits. */
  reportDtmf(event: { digit: string; durationMs: number; atMs: number }): void {
    this.onDtmf(event);
  }

  reportTransferResult(result: { ok: boolean; target: string; sipStatus?: number; reason?: string }): void {
    this.sendControl({ type: "transfer_result", ...result });
  }

  /** Warm transfer: the human's leg is being dialled, rings, or answered (PROTOCOL.md §9). */
  reportTransferProgress(target: string, state: "dialing" | "ringing" | "consulting"): void {
    this.sendControl({ type: "transfer_progress", target, state, atMs: this.mediaTimeMs() });
  }

  /** The call is over on the SIP side: tell the Worker, then close the socket normally. */
  hangup(cause: HangupCause, by: "caller" | "bridge", sipStatus?: number): void {
    if (this.linkState === "closed") return;
    this.sendControl({ type: "hangup", cause, by, ...(sipStatus === undefined ? {} : { sipStatus }) });
    this.close();
  }

  /** Idempotent. Closes the socket with 1000 and stops reconnecting. */
  close(): void {
    if (this.linkState === "closed") return;
    const socket = this.socket;
    this.shutdown();
    if (socket && socket.readyState === WebSocket.OPEN) socket.close(CloseCode.normal, "call ended");
    else socket?.terminate();
  }

  private shutdown(): void {
    if (this.linkState === "closed") return;
    this.linkState = "closed";
    const { duplex } = this.options;
    duplex.off("callerFrame", this.onCallerFrame);
    duplex.off("dtmf", this.onDtmf);
    duplex.off("markPlayed", this.onMarkPlayed);
    clearTimeout(this.reconnectTimer);
    clearInterval(this.statsTimer);
    clearInterval(this.pingTimer);
    this.socket = undefined;
    this.safeEmit("closed");
  }

  // ---- connection management -------------------------------------------------------------------

  private async connect(isReconnect: boolean): Promise<void> {
    const { callId, secret, connectTimeoutMs, logger } = this.options;
    this.attempt++;
    const token = await signCallToken(secret, callId, { ttlSeconds: 300 });
    if (this.linkState === "closed") return;
    const socket = new WebSocket(mediaSocketUrl(this.options.url, callId), {
      headers: { Authorization: `Bearer ${token}` },
      handshakeTimeout: connectTimeoutMs,
      perMessageDeflate: false,
    });
    this.socket = socket;

    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(
        () => fail(new CloudLinkError("timeout", `no welcome within ${connectTimeoutMs} ms`)),
        connectTimeoutMs,
      );
      const fail = (error: CloudLinkError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.removeAllListeners();
        socket.on("error", () => {});
        socket.terminate();
        reject(error);
      };
      socket.on("unexpected-response", (_request, response) => {
        const status = response.statusCode ?? 0;
        response.resume();
        fail(
          status === 401 || status === 403
            ? new CloudLinkError("unauthorized", `Worker refused the call token (HTTP ${status})`)
            : new CloudLinkError("rejected", `Worker answered HTTP ${status} instead of upgrading`),
        );
      });
      socket.on("error", (error) => fail(new CloudLinkError("unreachable", error.message)));
      socket.on("close", (code, reason) =>
        fail(
          code === CloseCode.unauthorized
            ? new CloudLinkError("unauthorized", "Worker closed the socket as unauthorized")
            : new CloudLinkError("rejected", `closed before welcome (${code} ${reason.toString()})`),
        ),
      );
      socket.on("open", () => socket.send(JSON.stringify(this.helloMessage())));
      socket.on("message", (data, isBinary) => {
        if (isBinary) return; // audio before welcome is a Worker bug; ignore it
        const parsed = parseWorkerMessage(data.toString());
        if (!parsed.ok || parsed.message.type !== "welcome") {
          this.counters.malformedMessages++;
          logger.warn(
            { callId, error: parsed.ok ? `got ${parsed.message.type}` : parsed.error },
            "expected welcome",
          );
          return;
        }
        if (parsed.message.protocol !== PROTOCOL_VERSION) {
          fail(new CloudLinkError("rejected", `Worker speaks protocol ${parsed.message.protocol}`));
          return;
        }
        settled = true;
        clearTimeout(timer);
        socket.removeAllListeners();
        this.onWelcome(socket, parsed.message, isReconnect);
        resolve();
      });
    });
  }

  private helloMessage() {
    const { callId, metadata, bridgeId, bridgeVersion } = this.options;
    return {
      type: "hello" as const,
      protocol: PROTOCOL_VERSION,
      callId,
      call: metadata,
      bridge: { id: bridgeId, version: bridgeVersion },
      ...(this.resumeToken ? { resumeToken: this.resumeToken } : {}),
      ...(this.lastAgentSeq === undefined ? {} : { lastAgentSeq: this.lastAgentSeq }),
    };
  }

  private onWelcome(
    socket: WebSocket,
    welcome: Extract<WorkerMessage, { type: "welcome" }>,
    isReconnect: boolean,
  ) {
    const { callId, logger } = this.options;
    this.resumeToken = welcome.resumeToken;
    this.linkState = "connected";
    this.counters.connects++;
    if (isReconnect) this.counters.reconnects++;
    const outageMs = this.outageStartedAt === undefined ? 0 : performance.now() - this.outageStartedAt;
    this.outageStartedAt = undefined;
    logger.info(
      {
        callId,
        resumed: welcome.resumed,
        agent: welcome.agent,
        attempt: this.attempt,
        outageMs: Math.round(outageMs),
      },
      isReconnect ? "media socket resumed" : "media socket connected",
    );
    this.attempt = 0;
    socket.on("message", this.onMessage);
    socket.on("close", (code, reason) => this.onSocketClosed(socket, code, reason.toString()));
    socket.on("error", (error) => logger.warn({ callId, error: error.message }, "media socket error"));
    socket.on("pong", () => {
      this.missedPongs = 0;
    });
    this.missedPongs = 0;
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.checkLiveness(socket), this.options.pingIntervalMs);
    this.pingTimer.unref();

    // Replay what happened while we were away: control first (marks, DTMF), then buffered audio.
    for (const text of this.pendingControl.splice(0)) socket.send(text);
    this.discontinuity = isReconnect;
    this.ring.drain((frame) => this.sendCallerFrame(socket, frame.payload, frame.seq, frame.timeMs));
    this.safeEmit("connected", { resumed: welcome.resumed, agent: welcome.agent, reconnect: isReconnect });
  }

  private checkLiveness(socket: WebSocket): void {
    if (socket !== this.socket || socket.readyState !== WebSocket.OPEN) return;
    if (++this.missedPongs > 2) {
      this.options.logger.warn({ callId: this.options.callId }, "media socket missed pongs; reconnecting");
      socket.terminate();
      return;
    }
    socket.ping();
  }

  private onSocketClosed(socket: WebSocket, code: number, reason: string): void {
    if (socket !== this.socket || this.linkState === "closed") return;
    const { callId, logger } = this.options;
    clearInterval(this.pingTimer);
    this.safeEmit("disconnected", { code, reason });
    if (code === CloseCode.protocolError) this.protocolErrorCloses++;
    const fatal: LostReason | undefined =
      code === CloseCode.unauthorized
        ? "unauthorized"
        : code === CloseCode.callEnded
          ? "call-ended"
          : code === CloseCode.superseded
            ? "superseded"
            : this.protocolErrorCloses >= MAX_PROTOCOL_ERROR_CLOSES
              ? "protocol-error"
              : undefined;
    if (fatal) {
      logger.warn({ callId, code, reason }, `media socket closed for good: ${fatal}`);
      this.shutdown();
      this.safeEmit("lost", fatal);
      return;
    }
    logger.warn({ callId, code, reason }, "media socket dropped; reconnecting");
    this.linkState = "reconnecting";
    this.outageStartedAt = performance.now();
    this.scheduleReconnect(0);
  }

  private scheduleReconnect(attemptIndex: number): void {
    const delays = this.reconnectDelaysMs;
    const delay = delays[Math.min(attemptIndex, delays.length - 1)] ?? 1000;
    this.reconnectTimer = setTimeout(() => {
      if (this.linkState !== "reconnecting") return;
      this.connect(true).catch((error: CloudLinkError) => {
        if (this.linkState !== "reconnecting") return;
        const downMs = performance.now() - (this.outageStartedAt ?? performance.now());
        if (error.reason === "unauthorized" || downMs >= this.options.maxOutageMs) {
          this.options.logger.error(
            { callId: this.options.callId, reason: error.reason, downMs: Math.round(downMs) },
            `media socket lost: ${error.message}`,
          );
          this.shutdown();
          this.safeEmit("lost", error.reason === "unauthorized" ? "unauthorized" : "outage");
          return;
        }
        this.scheduleReconnect(attemptIndex + 1);
      });
    }, delay);
  }

  // ---- hot path ---------------------------------------------------------------------------------

  private readonly onCallerFrame = (frame: Uint8Array, seq: number, timeMs: number): void => {
    const socket = this.socket;
    if (this.linkState === "connected" && socket && socket.readyState === WebSocket.OPEN) {
      this.sendCallerFrame(socket, frame, seq, timeMs);
    } else if (this.linkState !== "closed") {
      if (this.ring.size === this.ring.capacity) this.counters.framesDroppedWhileDown++;
      this.ring.push(frame, seq, timeMs);
      this.counters.framesBuffered++;
    }
  };

  private sendCallerFrame(socket: WebSocket, payload: Uint8Array, seq: number, timeMs: number): void {
    const flags = this.discontinuity ? FrameFlag.discontinuity : 0;
    this.discontinuity = false;
    const message = encodeAudioFrame(
      { kind: FrameKind.callerAudio, codec: this.options.duplex.codec, flags, seq, timeMs },
      payload,
      this.sendBuffer,
    );
    socket.send(message, { binary: true });
    this.counters.framesSent++;
  }

  private readonly onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
    try {
      if (isBinary) this.onAgentAudio(data);
      else this.onControl(data.toString());
    } catch (error) {
      // A listener bug must not take the call down with it.
      this.counters.malformedMessages++;
      this.options.logger.error(
        { callId: this.options.callId, error: (error as Error).message },
        "message handler failed",
      );
    }
  };

  private onAgentAudio(data: WebSocket.RawData): void {
    const bytes = Array.isArray(data)
      ? Buffer.concat(data)
      : data instanceof ArrayBuffer
        ? new Uint8Array(data)
        : data;
    const decoded = decodeAudioFrame(bytes);
    if (!decoded.ok || decoded.frame.kind !== FrameKind.agentAudio) {
      this.counters.malformedMessages++;
      this.options.logger.warn(
        {
          callId: this.options.callId,
          error: decoded.ok ? "caller audio sent to the bridge" : decoded.error,
        },
        "dropped a malformed audio frame",
      );
      return;
    }
    const { frame } = decoded;
    this.counters.framesReceived++;
    this.lastAgentSeq = frame.seq;
    const codec: G711Codec = this.options.duplex.codec;
    if (frame.codec === codec) {
      this.options.duplex.enqueueAgentAudio(frame.payload);
      return;
    }
    // The Worker should synthesize in the call's codec; if it did not, converting is cheap and
    // better than silence.
    for (let offset = 0; offset < frame.payload.length; offset += this.transcodeBuffer.length) {
      const chunk = frame.payload.subarray(offset, offset + this.transcodeBuffer.length);
      const converted = transcodeG711(frame.codec, codec, chunk, this.transcodeBuffer);
      this.options.duplex.enqueueAgentAudio(converted.slice());
    }
    this.counters.agentBytesTranscoded += frame.payload.length;
  }

  private onControl(text: string): void {
    const { callId, duplex, logger } = this.options;
    const parsed = parseWorkerMessage(text);
    if (!parsed.ok) {
      // Our own Worker sent it, so this is a bug to fix, not an attack: log, count, keep the call.
      this.counters.malformedMessages++;
      logger.error({ callId, error: parsed.error }, "dropped a malformed control message");
      return;
    }
    const message = parsed.message;
    switch (message.type) {
      case "clear": {
        const { discardedMs } = duplex.clearAgentAudio();
        this.sendControl({ type: "cleared", discardedMs, atMs: this.mediaTimeMs() });
        break;
      }
      case "mark":
        duplex.mark(message.name);
        break;
      case "send_dtmf":
        duplex.sendDtmf(message.digits).catch((error: Error) => {
          logger.warn({ callId, error: error.message }, "sending DTMF failed");
        });
        break;
      case "hangup":
        this.safeEmit("hangupRequested", message.cause, message.reason);
        break;
      case "transfer":
        this.safeEmit("transferRequested", message.target, message.mode, message.summary);
        break;
      case "transfer_join":
        this.safeEmit("transferJoinRequested");
        break;
      case "transfer_cancel":
        this.safeEmit("transferCancelRequested");
        break;
      case "turn_timing":
        this.safeEmit("turnTiming", message);
        break;
      case "error":
        logger.warn({ callId, code: message.code, error: message.message }, "Worker reported an error");
        break;
      case "welcome":
        this.counters.malformedMessages++;
        logger.warn({ callId }, "unexpected second welcome");
        break;
      default: {
        // A new Worker message type must be handled here: the compiler says so.
        const unhandled: never = message;
        logger.warn({ callId, message: unhandled }, "unhandled control message");
      }
    }
  }

  // ---- control out ------------------------------------------------------------------------------

  private readonly onDtmf = (event: { digit: string; durationMs: number; atMs: number }): void => {
    this.sendControl({ type: "dtmf", digit: event.digit, durationMs: event.durationMs, atMs: event.atMs });
  };

  private readonly onMarkPlayed = (name: string, atMs: number): void => {
    this.sendControl({ type: "mark_played", name, atMs });
  };

  private readonly sendStats = (): void => {
    const stats = this.options.duplex.stats();
    this.sendControl({
      type: "stats",
      atMs: this.mediaTimeMs(),
      rtp: {
        packetsReceived: stats.packetsReceived,
        packetsLost: stats.packetsLost,
        lossPercent: stats.lossPercent,
        jitterMs: stats.jitterMs,
        late: stats.late,
        reordered: stats.reordered,
        concealed: stats.concealed,
        ...(stats.roundTripMs === undefined ? {} : { roundTripMs: stats.roundTripMs }),
      },
      playout: { queuedMs: stats.playoutQueuedMs, underruns: stats.playoutUnderruns },
    });
  };

  private readonly startedAt = performance.now();

  private mediaTimeMs(): number {
    return Math.round(performance.now() - this.startedAt);
  }

  /** Sends now when connected; otherwise keeps the message (bounded) for after the reconnect. */
  private sendControl(message: object): void {
    const text = JSON.stringify(message);
    const socket = this.socket;
    if (this.linkState === "connected" && socket?.readyState === WebSocket.OPEN) {
      socket.send(text);
    } else if (this.linkState !== "closed") {
      if (this.pendingControl.length >= MAX_PENDING_CONTROL) this.pendingControl.shift();
      this.pendingControl.push(text);
    }
  }

  private safeEmit<E extends keyof CloudLinkEvents>(event: E, ...args: CloudLinkEvents[E]): void {
    try {
      // EventEmitter cannot relate a generic event name to its argument tuple; the signature above does.
      (this.emit as (event: E, ...args: CloudLinkEvents[E]) => boolean)(event, ...args);
    } catch (error) {
      this.options.logger.error(
        { callId: this.options.callId, event, error: (error as Error).message },
        "listener failed",
      );
    }
  }
}
