/**
 * One launcher for the whole product on one machine, shared by `pnpm demo` and the end-to-end tests:
 * offline speech providers (unless real provider keys are given) → the Worker and its Durable Object in
 * workerd (wrangler's test harness, `--env offline`) → Kamailio as the PBX with digest auth (when it is
 * installed) → the real bridge process registering on it. `close()` stops all of it, in reverse order,
 * and is idempotent; a failure half-way through start-up stops what already started.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type OfflineProviders, startOfflineProviders } from "@patchbay/offline-providers";
import { PROVIDER_SECRETS } from "@patchbay/workers/src/providers/secrets";
import { createTestHarness, type TestHarness } from "wrangler";
import { type BridgeInstance, type BridgeLogLine, startBridge } from "../support/bridge";
import { KAMAILIO_BIN, type KamailioInstance, startKamailio } from "../support/kamailio";
import { type StubRegistrar, startStubRegistrar } from "./stub-registrar";

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");

/** Kamailio treats every port of its own address as itself, so the bridge sits on another loopback IP. */
export const BRIDGE_HOST = "127.0.0.3";
/** Kamailio's trusted "PBX trunk" address: calls from it are routed to the registered bridge without auth. */
export const CALLER_HOST = "127.0.0.2";
export const BRIDGE_EXTENSION = "1050";

/** Provider secrets passed to the Worker when present in the environment (the real-provider mode). */
export const PROVIDER_KEYS = PROVIDER_SECRETS;

/**
 * The part of GET /v1/calls/:id (workers/src/call/store.ts `CallReport`) the demo and tests read. Declared
 * here rather than imported so this Node package does not compile Worker code against workerd's types.
 */
export interface CallReport {
  callId: string;
  status: "active" | "ended";
  agent: string;
  endCause?: string;
  endReason?: string;
  connections: number;
  transcript: { turn: number; role: "caller" | "agent"; text: string; interrupted: boolean; atMs: number }[];
  turns: {
    turn: number;
    source: "greeting" | "caller" | "dtmf";
    userText?: string;
    startedAt: number;
    endedAt?: number;
    interrupted: boolean;
    /** Epoch ms (workerd clock) of each pipeline step: callerSpeechEndAt, endOfTurnAt, llmFirstTokenAt… */
    timestamps: Record<string, number | undefined>;
    timing: Record<string, number | undefined>;
  }[];
}

/** A Worker already running elsewhere (a deployment): the stack then starts no Worker and no providers. */
export interface RemoteWorker {
  /** Base URL, e.g. https://patchbay.example.workers.dev */
  url: string;
  /** The Worker's BRIDGE_SECRET (the bridge signs its call tokens with it). */
  bridgeSecret: string;
  /** The Worker's API_TOKEN (GET /v1/calls/:id). */
  apiToken: string;
}

export interface StackOptions {
  /** "offline" (default when OPENAI_API_KEY is unset): the local espeak/PocketSphinx/scripted server. */
  providers?: "offline" | "real";
  /** Use this Worker instead of starting one in workerd; its providers are whatever it is configured with. */
  remoteWorker?: RemoteWorker;
  /** Environment to read provider keys from (default process.env). */
  environment?: Readonly<Record<string, string | undefined>>;
  /** Force a direct call to the bridge even when Kamailio is installed. */
  direct?: boolean;
  /** Extra bridge environment (ENV_KEYS names), e.g. RECORDING_ENABLED / RECORDING_PATH. */
  bridgeEnv?: Record<string, string>;
  /** Bridge log level (default "info"; the e2e tests read call lines at info). */
  logLevel?: string;
  /** Kamailio static routes (R-URI user → SIP URI), e.g. an outbound call's callee played by SIPp. */
  kamailioRoutes?: Record<string, string>;
}

