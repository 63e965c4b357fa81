/**
 * BridgeRegistry: ONE Durable Object (idFromName("registry")) that holds every bridge's control socket.
 *
 * Bridges: each connected bridge is a hibernatable WebSocket whose attachment carries what we know of
 * it (id, version, capacity, health, last heard). Nothing about bridges lives elsewhere, so a
 * hibernation wake-up rebuilds the picture from `getWebSockets()` alone. "ping" is auto-answered
 * "pong" without waking the object; `getWebSocketAutoResponseTimestamp` tells us when it last pinged.
 * A bridge whose socket closed is gone at once; one that stopped pinging is out of rotation as soon as
 * its heartbeat timeout passes (checked at every pick, no timer needed) and its socket is closed.
 *
 * Calls: outbound calls live in SQLite (`calls`), keyed by call id with a UNIQUE idempotency key, so a
 * retried POST returns the same call and never originates twice. An originate is bound to the bridge
 * it was sent to until that bridge acknowledges it: if the socket drops first, it is re-sent when that
 * bridge registers again (the bridge dedupes by request id); it is never re-sent to ANOTHER bridge,
 * because the first one may have dialled already (no duplicate calls beats no lost calls; after the
 * grace period it fails as `bridge-lost`). A refusal for capacity reasons puts it back in the queue.
 */

import { DurableObject } from "cloudflare:workers";
import {
  type BridgeCapacity,
  type BridgeHealth,
  CONTROL_PROTOCOL_VERSION,
  ControlCloseCode,
  type OriginateRequest,
  type OutboundCallState,
  type OutboundFailure,
  parseBridgeControlMessage,
  type WorkerControlMessage,
} from "@patchbay/shared/protocol";
import { type BridgeView, chooseBridge, freeCapacity, isLive } from "./selection";

export interface ControlEnv {
  BRIDGE_REGISTRY: DurableObjectNamespace<BridgeRegistry>;
  BRIDGE_SECRET?: string;
  API_TOKEN?: string;
  /** Optional override (tests): how often bridges ping; the timeout is 3 intervals. */
  CONTROL_HEARTBEAT_INTERVAL_MS?: string;
  /** Optional global cap on outbound calls in progress across all bridges (dispatched, ringing, answered). */
  OUTBOUND_MAX_CONCURRENT_CALLS?: string;
  /**
   * Optional global cap on new outbound calls per second across all bridges (may be fractional: 0.5 =
   * one call every 2 s). Calls over it wait in the queue, oldest first; nothing is refused for it.
   */
  OUTBOUND_MAX_CALLS_PER_SECOND?: string;
}

/** Header the Worker sets when it forwards an authenticated bridge's upgrade. */
export const INTERNAL_BRIDGE_ID_HEADER = "x-patchbay-bridge-id";
export const REGISTRY_NAME = "registry";

const DEFAULT_HEARTBEAT_INTERVAL_MS = 2_000;
/** Queued calls no bridge could take fail after this. */
const QUEUE_TIMEOUT_MS = 60_000;
/** An unacknowledged originate is re-sent to its (live) bridge after this. */
const ACK_RESEND_MS = 5_000;
/** An unacknowledged originate whose bridge stays away this long fails as bridge-lost. */
const BRIDGE_GRACE_MS = 30_000;
/** While calls are in progress, how often to look for ones whose bridge vanished. */
const IN_PROGRESS_SWEEP_MS = 30_000;
/** Refusals for capacity reasons are retried on other bridges this many times. */
const MAX_DISPATCH_ATTEMPTS = 3;
const RETENTION_MS = 7 * 24 * 3600_000;

interface SocketAttachment {
  bridgeId: string;
  registered: boolean;
  version: string;
  health: BridgeHealth;
  capacity: BridgeCapacity;
  inflight: number;
  connectedAt: number;
  lastMessageAt: number;
  lastDispatchAt: number;
}

export interface CallProgress {
  callId: string;
  status: OutboundCallState;
  to: string;
  bridgeId?: string;
  sipStatus?: number;
  reason?: string;
  createdAt: string;
  updatedAt: string;
}

export type OriginateOutcome =
  | { ok: true; callId: string; status: OutboundCallState; duplicate: boolean }
  | { ok: false; error: "idempotency-key-reused" };

export interface BridgeSummary {
  bridgeId: string;
  version: string;
  health: BridgeHealth;
  capacity: BridgeCapacity;
  free: number;
  live: boolean;
  lastSeenAt: string;
}

