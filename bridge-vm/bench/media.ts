/**
 * Media engine benchmark (not a test): `pnpm bench:media [--calls 100,250,500] [--runs 3]
 *   [--measure 8] [--warmup 2] [--profile-calls 250] [--no-profile] [--record]`
 *
 * For each point of the sweep and each run: fork bench/load-generator.ts (its own process, N
 * simulated phones on loopback), open N calls on ONE MediaEngine in this process with its real
 * sockets, stream 50 pps PCMU both ways (agent audio enqueued in 2 s bursts like TTS), and measure:
 * packets/s in and out, CPU of this process (process.cpuUsage) as % of one core per 100 calls,
 * frames lost and late in both directions (separately: a lost frame never arrived, a late one arrived
 * too late to play; they have different causes), playout interval error p50/p99 at the receiver, and the
 * event-loop lag p99 here. Timings are noisy on a shared 2-core machine, so each point is run
 * several times and medians are printed. Finally one profiled run prints the top-10 self time.
 */
import { fork } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { encodeG711 } from "@patchbay/shared/audio";
import { createMediaEngine } from "../src/media/engine";
import { silentLogger } from "../src/media/logger";
import type { MediaSession } from "../src/media/session";
import { type CpuProfile, formatSummary, summarizeProfile } from "./profile-summary";

interface Options {
  calls: number[];
  runs: number;
  warmupS: number;
  measureS: number;
  profileCalls: number | undefined;
  record: boolean;
  timers: "shared" | "per-call";
}

function parseOptions(argv: string[]): Options {
  const value = (name: string) => {
    const index = argv.indexOf(`--${name}`);
    return index >= 0 ? argv[index + 1] : undefined;
  };
  return {
    calls: (value("calls") ?? "100,250,500").split(",").map(Number),
    runs: Number(value("runs") ?? 3),
    warmupS: Number(value("warmup") ?? 2),
    measureS: Number(value("measure") ?? 8),
    profileCalls: argv.includes("--no-profile") ? undefined : Number(value("profile-calls") ?? 250),
    record: argv.includes("--record"),
    timers: value("timers") === "per-call" ? "per-call" : "shared",
  };
}

interface RunResult {
  calls: number;
  ppsIn: number;
  ppsOut: number;
  cpuPer100: number;
  /** CPU microseconds per packet handled (in + out): robust to how much CPU the machine let us have. */
  cpuPerPacketUs: number;
  inLost: number;
  inLate: number;
  inFrames: number;
  outLost: number;
  outLate: number;
  outFrames: number;
  intervalP50: number;
  intervalP99: number;
  loopLagP99: number;
  generatorLagP99: number;
  timerLatenessP99: number;
  /** Percent of expected frames lost / arrived late, per direction (in = at the engine, out = at the phones). */
  inLostPct: number;
  inLatePct: number;
  outLostPct: number;
  outLatePct: number;
  /** 1-minute load average of the machine when the run started (other processes compete for the cores). */
  load: number;
}

