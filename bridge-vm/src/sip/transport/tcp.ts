/**
 * SIP over TCP (RFC 3261 §18): Content-Length framing through SipStreamFramer, connection reuse in both
 * directions (a response goes back on the connection its request came in on; requests to a peer reuse
 * any open connection to it), a cap on connections and an idle timeout for accepted ones.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { SipStreamFramer, serializeSipMessage } from "../message";
import type { SipMessage } from "../message/types";
import { TransportBase, type TransportOptions } from "./base";
import type { Endpoint, Transport } from "./types";

const MAX_CONNECTIONS = 512;
const ACCEPTED_IDLE_MS = 15 * 60_000;
const CONNECT_TIMEOUT_MS = 5_000;

interface Connection {
  id: string;
  socket: Socket;
  remote: Endpoint;
  framer: SipStreamFramer;
  ready: Promise<void>;
}

export class TcpTransport extends TransportBase implements Transport {
  readonly protocol = "tcp" as const;
  readonly reliable = true;
  private server: Server | undefined;
  private readonly connections = new Map<string, Connection>();
  private readonly byRemote = new Map<string, string>();
  private sequence = 0;
  private closed = false;
  local = { address: "", port: 0 };

  constructor(options: TransportOptions) {
    super(options);
  }

  listen(): Promise<void> {
    const server = createServer((socket) => this.adopt(socket, true));
    server.maxConnections = MAX_CONNECTIONS;
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
    const connection: Connection = { id, socket, remote, framer, ready };
    this.connections.set(id, connection);
    socket.setNoDelay(true);
    if (accepted) {
      this.byRemote.set(key(remote), id);
      socket.setTimeout(ACCEPTED_IDLE_MS, () => socket.destroy());
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
    this.connections.delete(connection.id);
    if (this.byRemote.get(key(connection.remote)) === connection.id)
      this.byRemote.delete(key(connection.remote));
  }

  private onData(connection: Connection, chunk: Buffer): void {
    try {
      const results = connection.framer.push(chunk);
      for (const result of results) {
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
    if (this.connections.size >= MAX_CONNECTIONS) throw new Error("too many TCP connections");
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
    for (const connection of this.connections.values()) connection.socket.destroy();
    this.connections.clear();
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
