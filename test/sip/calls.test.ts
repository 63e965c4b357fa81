/**
 * Inbound calls against real peers: SIPp calls the bridge through Kamailio (registered, record-routed)
 * and directly; the bridge answers with valid SDP, handles BYE both ways, CANCEL, hold/resume, session
 * refresh, OPTIONS, 488, 422, refuses sources it does not allow, and takes 100 concurrent calls.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BridgeInstance, startBridge } from "../support/bridge";
import { type KamailioInstance, startKamailio } from "../support/kamailio";
import { describeSippResult, type RunSippOptions, runSipp, type SippResult } from "../support/sipp";

const HERE = dirname(fileURLToPath(import.meta.url));
const USER = { username: "2001", password: "call-test-pass" };
/**
 * Kamailio (on 127.0.0.1) counts every port of its own IP as "myself" (alias without port), so a bridge on
 * 127.0.0.1 would look like Kamailio to loose_route() and in-dialog requests would die with 404.
 */
const BRIDGE_HOST = "127.0.0.3";

let kamailio: KamailioInstance;
/** Answers at once; refuses with 403 so refusals are observable. */
let bridge: BridgeInstance;
/** Answers after 3 s and hangs up calls after 10 s (the schema's minimum call-length limit). */
let slowBridge: BridgeInstance;

beforeAll(async () => {
  kamailio = await startKamailio({ users: [USER] });
  const registrar = `${kamailio.host}:${kamailio.port}`;
  [bridge, slowBridge] = await Promise.all([
    startBridge({
      registrar,
      host: BRIDGE_HOST,
      ...USER,
      env: {
        SIP_REJECT_MODE: "403",
        SIP_MAX_CONCURRENT_CALLS: "150",
        RTP_PORT_MIN: "41000",
        RTP_PORT_MAX: "42998",
        LOG_LEVEL: "info",
      },
    }),
    startBridge({
      registrar,
      host: BRIDGE_HOST,
      username: USER.username,
      password: USER.password,
      env: {
        SIP_ANSWER_DELAY_MS: "3000",
        SIP_MAX_CALL_SECONDS: "10",
        RTP_PORT_MIN: "43000",
        RTP_PORT_MAX: "43998",
      },
    }),
  ]);
});

afterAll(async () => {
  await Promise.all([bridge?.stop(), slowBridge?.stop()]);
  await kamailio?.stop();
});

async function sipp(options: RunSippOptions): Promise<SippResult> {
  const result = await runSipp({ timeoutMs: 20_000, ...options });
  return result;
}

function expectSuccess(result: SippResult, calls = 1): void {
  expect(result.exitCode, describeSippResult(result)).toBe(0);
  expect(result.stats?.successfulCalls, describeSippResult(result)).toBe(calls);
}

/** The SDP body of the first "SIP/2.0 200" carrying one, from SIPp's message trace. */
function answerSdp(result: SippResult): string {
  const match = /SIP\/2\.0 200 OK[\s\S]*?\r?\n\r?\n(v=0[\s\S]*?)(?:\r?\n-{5,}|$)/.exec(result.messages);
  return match?.[1] ?? "";
}

function expectValidAnswer(sdp: string): void {
  expect(sdp).toMatch(/^v=0/);
  expect(sdp).toMatch(/c=IN IP4 127\.0\.0\.3/);
  // PCMU first in the offer → PCMU chosen; telephone-event echoed with the offer's PT.
  expect(sdp).toMatch(/m=audio (\d+) RTP\/AVP 0 101/);
  const port = Number(/m=audio (\d+)/.exec(sdp)?.[1]);
  expect(port % 2).toBe(0);
  expect(sdp).toMatch(/a=rtpmap:101 telephone-event\/8000/);
}

