/**
 * An in-memory Transport for unit tests of the layers above it: records what is sent and delivers
 * messages as if they came off the wire (our own boundary, so faking it is fair; the real sockets have
 * their own contract suite).
 */
import { Writable } from "node:stream";
import { createLogger, silentLogger } from "../../../src/logging";
import { parseSipMessage, serializeSipMessage } from "../../../src/sip/message";
import type { SipMessage, SipRequest, SipResponse } from "../../../src/sip/message/types";
import type {
  Endpoint,
  InboundMessage,
  Transport,
  TransportEvents,
  TransportProtocol,
  TransportStats,
} from "../../../src/sip/transport/types";
import { stampReceived } from "../../../src/sip/transport/via";

export interface Sent {
  message: SipMessage;
  destination: Endpoint;
  raw?: Uint8Array;
}

export class FakeTransport implements Transport {
  readonly reliable: boolean;
  readonly local = { address: "127.0.0.1", port: 5060 };
  readonly sent: Sent[] = [];
  readonly raw: Array<{ bytes: Uint8Array; destination: Endpoint }> = [];
  failSends = false;
  private readonly listeners = new Set<TransportEvents["message"]>();

  constructor(readonly protocol: TransportProtocol = "udp") {
    this.reliable = protocol === "tcp";
  }

  async listen(): Promise<void> {}

  async send(message: SipMessage, destination: Endpoint): Promise<void> {
    if (this.failSends) throw new Error("ECONNREFUSED");
    // Round-trip through bytes so tests see exactly what would go on the wire.
    const parsed = parseSipMessage(serializeSipMessage(message));
    if (!parsed.ok) throw new Error(`we sent an unparseable message: ${parsed.error.message}`);
    this.sent.push({ message: parsed.message, destination });
  }

  async sendRaw(bytes: Uint8Array, destination: Endpoint): Promise<void> {
    this.raw.push({ bytes, destination });
  }

  on<E extends keyof TransportEvents>(event: E, listener: TransportEvents[E]): void {
    if (event === "message") this.listeners.add(listener as TransportEvents["message"]);
  }

  off<E extends keyof TransportEvents>(event: E, listener: TransportEvents[E]): void {
    if (event === "message") this.listeners.delete(listener as TransportEvents["message"]);
  }

  stats(): TransportStats {
    return { received: 0, sent: this.sent.length, rejected: 0, dropped: 0, sendErrors: 0 };
  }

  async close(): Promise<void> {}

  /** Deliver a message as if it arrived from `source`. */
  deliver(message: SipMessage, source: Partial<Endpoint> = {}): void {
    const from: Endpoint = { protocol: this.protocol, address: "127.0.0.1", port: 5070, ...source };
    if (message.kind === "request") stampReceived(message, from);
    const inbound: InboundMessage = { message, source: from, receivedAt: 0 };
    for (const listener of this.listeners) listener(inbound);
  }

  requests(method?: string): SipRequest[] {
    return this.sent
      .map((s) => s.message)
      .filter((m): m is SipRequest => m.kind === "request" && (method === undefined || m.method === method));
  }

  responses(status?: number): SipResponse[] {
    return this.sent
      .map((s) => s.message)
      .filter(
        (m): m is SipResponse => m.kind === "response" && (status === undefined || m.status === status),
      );
  }

  clear(): void {
    this.sent.length = 0;
  }
}

export const quietLogger = silentLogger();

/** Let promise callbacks (transport sends, resolutions) run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
  await new Promise((resolve) => setImmediate(resolve));
}

/** A logger whose JSON lines the test can read. */
export function captureLogger() {
  const lines: Array<Record<string, unknown> & { msg: string; level: number }> = [];
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      for (const text of String(chunk).split("\n")) if (text.trim()) lines.push(JSON.parse(text));
      callback();
    },
  });
  return { logger: createLogger({ level: "debug", destination: stream }), lines };
}
