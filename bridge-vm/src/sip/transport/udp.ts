/** SIP over UDP: one datagram = one message (RFC 3261 §18). */
import { createSocket, type Socket } from "node:dgram";
import { isIP } from "node:net";
import { parseSipMessage, serializeSipMessage } from "../message";
import { SIP_LIMITS, type SipMessage } from "../message/types";
import { TransportBase, type TransportOptions } from "./base";
import type { Endpoint, Transport } from "./types";

export class UdpTransport extends TransportBase implements Transport {
  readonly protocol = "udp" as const;
  readonly reliable = false;
  private socket: Socket | undefined;
  private closed = false;
  local = { address: "", port: 0 };

  constructor(options: TransportOptions) {
    super(options);
  }

  listen(): Promise<void> {
    const type = isIP(this.options.address) === 6 ? "udp6" : "udp4";
    const socket = createSocket({ type, recvBufferSize: 4 * 1024 * 1024 });
    this.socket = socket;
    return new Promise((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(this.options.port, this.options.address, () => {
        socket.off("error", reject);
        socket.on("error", (error) => this.emitError(error));
        const address = socket.address();
        this.local = { address: address.address, port: address.port };
        socket.on("message", (bytes, info) => this.onDatagram(bytes, info.address, info.port));
        resolve();
      });
    });
  }

  private onDatagram(bytes: Buffer, address: string, port: number): void {
    try {
      const source: Endpoint = { protocol: "udp", address, port };
      if (isKeepalive(bytes)) return;
      if (bytes.length > SIP_LIMITS.maxMessageBytes) {
        this.counters.dropped++;
        this.counters.lastDropCode = "oversize";
        this.logDrop(`dropped oversize datagram (${bytes.length} bytes)`, source);
        return;
      }
      const reply = this.accept(parseSipMessage(bytes), source);
      if (reply) void this.send(reply, source).catch(() => undefined);
    } catch (error) {
      this.counters.dropped++;
      this.options.logger.error({ err: error }, "UDP datagram handling failed; dropped");
    }
  }

  async send(message: SipMessage, destination: Endpoint): Promise<void> {
    this.traceOut(message, destination);
    await this.sendRaw(serializeSipMessage(message), destination);
  }

  sendRaw(bytes: Uint8Array, destination: Endpoint): Promise<void> {
    const socket = this.socket;
    if (!socket || this.closed) return Promise.reject(new Error("UDP transport is closed"));
    return new Promise((resolve, reject) => {
      socket.send(bytes, destination.port, destination.address, (error) => {
        if (error) {
          this.counters.sendErrors++;
          reject(error);
        } else {
          this.counters.sent++;
          resolve();
        }
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const socket = this.socket;
    if (!socket) return;
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}

/** CRLF keepalives (RFC 5626 §4.4.1 uses CRLFCRLF on UDP) and stray whitespace: not SIP, not an error. */
function isKeepalive(bytes: Uint8Array): boolean {
  if (bytes.length > 8) return false;
  return bytes.every((byte) => byte === 0x0d || byte === 0x0a || byte === 0x20 || byte === 0x00);
}
