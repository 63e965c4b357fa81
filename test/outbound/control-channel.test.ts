/**
 * The control channel end to end: the bridge's real ControlClient (Node, `ws`) against the real
 * BridgeRegistry + control routes in workerd (wrangler's createTestHarness, test-only Worker from
 * workers/test/control/wrangler.test.toml). The channel is cut the way a Worker deploy cuts it (the
 * registry Durable Object is evicted and its sockets closed) while originates are in flight; every
 * POST /v1/calls must be originated exactly once, and a replayed POST must not originate again.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ControlClient } from "@patchbay/bridge/src/control/client";
import type { OriginateMessage } from "@patchbay/shared/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestHarness, type TestHarness } from "wrangler";

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
const BRIDGE_SECRET = "e2e-bridge-secret-0123456789abcdef";
const API_TOKEN = "e2e-api-token-0123456789";
const silent = { debug() {}, info() {}, warn() {}, error() {} };

let harness: TestHarness | undefined;
let baseUrl = "";
const clients: ControlClient[] = [];

beforeAll(async () => {
  harness = createTestHarness({
    workers: [
      {
        configPath: join(REPO_ROOT, "workers/test/control/wrangler.test.toml"),
        secrets: { BRIDGE_SECRET, API_TOKEN, CONTROL_HEARTBEAT_INTERVAL_MS: "200" },
      },
    ],
  });
  baseUrl = (await harness.listen()).url.toString().replace(/\/$/, "");
});

afterAll(async () => {
  for (const client of clients) client.close();
  await harness?.close();
});

async function postCall(to: string, key: string): Promise<{ status: number; callId: string }> {
  const response = await fetch(`${baseUrl}/v1/calls`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${API_TOKEN}`,
      "idempotency-key": key,
      "content-type": "application/json",
    },
    body: JSON.stringify({ to }),
  });
  const body = (await response.json()) as { callId: string };
  return { status: response.status, callId: body.callId };
}

async function progress(callId: string): Promise<{ status: string; bridgeId?: string }> {
  const response = await fetch(`${baseUrl}/v1/calls/${callId}/progress`, {
    headers: { authorization: `Bearer ${API_TOKEN}` },
  });
  return (await response.json()) as { status: string; bridgeId?: string };
}

async function until(predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function startBridge(bridgeId: string, handled: OriginateMessage[]): ControlClient {
  const client = new ControlClient({
    url: baseUrl,
    secret: BRIDGE_SECRET,
    bridgeId,
    version: "e2e",
    capacity: () => ({ maxCalls: 50, activeCalls: handled.length }),
    health: () => "ok",
    onOriginate: async (request) => {
      handled.push(request);
      return { accepted: true };
    },
    logger: silent,
    reconnectDelaysMs: [50, 100, 250],
  });
  clients.push(client);
  client.start();
  return client;
}

describe("control channel: ControlClient ↔ BridgeRegistry in workerd", () => {
  it("originates each POST exactly once across a cut-and-restore of the channel", async () => {
    const handled: OriginateMessage[] = [];
    const client = startBridge("e2e-vm-1", handled);
    await until(() => client.isRegistered);

    const before = await postCall("1001", "campaign-1");
    expect(before.status).toBe(202);
    await until(() => handled.length === 1);

    // A Worker deploy: the registry object restarts and every socket it held is closed.
    const disconnected = new Promise((resolve) => client.once("disconnected", resolve));
    await harness
      ?.getWorker()
      .evictDurableObject("BridgeRegistry", { name: "registry", webSockets: "close" });
    await disconnected;
    // Requests made while the bridge is away wait in the queue...
    const during = await postCall("1002", "campaign-2");
    expect(during.status).toBe(202);
    // ...and a client retrying the first POST gets the same call, not a new one.
    expect((await postCall("1001", "campaign-1")).callId).toBe(before.callId);

    await until(() => client.isRegistered);
    await until(() => handled.length >= 2);
    const after = await postCall("1003", "campaign-3");
    await until(() => handled.length >= 3);
    await new Promise((resolve) => setTimeout(resolve, 300));

    const ids = handled.map((request) => request.callId).sort();
    expect(ids).toEqual([before.callId, during.callId, after.callId].sort());
    for (const id of ids) expect((await progress(id)).bridgeId).toBe("e2e-vm-1");
  });

  it("an originate whose ack died with the socket is re-sent on re-register and acked from memory, not re-dialled", async () => {
    const handled: OriginateMessage[] = [];
    let open: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const client = new ControlClient({
      url: baseUrl,
      secret: BRIDGE_SECRET,
      bridgeId: "e2e-vm-2",
      version: "e2e",
      capacity: () => ({ maxCalls: 50, activeCalls: handled.length }),
      health: () => "ok",
      onOriginate: async (request) => {
        handled.push(request);
        await gate; // still deciding when the channel is cut
        return { accepted: true };
      },
      logger: silent,
      reconnectDelaysMs: [50, 100, 250],
    });
    clients.push(client);
    // The first test's bridge must not take this call.
    for (const other of clients) if (other !== client) other.close();
    client.start();
    await until(() => client.isRegistered);
    const call = await postCall("1004", "campaign-4");
    await until(() => handled.length === 1);
    const disconnected = new Promise((resolve) => client.once("disconnected", resolve));
    await harness
      ?.getWorker()
      .evictDurableObject("BridgeRegistry", { name: "registry", webSockets: "close" });
    await disconnected;
    open();
    await until(() => client.isRegistered);
    await until(() => client.counters.duplicateOriginates >= 1);
    expect(handled.map((request) => request.callId)).toEqual([call.callId]);
    expect((await progress(call.callId)).bridgeId).toBe("e2e-vm-2");
  });
});

describe("global concurrency limit (OUTBOUND_MAX_CONCURRENT_CALLS)", () => {
  it("holds calls in the queue while the limit is reached and dispatches one when a call ends", async () => {
    const limited = createTestHarness({
      workers: [
        {
          configPath: join(REPO_ROOT, "workers/test/control/wrangler.test.toml"),
          secrets: { BRIDGE_SECRET, API_TOKEN, OUTBOUND_MAX_CONCURRENT_CALLS: "2" },
        },
      ],
    });
    try {
      const url = (await limited.listen()).url.toString().replace(/\/$/, "");
      const handled: OriginateMessage[] = [];
      const client = new ControlClient({
        url,
        secret: BRIDGE_SECRET,
        bridgeId: "e2e-limited",
        version: "e2e",
        capacity: () => ({ maxCalls: 50, activeCalls: handled.length }),
        health: () => "ok",
        onOriginate: async (request) => {
          handled.push(request);
          return { accepted: true };
        },
        logger: silent,
      });
      clients.push(client);
      client.start();
      await until(() => client.isRegistered);
      for (const n of [1, 2, 3]) {
        const response = await fetch(`${url}/v1/calls`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${API_TOKEN}`,
            "idempotency-key": `limit-${n}`,
            "content-type": "application/json",
          },
          body: JSON.stringify({ to: `100${n}` }),
        });
        expect(response.status).toBe(202);
      }
      await until(() => handled.length === 2);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(handled).toHaveLength(2);
      client.reportProgress(handled[0]?.callId ?? "", "failed", { sipStatus: 486, reason: "busy" });
      await until(() => handled.length === 3);
      client.close();
    } finally {
      await limited.close();
    }
  });
});
