/**
 * The transport contract: what the transaction layer and UA core see of sockets. A transport delivers
 * parsed messages with the address they came from and sends messages to an address; it never throws
 * out of a socket handler.
 */
import type { SipMessage, SipParseErrorCode } from "../message/types";

export type TransportProtocol = "udp" | "tcp";

export interface Endpoint {
  protocol: TransportProtocol;
  address: string;
  port: number;
}

export interface InboundMessage {
  message: SipMessage;
  /** The network source (ip:port) the bytes came from: responses go back here (RFC 3581). */
  source: Endpoint;
  /** For stream transports, the connection the message arrived on, reused for responses. */
  connectionId?: string;
  receivedAt: number;
}

export interface TransportStats {
  received: number;
  sent: number;
  /** Messages that failed to parse and got a 400. */
  rejected: number;
  /** Messages dropped without an answer (unparseable, oversize, responses to nothing). */
  dropped: number;
  sendErrors: number;
  /**
   * Stream connections closed at accept or before their first SIP message: refused source, per-source
   * or inbound cap reached, or silent past the first-message deadline (TCP only).
   */
  refusedConnections?: number;
  lastDropCode?: SipParseErrorCode | "oversize" | "framing";
}

export interface TransportEvents {
  message: (inbound: InboundMessage) => void;
  /** Something went wrong on the socket itself (not a bad message): listeners may re-register. */
  error: (error: Error) => void;
  /** A stream connection closed (TCP): a registration that lived on it must be renewed. */
  disconnected: (remote: Endpoint) => void;
}

export interface Transport {
  readonly protocol: TransportProtocol;
  /** True for TCP: no retransmissions, timers collapse (RFC 3261 §17). */
  readonly reliable: boolean;
  /** The bound local address and port (after listen). */
  readonly local: { address: string; port: number };
  listen(): Promise<void>;
  /**
   * Send a message. For TCP an existing connection to the destination (or `connectionId`) is reused,
   * else one is opened. Rejects on socket errors; never throws synchronously.
   */
  send(message: SipMessage, destination: Endpoint, connectionId?: string): Promise<void>;
  /** Send raw bytes (keepalive CRLF). */
  sendRaw(bytes: Uint8Array, destination: Endpoint): Promise<void>;
  on<E extends keyof TransportEvents>(event: E, listener: TransportEvents[E]): void;
  off<E extends keyof TransportEvents>(event: E, listener: TransportEvents[E]): void;
  stats(): TransportStats;
  /** Idempotent. */
  close(): Promise<void>;
}
