/**
 * Run SIPp 3.6.1 (apt package sip-tester) as a UAC or UAS against the bridge, Kamailio or another SIPp.
 *
 * Scenarios live in test/peers/sipp/*.xml and are referred to by name ("uac-basic"); a path also works.
 * Every run gets its own temp dir for SIPp's trace files, its own control port (-cp) and media port (-mp),
 * so concurrent runs never fight over SIPp's defaults (8888 / 6000). Results come from SIPp's final
 * statistics CSV (-trace_stat), not from scraping the screen.
 *
 * Scenario placeholders: SIPp's own keywords ([service], [remote_ip], [media_port], [field0] …) plus
 *  - `-key` values: `keys: { rtp_port: "20000" }` → `[rtp_port]` in the message text;
 *  - `templateVars: { PCAP: "/abs/file.pcap" }` → `{{PCAP}}` replaced in the XML before SIPp reads it
 *    (for attributes SIPp does not expand keywords in, such as play_pcap_audio and pause milliseconds);
 *    `{{NAME:default}}` supplies a default, so such a variable is optional.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePortBlock, freeUdpPort, LOOPBACK } from "./ports";
import { type PeerHandle, spawnPeer } from "./process";

export const SIPP_BIN = "/usr/bin/sipp";
export const SIPP_SCENARIO_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../peers/sipp");
export const SIPP_PCAP_DIR = join(SIPP_SCENARIO_DIR, "pcap");

/** The committed RTP captures (see peers/sipp/make-pcaps.ts) and how long each plays. */
export const PCAPS = {
  /** 2 s, 1 kHz at -6 dBFS, PCMU. */
  tone1k: { path: join(SIPP_PCAP_DIR, "tone-1000hz.pcap"), durationMs: 2000 },
  /** espeak-ng speech (make-pcaps.ts SPEECH_TEXT), PCMU; decode it with readRtpPcapFile to compare. */
  speech: { path: join(SIPP_PCAP_DIR, "speech.pcap"), durationMs: 5700 },
  /** RFC 4733 digits 1, 2, 3 on PT 101. */
  dtmf123: { path: join(SIPP_PCAP_DIR, "dtmf-123.pcap"), durationMs: 1000 },
  /** Bundled with sip-tester: PCMA, 30 ms ptime (240-byte payloads), for ptime-mismatch tests. */
  g711a30ms: { path: "/usr/share/sip-tester/g711a.pcap", durationMs: 8000 },
} as const;

/** templateVars for uac-dtmf-rtp: play `audio`, then `dtmf`, each followed by its duration plus a margin. */
export function pcapVars(
  audio: { path: string; durationMs: number } = PCAPS.tone1k,
  dtmf: { path: string; durationMs: number } = PCAPS.dtmf123,
  marginMs = 300,
): Record<string, string> {
  return {
    AUDIO_PCAP: audio.path,
    AUDIO_MS: String(audio.durationMs + marginMs),
    DTMF_PCAP: dtmf.path,
    DTMF_MS: String(dtmf.durationMs + marginMs),
  };
}

export type SippLocalIp = "127.0.0.1" | "127.0.0.2";

interface SippCommonOptions {
  /** Scenario name in test/peers/sipp (without .xml), an absolute path, or `{ builtin: "uas" }` (-sn). */
  scenario: string | { builtin: "uac" | "uas" | "uac_pcap" | "regexp" | "branchc" | "branchs" | "3pcc-A" };
  /** Local SIP port (default: a free one). */
  localPort?: number;
  /** Local IP; 127.0.0.2 is Kamailio's default trusted "PBX trunk" address. Default 127.0.0.1. */
  localIp?: SippLocalIp;
  transport?: "udp" | "tcp";
  /** `-key name value` pairs, available as [name] in scenario messages. */
  keys?: Readonly<Record<string, string>>;
  /** `{{NAME}}` / `{{NAME:default}}` substitutions applied to the scenario XML before SIPp loads it. */
  templateVars?: Readonly<Record<string, string>>;
  /** CSV for `-inf` (first line SEQUENTIAL/RANDOM, then `field0;field1;…`), as file content. */
  injection?: string;
  /** An existing `-inf` CSV file (alternative to `injection`). */
  injectionFile?: string;
  /** Default duration of `<pause/>` without attributes (-d), in ms. */
  pauseMs?: number;
  /** Local media (RTP) port (-mp); SIPp also binds mp+2. Default: a free block of 4 ports. */
  mediaPort?: number;
  /** Echo RTP received on the media port back to its sender (-rtp_echo). */
  rtpEcho?: boolean;
  /** Extra raw SIPp arguments, appended last. */
  extraArgs?: readonly string[];
  /** Hard limit for the whole run (default 30 s): SIPp is killed and the run reported as timed out. */
  timeoutMs?: number;
  /** Digest credentials for [authentication] in the scenario (-au / -ap). */
  auth?: { username: string; password: string };
}

