/**
 * Per-turn latency, split into its parts, from two clocks on one machine: the caller's (when its last
 * voiced frame left, when the agent's first voiced frame arrived) and the Worker's per-turn timestamps
 * (GET /v1/calls/:id). Pure functions plus one writer that puts JSON + a Markdown table into
 * test/reports/out/ (git-ignored).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CallReport } from "../stack/stack";

export const REPORT_DIR = join(dirname(fileURLToPath(import.meta.url)), "out");

type Turn = CallReport["turns"][number];

export interface TurnLatency {
  label: string;
  turn: number;
  /** Caller's last voiced frame sent → agent's first voiced frame received (what the caller feels). */
  mouthToEarMs: number;
  /** The Worker's VAD saw speech end → it finalized the turn (silence the agent waits for, by design). */
  endpointMs?: number;
  /** Finalize → transcript back. */
  sttMs?: number;
  /** LLM request → first token. */
  llmFirstTokenMs?: number;
  /** First sentence to TTS → its first audio. */
  ttsFirstAudioMs?: number;
  /** Caller → bridge → socket → the Worker's speech-end decision (network, jitter buffer, VAD frame). */
  transportInMs?: number;
  /** First agent frame sent by the Worker → heard at the caller (socket, bridge playout, RTP). */
  transportOutMs?: number;
  /** The Worker's own glue between stages (orchestration). */
  orchestrationMs?: number;
  /** Bridge + link + orchestration: mouth-to-ear minus the providers' and the endpoint's share. */
  oursMs?: number;
}

const gap = (later: number | undefined, earlier: number | undefined): number | undefined =>
  later !== undefined && earlier !== undefined ? Math.max(0, later - earlier) : undefined;

const round = (value: number | undefined): number | undefined =>
  value === undefined ? undefined : Math.round(value * 10) / 10;

/** Splits one caller turn. `lastVoicedAt`/`firstHeardAt` are epoch ms at the caller. */
export function turnLatency(
  label: string,
  turn: Turn,
  caller: { lastVoicedAt: number; firstHeardAt: number },
): TurnLatency {
  const t = turn.timestamps;
  const endpointMs = gap(t.finalizeAt, t.callerSpeechEndAt) ?? turn.timing.endpointingMs;
  const sttMs = gap(t.endOfTurnAt, t.finalizeAt) ?? turn.timing.sttMs;
  const llmFirstTokenMs = gap(t.llmFirstTokenAt, t.llmStartAt) ?? turn.timing.llmFirstTokenMs;
  const ttsFirstAudioMs = gap(t.ttsFirstAudioAt, t.firstSpeakAt) ?? turn.timing.ttsFirstAudioMs;
  const mouthToEarMs = caller.firstHeardAt - caller.lastVoicedAt;
  const workerMs = gap(t.firstFrameSentAt, t.callerSpeechEndAt);
  const providers = [endpointMs, sttMs, llmFirstTokenMs, ttsFirstAudioMs];
  const providerSum = providers.every((v) => v !== undefined)
    ? providers.reduce<number>((sum, v) => sum + (v ?? 0), 0)
    : undefined;
  return {
    label,
    turn: turn.turn,
    mouthToEarMs: round(mouthToEarMs)!,
    ...defined({
      endpointMs: round(endpointMs),
      sttMs: round(sttMs),
      llmFirstTokenMs: round(llmFirstTokenMs),
      ttsFirstAudioMs: round(ttsFirstAudioMs),
      transportInMs:
        t.callerSpeechEndAt !== undefined ? round(t.callerSpeechEndAt - caller.lastVoicedAt) : undefined,
      transportOutMs: round(gap(caller.firstHeardAt, t.firstFrameSentAt)),
      orchestrationMs:
        workerMs !== undefined && providerSum !== undefined ? round(workerMs - providerSum) : undefined,
      oursMs: providerSum !== undefined ? round(mouthToEarMs - providerSum) : undefined,
    }),
  };
}

function defined<T extends Record<string, number | undefined>>(record: T): Partial<Record<keyof T, number>> {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined)) as Partial<
    Record<keyof T, number>
  >;
}

export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const COLUMNS: Array<[keyof TurnLatency, string]> = [
  ["mouthToEarMs", "mouth-to-ear"],
  ["endpointMs", "VAD/endpoint wait"],
  ["sttMs", "STT"],
  ["llmFirstTokenMs", "LLM first token"],
  ["ttsFirstAudioMs", "TTS first audio"],
  ["transportInMs", "transport in"],
  ["transportOutMs", "transport out"],
  ["orchestrationMs", "orchestration"],
  ["oursMs", "ours (bridge+link+orch.)"],
];

/** A Markdown table (ms) of the turns plus a p50 row. */
export function latencyMarkdown(title: string, turns: readonly TurnLatency[], notes: string[] = []): string {
  const header = `| turn | ${COLUMNS.map(([, name]) => name).join(" | ")} |`;
  const rule = `| --- | ${COLUMNS.map(() => "---:").join(" | ")} |`;
  const cell = (value: unknown) => (typeof value === "number" ? value.toFixed(0) : "–");
  const rows = turns.map((t) => `| ${t.label} | ${COLUMNS.map(([key]) => cell(t[key])).join(" | ")} |`);
  const p50 = COLUMNS.map(([key]) =>
    cell(median(turns.map((t) => t[key]).filter((v): v is number => typeof v === "number"))),
  );
  return [
    `# ${title}`,
    "",
    "All figures in milliseconds, measured on loopback on one shared machine.",
    "",
    header,
    rule,
    ...rows,
    `| **p50** | ${p50.join(" | ")} |`,
    "",
    ...notes.map((note) => `- ${note}`),
    "",
    "Columns: mouth-to-ear = caller's last voiced frame sent → first agent frame with speech energy received.",
    "VAD/endpoint wait = the Worker's speech end → turn finalized (the agent's configured silence). STT, LLM",
    "first token, TTS first audio = the Worker's own timestamps around each provider call. Transport in =",
    "caller's last voiced frame → the Worker's speech-end decision (RTP, bridge jitter buffer, socket, VAD",
    "frame; slightly negative when the VAD ends a fading word before the caller's -55 dBFS threshold does).",
    "Transport out = the Worker's first agent frame sent → first *voiced* frame at the caller (socket,",
    "bridge playout, RTP; also any leading silence in the TTS audio). Ours = mouth-to-ear minus endpoint and",
    "providers = transport in + orchestration + transport out.",
    "",
  ].join("\n");
}

/** Writes `<name>.json` and `<name>.md` into test/reports/out/; returns both paths. */
export async function writeLatencyReport(
  name: string,
  title: string,
  turns: readonly TurnLatency[],
  notes: string[] = [],
): Promise<{ json: string; markdown: string }> {
  const json = join(REPORT_DIR, `${name}.json`);
  const markdown = join(REPORT_DIR, `${name}.md`);
  await mkdir(dirname(json), { recursive: true });
  const p50 = Object.fromEntries(
    COLUMNS.map(([key]) => [
      key,
      median(turns.map((t) => t[key]).filter((v): v is number => typeof v === "number")),
    ]),
  );
  await writeFile(
    json,
    `${JSON.stringify({ title, generatedAt: new Date().toISOString(), turns, p50, notes }, null, 2)}\n`,
  );
  await writeFile(markdown, latencyMarkdown(title, turns, notes));
  return { json, markdown };
}