interface GeneratorResult {
  type: "result";
  received: number;
  lost: number;
  late: number;
  intervalErrorP50: number;
  intervalErrorP99: number;
  generatorSendLagP99: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Two seconds of a 300 Hz tone in PCMU: the agent's "TTS burst".
const burst = encodeG711(
  "PCMU",
  new Int16Array(16000).map((_, i) => Math.round(6000 * Math.sin((2 * Math.PI * 300 * i) / 8000))),
);

let portBase = 24000;

async function runOnce(
  calls: number,
  options: Options,
  profile: boolean,
): Promise<{ result: RunResult; profile?: CpuProfile }> {
  const load = loadavg()[0]!;
  const recordDir = options.record ? await mkdtemp(join(tmpdir(), "patchbay-bench-")) : undefined;
  const portMin = portBase;
  portBase = portBase === 24000 ? 28000 : 24000; // alternate ranges so TIME_WAIT-free UDP reuse is moot
  const engine = createMediaEngine(
    {
      portMin,
      portMax: portMin + 2 * calls + 100,
      latch: true,
      timeoutS: 30,
      idle: "silence",
      recording: { enabled: Boolean(recordDir), path: join(recordDir ?? tmpdir(), "{callId}.wav") },
      bindAddress: "127.0.0.1",
      timers: options.timers,
    },
    silentLogger,
  );
  const generator = fork(join(import.meta.dirname, "load-generator.ts"), [], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const messages: unknown[] = [];
  const waiters: ((message: unknown) => void)[] = [];
  generator.on("message", (message) => {
    const waiter = waiters.shift();
    if (waiter) waiter(message);
    else messages.push(message);
  });
  const nextMessage = () =>
    new Promise<unknown>((resolve) => {
      const queued = messages.shift();
      if (queued) resolve(queued);
      else waiters.push(resolve);
    });

  try {
    generator.send({ type: "init", calls });
    const ready = (await nextMessage()) as { type: "ready"; ports: number[] };
    const sessions: MediaSession[] = [];
    let callerFrames = 0;
    for (let i = 0; i < calls; i++) {
      const call = await engine.open({
        callId: `bench-${i}`,
        params: {
          codec: "PCMU",
          payloadType: 0,
          dtmfPayloadType: 101,
          remoteAddress: "127.0.0.1",
          remotePort: ready.ports[i]!,
          direction: "sendrecv",
          ptimeMs: 20,
        },
      });
      // Stand-in for the cloud link: touch the frame the way an encoder would.
      call.duplex.on("callerFrame", (frame) => {
        callerFrames += frame[0]! & 1;
      });
      sessions.push(call);
    }
    const warmupMs = options.warmupS * 1000;
    const measureMs = options.measureS * 1000;
    generator.send({
      type: "start",
      targets: sessions.map((s) => s.localPort),
      measureAfterMs: warmupMs,
      measureForMs: measureMs,
    });
    for (const call of sessions) call.start();
    // TTS-like bursts: each call gets 2 s of audio at once, every 2 s, staggered across calls.
    const feeder = setInterval(() => {
      for (const call of sessions)
        if (call.duplex.stats().playoutQueuedMs < 1000) call.duplex.enqueueAgentAudio(burst);
    }, 500);
    for (const call of sessions) call.duplex.enqueueAgentAudio(burst);

    await sleep(warmupMs + 20);
    const before = sessions.map((s) => s.duplex.stats());
    const lag = monitorEventLoopDelay({ resolution: 5 });
    lag.enable();
    const lateness = engine.scheduler.stats;
    const latenessFrom = lateness.latenessCount;
    let session: Session | undefined;
    if (profile) {
      session = new Session();
      session.connect();
      await session.post("Profiler.enable");
      await session.post("Profiler.setSamplingInterval", { interval: 500 });
      await session.post("Profiler.start");
    }
    const cpuStart = process.cpuUsage();
    const wallStart = performance.now();
    const resultPromise = nextMessage() as Promise<GeneratorResult>;
    await sleep(measureMs);
    const cpu = process.cpuUsage(cpuStart);
    const wallMs = performance.now() - wallStart;
    lag.disable();
    let cpuProfile: CpuProfile | undefined;
    if (session) {
      const { profile: taken } = (await session.post("Profiler.stop")) as { profile: CpuProfile };
      cpuProfile = taken;
      session.disconnect();
    }
    const after = sessions.map((s) => s.duplex.stats());
    const far = await resultPromise;
    clearInterval(feeder);

    let inFrames = 0;
    let inLost = 0;
    let inLate = 0;
    let outFrames = 0;
    for (let i = 0; i < calls; i++) {
      inFrames += after[i]!.packetsReceived - before[i]!.packetsReceived;
      inLost += after[i]!.packetsLost - before[i]!.packetsLost;
      inLate += after[i]!.late - before[i]!.late;
      outFrames += after[i]!.packetsSent - before[i]!.packetsSent;
    }
    const latenessSamples: number[] = [];
    const total = lateness.latenessCount - latenessFrom;
    for (let i = Math.max(0, total - lateness.lateness.length); i < total; i++) {
      latenessSamples.push(lateness.lateness[(latenessFrom + i) % lateness.lateness.length]!);
    }
    latenessSamples.sort((a, b) => a - b);
    void callerFrames;
    const result: RunResult = {
      calls,
      ppsIn: (inFrames / wallMs) * 1000,
      ppsOut: (outFrames / wallMs) * 1000,
      cpuPer100: (((cpu.user + cpu.system) / 1000 / wallMs) * 100) / (calls / 100),
      cpuPerPacketUs: (cpu.user + cpu.system) / Math.max(1, inFrames + outFrames),
      inLost,
      inLate,
      inFrames,
      outLost: far.lost,
      outLate: far.late,
      outFrames: far.received,
      // Expected frames = received + lost: a late frame was received (it counts in both).
      inLostPct: pct(inLost, inFrames + inLost),
      inLatePct: pct(inLate, inFrames + inLost),
      outLostPct: pct(far.lost, far.received + far.lost),
      outLatePct: pct(far.late, far.received + far.lost),
      intervalP50: far.intervalErrorP50,
      intervalP99: far.intervalErrorP99,
      loopLagP99: lag.percentile(99) / 1e6,
      generatorLagP99: far.generatorSendLagP99,
      timerLatenessP99: latenessSamples[Math.floor(latenessSamples.length * 0.99)] ?? Number.NaN,
      load,
    };
    return cpuProfile ? { result, profile: cpuProfile } : { result };
  } finally {
    if (generator.exitCode === null) generator.kill("SIGKILL");
    await engine.close("bench over");
    if (recordDir) await rm(recordDir, { recursive: true, force: true });
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};
const pct = (part: number, whole: number) => (whole === 0 ? 0 : (part / whole) * 100);

function row(r: RunResult, label: string): string {
  return [
    label.padEnd(8),
    String(r.calls).padStart(5),
    r.ppsIn.toFixed(0).padStart(8),
    r.ppsOut.toFixed(0).padStart(8),
    r.cpuPer100.toFixed(1).padStart(9),
    r.cpuPerPacketUs.toFixed(1).padStart(7),
    r.inLostPct.toFixed(3).padStart(8),
    r.inLatePct.toFixed(3).padStart(8),
    r.outLostPct.toFixed(3).padStart(8),
    r.outLatePct.toFixed(3).padStart(8),
    r.intervalP50.toFixed(2).padStart(8),
    r.intervalP99.toFixed(2).padStart(8),
    r.loopLagP99.toFixed(1).padStart(8),
    r.timerLatenessP99.toFixed(1).padStart(8),
    r.generatorLagP99.toFixed(1).padStart(8),
    r.load.toFixed(1).padStart(6),
  ].join(" ");
}

const HEADER = [
  "run".padEnd(8),
  "calls".padStart(5),
  "pps in".padStart(8),
  "pps out".padStart(8),
  "CPU%/100".padStart(9),
  "us/pkt".padStart(7),
  "inLost%".padStart(8),
  "inLate%".padStart(8),
  "outLost%".padStart(8),
  "outLate%".padStart(8),
  "p50 ms".padStart(8),
  "p99 ms".padStart(8),
  "lag99".padStart(8),
  "timer99".padStart(8),
  "gen99".padStart(8),
  "load".padStart(6),
].join(" ");

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  console.log(
    `media bench: sweep ${options.calls.join(",")} calls, ${options.runs} runs each, warm-up ${options.warmupS}s, measure ${options.measureS}s, recording ${options.record ? "on" : "off"}, timers ${options.timers}, ${cpus().length} cores`,
  );
  console.log(
    "columns: CPU%/100 = engine CPU as % of one core per 100 calls, us/pkt = engine CPU µs per packet (in + out),",
  );
  console.log(
    "         inLost%/inLate% = caller frames the engine never got / got too late for its jitter buffer,",
  );
  console.log(
    "         outLost%/outLate% = frames the phones never got / got > 60 ms behind their best arrival (all % of expected),",
  );
  console.log("         p50/p99 = playout interval error at the receiver (ms),");
  console.log(
    "         lag99 = event-loop lag p99 (ms), timer99 = pacing timer lateness p99 (ms), gen99 = generator's own send lag p99 (ms)",
  );
  console.log(
    "         load = 1-min load average at the start of the run (above the core count, the OS is starving us)",
  );
  console.log(HEADER);
  const medians: RunResult[] = [];
  for (const calls of options.calls) {
    const results: RunResult[] = [];
    for (let run = 0; run < options.runs; run++) {
      const { result } = await runOnce(calls, options, false);
      results.push(result);
      console.log(row(result, `#${run + 1}`));
    }
    const keys = Object.keys(results[0]!) as (keyof RunResult)[];
    const summary = Object.fromEntries(
      keys.map((key) => [key, median(results.map((r) => r[key]))]),
    ) as unknown as RunResult;
    medians.push(summary);
    console.log(row(summary, "median"));
  }
  console.log("\nmedians:");
  console.log(HEADER);
  for (const summary of medians) console.log(row(summary, "median"));

  if (options.profileCalls) {
    console.log(
      `\nprofiled run (${options.profileCalls} calls, sampling profiler on; figures above are unprofiled):`,
    );
    const { result, profile } = await runOnce(options.profileCalls, options, true);
    console.log(HEADER);
    console.log(row(result, "profiled"));
    if (profile) {
      console.log("\ntop 10 self time in the engine process:");
      console.log(formatSummary(summarizeProfile(profile, 10)));
    }
  }
}

await main();
