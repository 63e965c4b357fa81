/**
 * Child-process runner for real test peers (Kamailio, SIPp, baresip, …).
 *
 * Every peer is spawned in its own process group (detached) so `stop()` reaches the workers a daemon forks
 * (Kamailio forks one process per listener). Every handle is tracked: `stopAllPeers()` runs after each test
 * file (see setup.ts), and a synchronous SIGKILL sweep runs on process exit so a crashed test run leaves
 * nothing behind. Output is captured line by line (bounded) so failures can quote the peer's last words.
 */
import { type ChildProcess, spawn } from "node:child_process";

export type Stream = "stdout" | "stderr";

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnPeerOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Resolve `spawnPeer` only once a line of stdout or stderr matches this. */
  readyPattern?: RegExp | string;
  /** How long to wait for `readyPattern` (default 10 s). */
  timeoutMs?: number;
  /** Lines kept per stream (default 5000); older lines are discarded. */
  maxLines?: number;
}

export interface WaitForOptions {
  timeoutMs?: number;
  /** Which stream to watch; default both. */
  stream?: Stream;
  /** Also match lines already captured (default true). */
  includePast?: boolean;
}

export interface PeerHandle {
  readonly name: string;
  readonly pid: number;
  /** Captured lines (most recent `maxLines`). */
  readonly stdout: readonly string[];
  readonly stderr: readonly string[];
  /** Settles when the process exits (never rejects). */
  readonly exited: Promise<ExitInfo>;
  /** Whether the process has exited. */
  readonly running: boolean;
  /** Resolves with the first line matching `pattern`; rejects on timeout or if the process exits first. */
  waitFor(pattern: RegExp | string, options?: WaitForOptions): Promise<string>;
  /** The last `n` lines of stderr and stdout, labelled, for error messages. */
  tail(n?: number): string;
  /** `signal` (default SIGTERM) to the process group, SIGKILL after `graceMs` (default 3 s). Idempotent. */
  stop(graceMs?: number, signal?: NodeJS.Signals): Promise<ExitInfo>;
}

const live = new Set<PeerHandleImpl>();

function matches(pattern: RegExp | string, line: string): boolean {
  return typeof pattern === "string" ? line.includes(pattern) : pattern.test(line);
}

class PeerHandleImpl implements PeerHandle {
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<ExitInfo>;
  private exitInfo: ExitInfo | undefined;
  private stopping: Promise<ExitInfo> | undefined;
  private readonly listeners = new Set<(stream: Stream, line: string) => void>();
  private readonly exitListeners = new Set<(info: ExitInfo) => void>();

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    private readonly maxLines: number,
  ) {
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.exitInfo = { code, signal };
        live.delete(this);
        for (const listener of this.exitListeners) listener(this.exitInfo);
        resolve(this.exitInfo);
      });
    });
    this.capture("stdout", child.stdout);
    this.capture("stderr", child.stderr);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  private capture(stream: Stream, source: NodeJS.ReadableStream | null): void {
    if (source === null) return;
    let partial = "";
    source.setEncoding("utf8");
    source.on("data", (chunk: string) => {
      const pieces = (partial + chunk).split(/\r?\n/);
      partial = pieces.pop() ?? "";
      for (const line of pieces) this.push(stream, line);
    });
    source.on("end", () => {
      if (partial !== "") this.push(stream, partial);
      partial = "";
    });
  }

  private push(stream: Stream, line: string): void {
    const lines = this[stream];
    lines.push(line);
    if (lines.length > this.maxLines) lines.splice(0, lines.length - this.maxLines);
    for (const listener of this.listeners) listener(stream, line);
  }

  waitFor(pattern: RegExp | string, options: WaitForOptions = {}): Promise<string> {
    const { timeoutMs = 10_000, stream, includePast = true } = options;
    const streams: Stream[] = stream === undefined ? ["stdout", "stderr"] : [stream];
    if (includePast) {
      for (const s of streams) {
        const found = this[s].find((line) => matches(pattern, line));
        if (found !== undefined) return Promise.resolve(found);
      }
    }
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        this.listeners.delete(onLine);
        this.exitListeners.delete(onExit);
      };
      const onLine = (s: Stream, line: string) => {
        if (streams.includes(s) && matches(pattern, line)) {
          cleanup();
          resolve(line);
        }
      };
      const onExit = (info: ExitInfo) => {
        cleanup();
        reject(
          new Error(
            `${this.name} exited (code ${info.code}, signal ${info.signal}) before printing ${String(pattern)}\n${this.tail()}`,
          ),
        );
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `${this.name}: no line matching ${String(pattern)} within ${timeoutMs} ms\n${this.tail()}`,
          ),
        );
      }, timeoutMs);
      this.listeners.add(onLine);
      this.exitListeners.add(onExit);
      if (this.exitInfo !== undefined) onExit(this.exitInfo);
    });
  }

  tail(n = 20): string {
    const err = this.stderr.slice(-n).map((line) => `  [${this.name} stderr] ${line}`);
    const out = this.stdout.slice(-n).map((line) => `  [${this.name} stdout] ${line}`);
    return [...err, ...out].join("\n");
  }

  signalGroup(signal: NodeJS.Signals): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // The group is already gone (ESRCH): nothing left to signal.
    }
  }

  stop(graceMs = 3000, signal: NodeJS.Signals = "SIGTERM"): Promise<ExitInfo> {
    if (this.exitInfo !== undefined) {
      // The leader exited on its own; its forked workers may linger in the group.
      this.signalGroup("SIGKILL");
      return Promise.resolve(this.exitInfo);
    }
    this.stopping ??= (async () => {
      this.signalGroup(signal);
      const timer = setTimeout(() => this.signalGroup("SIGKILL"), graceMs);
      const info = await this.exited;
      clearTimeout(timer);
      this.signalGroup("SIGKILL");
      return info;
    })();
    return this.stopping;
  }
}

