/**
 * A minimal, independent RTP endpoint for the media tests: it writes and reads RTP headers by hand
 * (not with the code under test), binds an RTP/RTCP pair on loopback and records what arrives.
 */
import { createSocket, type Socket } from "node:dgram";
import { performance } from "node:perf_hooks";

export interface PeerPacket {
  marker: boolean;
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  payload: Uint8Array;
  atMs: number;
  fromPort: number;
  fromAddress: string;
}

export interface SendFields {
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  marker?: boolean;
  payload: Uint8Array;
}

export function rtpBytes(fields: SendFields): Uint8Array {
  const bytes = new Uint8Array(12 + fields.payload.length);
  const view = new DataView(bytes.buffer);
  bytes[0] = 0x80;
  bytes[1] = (fields.marker ? 0x80 : 0) | fields.payloadType;
  view.setUint16(2, fields.sequenceNumber & 0xffff);
  view.setUint32(4, fields.timestamp >>> 0);
  view.setUint32(8, fields.ssrc >>> 0);
  bytes.set(fields.payload, 12);
  return bytes;
}

function bindSocket(socket: Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(port, address, () => {
      socket.off("error", reject);
      resolve();
    });
  });
}

export class RtpPeer {
  readonly received: PeerPacket[] = [];
  readonly rtcpReceived: { bytes: Uint8Array; fromPort: number }[] = [];
  private constructor(
    readonly address: string,
    private readonly rtp: Socket,
    private readonly rtcp: Socket,
  ) {
    rtp.on("message", (message, remote) => {
      if (message.length < 12) return;
      const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
      this.received.push({
        marker: (message[1]! & 0x80) !== 0,
        payloadType: message[1]! & 0x7f,
        sequenceNumber: view.getUint16(2),
        timestamp: view.getUint32(4),
        ssrc: view.getUint32(8),
        payload: Uint8Array.prototype.slice.call(message, 12),
        atMs: performance.now(),
        fromPort: remote.port,
        fromAddress: remote.address,
      });
    });
    rtcp.on("message", (message, remote) => {
      this.rtcpReceived.push({ bytes: Uint8Array.prototype.slice.call(message), fromPort: remote.port });
    });
  }

  /** Bind an even/odd pair on `address` (probing for a free pair). */
  static async open(address = "127.0.0.1"): Promise<RtpPeer> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = 30000 + 2 * Math.floor(Math.random() * 4000);
      const rtp = createSocket("udp4");
      const rtcp = createSocket("udp4");
      try {
        await bindSocket(rtp, port, address);
        await bindSocket(rtcp, port + 1, address);
        return new RtpPeer(address, rtp, rtcp);
      } catch {
        rtp.close();
        rtcp.close();
      }
    }
    throw new Error("no free port pair for the test peer");
  }

  get port(): number {
    return this.rtp.address().port;
  }

  send(toPort: number, fields: SendFields, toAddress = "127.0.0.1"): void {
    this.rtp.send(rtpBytes(fields), toPort, toAddress);
  }

  sendRaw(toPort: number, bytes: Uint8Array, toAddress = "127.0.0.1"): void {
    this.rtp.send(bytes, toPort, toAddress);
  }

  sendRtcp(toPort: number, bytes: Uint8Array, toAddress = "127.0.0.1"): void {
    this.rtcp.send(bytes, toPort, toAddress);
  }

  close(): void {
    try {
      this.rtp.close();
      this.rtcp.close();
    } catch {
      // already closed
    }
  }
}

/**
 * Stream `frames` 20 ms payloads in real time on a drift-free grid; `impair(i)` may drop ("drop"),
 * delay ("hold", sent with the next one, i.e. reordered) or pass a packet.
 */
export async function streamFrames(
  peer: RtpPeer,
  toPort: number,
  frames: Uint8Array[],
  options: {
    payloadType: number;
    ssrc: number;
    seq0?: number;
    ts0?: number;
    impair?: (i: number) => "pass" | "drop" | "hold";
  },
): Promise<void> {
  const start = performance.now();
  let held: SendFields | undefined;
  for (let i = 0; i < frames.length; i++) {
    const due = start + i * 20;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const fields: SendFields = {
      payloadType: options.payloadType,
      sequenceNumber: ((options.seq0 ?? 1000) + i) & 0xffff,
      timestamp: ((options.ts0 ?? 90_000) + i * 160) >>> 0,
      ssrc: options.ssrc,
      marker: i === 0,
      payload: frames[i]!,
    };
    const verdict = options.impair?.(i) ?? "pass";
    if (verdict === "drop") continue;
    if (verdict === "hold") {
      held = fields;
      continue;
    }
    peer.send(toPort, fields);
    if (held) {
      peer.send(toPort, held);
      held = undefined;
    }
  }
  if (held) peer.send(toPort, held);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
