/**
 * Start the real bridge (bridge-vm/src/main.ts) as a child process for end-to-end tests: config through
 * environment variables (the same ENV_KEYS a deployment uses), JSON log lines parsed as they come, and a
 * clean stop (SIGTERM → un-REGISTER → exit 0) that the tests can assert on.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { freeUdpPort, LOOPBACK } from "./ports";
import { type PeerHandle, spawnPeer } from "./process";

const BRIDGE_DIR = join(dirname(fileURLToPath(import.meta.url)), "../../bridge-vm");

export interface BridgeLogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface StartBridgeOptions {
  /** host:port of the registrar. */
  registrar: string;
  username: string;
  password: string;
  domain?: string;
  transport?: "udp" | "tcp";
  /** Local SIP address (default 127.0.0.1). Kamailio's test config treats every port of its own IP as
   * "myself", so a bridge reached through it must sit on another loopback address, e.g. 127.0.0.3. */
  host?: string;
  /** Local SIP port; default a free one. */
  port?: number;
  /** Extra environment (any ENV_KEYS name, e.g. SIP_ANSWER_DELAY_MS). */
  env?: Record<string, string>;
  /** Wait for the "registered" log line before resolving (default true). */
  waitForRegistration?: boolean;
  timeoutMs?: number;
}

export interface BridgeInstance {
  process: PeerHandle;
  host: string;
  port: number;
  /** The Contact URI the bridge registered (from its "registered" line), when it did. */
  contact?: string;
  /** The Contact user token (R-URI user for direct calls). */
  token?: string;
  /** Every JSON log line so far. */
  logs(): BridgeLogLine[];
  /** Resolve with the first log line whose msg matches (past lines included). */
  waitForLog(pattern: RegExp | string, timeoutMs?: number): Promise<BridgeLogLine>;
  /** SIGTERM and wait for exit; resolves with the exit code. Idempotent. */
  stop(): Promise<number | null>;
}

function parseLine(line: string): BridgeLogLine | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const parsed = JSON.parse(line) as BridgeLogLine;
    return typeof parsed.msg === "string" ? parsed : undefined;
  } catch {
    return undefined;
  }
}

export async function startBridge(options: StartBridgeOptions): Promise<BridgeInstance> {
  const host = options.host ?? LOOPBACK;
  const port = options.port ?? (await freeUdpPort(host));
  const env: Record<string, string> = {
    SIP_REGISTRAR: options.registrar,
    SIP_USERNAME: options.username,
    SIP_PASSWORD: options.password,
    SIP_TRANSPORT: options.transport ?? "udp",
    SIP_LOCAL_ADDRESS: host,
    SIP_LOCAL_PORT: String(port),
    SIP_KEEPALIVE: "off",
    LOG_LEVEL: "debug",
    HTTP_PORT: String(await freeUdpPort()),
    // SIGTERM drains: tests that stop a bridge mid-call should not wait the production 300 s.
    DRAIN_TIMEOUT: "5",
    ...(options.domain ? { SIP_DOMAIN: options.domain } : {}),
    ...options.env,
  };
  const proc = await spawnPeer(`bridge:${port}`, process.execPath, ["--import", "tsx", "src/main.ts"], {
    env,
    cwd: BRIDGE_DIR,
  });
  const logs = (): BridgeLogLine[] =>
    proc.stdout.map(parseLine).filter((line): line is BridgeLogLine => line !== undefined);
  const matches = (pattern: RegExp | string, msg: string) =>
    typeof pattern === "string" ? msg.includes(pattern) : pattern.test(msg);
  const waitForLog = async (pattern: RegExp | string, timeoutMs = 15_000): Promise<BridgeLogLine> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = logs().find((line) => matches(pattern, line.msg));
      if (found) return found;
      if (!proc.running)
        throw new Error(`bridge exited while waiting for ${String(pattern)}\n${proc.tail(30)}`);
      if (Date.now() > deadline) throw new Error(`bridge: no log line ${String(pattern)}\n${proc.tail(30)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  let stopped: Promise<number | null> | undefined;
  const instance: BridgeInstance = {
    process: proc,
    host,
    port,
    logs,
    waitForLog,
    stop() {
      stopped ??= proc.stop(8_000).then((info) => info.code);
      return stopped;
    },
  };
  await waitForLog("SIP listening", options.timeoutMs ?? 20_000);
  if (options.waitForRegistration !== false) {
    const registered = await waitForLog(/^registered$/, options.timeoutMs ?? 20_000);
    const contact = String(registered.contact ?? "");
    instance.contact = contact;
    instance.token = /^sips?:([^@]+)@/.exec(contact)?.[1];
  }
  return instance;
}
