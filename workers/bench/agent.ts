/**
 * `pnpm bench:agent`: what the orchestration itself adds to a voice turn, and whether a long call's
 * memory stays flat. Runs the Conversation core in Node with the in-process fake providers
 * (test/fakes) at fixed latencies, so every millisecond measured beyond those latencies is ours.
 *
 *   A. Latency, real clock, several runs of many turns. Per event, the time from a provider event to
 *      the next stage being started by the pipeline:
 *        end of turn (STT)         → LLM request issued
 *        clause-completing token   → tts.speak() of that clause
 *        TTS audio chunk           → binary frame encoded and handed to the socket
 *      Printed as p50/p99 per run and the median of those over the runs. Target p50 ≤ 5 ms, p99 ≤ 20 ms.
 *   B. Memory, manual clock: a simulated 30-minute call (90,000 caller frames, a caller turn every
 *      10 s, barge-in every 7th turn). Heap after GC at 5 minutes and at 30 minutes, their ratio, and a
 *      verdict: FLAT when the ratio is at most MEMORY_RATIO_LIMIT. The conversation history grows by
 *      design (a few hundred bytes per turn); everything else must not.
 *
 * Not a test: it asserts nothing and its numbers depend on the machine.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { BYTES_PER_FRAME } from "@patchbay/shared/audio";
import {
  encodeAudioFrame,
  FRAME_HEADER_BYTES,
  FrameKind,
  type WorkerMessage,
} from "@patchbay/shared/protocol";
import { agentDefinition } from "../src/agents/schema";
import { type Clock, ManualClock, systemClock } from "../src/pipeline/clock";
import { Conversation, type ConversationHost } from "../src/pipeline/conversation";
import { FakeHub, FakeLlm, FakeStt, FakeTts } from "../test/fakes/providers";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const TURNS_PER_RUN = Number(process.env.BENCH_TURNS ?? 100);
const LATENCY = { sttMs: 0, llmFirstTokenMs: 30, llmTokenMs: 4, ttsMs: 15 };
/**
 * Heap at 30 simulated minutes over heap at 5: "flat" up to this. The history grows ~1 KB per turn
 * (150 turns between the two samples ≈ 0.15 MB on a ~12 MB heap, a ratio near 1.01); a leak of one
 * frame-sized buffer per caller frame (75,000 frames) would add ~12 MB, a ratio near 2.
 */
const MEMORY_RATIO_LIMIT = 1.1;

const agent = agentDefinition.parse({
  id: "bench",
  systemPrompt: "You are a benchmark.",
  voice: "v",
  stt: { provider: "fake" },
  llm: { provider: "fake", model: "m" },
  tts: { provider: "fake" },
  bargeIn: { enabled: true, minSpeechMs: 200 },
  turn: { silenceMs: 500 },
});

const ANSWER =
  "Sure, I can help with that today. Your appointment is on Tuesday at ten in the morning. " +
  "Please bring your insurance card, and arrive ten minutes early. Is there anything else I can do for you?";

const speech = new Uint8Array(BYTES_PER_FRAME).map((_, i) => (i % 8 < 4 ? 0x80 : 0x00));
const silence = new Uint8Array(BYTES_PER_FRAME).fill(0xff);

interface Rig {
  conversation: Conversation;
  hub: FakeHub;
  llm: FakeLlm;
  stt: FakeStt;
  frameSentAt: number[];
  marks: string[];
}

