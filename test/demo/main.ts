/**
 * `pnpm demo`: one phone call through the whole product on this machine. Starts the stack (offline
 * providers or real ones, the Worker in workerd, Kamailio, the bridge), places a call from a caller on
 * the PBX trunk, speaks two questions in real time, prints both sides of the conversation as it happens
 * and each turn's latency split into its parts, and leaves the stereo recording and a latency report.
 * Exits 0 when the call went as scripted, 1 otherwise.
 */
import { mkdir } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { epochNow, Phone } from "../caller/phone";
import { type TurnLatency, turnLatency, writeLatencyReport } from "../reports/latency";
import { type CallReport, type RemoteWorker, type Stack, startStack } from "../stack/stack";
import { readWavFile } from "../support/audio";

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT_DIR = join(HERE, "out");
const QUESTIONS = ["what are your opening hours", "thanks that is all goodbye"] as const;

const started = epochNow();
const stamp = () => `${((epochNow() - started) / 1000).toFixed(1).padStart(5)}s`;
const say = (line: string) => process.stdout.write(`${stamp()}  ${line}\n`);

function usage(): never {
  process.stdout.write(
    [
      "usage: pnpm demo [--direct] [--remote]",
      "  --direct   call the bridge without Kamailio",
      "  --remote   use a deployed Worker instead of a local one: PATCHBAY_WORKER_URL, BRIDGE_SECRET and",
      "             API_TOKEN name it (its agent and providers are the deployment's: Workers AI, Deepgram…)",
      "",
    ].join("\n"),
  );
  process.exit(2);
}

/** The deployed Worker named by the environment, or the one variable that is missing. */
function remoteWorkerFromEnv(
  environment: Readonly<Record<string, string | undefined>>,
): RemoteWorker | { missing: string } {
  const url = environment.PATCHBAY_WORKER_URL;
  const bridgeSecret = environment.BRIDGE_SECRET;
  const apiToken = environment.API_TOKEN;
  if (!url)
    return {
      missing: "PATCHBAY_WORKER_URL (the deployed Worker's URL, e.g. https://patchbay.<you>.workers.dev)",
    };
  if (!/^https?:\/\//.test(url))
    return { missing: "PATCHBAY_WORKER_URL must start with https:// (or http://)" };
  if (!bridgeSecret)
    return { missing: "BRIDGE_SECRET (the value you gave `wrangler secret put BRIDGE_SECRET`)" };
  if (!apiToken) return { missing: "API_TOKEN (the value you gave `wrangler secret put API_TOKEN`)" };
  return { url, bridgeSecret, apiToken };
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) usage();
  let remoteWorker: RemoteWorker | undefined;
  if (args.includes("--remote")) {
    const remote = remoteWorkerFromEnv(process.env);
    if ("missing" in remote) {
      say(`--remote: set ${remote.missing}`);
      return 2;
    }
    remoteWorker = remote;
  }
  await mkdir(OUT_DIR, { recursive: true });
  say(remoteWorker ? "starting: PBX, bridge …" : "starting: providers, Worker (workerd), PBX, bridge …");
  const stack = await startStack({
    direct: args.includes("--direct"),
    ...(remoteWorker ? { remoteWorker } : {}),
    bridgeEnv: { RECORDING_ENABLED: "true", RECORDING_PATH: join(OUT_DIR, "{callId}.wav") },
  });
  try {
    say(
      stack.providers === "offline"
        ? `providers: offline demo providers at ${stack.offline?.url} (espeak-ng, PocketSphinx, scripted agent)`
        : stack.providers === "remote"
          ? "providers: those of the deployed Worker's agent"
          : "providers: real (keys from the environment, passed to the Worker as secrets)",
    );
    say(
      stack.harness
        ? `worker:    ${stack.workerUrl} (wrangler test harness, env "offline")`
        : `worker:    ${stack.workerUrl} (deployed)`,
    );
    say(
      stack.mode === "kamailio"
        ? `pbx:       Kamailio ${stack.sip.proxy.host}:${stack.sip.proxy.port}; bridge registered as 1050 with digest auth`
        : "pbx:       none (kamailio not installed, or --direct): a stub registrar takes the bridge's REGISTER and the caller calls the bridge directly",
    );
    return await placeCall(stack);
  } finally {
    await stack.close();
    say("stack stopped");
  }
}

