/**
 * What the security tests attack with: a raw SIP request builder (so a test can break exactly one rule of
 * RFC 3261 at a time), a UDP "attacker" socket bound to a chosen loopback address that records every
 * response, a bounded TCP sender, the SIPVicious launcher, and readers for the bridge's /metrics and
 * refusal log lines. Every function here targets 127.x.x.x only (`assertLoopback`).
 */
import { randomBytes } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BridgeInstance } from "../support/bridge";
import { type PeerHandle, spawnPeer } from "../support/process";

/** Refuses anything that is not IPv4 loopback: these tests must never send traffic off the machine. */
export function assertLoopback(address: string): void {
  if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address)) {
    throw new Error(`security tests only target 127.0.0.0/8, not ${address}`);
  }
}

export function randomToken(bytes = 6): string {
  return randomBytes(bytes).toString("hex");
}

export interface SipRequestSpec {
  method: string;
  /** Request-URI, e.g. sip:1000@127.0.0.3:5070. */
  uri: string;
  /** sent-by of the top Via (host:port). */
  via: string;
  /** Branch of the top Via; `null` leaves the parameter out (pjproject#2016). */
  branch?: string | null;
  callId?: string;
  /** Defaults to `1 <method>`. */
  cseq?: string;
  headers?: Array<[string, string]>;
  body?: string;
  /** Content-Length to declare; defaults to the body's byte length. */
  contentLength?: number;
}

/** A SIP request as text: the rules it follows are the ones the spec does not override. */
export function buildSipRequest(spec: SipRequestSpec): string {
  const body = spec.body ?? "";
  const branch = spec.branch === null ? "" : `;branch=${spec.branch ?? `z9hG4bK-${randomToken()}`}`;
  const target = spec.uri.replace(/^sips?:/, "");
  const lines = [
    `${spec.method} ${spec.uri} SIP/2.0`,
    `Via: SIP/2.0/UDP ${spec.via}${branch};rport`,
    "Max-Forwards: 70",
    `From: <sip:attacker@${spec.via}>;tag=${randomToken()}`,
    `To: <sip:${target}>`,
    `Call-ID: ${spec.callId ?? `${randomToken(8)}@${spec.via}`}`,
    `CSeq: ${spec.cseq ?? `1 ${spec.method}`}`,
    `Contact: <sip:attacker@${spec.via}>`,
    ...(spec.headers ?? []).map(([name, value]) => `${name}: ${value}`),
    ...(body ? ["Content-Type: application/sdp"] : []),
    `Content-Length: ${spec.contentLength ?? Buffer.byteLength(body)}`,
  ];
  return `${lines.join("\r\n")}\r\n\r\n${body}`;
}

/** A plausible audio offer whose RTP goes to `host:port` (nobody listens there unless a test binds it). */
export function audioOffer(host: string, port: number, payloadTypes = "0 8 101"): string {
  return [
    "v=0",
    `o=attacker 1 1 IN IP4 ${host}`,
    "s=-",
    `c=IN IP4 ${host}`,
    "t=0 0",
    `m=audio ${port} RTP/AVP ${payloadTypes}`,
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=sendrecv",
    "",
  ].join("\r\n");
}

export interface ReceivedResponse {
  text: string;
  /** Status code of a SIP response, undefined for anything else. */
  status: number | undefined;
  from: string;
  /** performance.now() at arrival. */
  at: number;
}

export function statusOf(text: string): number | undefined {
  const match = /^SIP\/2\.0 (\d{3}) /.exec(text);
  return match ? Number(match[1]) : undefined;
}

/** Header names present in a SIP message (lower case), in order. */
export function headerNames(text: string): string[] {
  const head = text.split("\r\n\r\n")[0] ?? "";
  return head
    .split("\r\n")
    .slice(1)
    .map((line) => line.slice(0, line.indexOf(":")).trim().toLowerCase())
    .filter((name) => name.length > 0);
}

/** A UDP socket on one loopback address that records everything sent back to it. */
export class UdpAttacker {
  readonly received: ReceivedResponse[] = [];
  private closed = false;

  private constructor(
    private readonly socket: Socket,
    readonly address: string,
    readonly port: number,
  ) {
    socket.on("message", (data, info) => {
      const text = data.toString("latin1");
      this.received.push({
        text,
        status: statusOf(text),
        from: `${info.address}:${info.port}`,
        at: performance.now(),
      });
    });
  }

  static async bind(address: string, port = 0): Promise<UdpAttacker> {
    assertLoopback(address);
    const socket = createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, address, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    // A flood fills the send buffer; the loopback never loses what fits, so make it roomy.
    socket.setSendBufferSize(4 * 1024 * 1024);
    socket.setRecvBufferSize(4 * 1024 * 1024);
    return new UdpAttacker(socket, address, socket.address().port);
  }

  /** host:port to put in a Via so responses come back here. */
  get sentBy(): string {
    return `${this.address}:${this.port}`;
  }

