/**
 * Operations against real peers: the bridge drains on SIGTERM (a call in progress finishes, new
 * INVITEs get 503, it un-registers and exits 0; when DRAIN_TIMEOUT runs out, or a second SIGTERM comes,
 * the calls still up get a BYE and it exits 0), and `patchbay doctor` passes against the repo's
 * Kamailio and fails clearly, naming the credentials, with a wrong password.
 */
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SipCaller } from "../caller/sip-caller";
import { FakeCloud } from "../media/fake-cloud";
import { type BridgeInstance, startBridge } from "../support/bridge";
import { type KamailioInstance, startKamailio } from "../support/kamailio";
import { freePortPair, freeUdpPort } from "../support/ports";

const BRIDGE_DIR = join(dirname(fileURLToPath(import.meta.url)), "../../bridge-vm");
const USER = { username: "2001", password: "ops-test-pass" };
const BRIDGE_HOST = "127.0.0.3";
const TRUNK_HOST = "127.0.0.2";

let kamailio: KamailioInstance;
let cloud: FakeCloud;
let cloudUrl: string;

beforeAll(async () => {
  kamailio = await startKamailio({ users: [USER] });
  cloud = new FakeCloud();
  cloudUrl = await cloud.start();
});

afterAll(async () => {
  await kamailio?.stop();
  await cloud?.stop();
});

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

describe("graceful drain on SIGTERM", () => {
  let bridge: BridgeInstance;
  afterAll(async () => {
    await bridge?.stop();
  });

  it("lets the call in progress finish, answers new INVITEs 503, un-registers and exits 0", async () => {
    bridge = await startBridge({
      registrar: `${kamailio.host}:${kamailio.port}`,
      host: BRIDGE_HOST,
      ...USER,
      env: { DRAIN_TIMEOUT: "60", RTP_PORT_MIN: "45000", RTP_PORT_MAX: "45998", LOG_LEVEL: "info" },
    });
    const inProgress = await caller(TRUNK_HOST, { host: kamailio.host, port: kamailio.port });
    await inProgress.call(`sip:${USER.username}@${kamailio.domain}`);

    process.kill(bridge.process.pid, "SIGTERM");
    await bridge.waitForLog(/draining: no new calls/);
    await bridge.waitForLog(/unregistered/);

    // A new call straight to the bridge (from its allowed source, to its Contact token): 503.
    const late = await caller(kamailio.host, { host: BRIDGE_HOST, port: bridge.port });
    await expect(late.call(`sip:${bridge.token}@${BRIDGE_HOST}:${bridge.port}`)).rejects.toMatchObject({
      status: 503,
    });
    await late.close();
    // Through the PBX: the extension is no longer registered, so the PBX routes elsewhere.
    const routed = await caller(TRUNK_HOST, { host: kamailio.host, port: kamailio.port });
    const routedStatus = await routed.call(`sip:${USER.username}@${kamailio.domain}`).then(
      () => 200,
      (error: { status?: number }) => error.status,
    );
    expect(routedStatus).toBeGreaterThanOrEqual(400);
    await routed.close();

    // The call in progress is still up: the process waits for it.
    expect(bridge.process.running).toBe(true);
    expect(await inProgress.hangup()).toBe(200);
    await inProgress.close();
    const exit = await bridge.process.exited;
    expect(exit.code).toBe(0);
  });
});

describe("drain deadline and the second signal", () => {
  const started: BridgeInstance[] = [];
  afterAll(async () => {
    for (const bridge of started) await bridge.stop();
  });

  async function bridgeWithCall(drainTimeoutS: number, rtpBase: number) {
    const bridge = await startBridge({
      registrar: `${kamailio.host}:${kamailio.port}`,
      host: BRIDGE_HOST,
      ...USER,
      env: {
        DRAIN_TIMEOUT: String(drainTimeoutS),
        RTP_PORT_MIN: String(rtpBase),
        RTP_PORT_MAX: String(rtpBase + 998),
        LOG_LEVEL: "info",
      },
    });
    started.push(bridge);
    const peer = await caller(TRUNK_HOST, { host: kamailio.host, port: kamailio.port });
    await peer.call(`sip:${USER.username}@${kamailio.domain}`);
    return { bridge, peer };
  }

  it("when DRAIN_TIMEOUT runs out, the call still up gets a BYE and the process exits 0", async () => {
    const { bridge, peer } = await bridgeWithCall(2, 47000);
    try {
      process.kill(bridge.process.pid, "SIGTERM");
      await bridge.waitForLog(/draining: no new calls/);
      // The peer never hangs up: the bridge must, once the 2 s are over (through Kamailio's route set).
      const bye = await peer.waitForBye(20_000);
      expect(bye.request.method).toBe("BYE");
      await bridge.waitForLog(/drain time is up; hanging up the rest/);
      const exit = await bridge.process.exited;
      expect(exit.code).toBe(0);
      expect(bridge.logs().some((line) => line.msg === "stopped")).toBe(true);
    } finally {
      await peer.close();
    }
  });

  it("a second SIGTERM cuts the drain short: the call gets its BYE and the process exits 0 without waiting", async () => {
    // DRAIN_TIMEOUT 120: only the second signal can end this before the test's own timeout.
    const { bridge, peer } = await bridgeWithCall(120, 48000);
    try {
      process.kill(bridge.process.pid, "SIGTERM");
      await bridge.waitForLog(/draining: no new calls/);
      process.kill(bridge.process.pid, "SIGTERM");
      const bye = await peer.waitForBye(20_000);
      expect(bye.request.method).toBe("BYE");
      const exit = await bridge.process.exited;
      expect(exit.code).toBe(0);
      expect(bridge.logs().some((line) => /second signal/.test(line.msg))).toBe(true);
    } finally {
      await peer.close();
    }
  });
});

function runDoctor(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "doctor"], {
      cwd: BRIDGE_DIR,
      env: { PATH: process.env.PATH ?? "", ...env },
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.on("exit", (code) => resolve({ code, output }));
  });
}

describe("patchbay doctor", () => {
  async function doctorEnv(password: string): Promise<Record<string, string>> {
    return {
      SIP_REGISTRAR: `${kamailio.host}:${kamailio.port}`,
      SIP_USERNAME: USER.username,
      SIP_PASSWORD: password,
      SIP_LOCAL_ADDRESS: BRIDGE_HOST,
      CLOUD_URL: cloudUrl,
      CLOUD_SECRET: cloud.secret,
      RTP_PORT_MIN: "46000",
      RTP_PORT_MAX: "46998",
      HTTP_HOST: "127.0.0.1",
      HTTP_PORT: String(await freeUdpPort()),
    };
  }

  it("passes every check against the repo's Kamailio and a reachable Worker", async () => {
    const { code, output } = await runDoctor(await doctorEnv(USER.password));
    expect(output).toMatch(/register\s+pass\s+registered 2001@/);
    expect(output).toMatch(/worker\s+pass/);
    expect(output).toMatch(/all \d+ checks passed/);
    expect(code).toBe(0);
  });

  it("fails clearly on a wrong password, without printing it", async () => {
    const { code, output } = await runDoctor(await doctorEnv("wrong-password-123"));
    expect(code).toBe(1);
    expect(output).toMatch(/register\s+FAIL/);
    expect(output).toMatch(/hint: SIP_USERNAME \/ SIP_AUTH_USERNAME \/ SIP_PASSWORD/);
    expect(output).toMatch(/registrar\s+pass/);
    expect(output).not.toContain("wrong-password-123");
  });
});