export interface Stack {
  mode: "kamailio" | "direct";
  /** "remote": the providers of the remote Worker's deployment. */
  providers: "offline" | "real" | "remote";
  /** Where the caller sends its INVITE and the Request-URI to use. */
  sip: { proxy: { host: string; port: number }; target: string; callerHost: string };
  workerUrl: string;
  bridge: BridgeInstance;
  kamailio?: KamailioInstance;
  offline?: OfflineProviders;
  /** The local Worker's test harness; absent with a remote Worker. */
  harness?: TestHarness;
  /** GET /v1/calls/:id with the API token; undefined while the Durable Object does not know the call. */
  callReport(callId: string): Promise<CallReport | undefined>;
  /** A request to the Worker's REST API with the API token (e.g. POST /v1/calls). */
  api(path: string, init?: RequestInit): Promise<Response>;
  /** The bridge's ops port /metrics text. */
  metrics(): Promise<string>;
  /** Value of one unlabelled (or summed labelled) Prometheus sample, e.g. "patchbay_calls_active". */
  metric(name: string): Promise<number | undefined>;
  /** The Worker call id the bridge used for the SIP call with this Call-ID (from the bridge's logs). */
  callIdFor(sipCallId: string, timeoutMs?: number): Promise<string>;
  /** Bridge log lines about one call (matched on its callId field). */
  callLogs(callId: string): BridgeLogLine[];
  close(): Promise<void>;
}

function resolveProviders(options: StackOptions): Stack["providers"] {
  if (options.remoteWorker) return "remote";
  if (options.providers) return options.providers;
  const env = options.environment ?? process.env;
  return env.OPENAI_API_KEY ? "real" : "offline";
}

/** Starts the stack; every piece is stopped again if a later one fails. */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const cleanups: Array<() => Promise<unknown>> = [];
  const runCleanups = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  };
  try {
    return await start(options, cleanups, runCleanups);
  } catch (error) {
    await runCleanups();
    throw error;
  }
}