export interface RunSippOptions extends SippCommonOptions {
  /** Where to send: "host:port". */
  remote: string;
  /** Request-URI user ([service], -s); default "service". */
  service?: string;
  /** Number of calls before exiting (-m), default 1. */
  calls?: number;
  /** Calls per second (-r), default 10. */
  rate?: number;
  /** Max simultaneous calls (-l). */
  concurrent?: number;
}

export interface SippStats {
  successfulCalls: number;
  failedCalls: number;
  totalCalls: number;
  /** Every column of the last row of SIPp's statistics CSV (cumulative values end in "(C)"). */
  raw: Readonly<Record<string, string>>;
}

export interface SippResult {
  /** SIPp's exit code: 0 all calls succeeded, 1 some failed, 97 internal exit, 99 no calls, 255/-1 fatal. */
  exitCode: number | null;
  timedOut: boolean;
  stats: SippStats | undefined;
  /** Full text of every SIP message sent and received (-trace_msg). */
  messages: string;
  /** Where that log lives (inside `traceDir`; gone after `cleanup()`). */
  messagesPath: string;
  /** Unexpected messages and scenario errors (-trace_err). */
  errors: string;
  /** SIPp's stderr (fatal errors like "Unable to bind"). */
  stderr: string;
  /** Temp dir holding the trace files (removed by `cleanup()`; kept when `keepTraces`). */
  traceDir: string;
  /** The log lines of `<log>` actions (-trace_logs). */
  logs: string;
  cleanup(): Promise<void>;
}

function scenarioArgs(scenario: SippCommonOptions["scenario"]): { builtin?: string; path?: string } {
  if (typeof scenario !== "string") return { builtin: scenario.builtin };
  const path = isAbsolute(scenario) ? scenario : join(SIPP_SCENARIO_DIR, `${scenario}.xml`);
  if (!existsSync(path)) throw new Error(`sipp: scenario ${scenario} not found (looked at ${path})`);
  return { path };
}

async function prepareRun(options: SippCommonOptions, role: string) {
  const traceDir = await mkdtemp(join(tmpdir(), `patchbay-sipp-${role}-`));
  const localIp = options.localIp ?? LOOPBACK;
  const localPort = options.localPort ?? (await freeUdpPort(localIp));
  const controlPort = await freeUdpPort(LOOPBACK);
  // SIPp binds -mp (audio) and -mp+2 (video): reserve the whole block.
  const mediaPort = options.mediaPort ?? (await freePortBlock(4, localIp));
  const { builtin, path } = scenarioArgs(options.scenario);
  const args: string[] = [];
  if (builtin !== undefined) {
    args.push("-sn", builtin);
  } else if (path !== undefined) {
    const vars = options.templateVars ?? {};
    const xml = (await readFile(path, "utf8")).replace(
      /\{\{([A-Za-z0-9_]+)(?::([^}]*))?\}\}/g,
      (_, name: string, fallback: string | undefined) => {
        const value = vars[name] ?? fallback;
        if (value === undefined) throw new Error(`sipp: scenario ${path} needs templateVars.${name}`);
        return value;
      },
    );
    const rendered = join(traceDir, "scenario.xml");
    await writeFile(rendered, xml);
    args.push("-sf", rendered);
  }
  args.push(
    "-i",
    localIp,
    "-p",
    String(localPort),
    "-t",
    options.transport === "tcp" ? "t1" : "u1",
    "-cp",
    String(controlPort),
    "-mi",
    localIp,
    "-mp",
    String(mediaPort),
    "-nostdin",
    "-trace_msg",
    "-message_file",
    join(traceDir, "messages.log"),
    "-trace_err",
    "-error_file",
    join(traceDir, "errors.log"),
    "-trace_stat",
    "-stf",
    join(traceDir, "stats.csv"),
    "-fd",
    "1",
    "-trace_logs",
    "-log_file",
    join(traceDir, "logs.log"),
  );
  if (options.pauseMs !== undefined) args.push("-d", String(options.pauseMs));
  if (options.rtpEcho === true) args.push("-rtp_echo");
  if (options.auth !== undefined) args.push("-au", options.auth.username, "-ap", options.auth.password);
  for (const [name, value] of Object.entries(options.keys ?? {})) args.push("-key", name, value);
  if (options.injection !== undefined) {
    const injectionPath = join(traceDir, "injection.csv");
    await writeFile(injectionPath, options.injection);
    args.push("-inf", injectionPath);
  } else if (options.injectionFile !== undefined) {
    args.push("-inf", options.injectionFile);
  }
  return { traceDir, localIp, localPort, mediaPort, args };
}

