/**
 * CallSession: the Durable Object that runs one call (binding CALL, named by our call id). A thin
 * adapter between the bridge's media socket (Hibernation API), SQLite storage, the alarm, and the
 * Conversation core, which does the actual voice-agent work.
 *
 * Socket rules: the newest socket for the call wins (the previous one is closed with 4409); every text
 * frame is validated with parseBridgeMessage and every binary frame with decodeAudioFrame; anything
 * malformed closes that socket with 4400 and is logged; a handler never throws.
 */

import { DurableObject } from "cloudflare:workers";
import {
  type BridgeMessage,
  BYTES_PER_FRAME,
  type CallMetadata,
  CloseCode,
  decodeAudioFrame,
  encodeAudioFrame,
  FRAME_HEADER_BYTES,
  FrameKind,
  type G711Codec,
  type HangupCause,
  PROTOCOL_VERSION,
  parseBridgeMessage,
  type WorkerMessage,
} from "@patchbay/shared";
import { agentCatalog } from "../agents/catalog";
import type { AgentDefinition } from "../agents/schema";
import { personalizeAgent } from "../agents/variables";
import { systemClock } from "../pipeline/clock";
import { type CallAgent, Conversation, type ConversationHost, type LogLevel } from "../pipeline/conversation";
import { RealtimeConversation } from "../pipeline/realtime";
import { postSignedJson, type WebhookDeps } from "../pipeline/tools";
import {
  buildProviders,
  buildRealtimeProvider,
  registerVendorProviders,
  secretByName,
} from "../providers/index";
import { CallStore, callReport } from "./store";

/** What a socket carries across hibernation (well under the 2 KB budget). */
interface SocketAttachment {
  callId: string;
  generation: number;
  hello: boolean;
  codec?: G711Codec;
}

/** Persist the last-audio time at most this often (it only feeds the no-audio watchdog after a restart). */
const LAST_AUDIO_PERSIST_MS = 5_000;
/** Largest agent audio message: the bridge re-frames it; bigger TTS chunks are split. */
const MAX_AGENT_AUDIO_PER_MESSAGE = 50 * BYTES_PER_FRAME;
/** WebSocket close reasons are limited to 123 bytes. */
const MAX_CLOSE_REASON = 120;

export const INTERNAL_CALL_ID_HEADER = "x-patchbay-call-id";

