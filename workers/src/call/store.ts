/**
 * A call's durable state in the Durable Object's SQLite storage: the call row (phase, agent, metadata,
 * resume token), the conversation history and the per-turn timings. Everything the Durable Object needs
 * to resume a call after a restart or a reconnect lives here; nothing else is persisted. Synchronous
 * (the SQLite API is), and every write is one small statement, so a 50 frames/s call writes only on
 * conversation events, never per frame.
 */
import type { CallMetadata, HangupCause } from "@patchbay/shared/protocol";
import type { HistoryEntry, TurnRecord } from "../pipeline/conversation";
import type { ChatMessage, ToolCall } from "../providers/types";

export type CallPhase = "active" | "ended";

export interface CallRow {
  callId: string;
  agentId: string;
  phase: CallPhase;
  metadata: CallMetadata;
  resumeToken: string;
  startedAt: number;
  endedAt?: number;
  endCause?: HangupCause;
  endReason?: string;
  lastAudioAt?: number;
  /** Set while the PBX holds the call (call_state hold): the no-audio watchdog is paused. */
  holdSince?: number;
  socketGeneration: number;
  connections: number;
}

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS call (
     singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
     call_id TEXT NOT NULL, agent_id TEXT NOT NULL, phase TEXT NOT NULL, metadata TEXT NOT NULL,
     resume_token TEXT NOT NULL, started_at INTEGER NOT NULL, ended_at INTEGER, end_cause TEXT,
     end_reason TEXT, last_audio_at INTEGER, connections INTEGER NOT NULL DEFAULT 1)`,
  `CREATE TABLE IF NOT EXISTS sockets (singleton INTEGER PRIMARY KEY CHECK (singleton = 1), generation INTEGER NOT NULL)`,
  // Its own table rather than a column of `call`: calls that were live across the deploy adding it
  // have a `call` table without the column, and CREATE TABLE IF NOT EXISTS never alters one.
  `CREATE TABLE IF NOT EXISTS hold (singleton INTEGER PRIMARY KEY CHECK (singleton = 1), since INTEGER NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS messages (
     id INTEGER PRIMARY KEY, turn INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL,
     tool_calls TEXT, tool_call_id TEXT, heard TEXT, complete INTEGER NOT NULL, interrupted INTEGER NOT NULL,
     at_ms INTEGER NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS turns (
     turn INTEGER PRIMARY KEY, source TEXT NOT NULL, user_text TEXT, started_at INTEGER NOT NULL,
     ended_at INTEGER, interrupted INTEGER NOT NULL, timestamps TEXT NOT NULL, timing TEXT NOT NULL)`,
];

type Row = Record<string, SqlStorageValue>;

const str = (value: SqlStorageValue | undefined): string | undefined =>
  typeof value === "string" ? value : undefined;
const num = (value: SqlStorageValue | undefined): number | undefined =>
  typeof value === "number" ? value : undefined;

export class CallStore {
  constructor(private readonly sql: SqlStorage) {
    for (const statement of SCHEMA) sql.exec(statement);
  }

  // ---- call row --------------------------------------------------------------------------------

  load(): CallRow | undefined {
    const row = this.sql.exec<Row>("SELECT * FROM call WHERE singleton = 1").toArray()[0];
    if (!row) return undefined;
    const endCause = str(row.end_cause) as HangupCause | undefined;
    const endedAt = num(row.ended_at);
    const endReason = str(row.end_reason);
    const lastAudioAt = num(row.last_audio_at);
    const holdSince = this.holdSince();
    return {
      callId: String(row.call_id),
      agentId: String(row.agent_id),
      phase: row.phase === "ended" ? "ended" : "active",
      metadata: JSON.parse(String(row.metadata)) as CallMetadata,
      resumeToken: String(row.resume_token),
      startedAt: Number(row.started_at),
      ...(endedAt !== undefined ? { endedAt } : {}),
      ...(endCause !== undefined ? { endCause } : {}),
      ...(endReason !== undefined ? { endReason } : {}),
      ...(lastAudioAt !== undefined ? { lastAudioAt } : {}),
      ...(holdSince !== undefined ? { holdSince } : {}),
      socketGeneration: this.socketGeneration(),
      connections: Number(row.connections),
    };
  }

  create(call: {
    callId: string;
    agentId: string;
    metadata: CallMetadata;
    resumeToken: string;
    startedAt: number;
  }): void {
    this.sql.exec(
      `INSERT INTO call (singleton, call_id, agent_id, phase, metadata, resume_token, started_at, last_audio_at)
       VALUES (1, ?, ?, 'active', ?, ?, ?, ?)`,
      call.callId,
      call.agentId,
      JSON.stringify(call.metadata),
      call.resumeToken,
      call.startedAt,
      call.startedAt,
    );
  }

  countReconnect(): void {
    this.sql.exec("UPDATE call SET connections = connections + 1 WHERE singleton = 1");
  }

  setLastAudio(atMs: number): void {
    this.sql.exec("UPDATE call SET last_audio_at = ? WHERE singleton = 1", atMs);
  }

  /** `since` = the call went on hold at that time; undefined = it is off hold. */
  setHold(since: number | undefined): void {
    if (since === undefined) this.sql.exec("DELETE FROM hold");
    else this.sql.exec("INSERT OR REPLACE INTO hold (singleton, since) VALUES (1, ?)", since);
  }

  holdSince(): number | undefined {
    return num(this.sql.exec<Row>("SELECT since FROM hold WHERE singleton = 1").toArray()[0]?.since);
  }

  markEnded(cause: HangupCause, reason: string | undefined, atMs: number): void {
    this.sql.exec(
      "UPDATE call SET phase = 'ended', end_cause = ?, end_reason = ?, ended_at = ? WHERE singleton = 1",
      cause,
      reason ?? null,
      atMs,
    );
  }

  /** Each accepted socket gets the next generation; only the newest one is the call's socket. */
  nextSocketGeneration(): number {
    const next = this.socketGeneration() + 1;
    this.sql.exec("INSERT OR REPLACE INTO sockets (singleton, generation) VALUES (1, ?)", next);
    return next;
  }

  socketGeneration(): number {
    const row = this.sql.exec<Row>("SELECT generation FROM sockets WHERE singleton = 1").toArray()[0];
    return num(row?.generation) ?? 0;
  }

  // ---- history ---------------------------------------------------------------------------------

  appendMessage(entry: HistoryEntry): void {
    const message = entry.message;
    this.sql.exec(
      `INSERT OR REPLACE INTO messages (id, turn, role, content, tool_calls, tool_call_id, heard, complete, interrupted, at_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      entry.id,
      entry.turn,
      message.role,
      message.content,
      message.role === "assistant" && message.toolCalls ? JSON.stringify(message.toolCalls) : null,
      message.role === "tool" ? message.toolCallId : null,
      entry.heard ?? null,
      entry.complete ? 1 : 0,
      entry.interrupted ? 1 : 0,
      entry.atMs,
    );
  }

  updateMessage(entry: HistoryEntry): void {
    this.appendMessage(entry);
  }

  /**
   * The history to resume with. An assistant message whose playout was never confirmed complete (the
   * Durable Object restarted mid-answer) is cut to what the caller had heard, as on barge-in.
   */
  history(): HistoryEntry[] {
    const rows = this.sql.exec<Row>("SELECT * FROM messages ORDER BY id").toArray();
    return rows.map((row) => {
      const role = String(row.role);
      const content = String(row.content);
      const heard = str(row.heard);
      const complete = row.complete === 1;
      let message: ChatMessage;
      let interrupted = row.interrupted === 1;
      if (role === "assistant") {
        const toolCalls = str(row.tool_calls)
          ? (JSON.parse(String(row.tool_calls)) as ToolCall[])
          : undefined;
        const spoken = complete ? content : (heard ?? "");
        if (!complete && spoken !== content) interrupted = true;
        message = { role: "assistant", content: spoken, ...(toolCalls ? { toolCalls } : {}) };
      } else if (role === "tool") {
        message = { role: "tool", toolCallId: String(row.tool_call_id), content };
      } else if (role === "system") {
        message = { role: "system", content };
      } else {
        message = { role: "user", content };
      }
      return {
        id: Number(row.id),
        turn: Number(row.turn),
        message,
        ...(heard !== undefined ? { heard } : {}),
        complete: true,
        ...(interrupted ? { interrupted } : {}),
        atMs: Number(row.at_ms),
      };
    });
  }

  // ---- turns -----------------------------------------------------------------------------------

  saveTurn(turn: TurnRecord): void {
    this.sql.exec(
      `INSERT OR REPLACE INTO turns (turn, source, user_text, started_at, ended_at, interrupted, timestamps, timing)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      turn.turn,
      turn.source,
      turn.userText ?? null,
      turn.startedAt,
      turn.endedAt ?? null,
      turn.interrupted ? 1 : 0,
      JSON.stringify(turn.timestamps),
      JSON.stringify(turn.timing),
    );
  }

  turns(): TurnRecord[] {
    return this.sql
      .exec<Row>("SELECT * FROM turns ORDER BY turn")
      .toArray()
      .map((row) => {
        const userText = str(row.user_text);
        const endedAt = num(row.ended_at);
        return {
          turn: Number(row.turn),
          source: String(row.source) as TurnRecord["source"],
          ...(userText !== undefined ? { userText } : {}),
          startedAt: Number(row.started_at),
          ...(endedAt !== undefined ? { endedAt } : {}),
          interrupted: row.interrupted === 1,
          timestamps: JSON.parse(String(row.timestamps)) as TurnRecord["timestamps"],
          timing: JSON.parse(String(row.timing)) as TurnRecord["timing"],
        };
      });
  }
}

/** The public view of a call (GET /v1/calls/:id and the call-ended webhook). */
export interface CallReport {
  callId: string;
  status: CallPhase;
  agent: string;
  startedAt: string;
  endedAt?: string;
  durationMs?: number;
  endCause?: HangupCause;
  endReason?: string;
  connections: number;
  call: Pick<CallMetadata, "direction" | "from" | "to" | "displayName" | "sipCallId">;
  transcript: { turn: number; role: "caller" | "agent"; text: string; interrupted: boolean; atMs: number }[];
  turns: (Omit<TurnRecord, "timestamps"> & { timestamps: TurnRecord["timestamps"] })[];
}

export function callReport(store: CallStore): CallReport | undefined {
  const call = store.load();
  if (!call) return undefined;
  const transcript: CallReport["transcript"] = [];
  for (const entry of store.history()) {
    const message = entry.message;
    if ((message.role !== "user" && message.role !== "assistant") || !message.content) continue;
    transcript.push({
      turn: entry.turn,
      role: message.role === "user" ? "caller" : "agent",
      text: message.content,
      interrupted: entry.interrupted === true,
      atMs: entry.atMs,
    });
  }
  const { direction, from, to, displayName, sipCallId } = call.metadata;
  return {
    callId: call.callId,
    status: call.phase,
    agent: call.agentId,
    startedAt: new Date(call.startedAt).toISOString(),
    ...(call.endedAt !== undefined
      ? { endedAt: new Date(call.endedAt).toISOString(), durationMs: call.endedAt - call.startedAt }
      : {}),
    ...(call.endCause ? { endCause: call.endCause } : {}),
    ...(call.endReason ? { endReason: call.endReason } : {}),
    connections: call.connections,
    call: { direction, from, to, sipCallId, ...(displayName !== undefined ? { displayName } : {}) },
    transcript,
    turns: store.turns(),
  };
}
