/**
 * SIP over TCP (RFC 3261 §18): Content-Length framing through SipStreamFramer, connection reuse in both
 * directions (a response goes back on the connection its request came in on; requests to a peer reuse
 * any open connection to it), a cap on connections and an idle timeout for accepted ones.
 *
 * Accepted connections are a resource a stranger can hold without ever sending a message (AST-2016-005),
 * so they are guarded at accept, not per message: a refused source is closed before any byte is read,
 * one address may hold only a few, inbound ones may never take the slots reserved for our own outgoing
 * connections (registrar, calls), and a connection that delivers no valid SIP message soon is closed.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { SipStreamFramer, serializeSipMessage } from "../message";
import type { SipMessage } from "../message/types";
import { TransportBase, type TransportOptions } from "./base";
import type { Endpoint, Transport } from "./types";

const CONNECT_TIMEOUT_MS = 5_000;

/** Caps on stream connections; defaults in `DEFAULT_TCP_LIMITS`, overridable (tests shrink them). */
export interface TcpLimits {
  /** All connections, inbound and outbound. */
  maxConnections: number;
  /** Slots inbound connections can never take, so our own outgoing TCP still works under load. */
  reservedOutbound: number;
  /** Accepted connections one remote address may hold (a PBX needs a handful). */
  maxPerSource: number;
  /** An accepted connection must deliver a valid SIP message within this, else it is closed. */
  firstMessageMs: number;
  /** An accepted connection silent for this long is closed. */
  acceptedIdleMs: number;
}

export const DEFAULT_TCP_LIMITS: Readonly<TcpLimits> = Object.freeze({
  maxConnections: 512,
  reservedOutbound: 32,
  maxPerSource: 32,
  firstMessageMs: 5_000,
  acceptedIdleMs: 15 * 60_000,
});

export interface TcpTransportOptions extends TransportOptions {
  limits?: Partial<TcpLimits>;
}

interface Connection {
  id: string;
  socket: Socket;
  remote: Endpoint;
  framer: SipStreamFramer;
  ready: Promise<void>;
  accepted: boolean;
  /** Pending until the first valid SIP message on an accepted connection. */
  firstMessageTimer?: NodeJS.Timeout;
}

export class TcpTransport extends TransportBase implements Transport {
  readonly protocol = "tcp" as const;
  readonly reliable = true;
  private server: Server | undefined;
  private readonly connections = new Map<string, Connection>();
  private readonly byRemote = new Map<string, string>();
  /** Accepted (inbound) connections per remote address. */
  private readonly inboundBySource = new Map<string, number>();
  private inboundCount = 0;
  private lastRefusalLogAt = 0;
  private readonly limits: TcpLimits;
  private sequence = 0;
  private closed = false;
  local = { address: "", port: 0 };

  constructor(options: TcpTransportOptions) {
    super(options);
    this.limits = { ...DEFAULT_TCP_LIMITS, ...options.limits };
  }

