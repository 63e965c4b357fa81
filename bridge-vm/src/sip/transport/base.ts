/**
 * What UDP and TCP share: listener bookkeeping, the inbound path (parse → 400 or drop → stamp Via →
 * deliver) and counters. Listener errors are contained so a bug above never kills a socket handler.
 */
import type { Logger } from "../../logging";
import { redactSipText } from "../../logging";
import { createResponse, serializeSipMessage } from "../message";
import type { SipMessage, SipParseResult } from "../message/types";
import { RateLimiter } from "./rate-limit";
import type { Endpoint, InboundMessage, TransportEvents, TransportStats } from "./types";
import { stampReceived } from "./via";

export interface TransportOptions {
  /** Address to bind, e.g. 0.0.0.0 or 127.0.0.1. */
  address: string;
  /** 0 picks a free port. */
  port: number;
  logger: Logger;
  /** Log full SIP messages at debug level (credentials masked). */
  trace?: boolean;
  /**
   * Whether a malformed request from this source deserves a 400 at all (default: yes). The service
   * answers only allowed sources, so a scanner's junk gets silence, never a fingerprint.
   */
  answerMalformedFrom?: (source: Endpoint) => boolean;
  /**
   * Whether to keep a stream connection from this remote address at all (default: yes). Checked when
   * a TCP connection is accepted, before any byte is read, so a stranger cannot hold sockets open
   * (AST-2016-005). The owner passes its source allow-list; the transport never imports it.
   */
  acceptFrom?: (address: string) => boolean;
}

type Listeners = { [E in keyof TransportEvents]: Set<TransportEvents[E]> };

export abstract class TransportBase {
  protected readonly listeners: Listeners = { message: new Set(), error: new Set(), disconnected: new Set() };
  protected readonly counters: TransportStats = {
    received: 0,
    sent: 0,
    rejected: 0,
    dropped: 0,
    sendErrors: 0,
  };
  private lastDropLogAt = 0;
  /** 400s per source: even an allowed peer stuck in a loop must not make us answer at line rate. */
  private readonly badRequestLimiter = new RateLimiter({ ratePerSecond: 5, burst: 10, maxSources: 1000 });

  constructor(protected readonly options: TransportOptions) {}

  on<E extends keyof TransportEvents>(event: E, listener: TransportEvents[E]): void {
    (this.listeners[event] as Set<TransportEvents[E]>).add(listener);
  }

  off<E extends keyof TransportEvents>(event: E, listener: TransportEvents[E]): void {
    (this.listeners[event] as Set<TransportEvents[E]>).delete(listener);
  }

  stats(): TransportStats {
    return { ...this.counters };
  }

  protected emitError(error: Error): void {
    for (const listener of this.listeners.error) {
      try {
        listener(error);
      } catch (listenerError) {
        this.options.logger.error({ err: listenerError }, "transport error listener threw");
      }
    }
  }

  protected emitDisconnected(remote: Endpoint): void {
    for (const listener of this.listeners.disconnected) {
      try {
        listener(remote);
      } catch (listenerError) {
        this.options.logger.error({ err: listenerError }, "transport disconnected listener threw");
      }
    }
  }

  /**
   * Handle one parse result from the wire. Returns the 400 response to send back when the message
   * was a malformed request we could still answer.
   */
  protected accept(result: SipParseResult, source: Endpoint, connectionId?: string): SipMessage | undefined {
    if (!result.ok) {
      this.counters.lastDropCode = result.error.code;
      const answer =
        result.request !== undefined &&
        (this.options.answerMalformedFrom?.(source) ?? true) &&
        this.badRequestLimiter.allow(source.address, Date.now());
      if (result.request && answer) {
        this.counters.rejected++;
        this.logDrop(`rejected malformed request: ${result.error.message}`, source);
        try {
          return createResponse(result.request, 400, result.error.message);
        } catch {
          return undefined;
        }
      }
      this.counters.dropped++;
      this.logDrop(`dropped unparseable message: ${result.error.message}`, source);
      return undefined;
    }
    this.counters.received++;
    const message = result.message;
    if (message.kind === "request") stampReceived(message, source);
    if (this.options.trace) {
      this.options.logger.debug(
        { direction: "in", remote: `${source.address}:${source.port}`, sip: this.traceText(message) },
        "sip message",
      );
    }
    const inbound: InboundMessage = { message, source, receivedAt: Date.now() };
    if (connectionId !== undefined) inbound.connectionId = connectionId;
    for (const listener of this.listeners.message) {
      try {
        listener(inbound);
      } catch (error) {
        this.options.logger.error({ err: error }, "SIP message handler threw; message dropped");
      }
    }
    return undefined;
  }

  protected traceOut(message: SipMessage, destination: Endpoint): void {
    if (!this.options.trace) return;
    this.options.logger.debug(
      {
        direction: "out",
        remote: `${destination.address}:${destination.port}`,
        sip: this.traceText(message),
      },
      "sip message",
    );
  }

  protected traceText(message: SipMessage): string {
    return redactSipText(Buffer.from(serializeSipMessage(message)).toString("latin1"));
  }

  /** Drops are logged at most once a second: a scanner must not turn into a log flood. */
  protected logDrop(text: string, source: Endpoint): void {
    const now = Date.now();
    if (now - this.lastDropLogAt < 1000) return;
    this.lastDropLogAt = now;
    this.options.logger.warn(
      {
        remote: `${source.address}:${source.port}`,
        dropped: this.counters.dropped,
        rejected: this.counters.rejected,
      },
      text.slice(0, 200),
    );
  }
}