interface CallRow {
  call_id: string;
  idem_key: string;
  request: string;
  state: OutboundCallState;
  bridge_id: string | null;
  acked: number;
  attempts: number;
  sip_status: number | null;
  reason: string | null;
  created_at: number;
  updated_at: number;
  dispatched_at: number | null;
  [key: string]: SqlStorageValue;
}

/**
 * The global calls-per-second cap as "at most `perWindow` dispatches in any `windowMs`": 5/s → 5 per
 * 1000 ms; 0.5/s → 1 per 2000 ms; 2.5/s → 2 per 1000 ms (rounded down, never above the rate).
 * Kept in memory: after the registry is evicted the window starts empty (at most one extra burst).
 */
interface DispatchRate {
  windowMs: number;
  perWindow: number;
}

export function dispatchRate(callsPerSecond: number): DispatchRate | undefined {
  if (!Number.isFinite(callsPerSecond) || callsPerSecond <= 0) return undefined;
  const windowMs = Math.max(1000, Math.ceil(1000 / callsPerSecond));
  return { windowMs, perWindow: Math.max(1, Math.floor((callsPerSecond * windowMs) / 1000)) };
}

const TERMINAL = new Set<OutboundCallState>(["completed", "failed"]);
/** Refusals that say "not now, not here" rather than "never". */
const REQUEUE_REASONS = new Set<OutboundFailure>(["concurrency-limit", "rate-limited", "bridge-draining"]);
const STATE_ORDER: Record<OutboundCallState, number> = {
  queued: 0,
  ringing: 1,
  answered: 2,
  completed: 3,
  failed: 3,
};

export class BridgeRegistry extends DurableObject<ControlEnv> {
  readonly #sql: SqlStorage;
  readonly #heartbeatIntervalMs: number;
  readonly #globalLimit: number;
  readonly #rate: DispatchRate | undefined;
  /** When the last calls were handed to a bridge (first dispatches only), for the global CPS cap. */
  #recentDispatches: number[] = [];
  #arming: Promise<void> = Promise.resolve();

