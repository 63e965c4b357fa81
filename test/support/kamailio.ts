/**
 * Start a real Kamailio 5.6 registrar/proxy for a test (see test/peers/kamailio/registrar.cfg.tmpl).
 *
 * Each instance gets its own temp dir, config, port and process group; `stop()` removes all of it.
 * The config is syntax-checked with `kamailio -c` first so a template mistake fails with Kamailio's own
 * message, and readiness is proven by an OPTIONS round trip rather than by guessing at log lines.
 */
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { freeUdpPort, LOOPBACK } from "./ports";
import { type PeerHandle, runToCompletion, spawnPeer } from "./process";

const TEMPLATE = join(dirname(fileURLToPath(import.meta.url)), "../peers/kamailio/registrar.cfg.tmpl");
export const KAMAILIO_BIN = "/usr/sbin/kamailio";

export interface KamailioUser {
  username: string;
  password: string;
}

export interface KamailioOptions {
  users: readonly KamailioUser[];
  /** Listen port (UDP and TCP); default a free one. */
  port?: number;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Transport the returned `uri` names. Kamailio always listens on both UDP and TCP. Default "udp". */
  transport?: "udp" | "tcp";
  /** Challenge REGISTER (401) and requests from local users (407). Default true. */
  requireAuth?: boolean;
  /** Digest algorithm of the challenges. Default "MD5". */
  algorithm?: "MD5" | "SHA-256";
  /** Nonce lifetime in seconds (stale=true after it). Default 300. */
  nonceExpireS?: number;
  /** Registrar bounds; a shorter request gets 423 Interval Too Brief. Defaults 60 / 3600. */
  minExpires?: number;
  maxExpires?: number;
  defaultExpires?: number;
  /**
   * Source IPs treated as a trusted PBX trunk: their requests are routed without auth.
   * Default ["127.0.0.2"] (run SIPp with localIp "127.0.0.2" to call a registered user through the proxy).
   */
  trustedSources?: readonly string[];
  /** Request-URI user -> SIP URI to forward to without a location lookup (e.g. a SIPp UAS "PBX"). */
  staticRoutes?: Readonly<Record<string, string>>;
  /** Kamailio debug level (default 2 = info; 3 = debug). */
  debugLevel?: number;
  /** How long to wait for start-up (default 10 s). */
  timeoutMs?: number;
}

export interface KamailioInstance {
  host: string;
  port: number;
  transport: "udp" | "tcp";
  /** `sip:host:port;transport=…` of the proxy (registrar and outbound proxy). */
  uri: string;
  /** The SIP domain/realm users belong to (the listen address). */
  domain: string;
  /** The rendered config file, for debugging. */
  configPath: string;
  /** The Kamailio process (stdout/stderr lines, waitFor). */
  process: PeerHandle;
  /** Kamailio's log lines so far (stderr, where -E sends them). */
  logs(): readonly string[];
  /** Wait for a log line, e.g. `registered sip:alice@` or `auth failed`. */
  waitForLog(pattern: RegExp | string, timeoutMs?: number): Promise<string>;
  /** Stop Kamailio and delete its temp dir. Idempotent. */
  stop(): Promise<void>;
}

function quoteCfg(value: string): string {
  if (/["\\\r\n]/.test(value)) throw new Error(`kamailio: value ${JSON.stringify(value)} cannot be quoted`);
  return `"${value}"`;
}

function checkIdentifier(kind: string, value: string): string {
  if (!/^[A-Za-z0-9._+-]+$/.test(value))
    throw new Error(`kamailio: invalid ${kind} ${JSON.stringify(value)}`);
  return value;
}

function checkIp(value: string): string {
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(value)) throw new Error(`kamailio: invalid IPv4 address ${value}`);
  return value;
}

/** Renders the config template. Exported for tests of the template itself. */
export function renderKamailioConfig(template: string, options: KamailioOptions & { port: number }): string {
  const host = checkIp(options.host ?? LOOPBACK);
  const trusted = (options.trustedSources ?? ["127.0.0.2"]).map(checkIp);
  const minExpires = options.minExpires ?? 60;
  const maxExpires = options.maxExpires ?? 3600;
  const htableLines = [
    ...options.users.map(
      (user) => `\t$sht(users=>${checkIdentifier("username", user.username)}) = ${quoteCfg(user.password)};`,
    ),
    ...Object.entries(options.staticRoutes ?? {}).map(
      ([user, target]) => `\t$sht(routes=>${checkIdentifier("route user", user)}) = ${quoteCfg(target)};`,
    ),
  ];
  const trustedCheck =
    trusted.length === 0
      ? ""
      : [
          `\tif (${trusted.map((ip) => `$si == "${ip}"`).join(" || ")}) {`,
          `\t\txlog("L_INFO", "trusted source $si: no auth\\n");`,
          "\t\treturn;",
          "\t}",
        ].join("\n");
  const values: Record<string, string> = {
    DEBUG_LEVEL: String(options.debugLevel ?? 2),
    LISTEN_LINES: `listen=udp:${host}:${options.port}\nlisten=tcp:${host}:${options.port}`,
    HOST: host,
    MIN_EXPIRES: String(minExpires),
    MAX_EXPIRES: String(maxExpires),
    DEFAULT_EXPIRES: String(options.defaultExpires ?? Math.min(Math.max(600, minExpires), maxExpires)),
    NONCE_EXPIRE: String(options.nonceExpireS ?? 300),
    ALGORITHM: options.algorithm ?? "MD5",
    AUTH_SECRET: randomBytes(16).toString("hex"),
    HTABLE_INIT: htableLines.length === 0 ? "\t$var(empty) = 0;" : htableLines.join("\n"),
    TRUSTED_CHECK: trustedCheck,
    NO_AUTH_RETURN: options.requireAuth === false ? "\treturn;" : "",
  };
  const rendered = template.replace(/\{\{([A-Z_]+)\}\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`kamailio: template placeholder ${name} has no value`);
    return value;
  });
  return rendered;
}