export class CallSession extends DurableObject<Env> {
  readonly #store: CallStore;
  #conversation?: CallAgent;
  #agent?: AgentDefinition;
  #lastAudioAt?: number;
  #lastAudioPersistedAt = 0;
  #agentBytesSent = 0;
  #frameBuffer = new Uint8Array(FRAME_HEADER_BYTES + MAX_AGENT_AUDIO_PER_MESSAGE);
  #ending = false;
  #callId?: string;
  /** Cached socket generation and current socket: read per frame, so not from SQLite every time. */
  #generationCache?: number;
  #socketCache?: WebSocket;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#store = new CallStore(ctx.storage.sql);
    // Application-level keepalive answered without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/internal/report") {
      const report = callReport(this.#store);
      return report ? Response.json(report) : Response.json({ error: "unknown-call" }, { status: 404 });
    }
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return Response.json({ error: "expected a websocket upgrade" }, { status: 426 });
    }
    const callId = request.headers.get(INTERNAL_CALL_ID_HEADER);
    if (!callId) return Response.json({ error: "missing call id" }, { status: 400 });
    const call = this.#store.load();
    if (call?.phase === "ended") return Response.json({ error: "call-ended" }, { status: 410 });

    const generation = this.#store.nextSocketGeneration();
    this.#generationCache = generation;
    this.#socketCache = undefined;
    for (const old of this.ctx.getWebSockets()) {
      this.#close(old, CloseCode.superseded, "superseded by a newer connection");
    }
    const pair = new WebSocketPair();
    const server = pair[1];
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({ callId, generation, hello: false } satisfies SocketAttachment);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    try {
      const attachment = this.#attachment(ws);
      if (!attachment || attachment.generation !== this.#generation()) {
        this.#close(ws, CloseCode.superseded, "superseded by a newer connection");
        return;
      }
      if (typeof message === "string") await this.#onText(ws, attachment, message);
      else await this.#onBinary(ws, attachment, message);
    } catch (error) {
      this.#log("error", "handler failed", { error: describe(error) });
      this.#send(ws, { type: "error", code: "internal", message: "internal error" });
      this.#close(ws, CloseCode.internal, "internal error");
    }
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    const attachment = this.#attachment(ws);
    this.#log("info", "socket closed", { code, reason, generation: attachment?.generation });
    // The bridge reconnects after a drop; the call (and its alarm watchdog) carries on meanwhile.
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    this.#log("warn", "socket error", {
      error: describe(error),
      generation: this.#attachment(ws)?.generation,
    });
  }

  override async alarm(): Promise<void> {
    const call = this.#store.load();
    if (!call || call.phase === "ended") return;
    const agent = this.#agentFor(call.agentId, call.metadata);
    const now = Date.now();
    const maxEndAt = call.startedAt + agent.limits.maxDurationSeconds * 1000;
    if (now >= maxEndAt) {
      await this.#endCall("max-duration", "the call reached its maximum duration", { tellBridge: true });
      return;
    }
    if (call.holdSince !== undefined) {
      // On hold the PBX may send no audio at all: only the duration limit applies until resumed.
      await this.ctx.storage.setAlarm(maxEndAt);
      return;
    }
    const noAudioMs = agent.limits.noAudioTimeoutSeconds * 1000;
    const lastAudio = this.#lastAudioAt ?? call.lastAudioAt ?? call.startedAt;
    if (now - lastAudio >= noAudioMs) {
      await this.#endCall("no-audio", `no caller audio for ${Math.round((now - lastAudio) / 1000)} s`, {
        tellBridge: true,
      });
      return;
    }
    await this.ctx.storage.setAlarm(Math.min(maxEndAt, lastAudio + noAudioMs));
  }

  // ---- Text frames ------------------------------------------------------------------------------

  async #onText(ws: WebSocket, attachment: SocketAttachment, text: string): Promise<void> {
    const parsed = parseBridgeMessage(text);
    if (!parsed.ok) {
      this.#protocolError(ws, "malformed-message", parsed.error);
      return;
    }
    const message = parsed.message;
    if (message.type === "hello") {
      await this.#onHello(ws, attachment, message);
      return;
    }
    if (!attachment.hello) {
      this.#protocolError(ws, "malformed-message", `${message.type} before hello`);
      return;
    }
    const conversation = await this.#ensureConversation(ws);
    switch (message.type) {
      case "dtmf":
        conversation?.callerDtmf(message.digit);
        return;
      case "mark_played":
        conversation?.markPlayed(message.name);
        return;
      case "transfer_result":
        conversation?.transferResult(message);
        return;
      case "transfer_progress":
        conversation?.transferProgress(message);
        return;
      case "hangup":
        await this.#endCall(message.cause, `hung up by ${message.by}`, { tellBridge: false });
        return;
      case "call_state":
        await this.#onCallState(message.state);
        return;
      case "cleared":
      case "stats":
        this.#log("debug", message.type, { message });
        return;
    }
  }

  async #onHello(
    ws: WebSocket,
    attachment: SocketAttachment,
    hello: Extract<BridgeMessage, { type: "hello" }>,
  ): Promise<void> {
    if (attachment.hello) {
      this.#protocolError(ws, "malformed-message", "second hello on one socket");
      return;
    }
    if (hello.protocol !== PROTOCOL_VERSION) {
      this.#send(ws, {
        type: "error",
        code: "protocol-version",
        message: `protocol ${hello.protocol} is not supported; this Worker speaks ${PROTOCOL_VERSION}`,
      });
      this.#close(ws, CloseCode.protocolError, "protocol-version");
      return;
    }
    if (hello.callId !== attachment.callId) {
      this.#protocolError(ws, "malformed-message", "hello.callId does not match the socket's call");
      return;
    }
    let call = this.#store.load();
    if (call?.phase === "ended") {
      this.#send(ws, { type: "error", code: "call-ended", message: "this call has ended" });
      this.#close(ws, CloseCode.callEnded, "call-ended");
      return;
    }
    let resumed = false;
    if (call) {
      if (hello.resumeToken !== undefined && hello.resumeToken !== call.resumeToken) {
        this.#send(ws, { type: "error", code: "unauthorized", message: "resume token does not match" });
        this.#close(ws, CloseCode.unauthorized, "unauthorized");
        return;
      }
      resumed = true;
      this.#store.countReconnect();
    } else {
      const agent = this.#agentFor(undefined, hello.call);
      this.#store.create({
        callId: hello.callId,
        agentId: agent.id,
        metadata: hello.call,
        resumeToken: randomToken(),
        startedAt: Date.now(),
      });
      call = this.#store.load();
      if (!call) throw new Error("call row missing after insert");
    }
    const next: SocketAttachment = { ...attachment, hello: true, codec: hello.call.codec };
    ws.serializeAttachment(next);
    this.#lastAudioAt = Date.now();
    this.#send(ws, {
      type: "welcome",
      protocol: PROTOCOL_VERSION,
      callId: call.callId,
      resumeToken: call.resumeToken,
      resumed,
      agent: call.agentId,
    });
    this.#log("info", resumed ? "call resumed" : "call started", {
      agent: call.agentId,
      connections: call.connections,
    });
    await this.#scheduleWatchdog();
    if (this.#conversation) this.#conversation.onReconnected();
    else await this.#ensureConversation(ws, { greet: !resumed });
  }

  /**
   * Hold pauses the no-audio watchdog (a caller on hold longer than noAudioTimeoutSeconds must not be
   * hung up); resume restarts it from now. Persisted, so a restart during the hold keeps it paused.
   */
  async #onCallState(state: Extract<BridgeMessage, { type: "call_state" }>["state"]): Promise<void> {
    this.#log("info", "call state", { state });
    const onHold = this.#store.holdSince() !== undefined;
    if (state === "hold" && !onHold) {
      this.#store.setHold(Date.now());
      await this.#scheduleWatchdog();
    } else if (state === "resumed" && onHold) {
      const now = Date.now();
      this.#store.setHold(undefined);
      this.#lastAudioAt = now;
      this.#lastAudioPersistedAt = now;
      this.#store.setLastAudio(now);
      await this.#scheduleWatchdog();
    }
  }

  // ---- Binary frames ----------------------------------------------------------------------------

  async #onBinary(ws: WebSocket, attachment: SocketAttachment, data: ArrayBuffer): Promise<void> {
    const decoded = decodeAudioFrame(data);
    if (!decoded.ok) {
      this.#protocolError(ws, "malformed-message", decoded.error);
      return;
    }
    if (decoded.frame.kind !== FrameKind.callerAudio) {
      this.#protocolError(ws, "malformed-message", "the bridge may only send caller audio frames");
      return;
    }
    if (!attachment.hello) {
      this.#protocolError(ws, "malformed-message", "audio before hello");
      return;
    }
    const now = Date.now();
    this.#lastAudioAt = now;
    if (now - this.#lastAudioPersistedAt >= LAST_AUDIO_PERSIST_MS) {
      this.#lastAudioPersistedAt = now;
      this.#store.setLastAudio(now);
    }
    const conversation = this.#conversation ?? (await this.#ensureConversation(ws));
    conversation?.pushCallerAudio(decoded.frame.payload);
  }

  // ---- The conversation -------------------------------------------------------------------------

  #starting?: Promise<CallAgent | undefined>;

  /** The running conversation, (re)built after a restart from storage. */
  #ensureConversation(ws: WebSocket, options: { greet?: boolean } = {}): Promise<CallAgent | undefined> {
    if (this.#conversation) return Promise.resolve(this.#conversation);
    this.#starting ??= this.#startConversation(ws, options.greet ?? false).finally(() => {
      this.#starting = undefined;
    });
    return this.#starting;
  }

  async #startConversation(ws: WebSocket, greet: boolean): Promise<CallAgent | undefined> {
    const call = this.#store.load();
    if (!call || call.phase === "ended" || this.#ending) return undefined;
    // The call's variables fill the agent's placeholders and context (outbound calls set them).
    const { agent, ignored } = personalizeAgent(
      this.#agentFor(call.agentId, call.metadata),
      call.metadata.variables,
    );
    if (ignored.length > 0) this.#log("warn", "call variables ignored", { ignored });
    const codec = this.#attachment(ws)?.codec ?? call.metadata.codec;
    const env = this.env;
    const common = {
      callId: call.callId,
      agent,
      format: { codec, sampleRate: 8000 as const },
      history: this.#store.history(),
      greet,
    };
    let conversation: CallAgent;
    try {
      registerVendorProviders();
      conversation =
        agent.mode === "realtime"
          ? new RealtimeConversation({ ...common, provider: buildRealtimeProvider(agent, env) }, this.#host())
          : new Conversation({ ...common, providers: buildProviders(agent, env) }, this.#host());
    } catch (error) {
      await this.#failCall(`cannot build providers: ${describe(error)}`);
      return undefined;
    }
    this.#conversation = conversation;
    try {
      await conversation.start();
    } catch (error) {
      await this.#failCall(`cannot connect providers: ${describe(error)}`);
      return undefined;
    }
    return this.#conversation;
  }

  #host(): ConversationHost {
    const env = this.env;
    const webhook: WebhookDeps = {
      fetch: (input, init) => fetch(input, init),
      clock: systemClock,
      unixSeconds: () => Math.floor(Date.now() / 1000),
      secret: (name) => secretByName(env, name),
    };
    return {
      output: {
        sendAudio: (audio) => this.#sendAgentAudio(audio),
        send: (message) => {
          const ws = this.#currentSocket();
          if (ws) this.#send(ws, message);
        },
      },
      store: this.#store,
      clock: systemClock,
      webhook,
      log: (level, message, fields) => this.#log(level, message, fields),
      onCallEnd: (cause, reason) => {
        // end_call already sent its hangup; a provider failure still has to tell the bridge.
        this.ctx.waitUntil(this.#endCall(cause, reason, { tellBridge: cause === "error" }));
      },
    };
  }

  #sendAgentAudio(audio: Uint8Array): void {
    const ws = this.#currentSocket();
    const call = this.#callStartedAt();
    const codec = ws ? this.#attachment(ws)?.codec : undefined;
    if (!ws || !codec) return;
    for (let offset = 0; offset < audio.length; offset += MAX_AGENT_AUDIO_PER_MESSAGE) {
      const chunk = audio.subarray(offset, Math.min(audio.length, offset + MAX_AGENT_AUDIO_PER_MESSAGE));
      const frame = encodeAudioFrame(
        {
          kind: FrameKind.agentAudio,
          codec,
          flags: 0,
          seq: Math.floor(this.#agentBytesSent / BYTES_PER_FRAME),
          timeMs: Date.now() - call,
        },
        chunk,
        this.#frameBuffer,
      );
      this.#agentBytesSent += chunk.length;
      try {
        ws.send(frame);
      } catch (error) {
        this.#log("warn", "agent audio send failed", { error: describe(error) });
        return;
      }
    }
  }

  #startedAtCache?: number;

  #callStartedAt(): number {
    this.#startedAtCache ??= this.#store.load()?.startedAt ?? Date.now();
    return this.#startedAtCache;
  }

  // ---- Ending -----------------------------------------------------------------------------------

  async #failCall(reason: string): Promise<void> {
    this.#log("error", "call failed", { reason });
    const ws = this.#currentSocket();
    if (ws) this.#send(ws, { type: "error", code: "provider-failure", message: reason.slice(0, 1024) });
    await this.#endCall("error", reason, { tellBridge: true });
  }

  async #endCall(
    cause: HangupCause,
    reason: string | undefined,
    options: { tellBridge: boolean },
  ): Promise<void> {
    if (this.#ending) return;
    const call = this.#store.load();
    if (!call || call.phase === "ended") return;
    this.#ending = true;
    this.#store.markEnded(cause, reason, Date.now());
    this.#log("info", "call ended", { cause, reason });
    const ws = this.#currentSocket();
    if (ws && options.tellBridge) {
      this.#send(ws, { type: "hangup", cause, ...(reason ? { reason: reason.slice(0, 256) } : {}) });
    }
    const conversation = this.#conversation;
    this.#conversation = undefined;
    await conversation?.close();
    await this.ctx.storage.deleteAlarm();
    for (const socket of this.ctx.getWebSockets()) this.#close(socket, 1000, "call-ended");
    const agent = this.#agentFor(call.agentId, call.metadata);
    if (agent.callEndedWebhook) this.ctx.waitUntil(this.#sendCallEndedWebhook(agent));
  }

  async #sendCallEndedWebhook(agent: AgentDefinition): Promise<void> {
    const hook = agent.callEndedWebhook;
    const report = callReport(this.#store);
    if (!hook || !report) return;
    const env = this.env;
    try {
      const response = await postSignedJson(
        hook.url,
        { event: "call.ended", ...report },
        { timeoutMs: 10_000, signingSecret: hook.signingSecret },
        {
          fetch: (input, init) => fetch(input, init),
          clock: systemClock,
          unixSeconds: () => Math.floor(Date.now() / 1000),
          secret: (name) => secretByName(env, name),
        },
      );
      this.#log(response.ok ? "info" : "warn", "call-ended webhook delivered", { status: response.status });
    } catch (error) {
      this.#log("warn", "call-ended webhook failed", { error: describe(error) });
    }
  }

  async #scheduleWatchdog(): Promise<void> {
    const call = this.#store.load();
    if (!call) return;
    const agent = this.#agentFor(call.agentId, call.metadata);
    const maxEndAt = call.startedAt + agent.limits.maxDurationSeconds * 1000;
    if (call.holdSince !== undefined) {
      await this.ctx.storage.setAlarm(maxEndAt);
      return;
    }
    const noAudioAt = Date.now() + agent.limits.noAudioTimeoutSeconds * 1000;
    await this.ctx.storage.setAlarm(Math.min(maxEndAt, noAudioAt));
  }

  // ---- Helpers ----------------------------------------------------------------------------------

  #agentFor(agentId: string | undefined, metadata: CallMetadata): AgentDefinition {
    if (this.#agent && (!agentId || this.#agent.id === agentId)) return this.#agent;
    const catalog = agentCatalog();
    const agent =
      (agentId ? catalog.get(agentId) : undefined) ?? catalog.select(metadata, this.env.DEFAULT_AGENT);
    this.#agent = agent;
    return agent;
  }

  #generation(): number {
    this.#generationCache ??= this.#store.socketGeneration();
    return this.#generationCache;
  }

  #currentSocket(): WebSocket | undefined {
    const cached = this.#socketCache;
    if (cached && cached.readyState === WebSocket.OPEN) return cached;
    this.#socketCache = undefined;
    const generation = this.#generation();
    for (const ws of this.ctx.getWebSockets()) {
      const attachment = this.#attachment(ws);
      if (attachment?.generation === generation && attachment.hello && ws.readyState === WebSocket.OPEN) {
        this.#socketCache = ws;
        return ws;
      }
    }
    return undefined;
  }

  #attachment(ws: WebSocket): SocketAttachment | undefined {
    const value: unknown = ws.deserializeAttachment();
    if (typeof value !== "object" || value === null) return undefined;
    return value as SocketAttachment;
  }

  #send(ws: WebSocket, message: WorkerMessage): void {
    try {
      ws.send(JSON.stringify(message));
    } catch (error) {
      this.#log("warn", "send failed", { type: message.type, error: describe(error) });
    }
  }

  #protocolError(ws: WebSocket, code: "malformed-message", detail: string): void {
    this.#log("warn", "protocol error", { detail: detail.slice(0, 200) });
    this.#send(ws, { type: "error", code, message: detail.slice(0, 1024) });
    this.#close(ws, CloseCode.protocolError, `${code}: ${detail}`);
  }

  #close(ws: WebSocket, code: number, reason: string): void {
    try {
      ws.close(code, truncateUtf8(reason, MAX_CLOSE_REASON));
    } catch {
      // Already closed or closing: nothing left to do.
    }
  }

  #log(level: LogLevel, message: string, fields: Record<string, unknown> = {}): void {
    this.#callId ??= this.#store.load()?.callId;
    const line = JSON.stringify({ level, msg: message, callId: this.#callId, ...fields });
    if (level === "error") console.error(line);
    else if (level === "warn") console.warn(line);
    else if (level === "info") console.log(line);
  }
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function truncateUtf8(text: string, maxBytes: number): string {
  const encoder = new TextEncoder();
  if (encoder.encode(text).length <= maxBytes) return text;
  let result = text;
  while (encoder.encode(result).length > maxBytes) result = result.slice(0, -1);
  return result;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
