/**
 * When the Worker cannot be reached at answer time, the deployment's fallback applies, against
 * real peers: "reject" refuses the INVITE with 503 (+ Retry-After) so the PBX can fail over, and
 * "transfer" answers and REFERs the caller to the fallback extension.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SipCaller } from "../caller/sip-caller";
import { type BridgeInstance, startBridge } from "../support/bridge";
import { type KamailioInstance, startKamailio } from "../support/kamailio";
import { freePortPair, freeTcpPort } from "../support/ports";

const USER = { username: "2001", password: "fallback-test-pass" };
const BRIDGE_HOST = "127.0.0.3";
const TRUNK_HOST = "127.0.0.2";

let kamailio: KamailioInstance;
const bridges: BridgeInstance[] = [];

beforeAll(async () => {
  kamailio = await startKamailio({ users: [USER] });
});

afterAll(async () => {
  await Promise.all(bridges.map((bridge) => bridge.stop()));
  await kamailio?.stop();
});

async function bridgeWithDeadCloud(env: Record<string, string>): Promise<BridgeInstance> {
  const deadPort = await freeTcpPort(); // nothing listens there
  const bridge = await startBridge({
    registrar: `${kamailio.host}:${kamailio.port}`,
    host: BRIDGE_HOST,
    ...USER,
    env: {
      CLOUD_URL: `http://127.0.0.1:${deadPort}`,
      CLOUD_SECRET: "fallback-test-secret-0123",
      CLOUD_CONNECT_TIMEOUT_MS: "500",
      RTP_PORT_MIN: "47200",
      RTP_PORT_MAX: "47998",
      LOG_LEVEL: "info",
      ...env,
    },
  });
  bridges.push(bridge);
  return bridge;
}

async function caller(localAddress: string, proxy: { host: string; port: number }): Promise<SipCaller> {
  const ports = await freePortPair(localAddress);
  const sip = new SipCaller({
    localAddress,
    outboundProxy: proxy,
    rtpAddress: localAddress,
    rtpPort: ports.rtp,
  });
  await sip.open();
  return sip;
}

describe("Worker unreachable when a call arrives", () => {
  it("reject: the INVITE gets 503 with Retry-After, nothing is answered", async () => {
    const bridge = await bridgeWithDeadCloud({ CLOUD_FALLBACK: "reject" });
    const direct = await caller(kamailio.host, { host: BRIDGE_HOST, port: bridge.port });
    await expect(direct.call(`sip:${bridge.token}@${BRIDGE_HOST}:${bridge.port}`)).rejects.toMatchObject({
      status: 503,
    });
    await direct.close();
    await bridge.waitForLog(/agent unreachable; applying fallback/);
    expect(bridge.logs().some((line) => line.msg === "answered")).toBe(false);
    await bridge.stop();
  });

  it("transfer: the call is answered and the caller is REFERred to the fallback extension", async () => {
    await bridgeWithDeadCloud({ CLOUD_FALLBACK: "transfer", CLOUD_FALLBACK_TARGET: "2099" });
    const sip = await caller(TRUNK_HOST, { host: kamailio.host, port: kamailio.port });
    const answered = await sip.call(`sip:${USER.username}@${kamailio.domain}`);
    expect(answered.status).toBe(200);
    const deadline = Date.now() + 15_000;
    while (!sip.inDialogRequests.some((request) => request.method === "REFER") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const refer = sip.inDialogRequests.find((request) => request.method === "REFER");
    expect(refer?.request.headers.get("Refer-To")).toMatch(/^<sip:2099@/);
    expect(refer?.request.headers.get("Referred-By")).toMatch(/^<sip:2001@/);
    await sip.hangup();
    await sip.close();
  });
});
