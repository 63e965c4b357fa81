/**
 * `patchbay doctor`: the checks an operator runs after deploying, each with a hint that says what to
 * do when it fails. Every check is independent and time-boxed; a failing one never stops the others,
 * so one run shows everything that is wrong.
 */
import { createSocket } from "node:dgram";
import { lookup } from "node:dns/promises";
import { createServer } from "node:net";
import type { G711Codec } from "@patchbay/shared/audio";
import { CloudLink, type LinkLogger } from "../cloud/index";
import { type BridgeConfig, ConfigError, loadConfig } from "../config/index";
import type { CallAudioDuplex, MediaStats } from "../media/types";
import {
  createRequest,
  generateBranch,
  generateCallId,
  generateTag,
  parseSipMessage,
  serializeSipMessage,
} from "../sip/message/index";

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
  hint?: string;
}

export type Check = (config: BridgeConfig) => Promise<CheckResult>;

export function splitHostPort(hostPort: string, defaultPort = 5060): { host: string; port: number } {
  const bracketed = hostPort.match(/^\[([^\]]+)\](?::(\d+))?$/);
  if (bracketed) return { host: bracketed[1]!, port: bracketed[2] ? Number(bracketed[2]) : defaultPort };
  const [host, port] = hostPort.split(":");
  return { host: host!, port: port ? Number(port) : defaultPort };
}

export async function checkConfig(
  env: NodeJS.ProcessEnv,
): Promise<{ result: CheckResult; config?: BridgeConfig }> {
  try {
    const config = loadConfig(env);
    return {
      result: {
        name: "config",
        ok: true,
        detail: `registrar ${config.sip.registrar} as ${config.sip.username}`,
      },
      config,
    };
  } catch (error) {
    const message = error instanceof ConfigError ? error.message : (error as Error).message;
    return {
      result: {
        name: "config",
        ok: false,
        detail: message,
        hint: "set the variable named above (see deploy/bridge.env.example), or fix PATCHBAY_CONFIG",
      },
    };
  }
}