let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const handle of live) handle.signalGroup("SIGKILL");
  });
}

/**
 * Spawn a peer. Resolves once `readyPattern` appears (or immediately without one); rejects with the peer's
 * last output if it exits or times out first (and stops it).
 */
export async function spawnPeer(
  name: string,
  cmd: string,
  args: readonly string[],
  options: SpawnPeerOptions = {},
): Promise<PeerHandle> {
  installExitHook();
  const child = spawn(cmd, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));
  const handle = new PeerHandleImpl(name, child, options.maxLines ?? 5000);
  live.add(handle);
  const started = await Promise.race([
    spawnError,
    new Promise<undefined>((resolve) => child.once("spawn", () => resolve(undefined))),
  ]);
  if (started instanceof Error) {
    live.delete(handle);
    throw new Error(`${name}: could not start ${cmd}: ${started.message}`);
  }
  if (options.readyPattern !== undefined) {
    try {
      await handle.waitFor(options.readyPattern, { timeoutMs: options.timeoutMs ?? 10_000 });
    } catch (error) {
      await handle.stop(500);
      throw error;
    }
  }
  return handle;
}

/** Run a command to completion, capturing output (for short tools: `kamailio -c`, sox, espeak-ng). */
export async function runToCompletion(
  name: string,
  cmd: string,
  args: readonly string[],
  options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string; handle: PeerHandle }> {
  const handle = await spawnPeer(name, cmd, args, { env: options.env, cwd: options.cwd });
  const timeoutMs = options.timeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const outcome = await Promise.race([handle.exited, timedOut]);
  clearTimeout(timer);
  if (outcome === "timeout") {
    await handle.stop(500);
    throw new Error(`${name}: still running after ${timeoutMs} ms, killed\n${handle.tail()}`);
  }
  return { code: outcome.code, stdout: handle.stdout.join("\n"), stderr: handle.stderr.join("\n"), handle };
}

/** Handles that have not exited yet. */
export function livePeers(): readonly PeerHandle[] {
  return [...live];
}

/** Stop every tracked peer (SIGTERM, then SIGKILL). Registered as an afterAll hook by setup.ts. */
export async function stopAllPeers(graceMs = 3000): Promise<void> {
  await Promise.all([...live].map((handle) => handle.stop(graceMs)));
}

/** Throws, naming them, if any spawned peer is still running. */
export function assertNothingLeft(): void {
  if (live.size === 0) return;
  const names = [...live].map((handle) => `${handle.name} (pid ${handle.pid})`).join(", ");
  throw new Error(`peers still running: ${names}`);
}