  listen(): Promise<void> {
    const server = createServer((socket) => this.onAccepted(socket));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port, this.options.address, () => {
        server.off("error", reject);
        server.on("error", (error) => this.emitError(error));
        const address = server.address();
        if (address && typeof address === "object")
          this.local = { address: address.address, port: address.port };
        resolve();
      });
    });
  }

  /** Decide on a fresh inbound socket before reading from it; never throws out of the server handler. */
  private onAccepted(socket: Socket): void {
    socket.on("error", () => undefined);
    try {
      const address = normalizeAddress(socket.remoteAddress ?? "");
      const refusal = this.refusalFor(address);
      if (refusal !== undefined) {
        this.refuse(socket, address, refusal);
        return;
      }
      this.adopt(socket, true);
    } catch (error) {
      this.options.logger.debug({ err: error }, "TCP accept failed; connection closed");
      this.refuse(socket, socket.remoteAddress ?? "", "accept failed");
    }
  }

  private refusalFor(address: string): string | undefined {
    if (this.closed) return "transport closed";
    if (address === "") return "no remote address";
    if (!(this.options.acceptFrom?.(address) ?? true)) return "source not allowed";
    if (this.inboundCount >= this.limits.maxConnections - this.limits.reservedOutbound)
      return "inbound connection cap";
    if ((this.inboundBySource.get(address) ?? 0) >= this.limits.maxPerSource)
      return "per-source connection cap";
    return undefined;
  }

  private refuse(socket: Socket, address: string, reason: string): void {
    this.counters.refusedConnections = (this.counters.refusedConnections ?? 0) + 1;
    socket.destroy();
    // A connection flood must not become a log flood: at most one line a second, at debug.
    const now = Date.now();
    if (now - this.lastRefusalLogAt < 1000) return;
    this.lastRefusalLogAt = now;
    this.options.logger.debug(
      { remote: address, reason, refused: this.counters.refusedConnections, inbound: this.inboundCount },
      "TCP connection refused",
    );
  }

  private adopt(socket: Socket, accepted: boolean, ready: Promise<void> = Promise.resolve()): Connection {
    const id = `tcp-${++this.sequence}`;
    const remote: Endpoint = {
      protocol: "tcp",
      address: normalizeAddress(socket.remoteAddress ?? ""),
      port: socket.remotePort ?? 0,
    };
    // RFC 5626 §3.5.1: a CRLFCRLF ping on a stream gets a CRLF pong.
    const framer = new SipStreamFramer({
      onKeepalive: (kind) => {
        if (kind === "ping" && !socket.destroyed) socket.write("\r\n");
      },
    });
    const connection: Connection = { id, socket, remote, framer, ready, accepted };
    this.connections.set(id, connection);
    socket.setNoDelay(true);
    if (accepted) {
      this.byRemote.set(key(remote), id);
      this.inboundCount++;
      this.inboundBySource.set(remote.address, (this.inboundBySource.get(remote.address) ?? 0) + 1);
      socket.setTimeout(this.limits.acceptedIdleMs, () => socket.destroy());
      connection.firstMessageTimer = setTimeout(() => {
        connection.firstMessageTimer = undefined;
        this.refuse(socket, remote.address, "no SIP message in time");
      }, this.limits.firstMessageMs);
      connection.firstMessageTimer.unref();
    }
    socket.on("data", (chunk) => this.onData(connection, chunk));
    socket.on("error", (error) => {
      this.options.logger.debug({ err: error, remote: key(connection.remote) }, "TCP connection error");
    });
    socket.on("close", () => {
      this.forget(connection);
      if (!this.closed) this.emitDisconnected(connection.remote);
    });
    return connection;
  }

  private forget(connection: Connection): void {
    if (!this.connections.delete(connection.id)) return;
    clearTimeout(connection.firstMessageTimer);
    connection.firstMessageTimer = undefined;
    if (connection.accepted) {
      this.inboundCount--;
      const address = connection.remote.address;
      const held = (this.inboundBySource.get(address) ?? 1) - 1;
      if (held > 0) this.inboundBySource.set(address, held);
      else this.inboundBySource.delete(address);
    }
    if (this.byRemote.get(key(connection.remote)) === connection.id)
      this.byRemote.delete(key(connection.remote));
  }

  private onData(connection: Connection, chunk: Buffer): void {
    try {
      const results = connection.framer.push(chunk);
      for (const result of results) {
        if (result.ok && connection.firstMessageTimer !== undefined) {
          clearTimeout(connection.firstMessageTimer);
          connection.firstMessageTimer = undefined;
        }
        const reply = this.accept(result, connection.remote, connection.id);
        if (reply) void this.send(reply, connection.remote, connection.id).catch(() => undefined);
        if (!result.ok && connection.framer.failed) {
          // Framing is lost (bad Content-Length, oversize): the only safe move is to hang up.
          this.counters.lastDropCode = "framing";
          connection.socket.destroy();
          return;
        }
      }
    } catch (error) {
      this.counters.dropped++;
      this.options.logger.error({ err: error }, "TCP data handling failed; connection closed");
      connection.socket.destroy();
    }
  }

  private connectionFor(destination: Endpoint, connectionId?: string): Connection {
    if (connectionId !== undefined) {
      const existing = this.connections.get(connectionId);
      if (existing && !existing.socket.destroyed) return existing;
    }
    const reusedId = this.byRemote.get(key(destination));
    const reused = reusedId === undefined ? undefined : this.connections.get(reusedId);
    if (reused && !reused.socket.destroyed) return reused;
    if (this.connections.size >= this.limits.maxConnections) throw new Error("too many TCP connections");
    const socket = createConnection({
      host: destination.address,
      port: destination.port,
      localAddress: isWildcard(this.options.address) ? undefined : this.options.address,
    });
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`TCP connect to ${key(destination)} timed out`));
      }, CONNECT_TIMEOUT_MS);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    ready.catch(() => undefined);
    const connection = this.adopt(socket, false, ready);
    connection.remote = { ...destination };
    this.byRemote.set(key(destination), connection.id);
    return connection;
  }

  async send(message: SipMessage, destination: Endpoint, connectionId?: string): Promise<void> {
    this.traceOut(message, destination);
    await this.write(serializeSipMessage(message), destination, connectionId);
  }

  sendRaw(bytes: Uint8Array, destination: Endpoint): Promise<void> {
    return this.write(bytes, destination);
  }

  private async write(bytes: Uint8Array, destination: Endpoint, connectionId?: string): Promise<void> {
    if (this.closed) throw new Error("TCP transport is closed");
    try {
      const connection = this.connectionFor(destination, connectionId);
      await connection.ready;
      await new Promise<void>((resolve, reject) =>
        connection.socket.write(bytes, (error) => (error ? reject(error) : resolve())),
      );
      this.counters.sent++;
    } catch (error) {
      this.counters.sendErrors++;
      throw error;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const connection of [...this.connections.values()]) {
      this.forget(connection);
      connection.socket.destroy();
    }
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function key(endpoint: Endpoint): string {
  return `${endpoint.address}:${endpoint.port}`;
}

function normalizeAddress(address: string): string {
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}

function isWildcard(address: string): boolean {
  return address === "0.0.0.0" || address === "::" || address === "";
}
