/**
 * The MediaEngine: owns the RTP port pool, the shared pacing scheduler and every call's session.
 *
 *   const media = createMediaEngine({ ...config.rtp, recording: config.recording }, logger);
 *   const call = await media.open({ callId, params, recordingPath });   // bind, put call.localPort in SDP
 *   call.start();                                                       // after 200 OK / ACK
 *   call.update(newParams);                                             // re-INVITE
 *   await call.close("bye");                                            // idempotent, frees the ports
 *
 * Resource rule: open() either returns a session that owns both sockets and its port pair, or
 * rejects having released everything it took. Nothing in between can leak.
 */
import { createSocket, type Socket, type SocketOptions } from "node:dgram";
import { lookup as dnsLookup } from "node:dns";
import { isIPv4 } from "node:net";
import { performance } from "node:perf_hooks";
import type { BridgeConfig } from "../config/schema";
import type { LatchTiming } from "./latch";
import type { MediaLogger } from "./logger";
import { PortPool } from "./port-pool";
import { WavRecorder } from "./recording/wav-recorder";
import { PacingScheduler, PerCallTimers } from "./scheduler";
import { closeSocket, MediaSession } from "./session";
import { type CallMedia, type MediaEngine, type MediaParams, MediaUnavailableError } from "./types";

export interface MediaEngineOptions {
  portMin: number;
  portMax: number;
  latch: boolean;
  /** When a NAT'd source may be learned; defaults in latch.ts (tests shorten them). */
  latchTiming?: LatchTiming;
  timeoutS: number;
  idle: "silence" | "none";
  recording: { enabled: boolean; path: string };
  /** Local address to bind RTP on (default all IPv4 interfaces). */
  bindAddress?: string;
  /** Our public address (for logs/CNAME only; the call layer puts it in the SDP). */
  publicAddress?: string;
  /** Kernel receive buffer per RTP socket; Node's default is too small for bursts under load. */
  recvBufferSize?: number;
  /** Monotonic clock in ms; injectable for tests. */
  clock?: () => number;
  /** Pacing slots per 20 ms (see scheduler.ts). */
  phases?: number;
  /** "shared" (default): one timer for all calls; "per-call": a timer each (for comparison). */
  timers?: "shared" | "per-call";
  /** Mean RTCP report interval, default 5000 ms. */
  rtcpIntervalMs?: number;
  /** How many ports to try when a bind fails because another process holds the port. */
  bindAttempts?: number;
}

export interface OpenOptions {
  callId: string;
  params: MediaParams;
  /** Overrides the configured pattern; recording happens when this is set or recording is enabled. */
  recordingPath?: string;
  /** IPs besides params.remoteAddress that may latch (the PBX's signalling source when it is NAT'd). */
  extraMediaAddresses?: readonly string[];
  /** Values for the {from} and {to} tokens of the recording path pattern. */
  from?: string;
  to?: string;
}

export interface BridgeMediaEngine extends MediaEngine {
  open(options: OpenOptions): Promise<CallMedia & MediaSession>;
  readonly freePortPairs: number;
  readonly scheduler: PacingScheduler | PerCallTimers;
  /** Close every session (shutdown). */
  close(reason?: string): Promise<void>;
}

/**
 * dgram resolves the destination of every send through dns.lookup, which for an IP literal still
 * costs a process.nextTick round per packet. SDP gives us literals: answer those synchronously.
 */
const literalFirstLookup: NonNullable<SocketOptions["lookup"]> = (hostname, options, callback) => {
  if (isIPv4(hostname)) callback(null, hostname, 4);
  else dnsLookup(hostname, options, callback);
};

const UNSAFE_PATH_CHARACTERS = /[^A-Za-z0-9._@+-]/g;

/** Expand {callId} {date} {time} {from} {to} in the recording path; values are made path-safe. */
export function expandRecordingPath(
  pattern: string,
  values: { callId: string; from?: string; to?: string; now?: Date },
): string {
  const now = values.now ?? new Date();
  const iso = now.toISOString();
  // No separators, and no leading dots: a value can never be ".." or a hidden file.
  const safe = (text: string | undefined) =>
    (text ?? "unknown").replace(UNSAFE_PATH_CHARACTERS, "_").replace(/^\.+/, "_") || "_";
  return pattern
    .replaceAll("{callId}", safe(values.callId))
    .replaceAll("{date}", iso.slice(0, 10))
    .replaceAll("{time}", iso.slice(11, 19).replaceAll(":", ""))
    .replaceAll("{from}", safe(values.from))
    .replaceAll("{to}", safe(values.to));
}

