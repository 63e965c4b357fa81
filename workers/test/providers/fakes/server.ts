/**
 * Base for the fake vendor servers (Node side, started by global-setup.ts): one node:http server on
 * 127.0.0.1:0 plus a `ws` WebSocketServer for upgrades. Fakes check what the client sends and record
 * protocol violations; tests read them back through `GET /__fake/violations` (and reset with
 * `POST /__fake/reset`) so a violation fails the test that caused it, loudly, with the reason.
 *
 * Scenarios are chosen by the client's own configuration, never by a side channel: the API key
 * (BAD_KEY → 401, BUSY_KEY → 429) and a path prefix in the base URL (`/s/drop/...` → the fake drops
 * the connection mid-stream, `/s/flaky/...` → first attempt 503, `/s/hang/...` → handshake never answered).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";

export const GOOD_KEY = "test-key";
export const BAD_KEY = "bad-key";
export const BUSY_KEY = "busy-key";

export interface FakeRequest {
  method: string;
  /** Path with any `/s/<scenario>` prefix removed. */
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage["headers"];
  scenario: string | undefined;
}

export abstract class FakeServer {
  readonly violations: string[] = [];
  readonly counters = new Map<string, number>();
  private readonly server: Server;
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly sockets = new Set<WebSocket>();
  private readonly hanging = new Set<Duplex>();
  url = "";

  constructor(readonly name: string) {
    this.server = createServer((req, res) => {
      void this.onHttp(req, res).catch((error: unknown) => {
        this.violation(`http handler crashed: ${String(error)}`);
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
    this.server.on("upgrade", (req, socket, head) => this.onUpgrade(req, socket, head));
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const address = this.server.address();
    if (!address || typeof address === "string") throw new Error("no port");
    this.url = `http://127.0.0.1:${address.port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.terminate();
    for (const socket of this.hanging) socket.destroy();
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Record a protocol violation; returned so a handler can `return this.violation(...)`. */
  violation(message: string): void {
    const text = `[${this.name}] ${message}`;
    this.violations.push(text);
    console.error(`FAKE VIOLATION ${text}`);
  }

  count(key: string): number {
    const next = (this.counters.get(key) ?? 0) + 1;
    this.counters.set(key, next);
    return next;
  }

  /** Fail loudly: close the socket with an application code the client reports as an error. */
  rejectSocket(socket: WebSocket, message: string): void {
    this.violation(message);
    socket.close(4000, message.slice(0, 120));
  }

  protected parse(req: IncomingMessage): FakeRequest {
    const url = new URL(req.url ?? "/", "http://fake");
    let path = url.pathname;
    let scenario: string | undefined;
    const match = /^\/s\/([^/]+)(\/.*)$/.exec(path);
    if (match) {
      scenario = match[1];
      path = match[2]!;
    }
    return { method: req.method ?? "GET", path, query: url.searchParams, headers: req.headers, scenario };
  }

  private async onHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const request = this.parse(req);
    if (request.path === "/__fake/violations") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ violations: this.violations, counters: Object.fromEntries(this.counters) }));
      return;
    }
    if (request.path === "/__fake/reset") {
      this.violations.length = 0;
      this.counters.clear();
      res.writeHead(204).end();
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    await this.handleHttp(request, Buffer.concat(chunks), res, req);
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const request = this.parse(req);
    if (request.scenario === "hang") {
      // Never answer the handshake (the client's connect timeout must fire); closed at stop().
      this.hanging.add(socket);
      return;
    }
    const refusal = this.refuseUpgrade(request);
    if (refusal) {
      socket.end(
        `HTTP/1.1 ${refusal.status} ${refusal.status === 401 ? "Unauthorized" : "Error"}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(refusal.body)}\r\nConnection: close\r\n\r\n${refusal.body}`,
      );
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.sockets.add(ws);
      ws.on("close", () => this.sockets.delete(ws));
      try {
        this.handleSocket(ws, request);
      } catch (error) {
        this.rejectSocket(ws, `socket handler crashed: ${String(error)}`);
      }
    });
  }

  /** Non-101 answer for an upgrade (bad auth, wrong path…), or undefined to accept. */
  protected abstract refuseUpgrade(request: FakeRequest): { status: number; body: string } | undefined;
  protected abstract handleSocket(socket: WebSocket, request: FakeRequest): void;
  protected async handleHttp(
    request: FakeRequest,
    _body: Buffer,
    res: ServerResponse,
    _raw: IncomingMessage,
  ): Promise<void> {
    this.violation(`unexpected HTTP ${request.method} ${request.path}`);
    res.writeHead(404).end();
  }
}

/** Standard answers for the auth scenarios; `expected` is the whole header value a good client sends. */
export function authRefusal(
  actual: string | string[] | undefined,
  expected: (key: string) => string,
): { status: number; body: string } | undefined {
  if (actual === expected(BAD_KEY) || actual === undefined) {
    return { status: 401, body: JSON.stringify({ error: "invalid credentials" }) };
  }
  if (actual === expected(BUSY_KEY))
    return { status: 429, body: JSON.stringify({ error: "too many requests" }) };
  if (actual !== expected(GOOD_KEY)) return { status: 401, body: JSON.stringify({ error: "unknown key" }) };
  return undefined;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