  send(data: string | Uint8Array, host: string, port: number): Promise<void> {
    assertLoopback(host);
    const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
    return new Promise((resolve, reject) =>
      this.socket.send(bytes, port, host, (error) => (error ? reject(error) : resolve())),
    );
  }

  /** Responses received since index `from`. */
  since(from: number): ReceivedResponse[] {
    return this.received.slice(from);
  }

  /** Wait until nothing new has arrived for `quietMs` (bounded by `maxMs`). */
  async settle(quietMs: number, maxMs = 10_000): Promise<void> {
    const deadline = Date.now() + maxMs;
    let count = -1;
    while (count !== this.received.length && Date.now() < deadline) {
      count = this.received.length;
      await sleep(quietMs);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
  }
}

export interface TcpExchange {
  /** Everything the bridge sent back before the connection ended or the wait ran out. */
  reply: string;
  /** Whether the bridge closed (or reset) the connection itself. */
  closedByPeer: boolean;
}

/** Open a TCP connection from `localAddress`, write `chunks`, and collect the reply for `waitMs`. */
export function tcpExchange(
  host: string,
  port: number,
  localAddress: string,
  chunks: readonly Uint8Array[],
  waitMs: number,
): Promise<TcpExchange> {
  assertLoopback(host);
  assertLoopback(localAddress);
  return new Promise((resolve) => {
    const socket = connect({ host, port, localAddress });
    const replies: Buffer[] = [];
    let closedByPeer = false;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ reply: Buffer.concat(replies).toString("latin1"), closedByPeer });
    };
    const timer = setTimeout(finish, waitMs);
    socket.on("data", (data) => replies.push(data));
    socket.on("error", () => {
      closedByPeer = true; // ECONNRESET / EPIPE: the bridge hung up on us mid-write
      finish();
    });
    socket.on("end", () => {
      closedByPeer = true;
      finish();
    });
    socket.on("connect", () => {
      for (const chunk of chunks) {
        if (socket.destroyed) return;
        socket.write(chunk);
      }
    });
  });
}

export interface SipviciousRun {
  output: string;
  /** Exit code, or null when the run had to be stopped at `maxMs`. */
  code: number | null;
}

/**
 * Run a SIPVicious tool (`svmap`, `svwar`) to completion or for at most `maxMs`, bound to `bindIp`.
 * HOME points at a throwaway directory: the tools keep session files under ~/.sipvicious.
 */
export async function runSipvicious(
  tool: "svmap" | "svwar",
  args: readonly string[],
  maxMs: number,
): Promise<SipviciousRun> {
  const home = mkdtempSync(join(tmpdir(), "patchbay-sipvicious-"));
  let handle: PeerHandle | undefined;
  try {
    handle = await spawnPeer(tool, `/usr/bin/${tool}`, args, { env: { HOME: home } });
    const exited = await Promise.race([handle.exited, sleep(maxMs).then(() => undefined)]);
    const info = exited ?? (await handle.stop(500));
    const output = [...handle.stdout, ...handle.stderr].join("\n");
    return { output, code: exited ? info.code : null };
  } finally {
    await handle?.stop(500);
    rmSync(home, { recursive: true, force: true });
  }
}

/** The URL of the bridge's ops endpoint (from its start-up log line). */
export async function opsUrlOf(bridge: BridgeInstance): Promise<string> {
  const line = await bridge.waitForLog("ops endpoint listening", 5_000);
  return String(line.url);
}

/** Sum of every sample of a metric family in the bridge's /metrics (0 when it has no samples yet). */
/** Sum of a metric's samples, only those whose labels include every `labels` pair when given. */
export async function metricTotal(
  opsUrl: string,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): Promise<number> {
  const response = await fetch(`${opsUrl}/metrics`);
  const text = await response.text();
  const wanted = Object.entries(labels).map(([label, value]) => `${label}="${value}"`);
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== " " && rest[0] !== "{") continue;
    const labelText = rest[0] === "{" ? rest.slice(1, rest.indexOf("}")) : "";
    if (!wanted.every((pair) => labelText.split(",").includes(pair))) continue;
    total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

/**
 * The bridge's "request refused" debug lines, optionally only those from one source: an address
 * ("127.0.0.5") or an address and port ("127.0.0.1:40000").
 */
export function refusals(bridge: BridgeInstance, source?: string): Array<{ reason: string; method: string }> {
  const matches = (remote: string) =>
    source === undefined || remote === source || remote.startsWith(`${source}:`);
  return bridge
    .logs()
    .filter((line) => line.msg === "request refused" && matches(String(line.remote)))
    .map((line) => ({ reason: String(line.reason), method: String(line.method) }));
}

/** Log lines that would mean a call got through: the bridge took or answered an INVITE. */
export function callLines(bridge: BridgeInstance, fromAddress?: string): string[] {
  return bridge
    .logs()
    .filter((line) => line.msg === "incoming call" || line.msg === "answered")
    .filter((line) => fromAddress === undefined || JSON.stringify(line).includes(fromAddress))
    .map((line) => line.msg);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