function bind(socket: Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      socket.off("listening", onListening);
      reject(error);
    };
    const onListening = () => {
      socket.off("error", onError);
      resolve();
    };
    socket.once("error", onError);
    socket.once("listening", onListening);
    socket.bind({ port, address, exclusive: true });
  });
}

export function createMediaEngine(
  options:
    | MediaEngineOptions
    | (BridgeConfig["rtp"] & Pick<MediaEngineOptions, "recording" | "publicAddress">),
  logger: MediaLogger,
): BridgeMediaEngine {
  const settings = options as MediaEngineOptions;
  const clock = settings.clock ?? (() => performance.now());
  const bindAddress = settings.bindAddress ?? "0.0.0.0";
  const recvBufferSize = settings.recvBufferSize ?? 256 * 1024;
  const bindAttempts = settings.bindAttempts ?? 8;
  const pool = new PortPool(settings.portMin, settings.portMax);
  const sessions = new Set<MediaSession>();
  const onTickError = (error: unknown) => logger.error({ err: error }, "media tick failed");
  const scheduler =
    settings.timers === "per-call"
      ? new PerCallTimers(clock, onTickError)
      : new PacingScheduler(clock, onTickError, settings.phases ?? 4);

  async function bindPair(): Promise<{ port: number; rtp: Socket; rtcp: Socket }> {
    for (let attempt = 0; attempt < bindAttempts; attempt++) {
      const port = pool.acquire();
      if (port === undefined) break;
      const rtp = createSocket({ type: "udp4", recvBufferSize, lookup: literalFirstLookup });
      const rtcp = createSocket({ type: "udp4", lookup: literalFirstLookup });
      try {
        await bind(rtp, port, bindAddress);
        await bind(rtcp, port + 1, bindAddress);
        return { port, rtp, rtcp };
      } catch (error) {
        await Promise.all([closeSocket(rtp), closeSocket(rtcp)]);
        pool.release(port);
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== "EADDRINUSE" && code !== "EACCES") throw error;
        logger.debug({ port, code }, "RTP port busy, trying the next pair");
      }
    }
    throw new MediaUnavailableError(
      `no free RTP port pair in ${settings.portMin}-${settings.portMax} (${pool.used} in use)`,
    );
  }

  const engine: BridgeMediaEngine = {
    get activeSessions() {
      return sessions.size;
    },
    get freePortPairs() {
      return pool.available;
    },
    scheduler,
    async open(open) {
      const { port, rtp, rtcp } = await bindPair();
      let recorder: WavRecorder | undefined;
      try {
        const recordingPath =
          open.recordingPath ??
          (settings.recording.enabled
            ? expandRecordingPath(settings.recording.path, {
                callId: open.callId,
                ...(open.from !== undefined ? { from: open.from } : {}),
                ...(open.to !== undefined ? { to: open.to } : {}),
              })
            : undefined);
        if (recordingPath) recorder = await WavRecorder.create(recordingPath);
        const session = new MediaSession({
          callId: open.callId,
          params: open.params,
          ...(open.extraMediaAddresses ? { extraAddresses: open.extraMediaAddresses } : {}),
          latch: settings.latch,
          ...(settings.latchTiming ? { latchTiming: settings.latchTiming } : {}),
          timeoutS: settings.timeoutS,
          idle: settings.idle,
          ...(settings.rtcpIntervalMs !== undefined ? { rtcpIntervalMs: settings.rtcpIntervalMs } : {}),
          rtp,
          rtcp,
          localPort: port,
          ...(recorder ? { recorder } : {}),
          clock,
          logger,
          onClosed: (closed) => {
            scheduler.remove(closed);
            sessions.delete(closed);
            pool.release(port);
          },
        });
        sessions.add(session);
        scheduler.add(session);
        return session;
      } catch (error) {
        await Promise.all([closeSocket(rtp), closeSocket(rtcp), recorder?.close().catch(() => undefined)]);
        pool.release(port);
        throw error;
      }
    },
    async close(reason = "shutdown") {
      await Promise.all([...sessions].map((session) => session.close(reason)));
      scheduler.stop();
    },
  };
  return engine;
}