async function start(
  options: StackOptions,
  cleanups: Array<() => Promise<unknown>>,
  runCleanups: () => Promise<void>,
): Promise<Stack> {
  const providers = resolveProviders(options);
  const environment = options.environment ?? process.env;
  const remote = options.remoteWorker;
  const bridgeSecret = remote?.bridgeSecret ?? randomBytes(24).toString("hex");
  const apiToken = remote?.apiToken ?? randomBytes(24).toString("hex");

  let offline: OfflineProviders | undefined;
  let harness: TestHarness | undefined;
  let workerUrl: string;
  if (remote) {
    workerUrl = remote.url.replace(/\/$/, "");
  } else {
    const secrets: Record<string, string> = { BRIDGE_SECRET: bridgeSecret, API_TOKEN: apiToken };
    if (providers === "offline") {
      offline = await startOfflineProviders({ port: 0 });
      cleanups.push(() => offline!.close());
      secrets.OPENAI_BASE_URL = `${offline.url}/v1`;
      secrets.OPENAI_API_KEY = "offline-demo";
    } else {
      for (const key of PROVIDER_KEYS) {
        const value = environment[key];
        if (value) secrets[key] = value;
      }
    }
    // Miniflare otherwise fetches a Request.cf sample from workers.cloudflare.com: no traffic off loopback.
    process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
    const local = createTestHarness({
      workers: [{ configPath: join(REPO_ROOT, "wrangler.toml"), env: "offline", secrets }],
    });
    harness = local;
    cleanups.push(() => local.close());
    workerUrl = (await local.listen()).url.toString().replace(/\/$/, "");
  }

  const password = randomBytes(9).toString("hex");
  const useKamailio = !options.direct && existsSync(KAMAILIO_BIN);
  let kamailio: KamailioInstance | undefined;
  if (useKamailio) {
    kamailio = await startKamailio({
      users: [{ username: BRIDGE_EXTENSION, password }],
      ...(options.kamailioRoutes ? { staticRoutes: options.kamailioRoutes } : {}),
    });
    cleanups.push(() => kamailio!.stop());
  }
  let stub: StubRegistrar | undefined;
  if (!kamailio) {
    stub = await startStubRegistrar();
    cleanups.push(() => stub!.close());
  }
  const bridgeEnv: Record<string, string> = {
    CLOUD_URL: workerUrl,
    CLOUD_SECRET: bridgeSecret,
    LOG_LEVEL: options.logLevel ?? "info",
    SIP_MAX_CONCURRENT_CALLS: "50",
    // The agents' transfer targets (workers/agents/*.json) are 4-digit extensions.
    TRANSFER_ALLOWED_DESTINATIONS: "^\\d{3,4}$",
    // Direct mode: there is no registrar, so name the caller's address as the one allowed source.
    ...(useKamailio ? {} : { SIP_ALLOWED_SOURCES: CALLER_HOST }),
    ...options.bridgeEnv,
  };
  const bridge = await startBridge({
    // Direct mode: a stub registrar accepts the REGISTER so the bridge logs its Contact token, the
    // Request-URI user it accepts calls for.
    registrar: kamailio ? `${kamailio.host}:${kamailio.port}` : `${stub!.host}:${stub!.port}`,
    username: BRIDGE_EXTENSION,
    password,
    host: BRIDGE_HOST,
    env: bridgeEnv,
  });
  cleanups.push(() => bridge.stop());
  if (kamailio) await kamailio.waitForLog(/registered sip:1050@/);

  const sip = kamailio
    ? {
        proxy: { host: kamailio.host, port: kamailio.port },
        target: `sip:${BRIDGE_EXTENSION}@${kamailio.host}:${kamailio.port}`,
        callerHost: CALLER_HOST,
      }
    : {
        proxy: { host: bridge.host, port: bridge.port },
        target: `sip:${bridge.token}@${bridge.host}:${bridge.port}`,
        callerHost: CALLER_HOST,
      };

  const opsLine = await bridge.waitForLog(/ops endpoint listening/);
  const opsUrl = String(opsLine.url).replace(/\/$/, "");
  const metrics = async (): Promise<string> => (await fetch(`${opsUrl}/metrics`)).text();

  let closed: Promise<void> | undefined;
  return {
    mode: kamailio ? "kamailio" : "direct",
    providers,
    sip,
    workerUrl,
    bridge,
    ...(kamailio ? { kamailio } : {}),
    ...(offline ? { offline } : {}),
    ...(harness ? { harness } : {}),
    async callReport(callId) {
      const response = await fetch(`${workerUrl}/v1/calls/${callId}`, {
        headers: { Authorization: `Bearer ${apiToken}` },
      });
      if (response.status === 404) return undefined;
      if (!response.ok)
        throw new Error(`GET /v1/calls/${callId}: ${response.status} ${await response.text()}`);
      return (await response.json()) as CallReport;
    },
    api(path, init = {}) {
      const headers = new Headers(init.headers);
      headers.set("Authorization", `Bearer ${apiToken}`);
      return fetch(`${workerUrl}${path}`, { ...init, headers });
    },
    metrics,
    async metric(name) {
      const text = await metrics();
      let total: number | undefined;
      for (const line of text.split("\n")) {
        if (line.startsWith("#")) continue;
        const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
        if (match?.[1] === name) total = (total ?? 0) + Number(match[3]);
      }
      return total;
    },
    async callIdFor(sipCallId, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = bridge
          .logs()
          .find((entry) => entry.sipCallId === sipCallId && typeof entry.callId === "string");
        if (line) return String(line.callId);
        if (Date.now() > deadline) throw new Error(`bridge logged no callId for SIP Call-ID ${sipCallId}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    callLogs(callId) {
      return bridge.logs().filter((entry) => entry.callId === callId);
    },
    close() {
      closed ??= runCleanups();
      return closed;
    },
  };
}