async function readIfExists(path: string): Promise<string> {
  try {
    return await readFile(path, "latin1");
  } catch {
    return "";
  }
}

/** Parses SIPp's -trace_stat CSV (semicolon separated, header row + one row per dump). */
export function parseSippStats(csv: string): SippStats | undefined {
  const lines = csv.split(/\r?\n/).filter((line) => line.trim() !== "");
  const header = lines[0]?.split(";");
  const last = lines.length > 1 ? lines[lines.length - 1]?.split(";") : undefined;
  if (header === undefined || last === undefined) return undefined;
  const raw: Record<string, string> = {};
  header.forEach((name, index) => {
    if (name !== "") raw[name] = last[index] ?? "";
  });
  const num = (name: string) => Number.parseInt(raw[name] ?? "0", 10) || 0;
  return {
    successfulCalls: num("SuccessfulCall(C)"),
    failedCalls: num("FailedCall(C)"),
    totalCalls: num("TotalCallCreated"),
    raw,
  };
}

async function collect(
  handle: PeerHandle,
  traceDir: string,
  timeoutMs: number,
  keepTraces: boolean,
): Promise<SippResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const outcome = await Promise.race([handle.exited, timeout]);
  clearTimeout(timer);
  let exitCode: number | null;
  if (outcome === "timeout") {
    // SIGTERM, then SIGKILL: a hung scenario is reported as timed out with whatever traces exist.
    handle.stop(2000);
    exitCode = (await handle.exited).code;
  } else {
    exitCode = outcome.code;
  }
  // SIPp names some files itself when it cannot honour the given name; pick up anything in the dir.
  const files = await readdir(traceDir);
  const find = (suffix: string) => files.find((file) => file.endsWith(suffix));
  const statsFile = find("stats.csv") ?? find(".csv");
  const result: SippResult = {
    exitCode,
    timedOut: outcome === "timeout",
    stats:
      statsFile === undefined ? undefined : parseSippStats(await readIfExists(join(traceDir, statsFile))),
    messages: await readIfExists(join(traceDir, "messages.log")),
    messagesPath: join(traceDir, "messages.log"),
    errors: await readIfExists(join(traceDir, "errors.log")),
    logs: await readIfExists(join(traceDir, "logs.log")),
    stderr: handle.stderr.join("\n"),
    traceDir,
    cleanup: () => rm(traceDir, { recursive: true, force: true }),
  };
  if (!keepTraces && result.exitCode === 0) await result.cleanup();
  return result;
}

/** A one-line explanation of a failed run for assertion messages: exit code, stats, SIPp's errors. */
export function describeSippResult(result: SippResult): string {
  const stats = result.stats;
  return [
    `sipp exit ${result.exitCode}${result.timedOut ? " (timed out)" : ""}`,
    stats === undefined ? "no stats" : `ok ${stats.successfulCalls} failed ${stats.failedCalls}`,
    result.stderr.split("\n").slice(-10).join("\n"),
    result.errors.split("\n").slice(-30).join("\n"),
    `traces: ${result.traceDir}`,
  ].join("\n");
}

