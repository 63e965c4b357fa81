/**
 * A stand-in MediaEngine that only reserves ports: for each call it binds an even RTP port and the
 * RTCP port above it (so the SDP answer names ports that really are ours and no one else's) and moves
 * no audio. The call layer runs against it until the real RTP engine (src/media) is wired in.
 */
import { createSocket, type Socket } from "node:dgram";
import type { G711Codec } from "@patchbay/shared/audio";
import {
  type CallAudioDuplex,
  type CallMedia,
  type CallMediaEvents,
  type MediaEngine,
  type MediaParams,
  type MediaStats,
  MediaUnavailableError,
} from "../media/types";

export interface PortReservingOptions {
  address: string;
  portMin: number;
  portMax: number;
}

export class PortReservingMediaEngine implements MediaEngine {
  private readonly inUse = new Set<number>();
  private cursor: number;

  constructor(private readonly options: PortReservingOptions) {
    this.cursor = options.portMin;
  }

  get activeSessions(): number {
    return this.inUse.size;
  }

  async open(options: { callId: string; params: MediaParams }): Promise<CallMedia> {
    const { portMin, portMax } = this.options;
    const span = Math.floor((portMax - portMin) / 2);
    for (let tried = 0; tried < span; tried++) {
      const port = this.cursor;
      this.cursor = this.cursor + 2 > portMax - 1 ? portMin : this.cursor + 2;
      if (this.inUse.has(port)) continue;
      this.inUse.add(port);
      const pair = await bindPair(this.options.address, port);
      if (pair) return new ReservedPortsMedia(port, pair, options.params, () => this.inUse.delete(port));
      this.inUse.delete(port);
    }
    throw new MediaUnavailableError(`no free RTP port pair in ${portMin}-${portMax}`);
  }
}

async function bindPair(address: string, port: number): Promise<[Socket, Socket] | undefined> {
  const rtp = await bind(address, port);
  if (!rtp) return undefined;
  const rtcp = await bind(address, port + 1);
  if (!rtcp) {
    rtp.close();
    return undefined;
  }
  return [rtp, rtcp];
}

function bind(address: string, port: number): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    socket.once("error", () => {
      socket.close();
      resolve(undefined);
    });
    socket.bind(port, address, () => {
      socket.removeAllListeners("error");
      socket.on("error", () => undefined);
      // Incoming RTP is read and discarded so the kernel buffer never fills.
      socket.on("message", () => undefined);
      resolve(socket);
    });
  });
}

class ReservedPortsMedia implements CallMedia {
  readonly duplex: CallAudioDuplex;
  params: MediaParams;
  private closed = false;
  private readonly closedListeners = new Set<CallMediaEvents["closed"]>();

  constructor(
    readonly localPort: number,
    private readonly sockets: [Socket, Socket],
    params: MediaParams,
    private readonly release: () => void,
  ) {
    this.params = params;
    this.duplex = new SilentDuplex(params.codec);
  }

  on<E extends keyof CallMediaEvents>(event: E, listener: CallMediaEvents[E]): void {
    if (event === "closed") this.closedListeners.add(listener as CallMediaEvents["closed"]);
  }

  start(): void {}

  update(params: MediaParams): void {
    this.params = params;
  }

  async close(reason: string): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const socket of this.sockets) socket.close();
    this.release();
    for (const listener of this.closedListeners) listener(reason);
  }
}

class SilentDuplex implements CallAudioDuplex {
  constructor(readonly codec: G711Codec) {}
  on(): void {}
  off(): void {}
  enqueueAgentAudio(): void {}
  clearAgentAudio(): { discardedMs: number } {
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
