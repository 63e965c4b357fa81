/**
 * A scripted bridge for the control tests: opens the real control socket through the Worker (so auth
 * and routing are exercised every time), and reads the registry's messages through a small queue.
 */
import { SELF } from "cloudflare:test";
import {
  CONTROL_PROTOCOL_VERSION,
  type OriginateRequest,
  parseWorkerControlMessage,
  type WorkerControlMessage,
} from "@patchbay/shared/protocol";
import { signCallToken } from "@patchbay/shared/token";

export const BRIDGE_SECRET = "test-bridge-secret-0123456789abcdef";
export const API_TOKEN = "test-api-token-0123456789";

let counter = 0;
export function uniqueId(prefix: string): string {
  counter++;
  return `${prefix}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

export async function openControl(bridgeId: string, token?: string): Promise<Response> {
  const bearer = token ?? (await signCallToken(BRIDGE_SECRET, `bridge-${bridgeId}`));
  return SELF.fetch(`http://worker/v1/bridges/${bridgeId}/control`, {
    headers: { Upgrade: "websocket", Authorization: `Bearer ${bearer}` },
  });
}

type Msg<T extends WorkerControlMessage["type"]> = Extract<WorkerControlMessage, { type: T }>;

export class TestBridge {
  readonly received: WorkerControlMessage[] = [];
  private waiters: Array<() => void> = [];
  closed = false;
  closeCode: number | undefined;
  /** Pings every 100 ms (the test registry's timeout is 450 ms) until silenced or closed. */
  private pinger: ReturnType<typeof setInterval> | undefined;

  private constructor(
    readonly bridgeId: string,
    readonly ws: WebSocket,
  ) {
    ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string" || event.data === "pong") return;
      const parsed = parseWorkerControlMessage(event.data);
      if (!parsed.ok) throw new Error(`registry sent a malformed message: ${parsed.error}`);
      this.received.push(parsed.message);
      for (const wake of this.waiters.splice(0)) wake();
    });
    ws.addEventListener("close", (event) => {
      clearInterval(this.pinger);
      this.closed = true;
      this.closeCode = event.code;
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static async connect(
    bridgeId = uniqueId("b"),
    capacity = { maxCalls: 10, activeCalls: 0 },
  ): Promise<TestBridge> {
    const response = await openControl(bridgeId);
    if (response.status !== 101 || !response.webSocket) throw new Error(`upgrade failed: ${response.status}`);
    response.webSocket.accept();
    const bridge = new TestBridge(bridgeId, response.webSocket);
    bridge.send({
      type: "register",
      protocol: CONTROL_PROTOCOL_VERSION,
      bridgeId,
      version: "test",
      capacity,
      health: "ok",
    });
    await bridge.next("registered");
    bridge.pinger = setInterval(() => bridge.ping(), 100);
    return bridge;
  }

  send(message: object): void {
    this.ws.send(JSON.stringify(message));
  }

  ping(): void {
    if (!this.closed) this.ws.send("ping");
  }

  /** Stops pinging: the socket stays open but the bridge goes quiet, like a hung process. */
  silence(): void {
    clearInterval(this.pinger);
  }

  originates(): Msg<"originate">[] {
    return this.received.filter((m): m is Msg<"originate"> => m.type === "originate");
  }

  /** Consumes the next message of this type (waits up to timeoutMs). */
  async next<T extends WorkerControlMessage["type"]>(type: T, timeoutMs = 3000): Promise<Msg<T>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.received.findIndex((m) => m.type === type);
      if (index >= 0) return this.received.splice(index, 1)[0] as Msg<T>;
      if (this.closed) throw new Error(`socket closed (${this.closeCode}) while waiting for ${type}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${type} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    clearInterval(this.pinger);
    if (!this.closed) this.ws.close(1000, "test done");
    this.closed = true;
  }
}

export async function postCall(
  body: OriginateRequest | Record<string, unknown>,
  options: { key?: string; token?: string } = {},
): Promise<Response> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (options.token !== "") headers.authorization = `Bearer ${options.token ?? API_TOKEN}`;
  if (options.key !== "") headers["idempotency-key"] = options.key ?? uniqueId("key");
  return SELF.fetch("http://worker/v1/calls", { method: "POST", headers, body: JSON.stringify(body) });
}

export async function progress(callId: string): Promise<Record<string, unknown>> {
  const response = await SELF.fetch(`http://worker/v1/calls/${callId}/progress`, {
    headers: { authorization: `Bearer ${API_TOKEN}` },
  });
  return (await response.json()) as Record<string, unknown>;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