  constructor(ctx: DurableObjectState, env: ControlEnv) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    const configured = Number(env.CONTROL_HEARTBEAT_INTERVAL_MS);
    this.#heartbeatIntervalMs =
      Number.isFinite(configured) && configured > 0 ? configured : DEFAULT_HEARTBEAT_INTERVAL_MS;
    const limit = Number(env.OUTBOUND_MAX_CONCURRENT_CALLS);
    this.#globalLimit = Number.isFinite(limit) && limit > 0 ? limit : Number.POSITIVE_INFINITY;
    this.#rate = dispatchRate(Number(env.OUTBOUND_MAX_CALLS_PER_SECOND));
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS calls (
      call_id TEXT PRIMARY KEY,
      idem_key TEXT NOT NULL UNIQUE,
      request TEXT NOT NULL,
      state TEXT NOT NULL,
      bridge_id TEXT,
      acked INTEGER NOT NULL DEFAULT 0,
      attempts INTEGER NOT NULL DEFAULT 0,
      sip_status INTEGER,
      reason TEXT,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      dispatched_at INTEGER
    )`);
    this.#sql.exec("CREATE INDEX IF NOT EXISTS calls_pending ON calls (state, bridge_id, acked)");
  }

  get heartbeatTimeoutMs(): number {
    return this.#heartbeatIntervalMs * 3;
  }

  // ---- the bridge's socket ----------------------------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return Response.json({ error: "upgrade-required" }, { status: 426 });
    }
    const bridgeId = request.headers.get(INTERNAL_BRIDGE_ID_HEADER);
    if (!bridgeId) return Response.json({ error: "missing bridge id" }, { status: 400 });
    const pair = new WebSocketPair();
    const server = pair[1];
    this.ctx.acceptWebSocket(server, [`bridge:${bridgeId}`]);
    const now = Date.now();
    server.serializeAttachment({
      bridgeId,
      registered: false,
      version: "",
      health: "ok",
      capacity: { maxCalls: 0, activeCalls: 0 },
      inflight: 0,
      connectedAt: now,
      lastMessageAt: now,
      lastDispatchAt: 0,
    } satisfies SocketAttachment);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const attachment = this.#attachment(ws);
    if (!attachment) return;
    if (typeof message !== "string") {
      this.#closeSocket(ws, ControlCloseCode.protocolError, "binary frames are not part of this protocol");
      return;
    }
    const parsed = parseBridgeControlMessage(message);
    if (!parsed.ok) {
      this.#log("warn", "malformed control message", { bridgeId: attachment.bridgeId, error: parsed.error });
      this.#send(ws, { type: "error", code: "malformed-message", message: parsed.error.slice(0, 200) });
      return;
    }
    const now = Date.now();
    attachment.lastMessageAt = now;
    const msg = parsed.message;
    if (msg.type === "register") {
      this.#onRegister(ws, attachment, msg, now);
      return;
    }
    if (!attachment.registered) {
      this.#send(ws, { type: "error", code: "not-registered", message: "send register first" });
      ws.serializeAttachment(attachment);
      return;
    }
    switch (msg.type) {
      case "capacity":
        attachment.capacity = msg.capacity;
        if (msg.health) attachment.health = msg.health;
        ws.serializeAttachment(attachment);
        this.#dispatchQueued(now);
        break;
      case "originate_ack":
        this.#onAck(ws, attachment, msg, now);
        break;
      case "call_progress":
        ws.serializeAttachment(attachment);
        this.#onProgress(attachment.bridgeId, msg, now);
        break;
    }
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    const attachment = this.#attachment(ws);
    this.#log("info", "bridge socket closed", { bridgeId: attachment?.bridgeId, code, reason });
    // Its unacknowledged originates wait for it to come back (or fail after the grace period).
    if (this.#hasPendingWork()) await this.#armAlarm(ACK_RESEND_MS);
    else if (this.#hasCallsInProgress()) await this.#armAlarm(BRIDGE_GRACE_MS + 1_000);
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    this.#log("warn", "bridge socket error", {
      bridgeId: this.#attachment(ws)?.bridgeId,
      error: error instanceof Error ? error.message : String(error),
    });
  }

  #onRegister(
    ws: WebSocket,
    attachment: SocketAttachment,
    msg: {
      protocol: number;
      bridgeId: string;
      version: string;
      capacity: BridgeCapacity;
      health: BridgeHealth;
    },
    now: number,
  ): void {
    if (msg.protocol !== CONTROL_PROTOCOL_VERSION) {
      this.#send(ws, {
        type: "error",
        code: "protocol-version",
        message: `registry speaks ${CONTROL_PROTOCOL_VERSION}`,
      });
      this.#closeSocket(ws, ControlCloseCode.protocolError, "protocol version");
      return;
    }
    if (msg.bridgeId !== attachment.bridgeId) {
      // The token was signed for the URL's bridge id; a different id in the body is a bug or a lie.
      this.#send(ws, {
        type: "error",
        code: "wrong-bridge",
        message: "bridgeId differs from the authenticated id",
      });
      this.#closeSocket(ws, ControlCloseCode.protocolError, "wrong bridge id");
      return;
    }
    for (const other of this.ctx.getWebSockets(`bridge:${attachment.bridgeId}`)) {
      if (other !== ws)
        this.#closeSocket(other, ControlCloseCode.superseded, "superseded by a newer connection");
    }
    attachment.registered = true;
    attachment.version = msg.version;
    attachment.capacity = msg.capacity;
    attachment.health = msg.health;
    attachment.inflight = 0;
    ws.serializeAttachment(attachment);
    this.#send(ws, {
      type: "registered",
      protocol: CONTROL_PROTOCOL_VERSION,
      bridgeId: attachment.bridgeId,
      heartbeatIntervalMs: this.#heartbeatIntervalMs,
    });
    this.#log("info", "bridge registered", {
      bridgeId: attachment.bridgeId,
      version: msg.version,
      ...msg.capacity,
    });
    // Anything sent to this bridge and never acknowledged goes again: the bridge dedupes by request id.
    for (const row of this.#rows(
      "SELECT * FROM calls WHERE bridge_id = ? AND acked = 0 AND state = 'queued'",
      attachment.bridgeId,
    )) {
      this.#sendOriginate(ws, attachment, row, now);
    }
    this.#dispatchQueued(now);
  }

  #onAck(
    ws: WebSocket,
    attachment: SocketAttachment,
    msg: {
      requestId: string;
      accepted: boolean;
      callId?: string | undefined;
      reason?: OutboundFailure | undefined;
    },
    now: number,
  ): void {
    const row = this.#row(msg.requestId);
    if (!row || row.bridge_id !== attachment.bridgeId) {
      ws.serializeAttachment(attachment);
      return;
    }
    if (row.acked === 0) attachment.inflight = Math.max(0, attachment.inflight - 1);
    if (msg.accepted) {
      if (row.acked === 0) attachment.capacity.activeCalls++;
      this.#sql.exec("UPDATE calls SET acked = 1, updated_at = ? WHERE call_id = ?", now, row.call_id);
    } else if (msg.reason && REQUEUE_REASONS.has(msg.reason) && row.attempts < MAX_DISPATCH_ATTEMPTS) {
      this.#sql.exec(
        "UPDATE calls SET bridge_id = NULL, acked = 0, dispatched_at = NULL, updated_at = ? WHERE call_id = ?",
        now,
        row.call_id,
      );
    } else {
      this.#finish(row.call_id, "failed", now, msg.reason ?? "rejected");
    }
    ws.serializeAttachment(attachment);
    this.#dispatchQueued(now);
  }

  #onProgress(
    bridgeId: string,
    msg: {
      callId: string;
      state: OutboundCallState;
      sipStatus?: number | undefined;
      reason?: string | undefined;
    },
    now: number,
  ): void {
    const row = this.#row(msg.callId);
    if (!row || row.bridge_id !== bridgeId) return;
    // Late or replayed reports never move a call backwards; a terminal state is final, except that a
    // call given up as bridge-lost is corrected by its bridge's own report when it returns.
    const wasLost = row.state === "failed" && row.reason === "bridge-lost";
    if (!wasLost && (TERMINAL.has(row.state) || STATE_ORDER[msg.state] < STATE_ORDER[row.state])) return;
    this.#sql.exec(
      "UPDATE calls SET state = ?, acked = 1, sip_status = COALESCE(?, sip_status), reason = ?, updated_at = ? WHERE call_id = ?",
      msg.state,
      msg.sipStatus ?? null,
      msg.reason ?? null,
      now,
      msg.callId,
    );
    if (TERMINAL.has(msg.state)) this.#dispatchQueued(now);
  }

  // ---- RPC from the Worker ----------------------------------------------------------------------

  async originate(idempotencyKey: string, request: OriginateRequest): Promise<OriginateOutcome> {
    const text = JSON.stringify(request);
    const existing = this.#rows("SELECT * FROM calls WHERE idem_key = ?", idempotencyKey)[0];
    if (existing) {
      if (existing.request !== text) return { ok: false, error: "idempotency-key-reused" };
      return { ok: true, callId: existing.call_id, status: existing.state, duplicate: true };
    }
    const now = Date.now();
    const callId = crypto.randomUUID();
    this.#sql.exec(
      "INSERT INTO calls (call_id, idem_key, request, state, created_at, updated_at) VALUES (?, ?, ?, 'queued', ?, ?)",
      callId,
      idempotencyKey,
      text,
      now,
      now,
    );
    this.#dispatchQueued(now);
    await this.#armAlarm(ACK_RESEND_MS);
    return { ok: true, callId, status: "queued", duplicate: false };
  }

  async progress(callId: string): Promise<CallProgress | undefined> {
    const row = this.#row(callId);
    if (!row) return undefined;
    const request = JSON.parse(row.request) as OriginateRequest;
    return {
      callId: row.call_id,
      status: row.state,
      to: request.to,
      ...(row.bridge_id ? { bridgeId: row.bridge_id } : {}),
      ...(row.sip_status === null ? {} : { sipStatus: row.sip_status }),
      ...(row.reason === null ? {} : { reason: row.reason }),
      createdAt: new Date(row.created_at).toISOString(),
      updatedAt: new Date(row.updated_at).toISOString(),
    };
  }

  async bridges(): Promise<BridgeSummary[]> {
    const now = Date.now();
    return this.#views(now).map(({ view }) => ({
      bridgeId: view.bridgeId,
      version: this.#attachmentOf(view.bridgeId)?.version ?? "",
      health: view.health,
      capacity: view.capacity,
      free: freeCapacity(view),
      live: isLive(view, now, this.heartbeatTimeoutMs),
      lastSeenAt: new Date(view.lastSeenAt).toISOString(),
    }));
  }

  // ---- timers -----------------------------------------------------------------------------------

  override async alarm(): Promise<void> {
    const now = Date.now();
    this.#sql.exec(
      "UPDATE calls SET state = 'failed', reason = 'no-bridge-available', updated_at = ? WHERE state = 'queued' AND bridge_id IS NULL AND created_at < ?",
      now,
      now - QUEUE_TIMEOUT_MS,
    );
    const live = new Map(
      this.#views(now)
        .filter(({ view }) => isLive(view, now, this.heartbeatTimeoutMs))
        .map((v) => [v.view.bridgeId, v]),
    );
    for (const row of this.#rows(
      "SELECT * FROM calls WHERE state = 'queued' AND bridge_id IS NOT NULL AND acked = 0",
    )) {
      const bridge = row.bridge_id ? live.get(row.bridge_id) : undefined;
      if (bridge && now - (row.dispatched_at ?? 0) >= ACK_RESEND_MS) {
        this.#sendOriginate(bridge.ws, bridge.attachment, row, now, false);
      } else if (!bridge && now - (row.dispatched_at ?? 0) >= BRIDGE_GRACE_MS) {
        this.#finish(row.call_id, "failed", now, "bridge-lost");
      }
    }
    // Calls a bridge accepted and then went silent about: if the bridge itself is gone past the grace
    // period, the call died with it. (Its own report, should it come back, corrects this.)
    for (const row of this.#rows(
      "SELECT * FROM calls WHERE acked = 1 AND state IN ('queued', 'ringing', 'answered') AND updated_at < ?",
      now - BRIDGE_GRACE_MS,
    )) {
      if (!row.bridge_id || !live.has(row.bridge_id)) this.#finish(row.call_id, "failed", now, "bridge-lost");
    }
    this.#dispatchQueued(now);
    this.#sql.exec(
      "DELETE FROM calls WHERE state IN ('completed', 'failed') AND updated_at < ?",
      now - RETENTION_MS,
    );
    if (this.#hasPendingWork()) await this.#armAlarm(ACK_RESEND_MS);
    else if (this.#hasCallsInProgress()) await this.#armAlarm(IN_PROGRESS_SWEEP_MS);
  }

  // ---- internals --------------------------------------------------------------------------------

  /** Sends every queued, unassigned call to the best bridge, oldest first, while any has room. */
  #dispatchQueued(now: number): void {
    const queued = this.#rows(
      "SELECT * FROM calls WHERE state = 'queued' AND bridge_id IS NULL ORDER BY created_at",
    );
    if (queued.length === 0) return;
    const views = this.#views(now);
    let inProgress = Number.isFinite(this.#globalLimit) ? this.#inProgress() : 0;
    for (const row of queued) {
      // The global cap holds calls in the queue (oldest first) until one in progress ends.
      if (inProgress >= this.#globalLimit) return;
      // The global calls-per-second cap holds them until the window has room again (an alarm then).
      const waitMs = this.#rateWaitMs(now);
      if (waitMs > 0) {
        void this.#armAlarm(waitMs);
        return;
      }
      const chosen = chooseBridge(
        views.map((v) => v.view),
        now,
        this.heartbeatTimeoutMs,
      );
      if (!chosen) return;
      const target = views.find((v) => v.view.bridgeId === chosen.bridgeId);
      if (!target) return;
      if (!this.#sendOriginate(target.ws, target.attachment, row, now)) continue;
      if (this.#rate) this.#recentDispatches.push(now);
      target.view.inflight = target.attachment.inflight;
      target.view.lastDispatchAt = now;
      inProgress++;
    }
  }

  /** 0 when another call may be dispatched now under the global CPS cap, else how long to wait (ms). */
  #rateWaitMs(now: number): number {
    const rate = this.#rate;
    if (!rate) return 0;
    this.#recentDispatches = this.#recentDispatches.filter((at) => now - at < rate.windowMs);
    if (this.#recentDispatches.length < rate.perWindow) return 0;
    return Math.max(1, (this.#recentDispatches[0] ?? now) + rate.windowMs - now);
  }

  /** Binds the call to the bridge and sends it; false (and unbound) if the socket would not take it. */
  #sendOriginate(
    ws: WebSocket,
    attachment: SocketAttachment,
    row: CallRow,
    now: number,
    countInflight = true,
  ): boolean {
    const request = JSON.parse(row.request) as OriginateRequest;
    const message: WorkerControlMessage = {
      type: "originate",
      requestId: row.call_id,
      callId: row.call_id,
      ...request,
    };
    if (!this.#send(ws, message)) return false;
    const firstSend = row.bridge_id !== attachment.bridgeId;
    this.#sql.exec(
      "UPDATE calls SET bridge_id = ?, dispatched_at = ?, attempts = attempts + ?, updated_at = ? WHERE call_id = ?",
      attachment.bridgeId,
      now,
      firstSend ? 1 : 0,
      now,
      row.call_id,
    );
    if (countInflight) attachment.inflight++;
    attachment.lastDispatchAt = now;
    ws.serializeAttachment(attachment);
    return true;
  }

  #finish(callId: string, state: "failed" | "completed", now: number, reason: string): void {
    this.#sql.exec(
      "UPDATE calls SET state = ?, reason = ?, updated_at = ? WHERE call_id = ?",
      state,
      reason,
      now,
      callId,
    );
  }

  /** Live view of every registered bridge socket; sockets silent past the timeout are closed here. */
  #views(now: number): { ws: WebSocket; attachment: SocketAttachment; view: BridgeView }[] {
    const out: { ws: WebSocket; attachment: SocketAttachment; view: BridgeView }[] = [];
    for (const ws of this.ctx.getWebSockets()) {
      const attachment = this.#attachment(ws);
      if (!attachment?.registered) continue;
      const pingedAt = this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0;
      const view: BridgeView = {
        bridgeId: attachment.bridgeId,
        registered: true,
        health: attachment.health,
        capacity: attachment.capacity,
        inflight: attachment.inflight,
        lastSeenAt: Math.max(attachment.lastMessageAt, pingedAt),
        lastDispatchAt: attachment.lastDispatchAt,
      };
      if (!isLive(view, now, this.heartbeatTimeoutMs)) {
        this.#closeSocket(ws, ControlCloseCode.heartbeatTimeout, "missed heartbeats");
      }
      out.push({ ws, attachment, view });
    }
    return out;
  }

  #attachmentOf(bridgeId: string): SocketAttachment | undefined {
    for (const ws of this.ctx.getWebSockets(`bridge:${bridgeId}`)) {
      const attachment = this.#attachment(ws);
      if (attachment?.registered) return attachment;
    }
    return undefined;
  }

  #inProgress(): number {
    const row = this.#sql
      .exec<{ n: number }>(
        "SELECT COUNT(*) AS n FROM calls WHERE bridge_id IS NOT NULL AND state IN ('queued', 'ringing', 'answered')",
      )
      .one();
    return row.n;
  }

  #hasCallsInProgress(): boolean {
    return (
      this.#rows("SELECT call_id FROM calls WHERE state IN ('queued', 'ringing', 'answered') LIMIT 1")
        .length > 0
    );
  }

  #hasPendingWork(): boolean {
    return this.#rows("SELECT call_id FROM calls WHERE state = 'queued' AND acked = 0 LIMIT 1").length > 0;
  }

  /** Arms the alarm to fire within `inMs` (never later than it already would). Serialized: see below. */
  #armAlarm(inMs: number): Promise<void> {
    // Two callers interleaving get→get→set→set would let the later, longer one win; one at a time.
    this.#arming = this.#arming.then(() => this.#armAlarmNow(inMs)).catch(() => undefined);
    return this.#arming;
  }

  async #armAlarmNow(inMs: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    // An alarm time already past is the one running now (we are inside alarm()): it counts as unset.
    const now = Date.now();
    if (current === null || current <= now || current > now + inMs)
      await this.ctx.storage.setAlarm(now + inMs);
  }

  #row(callId: string): CallRow | undefined {
    return this.#rows("SELECT * FROM calls WHERE call_id = ?", callId)[0];
  }

  #rows(query: string, ...bindings: SqlStorageValue[]): CallRow[] {
    return this.#sql.exec<CallRow>(query, ...bindings).toArray();
  }

  #attachment(ws: WebSocket): SocketAttachment | undefined {
    const value: unknown = ws.deserializeAttachment();
    return value && typeof value === "object" && "bridgeId" in value
      ? (value as SocketAttachment)
      : undefined;
  }

  #send(ws: WebSocket, message: WorkerControlMessage): boolean {
    try {
      ws.send(JSON.stringify(message));
      return true;
    } catch {
      return false;
    }
  }

  #closeSocket(ws: WebSocket, code: number, reason: string): void {
    const attachment = this.#attachment(ws);
    if (attachment) {
      attachment.registered = false;
      try {
        ws.serializeAttachment(attachment);
      } catch {
        // already closed: nothing to record
      }
    }
    try {
      ws.close(code, reason);
    } catch {
      // already closing
    }
  }

  #log(level: "info" | "warn" | "error", msg: string, fields: Record<string, unknown>): void {
    console[level](JSON.stringify({ level, component: "bridge-registry", msg, ...fields }));
  }
}