async function placeCall(stack: Stack): Promise<number> {
  const phone = await Phone.open({
    proxy: stack.sip.proxy,
    target: stack.sip.target,
    host: stack.sip.callerHost,
  });
  const transcriptPrinter = new TranscriptPrinter(stack);
  const latencies: TurnLatency[] = [];
  let ok = true;
  try {
    say(`caller ${stack.sip.callerHost} dials ${stack.sip.target}`);
    await phone.dial();
    const callId = await stack.callIdFor(phone.sipCallId);
    transcriptPrinter.start(callId);
    say(`answered; call ${callId}`);

    const greeting = await phone.listen(phone.answeredAt, { startTimeoutMs: 10_000 });
    say(`(greeting heard ${Math.round(greeting.startedAt - phone.answeredAt)} ms after answer)`);

    for (const [index, question] of QUESTIONS.entries()) {
      say(`caller: "${question}"`);
      const utterance = await phone.say(question);
      const reply = await phone
        .listen(utterance.lastVoicedAt, { startTimeoutMs: 15_000 })
        .catch(() => undefined);
      if (!reply) {
        say("no spoken answer within 15 s");
        ok = false;
        break;
      }
      const mouthToEar = reply.startedAt - utterance.lastVoicedAt;
      say(`(answer starts ${Math.round(mouthToEar)} ms after the caller stopped: mouth-to-ear)`);
      const report = await transcriptPrinter.waitForTurn(index + 1);
      const turn = report?.turns.find((t) => t.turn === index + 1);
      if (turn) {
        const latency = turnLatency(`${index + 1}: ${question}`, turn, {
          lastVoicedAt: utterance.lastVoicedAt,
          firstHeardAt: reply.startedAt,
        });
        latencies.push(latency);
        say(`latency:   ${describe(latency)}`);
      }
    }

    const bye = await phone.sip.waitForBye(15_000).catch(() => undefined);
    if (bye) say("agent hung up (end_call → BYE received, 200 OK sent)");
    else {
      say("agent did not hang up; caller hangs up");
      await phone.sip.hangup();
    }
    await transcriptPrinter.stop();
    const final = await waitForEnded(stack, callId);
    say(
      `call ${final?.status ?? "unknown"}: ${final?.endCause ?? "?"}${final ? ` (${final.endReason ?? ""})` : ""}`,
    );
    if (final?.status !== "ended") ok = false;

    const recording = join(OUT_DIR, `${callId}.wav`);
    const wav = await readWavFile(recording).catch(() => undefined);
    if (wav && wav.channels === 2) {
      const seconds = wav.samples.length / wav.channels / wav.sampleRate;
      say(
        `recording: ${relative(process.cwd(), recording)} (stereo ${wav.sampleRate} Hz, ${seconds.toFixed(1)} s; left caller, right agent)`,
      );
    } else {
      say(
        `recording: ${wav ? `${wav.channels}-channel file, expected stereo` : "none written"} (${recording})`,
      );
      ok = false;
    }
    const written = await writeLatencyReport("demo-latency", "pnpm demo: per-turn latency", latencies, [
      `providers: ${stack.providers}; pbx: ${stack.mode}`,
    ]);
    say(`latency report: ${relative(process.cwd(), written.markdown)}`);
    return ok ? 0 : 1;
  } finally {
    await transcriptPrinter.stop();
    await phone.close();
  }
}

function describe(t: TurnLatency): string {
  const part = (name: string, value: number | undefined) =>
    value === undefined ? "" : ` ${name} ${Math.round(value)}`;
  return `mouth-to-ear ${Math.round(t.mouthToEarMs)} ms =${part("endpoint", t.endpointMs)}${part("+ STT", t.sttMs)}${part("+ LLM", t.llmFirstTokenMs)}${part("+ TTS", t.ttsFirstAudioMs)}${part("+ transport in", t.transportInMs)}${part("+ orchestration", t.orchestrationMs)}${part("+ transport out", t.transportOutMs)} (ours ${Math.round(t.oursMs ?? Number.NaN)})`;
}

async function waitForEnded(stack: Stack, callId: string): Promise<CallReport | undefined> {
  let report: CallReport | undefined;
  for (let i = 0; i < 40; i++) {
    report = await stack.callReport(callId).catch(() => undefined);
    if (report?.status === "ended") return report;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return report;
}

/** Polls GET /v1/calls/:id and prints each new transcript line (the Worker's view of both sides). */
class TranscriptPrinter {
  private printed = 0;
  private timer: NodeJS.Timeout | undefined;
  private callId = "";
  private latest: CallReport | undefined;
  private polling: Promise<void> | undefined;

  constructor(private readonly stack: Stack) {}

  start(callId: string): void {
    this.callId = callId;
    this.timer = setInterval(() => {
      this.polling ??= this.poll().finally(() => {
        this.polling = undefined;
      });
    }, 250);
  }

  private async poll(): Promise<void> {
    const report = await this.stack.callReport(this.callId).catch(() => undefined);
    if (!report) return;
    this.latest = report;
    // An agent line is printed once its turn is over: until then it holds only what has been played so far.
    for (const line of report.transcript.slice(this.printed)) {
      const turnOver = report.turns.find((t) => t.turn === line.turn)?.endedAt !== undefined;
      if (line.role === "agent" && !turnOver && report.status !== "ended") break;
      const who = line.role === "caller" ? "worker heard caller" : "agent";
      say(`${who}: "${line.text}"${line.interrupted ? " (interrupted)" : ""}`);
      this.printed++;
    }
  }

  /** The latest report once turn `turn` has its first audio timestamp (or after 5 s). */
  async waitForTurn(turn: number): Promise<CallReport | undefined> {
    for (let i = 0; i < 50; i++) {
      await this.poll();
      if (this.latest?.turns.find((t) => t.turn === turn)?.timestamps.firstFrameSentAt) return this.latest;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return this.latest;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.polling;
    if (this.callId) await this.poll();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `demo failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
