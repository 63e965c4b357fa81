/**
 * The control client against a local `ws` server playing the BridgeRegistry (our own boundary: the
 * registry itself is tested in workerd, workers/test/control). The server checks the bearer token
 * exactly as the Worker does and speaks the shared schemas.
 */
import type { AddressInfo } from "node:net";
import {
  type BridgeControlMessage,
  CONTROL_PROTOCOL_VERSION,
  type OriginateMessage,
  parseBridgeControlMessage,
} from "@patchbay/shared/protocol";
import { verifyCallToken } from "@patchbay/shared/token";
import { afterEach, describe, expect, it } from "vitest";
import { type WebSocket, WebSocketServer } from "ws";
import { ControlClient, type OriginateDecision } from "../../src/control/client";

const SECRET = "control-test-secret-0123456789";
const silent = { debug() {}, info() {}, warn() {}, error() {} };

class FakeRegistry {
  readonly server: WebSocketServer;
  readonly received: BridgeControlMessage[] = [];
  sockets: WebSocket[] = [];
  connections = 0;
  refusedTokens = 0;
  answerPings = true;
  private waiters: Array<() => void> = [];

  constructor(readonly bridgeId: string) {
    this.server = new WebSocketServer({
      host: "127.0.0.1",
      port: 0,
      verifyClient: (info, done) => {
        const token = /^Bearer (\S+)$/.exec(info.req.headers.authorization ?? "")?.[1] ?? "";
        void verifyCallToken(SECRET, `bridge-${bridgeId}`, token).then((check) => {
          if (!check.ok) this.refusedTokens++;
          done(check.ok, 401);
        });
      },
    });
    this.server.on("connection", (socket) => {
      this.connections++;
      this.sockets.push(socket);
      socket.on("message", (data) => {
        const text = data.toString();
        if (text === "ping") {
          if (this.answerPings) socket.send("pong");
          return;
        }
        const parsed = parseBridgeControlMessage(text);
        if (!parsed.ok) throw new Error(parsed.error);
        this.received.push(parsed.message);
        if (parsed.message.type === "register") {
          socket.send(
            JSON.stringify({
              type: "registered",
              protocol: CONTROL_PROTOCOL_VERSION,
              bridgeId,
              heartbeatIntervalMs: 50,
            }),
          );
        }
        for (const wake of this.waiters.splice(0)) wake();
      });
    });
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get current(): WebSocket {
    const socket = this.sockets.at(-1);
    if (!socket) throw new Error("no connection");
    return socket;
  }

  originate(callId: string, to = "1234"): void {
    this.current.send(JSON.stringify({ type: "originate", requestId: callId, callId, to }));
  }

  of<T extends BridgeControlMessage["type"]>(type: T) {
    return this.received.filter((m): m is Extract<BridgeControlMessage, { type: T }> => m.type === type);
  }

  async waitFor(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error("condition not met in time");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 20);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.terminate();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(onOriginate?: (request: OriginateMessage) => Promise<OriginateDecision>) {
  const registry = new FakeRegistry("vm-1");
  await new Promise<void>((resolve) => registry.server.once("listening", () => resolve()));
  const handled: string[] = [];
  const client = new ControlClient({
    url: registry.url,
    secret: SECRET,
    bridgeId: "vm-1",
    version: "test",
    capacity: () => ({ maxCalls: 5, activeCalls: handled.length }),
    health: () => "ok",
    onOriginate:
      onOriginate ??
      (async (request) => {
        handled.push(request.requestId);
        return { accepted: true };
      }),
    logger: silent,
    reconnectDelaysMs: [10, 20, 50],
  });
  cleanups.push(
    () => registry.close(),
    () => client.close(),
  );
  return { registry, client, handled };
}

describe("ControlClient", () => {
  it("authenticates with a bridge- token and registers with its capacity", async () => {
    const { registry, client } = await setup();
    client.start();
    await registry.waitFor(() => client.isRegistered);
    expect(registry.refusedTokens).toBe(0);
    expect(registry.of("register")[0]).toMatchObject({
      bridgeId: "vm-1",
      capacity: { maxCalls: 5, activeCalls: 0 },
      health: "ok",
    });
  });

  it("acts on an originate once and acks a duplicate with the same call id", async () => {
    const { registry, client, handled } = await setup();
    client.start();
    await registry.waitFor(() => client.isRegistered);
    registry.originate("call-00000001");
    registry.originate("call-00000001");
    await registry.waitFor(() => registry.of("originate_ack").length === 2);
    expect(handled).toEqual(["call-00000001"]);
    expect(registry.of("originate_ack")).toEqual([
      { type: "originate_ack", requestId: "call-00000001", accepted: true, callId: "call-00000001" },
      { type: "originate_ack", requestId: "call-00000001", accepted: true, callId: "call-00000001" },
    ]);
    expect(client.counters.duplicateOriginates).toBe(1);
  });

  it("survives a cut before the ack: reconnects, re-registers, delivers the ack, dedupes the re-sent originate", async () => {
    let release: (() => void) | undefined;
    const handled: string[] = [];
    const { registry, client } = await setup(async (request) => {
      handled.push(request.requestId);
      // The decision is still pending when the socket is cut.
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      return { accepted: true };
    });
    client.start();
    await registry.waitFor(() => client.isRegistered);
    registry.originate("call-00000002");
    await registry.waitFor(() => handled.length === 1);
    registry.current.terminate();
    release?.();
    await registry.waitFor(() => registry.connections === 2 && client.isRegistered);
    // What a real registry does on re-register: send the unacknowledged originate again.
    registry.originate("call-00000002");
    // The first ack may have died with the old socket; the re-sent originate is acked from memory.
    await registry.waitFor(() => registry.of("originate_ack").length >= 1);
    expect(handled).toEqual(["call-00000002"]);
    expect(registry.of("register")).toHaveLength(2);
    expect(new Set(registry.of("originate_ack").map((ack) => ack.callId))).toEqual(
      new Set(["call-00000002"]),
    );
  });

  it("keeps progress reported while disconnected and sends it after re-registering", async () => {
    const { registry, client } = await setup();
    client.start();
    await registry.waitFor(() => client.isRegistered);
    registry.current.terminate();
    await registry.waitFor(() => !client.isRegistered);
    client.reportProgress("call-00000003", "ringing", { sipStatus: 180 });
    client.reportProgress("call-00000003", "answered", { sipStatus: 200 });
    await registry.waitFor(() => registry.of("call_progress").length === 2);
    expect(registry.of("call_progress").map((p) => p.state)).toEqual(["ringing", "answered"]);
  });

  it("treats a registry that stops answering pings as gone and reconnects", async () => {
    const { registry, client } = await setup();
    client.start();
    await registry.waitFor(() => client.isRegistered);
    registry.answerPings = false;
    await registry.waitFor(() => registry.connections >= 2, 5000);
    registry.answerPings = true;
    await registry.waitFor(() => client.isRegistered);
  });

  it("reports a refusal with the policy's reason", async () => {
    const { registry, client } = await setup(async () => ({
      accepted: false,
      reason: "destination-not-allowed",
    }));
    client.start();
    await registry.waitFor(() => client.isRegistered);
    registry.originate("call-00000004", "+449999999");
    await registry.waitFor(() => registry.of("originate_ack").length === 1);
    expect(registry.of("originate_ack")[0]).toMatchObject({
      accepted: false,
      reason: "destination-not-allowed",
    });
  });
});