/**
 * Run SIPp as a client to completion (or `timeoutMs`). Traces are deleted after a fully successful run
 * unless `keepTraces`; on failure they stay in `traceDir` and `describeSippResult` quotes them.
 */
export async function runSipp(options: RunSippOptions & { keepTraces?: boolean }): Promise<SippResult> {
  const prepared = await prepareRun(options, "uac");
  const args = [options.remote, ...prepared.args, "-s", options.service ?? "service"];
  args.push("-m", String(options.calls ?? 1), "-r", String(options.rate ?? 10));
  if (options.concurrent !== undefined) args.push("-l", String(options.concurrent));
  args.push(...(options.extraArgs ?? []));
  const handle = await spawnPeer(`sipp-uac:${prepared.localPort}`, SIPP_BIN, args, {
    cwd: prepared.traceDir,
  });
  return collect(handle, prepared.traceDir, options.timeoutMs ?? 30_000, options.keepTraces === true);
}

export interface SippServer {
  host: SippLocalIp;
  port: number;
  mediaPort: number;
  /** `host:port`, ready to pass as `remote` or as a SIP URI host part. */
  address: string;
  process: PeerHandle;
  /** Wait for the server to exit on its own (after `-m` calls) and collect its results. */
  finished(timeoutMs?: number): Promise<SippResult>;
  /** Stop it now and collect its results. */
  stop(): Promise<SippResult>;
}

export interface StartSippServerOptions extends SippCommonOptions {
  /** Exit after this many calls (-m); default: run until stopped. */
  calls?: number;
}

/** Start SIPp as a UAS (e.g. `{ builtin: "uas" }` or "uas-answer"). Resolves once its SIP socket is bound. */
export async function startSippServer(
  options: StartSippServerOptions & { keepTraces?: boolean },
): Promise<SippServer> {
  const prepared = await prepareRun(options, "uas");
  const args = [...prepared.args];
  if (options.calls !== undefined) args.push("-m", String(options.calls));
  args.push(...(options.extraArgs ?? []));
  const handle = await spawnPeer(`sipp-uas:${prepared.localPort}`, SIPP_BIN, args, {
    cwd: prepared.traceDir,
  });
  // SIPp has no "ready" line with -nostdin and no screen; wait until the port is bound by it.
  try {
    await waitUntilBound(handle, prepared.localPort, options.transport ?? "udp");
  } catch (error) {
    await rm(prepared.traceDir, { recursive: true, force: true });
    throw error;
  }
  const keep = options.keepTraces === true;
  let result: Promise<SippResult> | undefined;
  return {
    host: prepared.localIp as SippLocalIp,
    port: prepared.localPort,
    mediaPort: prepared.mediaPort,
    address: `${prepared.localIp}:${prepared.localPort}`,
    process: handle,
    finished(timeoutMs = 30_000) {
      result ??= collect(handle, prepared.traceDir, timeoutMs, keep);
      return result;
    },
    stop() {
      result ??= (async () => {
        // SIPp has no graceful-quit signal with -nostdin; its stats file is at most 1 s (-fd 1) old.
        handle.stop(2000);
        return collect(handle, prepared.traceDir, 5000, keep);
      })();
      return result;
    },
  };
}

/** Whether something listens on `port` (UDP bound, or TCP in LISTEN state), read from /proc/net. */
async function isBound(port: number, transport: "udp" | "tcp"): Promise<boolean> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const table of transport === "udp" ? ["udp", "udp6"] : ["tcp", "tcp6"]) {
    const text = await readIfExists(`/proc/net/${table}`);
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      const state = fields[3];
      if (local?.endsWith(`:${hexPort}`) && (transport === "udp" || state === "0A")) return true;
    }
  }
  return false;
}

async function waitUntilBound(handle: PeerHandle, port: number, transport: "udp" | "tcp") {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if (!handle.running) throw new Error(`sipp server exited during start-up\n${handle.tail()}`);
    if (await isBound(port, transport)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await handle.stop(500);
  throw new Error(`sipp server did not bind port ${port} within 5 s\n${handle.tail()}`);
}