export const checkDns: Check = async (config) => {
  const { host } = splitHostPort(config.sip.registrar);
  try {
    const addresses = await lookup(host, { all: true });
    return {
      name: "dns",
      ok: true,
      detail: `${host} → ${addresses.map((entry) => entry.address).join(", ")}`,
    };
  } catch (error) {
    return {
      name: "dns",
      ok: false,
      detail: `${host}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      hint: "check SIP_REGISTRAR's spelling and the VM's resolver (/etc/resolv.conf)",
    };
  }
};

/** Sends one OPTIONS over UDP and waits for any SIP response: proof the registrar hears us. */
export const checkRegistrarReachable: Check = async (config) => {
  const { host, port } = splitHostPort(config.sip.registrar);
  const socket = createSocket(host.includes(":") ? "udp6" : "udp4");
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, resolve);
    });
    const localPort = socket.address().port;
    const domain = config.sip.domain ?? host;
    const options = createRequest("OPTIONS", `sip:${host}:${port}`, [
      ["Via", `SIP/2.0/UDP 0.0.0.0:${localPort};branch=${generateBranch()};rport`],
      ["Max-Forwards", "70"],
      ["From", `<sip:${config.sip.username}@${domain}>;tag=${generateTag()}`],
      ["To", `<sip:${host}:${port}>`],
      ["Call-ID", generateCallId()],
      ["CSeq", "1 OPTIONS"],
      ["Accept", "application/sdp"],
    ]);
    const started = performance.now();
    const status = await new Promise<number | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), 3000);
      socket.on("message", (bytes) => {
        const parsed = parseSipMessage(bytes);
        if (parsed.ok && parsed.message.kind === "response") {
          clearTimeout(timer);
          resolve(parsed.message.status);
        }
      });
      socket.send(serializeSipMessage(options), port, host);
    });
    if (status === undefined) {
      return {
        name: "registrar",
        ok: false,
        detail: `no answer to OPTIONS from ${host}:${port}/udp within 3 s`,
        hint: "open UDP 5060 from this VM to the PBX; check the PBX firewall/fail2ban has not banned this IP",
      };
    }
    return {
      name: "registrar",
      ok: true,
      detail: `${host}:${port} answered ${status} in ${Math.round(performance.now() - started)} ms`,
    };
  } catch (error) {
    return { name: "registrar", ok: false, detail: (error as Error).message, hint: "check SIP_REGISTRAR" };
  } finally {
    socket.close();
  }
};

/** The RTP range must be bindable: sample its ends and middle (binding all 5,000 pairs proves little more). */
export const checkRtpPorts: Check = async (config) => {
  const { portMin, portMax } = config.rtp;
  const middle = portMin + 2 * Math.floor((portMax - portMin) / 4);
  const samples = [portMin, middle, portMax - 2].map((port) => port - (port % 2));
  const failures: string[] = [];
  for (const port of samples) {
    for (const candidate of [port, port + 1]) {
      const socket = createSocket("udp4");
      try {
        await new Promise<void>((resolve, reject) => {
          socket.once("error", reject);
          socket.bind(candidate, config.sip.localAddress, resolve);
        });
      } catch (error) {
        failures.push(`${candidate}: ${(error as NodeJS.ErrnoException).code}`);
      } finally {
        socket.close();
      }
    }
  }
  return failures.length === 0
    ? {
        name: "rtp-ports",
        ok: true,
        detail: `${portMin}-${portMax} bindable (sampled ${samples.join(", ")})`,
      }
    : {
        name: "rtp-ports",
        ok: false,
        detail: `cannot bind ${failures.join("; ")}`,
        hint: "another process uses the RTP range, or it is outside net.ipv4.ip_local_port_range; change RTP_PORT_MIN/MAX",
      };
};

export const checkHttpPort: Check = async (config) => {
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(config.http.port, config.http.host, resolve);
    });
    return {
      name: "http-port",
      ok: true,
      detail: `${config.http.host}:${config.http.port} free for /healthz and /metrics`,
    };
  } catch (error) {
    return {
      name: "http-port",
      ok: false,
      detail: `${config.http.host}:${config.http.port}: ${(error as NodeJS.ErrnoException).code}`,
      hint: "a running bridge already holds it (fine), or pick another HTTP_PORT",
    };
  } finally {
    server.close();
  }
};

/** A duplex with no audio and no events, for a handshake-only media socket. */
class SilentDuplex implements CallAudioDuplex {
  constructor(readonly codec: G711Codec) {}
  on(): void {}
  off(): void {}
  enqueueAgentAudio(): void {}
  clearAgentAudio() {
    return { discardedMs: 0 };
  }
  mark(): void {}
  async sendDtmf(): Promise<void> {}
  stats(): MediaStats {
    return {
      packetsReceived: 0,
      packetsSent: 0,
      packetsLost: 0,
      lossPercent: 0,
      jitterMs: 0,
      late: 0,
      reordered: 0,
      duplicates: 0,
      concealed: 0,
      droppedNotRtp: 0,
      droppedWrongPayloadType: 0,
      droppedWrongSource: 0,
      playoutQueuedMs: 0,
      playoutUnderruns: 0,
    };
  }
}

const silentLogger: LinkLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** Opens a real media socket with a signed token, waits for welcome, and hangs up at once. */
export const checkWorker: Check = async (config) => {
  const { url, secret } = config.cloud;
  if (!url || !secret) {
    return {
      name: "worker",
      ok: false,
      detail: "CLOUD_URL / CLOUD_SECRET not set",
      hint: "set both; the secret is the Worker's BRIDGE_SECRET",
    };
  }
  const callId = `doctor-${generateTag()}${generateTag()}`.slice(0, 40);
  const link = new CloudLink({
    callId,
    metadata: {
      sipCallId: callId,
      direction: "inbound",
      from: "sip:doctor@patchbay.invalid",
      to: `sip:${config.sip.username}@patchbay.invalid`,
      headers: { "X-Patchbay-Doctor": "1" },
      codec: "PCMU",
      sampleRate: 8000,
      frameMs: 20,
    },
    duplex: new SilentDuplex("PCMU"),
    url,
    secret,
    bridgeId: config.cloud.bridgeId ?? "doctor",
    bridgeVersion: "doctor",
    connectTimeoutMs: Math.max(config.cloud.connectTimeoutMs, 5000),
    logger: silentLogger,
  });
  const started = performance.now();
  try {
    await link.start();
    const elapsed = Math.round(performance.now() - started);
    link.hangup("normal", "bridge");
    return {
      name: "worker",
      ok: true,
      detail: `${url} accepted the token and welcomed a test call in ${elapsed} ms`,
    };
  } catch (error) {
    const reason = (error as { reason?: string }).reason;
    return {
      name: "worker",
      ok: false,
      detail: (error as Error).message,
      hint:
        reason === "unauthorized"
          ? "CLOUD_SECRET differs from the Worker's BRIDGE_SECRET (wrangler secret put BRIDGE_SECRET)"
          : "check CLOUD_URL, that the Worker is deployed (pnpm deploy:workers), and outbound HTTPS from the VM",
    };
  } finally {
    link.close();
  }
};

export function formatTable(results: readonly CheckResult[]): string {
  const nameWidth = Math.max(5, ...results.map((result) => result.name.length));
  const lines = [`${"check".padEnd(nameWidth)}  result  detail`];
  for (const result of results) {
    lines.push(`${result.name.padEnd(nameWidth)}  ${result.ok ? "pass  " : "FAIL  "}  ${result.detail}`);
    if (!result.ok && result.hint) lines.push(`${"".padEnd(nameWidth)}          hint: ${result.hint}`);
  }
  const failed = results.filter((result) => !result.ok).length;
  lines.push(
    "",
    failed === 0 ? `all ${results.length} checks passed` : `${failed} of ${results.length} checks failed`,
  );
  return lines.join("\n");
}