function rig(clock: Clock, latency: typeof LATENCY): Rig {
  const hub = new FakeHub();
  const stt = new FakeStt(hub, { endOfTurnSilenceMs: 200 });
  const llm = new FakeLlm(hub, { firstTokenMs: latency.llmFirstTokenMs, tokenMs: latency.llmTokenMs });
  const tts = new FakeTts(hub, latency.ttsMs);
  const frameBuffer = new Uint8Array(FRAME_HEADER_BYTES + 50 * BYTES_PER_FRAME);
  let agentBytes = 0;
  const state: Rig = {
    conversation: undefined as unknown as Conversation,
    hub,
    llm,
    stt,
    frameSentAt: [],
    marks: [],
  };
  const host: ConversationHost = {
    output: {
      // What the Durable Object adapter does per chunk: encode a frame into a reusable buffer.
      sendAudio: (audio) => {
        encodeAudioFrame(
          {
            kind: FrameKind.agentAudio,
            codec: "PCMU",
            flags: 0,
            seq: Math.floor(agentBytes / 160),
            timeMs: 0,
          },
          audio.subarray(0, Math.min(audio.length, 50 * BYTES_PER_FRAME)),
          frameBuffer,
        );
        agentBytes += audio.length;
        state.frameSentAt.push(performance.now());
      },
      send: (message: WorkerMessage) => {
        if (message.type === "mark") state.marks.push(message.name);
      },
    },
    store: { appendMessage: () => {}, updateMessage: () => {}, saveTurn: () => {} },
    clock,
    webhook: { fetch, clock, unixSeconds: () => 0, secret: () => undefined },
    log: () => {},
    onCallEnd: () => {},
  };
  state.conversation = new Conversation(
    {
      callId: "bench-call",
      agent,
      format: { codec: "PCMU", sampleRate: 8000 },
      providers: { stt, llm, tts },
      greet: false,
    },
    host,
  );
  return state;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const median = (values: number[]) => percentile(values, 50);

/** For each later event, the gap since the latest earlier event (pairs a stage with what caused it). */
function gapsSinceCause(causes: number[], effects: number[]): number[] {
  const gaps: number[] = [];
  let c = 0;
  for (const effect of effects) {
    while (c + 1 < causes.length && causes[c + 1]! <= effect) c++;
    const cause = causes[c];
    if (cause !== undefined && cause <= effect) gaps.push(effect - cause);
  }
  return gaps;
}

async function latencyRun(): Promise<Record<string, number[]>> {
  const r = rig(systemClock, LATENCY);
  await r.conversation.start();
  const session = r.stt.sessions[0]!;
  const endOfTurn: number[] = [];
  for (let turn = 0; turn < TURNS_PER_RUN; turn++) {
    r.hub.replies.push({ text: ANSWER });
    endOfTurn.push(performance.now());
    session.endTurn(`question number ${turn}`);
    // Acknowledge marks as they come (instant playout) until the turn settles.
    let acked = r.marks.length;
    while (r.conversation.agentTalking) {
      await sleep(1);
      for (const mark of r.marks.slice(acked)) r.conversation.markPlayed(mark);
      acked = r.marks.length;
    }
  }
  await r.conversation.close();
  return {
    "end of turn → LLM request": gapsSinceCause(
      endOfTurn,
      r.hub.llmCalls.map((call) => call.atMs),
    ),
    "clause token → tts.speak": gapsSinceCause(r.hub.tokens, r.hub.speakCalls),
    "TTS audio → frame sent": gapsSinceCause(r.hub.audioEmitted, r.frameSentAt),
  };
}

async function memoryRun(): Promise<{
  at5min: number;
  at30min: number;
  turns: number;
  historyEntries: number;
}> {
  const clock = new ManualClock(0);
  const r = rig(clock, { sttMs: 0, llmFirstTokenMs: 0, llmTokenMs: 0, ttsMs: 0 });
  await r.conversation.start();
  const framesPer10s = 500;
  const totalFrames = 30 * 60 * 50;
  let acked = 0;
  let at5min = 0;
  let turns = 0;
  for (let frame = 0; frame < totalFrames; frame++) {
    const inCycle = frame % framesPer10s;
    if (inCycle === 0) {
      turns++;
      r.hub.utterances.push(`caller sentence ${turns}`);
      r.hub.replies.push({ text: ANSWER });
    }
    // The caller talks for 2 s of every 10 s; every 7th cycle they also talk over the answer at 5 s.
    const talking = inCycle < 100 || (turns % 7 === 0 && inCycle >= 250 && inCycle < 300);
    r.conversation.pushCallerAudio(talking ? speech : silence);
    clock.advance(20);
    if (frame % 25 === 0) {
      await sleep(0);
      // Instant playout, except during the barge-in cycles' first half (so there is something to cut).
      if (!(turns % 7 === 0 && inCycle < 300)) {
        for (const mark of r.marks.slice(acked)) r.conversation.markPlayed(mark);
        acked = r.marks.length;
      }
      // The fakes and this rig keep observation logs; drop them so only the pipeline's memory counts.
      if (r.marks.length > 1000) {
        r.marks.splice(0, acked);
        acked = 0;
      }
      r.hub.tokens.length = 0;
      r.hub.speakCalls.length = 0;
      r.hub.audioEmitted.length = 0;
      r.hub.llmCalls.length = 0;
      r.frameSentAt.length = 0;
      r.llm.requests.length = 0;
      r.hub.tts?.spoken.splice(0);
    }
    if (frame === 5 * 60 * 50) {
      gc();
      at5min = process.memoryUsage().heapUsed;
    }
  }
  await sleep(5);
  gc();
  const at30min = process.memoryUsage().heapUsed;
  const historyEntries = r.conversation.history.length;
  await r.conversation.close();
  return { at5min, at30min, turns, historyEntries };
}

const fmt = (ms: number) => `${ms.toFixed(3)} ms`;

async function main(): Promise<void> {
  console.log(
    `Patchbay agent benchmark: ${RUNS} runs x ${TURNS_PER_RUN} turns; fake latencies: LLM first token ${LATENCY.llmFirstTokenMs} ms, ` +
      `token ${LATENCY.llmTokenMs} ms, TTS ${LATENCY.ttsMs} ms (excluded: only the pipeline's own time is measured)\n`,
  );
  const perStage = new Map<string, { p50: number[]; p99: number[]; count: number }>();
  for (let run = 1; run <= RUNS; run++) {
    const result = await latencyRun();
    const line: string[] = [];
    for (const [stage, gaps] of Object.entries(result)) {
      const entry = perStage.get(stage) ?? { p50: [], p99: [], count: 0 };
      entry.p50.push(percentile(gaps, 50));
      entry.p99.push(percentile(gaps, 99));
      entry.count += gaps.length;
      perStage.set(stage, entry);
      line.push(
        `${stage}: p50 ${fmt(percentile(gaps, 50))} p99 ${fmt(percentile(gaps, 99))} (n=${gaps.length})`,
      );
    }
    console.log(`run ${run}: ${line.join(" | ")}`);
  }
  console.log("\nMedian over runs (target p50 <= 5 ms, p99 <= 20 ms):");
  for (const [stage, entry] of perStage) {
    const p50 = median(entry.p50);
    const p99 = median(entry.p99);
    const ok = p50 <= 5 && p99 <= 20 ? "ok" : "OVER TARGET";
    console.log(
      `  ${stage.padEnd(28)} p50 ${fmt(p50).padStart(10)}  p99 ${fmt(p99).padStart(10)}  events ${entry.count}  ${ok}`,
    );
  }

  let latencyOk = true;
  for (const entry of perStage.values()) latencyOk &&= median(entry.p50) <= 5 && median(entry.p99) <= 20;
  console.log(`VERDICT latency: ${latencyOk ? "OK (every stage within target)" : "OVER TARGET (see above)"}`);

  const memory = await memoryRun();
  const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(2)} MB`;
  const growth = memory.at30min - memory.at5min;
  const ratio = memory.at30min / memory.at5min;
  const flat = ratio <= MEMORY_RATIO_LIMIT;
  console.log(
    `\nMemory, simulated 30-minute call (${memory.turns} caller turns, ${memory.historyEntries} history entries):\n` +
      `  heap after GC at  5 min: ${mb(memory.at5min)}\n` +
      `  heap after GC at 30 min: ${mb(memory.at30min)}\n` +
      `  ratio 30 min / 5 min:    ${ratio.toFixed(3)} (limit ${MEMORY_RATIO_LIMIT.toFixed(2)}); growth ${mb(growth)}, ` +
      `${(growth / Math.max(1, memory.turns)).toFixed(0)} B per turn (the history itself grows by design)`,
  );
  console.log(
    `VERDICT memory: ${flat ? "FLAT" : "GROWING"} (ratio ${ratio.toFixed(3)} ${flat ? "<=" : ">"} ${MEMORY_RATIO_LIMIT.toFixed(2)})`,
  );
}

await main();