/** Sends one OPTIONS over UDP and resolves true if any SIP response comes back within `timeoutMs`. */
export function sipOptionsPing(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    const branch = `z9hG4bK-probe-${randomBytes(6).toString("hex")}`;
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on("message", (msg) => done(msg.toString("latin1").startsWith("SIP/2.0 ")));
    socket.on("error", () => done(false));
    socket.bind(0, LOOPBACK, () => {
      const local = socket.address().port;
      const message = [
        `OPTIONS sip:${host}:${port} SIP/2.0`,
        `Via: SIP/2.0/UDP ${LOOPBACK}:${local};branch=${branch};rport`,
        "Max-Forwards: 70",
        `From: <sip:probe@${LOOPBACK}>;tag=${randomBytes(4).toString("hex")}`,
        `To: <sip:${host}:${port}>`,
        `Call-ID: probe-${randomBytes(8).toString("hex")}`,
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
        "",
        "",
      ].join("\r\n");
      socket.send(message, port, host);
    });
  });
}

/** Start Kamailio; resolves when it answers OPTIONS. Throws with Kamailio's own error lines otherwise. */
export async function startKamailio(options: KamailioOptions): Promise<KamailioInstance> {
  const host = options.host ?? LOOPBACK;
  const port = options.port ?? (await freeUdpPort(host));
  const transport = options.transport ?? "udp";
  const dir = await mkdtemp(join(tmpdir(), "patchbay-kamailio-"));
  const configPath = join(dir, "kamailio.cfg");
  const template = await readFile(TEMPLATE, "utf8");
  await writeFile(configPath, renderKamailioConfig(template, { ...options, port }));

  const check = await runToCompletion("kamailio -c", KAMAILIO_BIN, ["-c", "-f", configPath, "-Y", dir]);
  if (check.code !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(
      `kamailio: config check failed (exit ${check.code}):\n${check.stderr.split("\n").slice(-25).join("\n")}`,
    );
  }

  // -DD: stay in the foreground but still fork workers; -E: log to stderr; -Y: runtime dir (no /var/run);
  // small shared/private memory because many test instances may run at once on a small machine.
  const args = [
    "-f",
    configPath,
    "-DD",
    "-E",
    "-Y",
    dir,
    "-P",
    join(dir, "kamailio.pid"),
    "-m",
    "32",
    "-M",
    "4",
  ];
  const proc = await spawnPeer(`kamailio:${port}`, KAMAILIO_BIN, args);
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  let ready = false;
  while (Date.now() < deadline && proc.running) {
    if (await sipOptionsPing(host, port, 300)) {
      ready = true;
      break;
    }
  }
  if (!ready) {
    await proc.stop(500);
    await rm(dir, { recursive: true, force: true });
    throw new Error(`kamailio on ${host}:${port} did not answer OPTIONS in time\n${proc.tail(25)}`);
  }

  let stopped: Promise<void> | undefined;
  return {
    host,
    port,
    transport,
    uri: `sip:${host}:${port};transport=${transport}`,
    domain: host,
    configPath,
    process: proc,
    logs: () => proc.stderr,
    waitForLog: (pattern, timeoutMs = 10_000) => proc.waitFor(pattern, { timeoutMs }),
    stop() {
      stopped ??= (async () => {
        await proc.stop();
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