describe("inbound calls", () => {
  it("answers a call routed through Kamailio to the registered bridge, and the caller's BYE", async () => {
    const result = await sipp({
      scenario: "uac-basic",
      remote: `${kamailio.host}:${kamailio.port}`,
      localIp: "127.0.0.2", // Kamailio's trusted "PBX trunk" source
      service: USER.username,
      pauseMs: 300,
    });
    expectSuccess(result);
    // Record-Route from Kamailio came back, so the BYE went through the proxy.
    expect(result.messages).toMatch(/Record-Route: <sip:127\.0\.0\.1:\d+;lr/);
    expectValidAnswer(answerSdp(result));
    // Either bridge may have taken it (both registered the same AOR): one of them ended a call on BYE.
    const ended = [...bridge.logs(), ...slowBridge.logs()].filter((l) => l.msg === "call ended");
    expect(ended.some((l) => l.cause === "caller-hangup" && typeof l.callId === "string")).toBe(true);
  });

  it("answers a direct call to its Contact token with valid SDP", async () => {
    const result = await sipp({
      scenario: "uac-basic",
      remote: `${BRIDGE_HOST}:${bridge.port}`,
      service: bridge.token!,
      pauseMs: 200,
    });
    expectSuccess(result);
    expectValidAnswer(answerSdp(result));
  });

  it("answers a direct call over TCP, responses and the caller's BYE on the same connection", async () => {
    const result = await sipp({
      scenario: "uac-basic",
      remote: `${BRIDGE_HOST}:${bridge.port}`,
      service: bridge.token!,
      transport: "tcp",
      pauseMs: 200,
    });
    expectSuccess(result);
    expectValidAnswer(answerSdp(result));
  });

  it("answers OPTIONS with 200 and Allow", async () => {
    const result = await sipp({
      scenario: "uac-options",
      remote: `${BRIDGE_HOST}:${bridge.port}`,
      service: bridge.token!,
    });
    expectSuccess(result);
    expect(result.messages).toMatch(/Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER, NOTIFY/);
  });

  it("refuses an offer without a common codec with 488", async () => {
    const result = await sipp({
      scenario: "uac-no-codec",
      remote: `${BRIDGE_HOST}:${bridge.port}`,
      service: bridge.token!,
    });
    expectSuccess(result);
  });

  it("refuses a session interval below Min-SE with 422 + Min-SE", async () => {
    const result = await sipp({
      scenario: "uac-session-timer-422",
      remote: `${BRIDGE_HOST}:${bridge.port}`,
      service: bridge.token!,
    });
    expectSuccess(result);
    expect(result.messages).toMatch(/Min-SE: 90/);
  });

  it("puts the call on hold and resumes it on re-INVITE", async () => {
    const before = bridge.logs().length;
    const result = await sipp({
      scenario: "uac-hold-resume",
      remote: `${BRIDGE_HOST}:${bridge.port}`,
      service: bridge.token!,
      pauseMs: 200,
    });
    expectSuccess(result);
    const updates = bridge
      .logs()
      .slice(before)
      .filter((l) => l.msg === "media updated")
      .map((l) => l.direction);
    expect(updates).toEqual(["recvonly", "sendrecv"]);
  });

  it("accepts session refreshes (same-SDP re-INVITE, SDP-less UPDATE) with Require: timer", async () => {
    const result = await sipp({
      scenario: "uac-session-timer",
      remote: `${BRIDGE_HOST}:${bridge.port}`,
      service: bridge.token!,
      pauseMs: 200,
    });
    expectSuccess(result);
    expect(result.messages).toMatch(/Require: timer/);
    expect(result.messages).toMatch(/Session-Expires: 90;refresher=uac/);
  });

  it("refuses an INVITE from a source that is not allowed (127.0.0.2 direct) with 403", async () => {
    const result = await sipp({
      scenario: join(HERE, "scenarios/uac-refused-403.xml"),
      remote: `${BRIDGE_HOST}:${bridge.port}`,
      localIp: "127.0.0.2",
      service: bridge.token!,
    });
    expectSuccess(result);
  });

  it("refuses an INVITE addressed to anything but its Contact token with 403", async () => {
    const result = await sipp({
      scenario: join(HERE, "scenarios/uac-refused-403.xml"),
      remote: `${BRIDGE_HOST}:${bridge.port}`,
      service: USER.username,
    });
    expectSuccess(result);
  });

  it("answers CANCEL before the answer with 200 + 487", async () => {
    const result = await sipp({
      scenario: "uac-cancel",
      remote: `${BRIDGE_HOST}:${slowBridge.port}`,
      service: slowBridge.token!,
    });
    expectSuccess(result);
    await slowBridge.waitForLog("call cancelled by caller", 2_000);
  });

  it("hangs up itself (BYE) when the call-length limit is reached", async () => {
    const result = await sipp({
      scenario: "uac-wait-bye",
      remote: `${BRIDGE_HOST}:${slowBridge.port}`,
      service: slowBridge.token!,
      timeoutMs: 30_000,
    });
    expectSuccess(result);
    const ended = slowBridge.logs().filter((l) => l.msg === "call ended" && l.cause === "max-duration");
    expect(ended).toHaveLength(1);
  }, 40_000);

  it("answers 100 concurrent calls without a failure", async () => {
    const result = await sipp({
      scenario: "uac-basic",
      remote: `${BRIDGE_HOST}:${bridge.port}`,
      service: bridge.token!,
      calls: 100,
      concurrent: 100,
      rate: 100,
      pauseMs: 3_000,
      timeoutMs: 45_000,
    });
    expectSuccess(result, 100);
    expect(result.stats?.failedCalls).toBe(0);
  }, 60_000);
});
