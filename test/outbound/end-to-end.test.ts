/**
 * An outbound call over the whole path: POST /v1/calls (API token, Idempotency-Key) → the Worker and
 * its BridgeRegistry in workerd (offline providers) → the control channel → the real bridge process
 * (outbound enabled) → Kamailio (407 challenge, Record-Route) → SIPp as the callee, whose media is an
 * RtpPeer → the agent's greeting reaches the callee as speech energy → the callee hangs up →
 * GET /v1/calls/:id shows answered, then completed with the SIP cause, next to the conversation report.
 * And a destination outside the bridge's allowed patterns ends failed/destination-not-allowed with no
 * SIP sent (Kamailio logs no INVITE for it). First, an inbound call moves the bridge's capacity in
 * the registry up and down (the bridge reports it as inbound calls start and end).
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Phone } from "../caller/phone";
import { type Stack, startStack } from "../stack/stack";
import { speechSegments } from "../support/audio";
import { freePortPair } from "../support/ports";
import { assertNothingLeft } from "../support/process";
import { RtpPeer } from "../support/rtp-peer";
import { describeSippResult, type SippServer, startSippServer } from "../support/sipp";

const CALLEE = "2001";
const HOLD_MS = 9000;

interface OutboundProgress {
  status: "queued" | "ringing" | "answered" | "completed" | "failed";
  sipStatus?: number;
  reason?: string;
}
interface CallView {
  callId: string;
  status?: "active" | "ended";
  transcript?: { role: string; text: string }[];
  outbound?: OutboundProgress;
}

let stack: Stack;
let sipp: SippServer;
let callee: RtpPeer;

beforeAll(async () => {
  callee = await RtpPeer.start({ port: (await freePortPair()).rtp });
  sipp = await startSippServer({
    scenario: new URL("./scenarios/uas-extmedia-answer-then-bye.xml", import.meta.url).pathname,
    calls: 1,
    keys: { rtp_port: String(callee.port) },
    templateVars: { HOLD_MS: String(HOLD_MS) },
  });
  stack = await startStack({
    kamailioRoutes: { [CALLEE]: `sip:${CALLEE}@${sipp.address}` },
    bridgeEnv: {
      BRIDGE_ID: "e2e-outbound",
      OUTBOUND_ENABLED: "true",
      OUTBOUND_ALLOWED_DESTINATIONS: "^2\\d{3}$",
    },
  });
  await stack.bridge.waitForLog(/control channel registered/, 15_000);
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await sipp?.stop();
  await callee?.close();
  assertNothingLeft();
});

async function originate(to: string): Promise<string> {
  const response = await stack.api("/v1/calls", {
    method: "POST",
    headers: { "Content-Type": "application/json", "Idempotency-Key": randomUUID() },
    body: JSON.stringify({ to, agent: "receptionist", callerId: "Patchbay test" }),
  });
  expect(response.status, await response.clone().text()).toBe(202);
  return ((await response.json()) as { callId: string }).callId;
}

/** GET /v1/calls/:id until `predicate` holds; returns every distinct outbound status seen on the way. */
async function viewUntil(
  callId: string,
  predicate: (view: CallView) => boolean,
  timeoutMs: number,
): Promise<{ view: CallView; seen: string[] }> {
  const seen: string[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await stack.api(`/v1/calls/${callId}`);
    const view = (response.ok ? await response.json() : { callId }) as CallView;
    const status = view.outbound?.status;
    if (status && seen.at(-1) !== status) seen.push(status);
    if (predicate(view)) return { view, seen };
    if (Date.now() > deadline)
      throw new Error(`call ${callId} never got there: ${JSON.stringify({ view, seen })}`);
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

describe("the bridge's capacity in the registry follows its inbound calls", () => {
  async function activeCalls(): Promise<number | undefined> {
    const response = await stack.api("/v1/bridges");
    const { bridges } = (await response.json()) as {
      bridges: { bridgeId: string; capacity: { activeCalls: number } }[];
    };
    return bridges.find((b) => b.bridgeId === "e2e-outbound")?.capacity.activeCalls;
  }
  async function until(predicate: (n: number | undefined) => boolean, timeoutMs = 8_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const n = await activeCalls();
      if (predicate(n) || Date.now() > deadline) return n;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  it("rises when an inbound call starts and falls when it ends (GET /v1/bridges)", async () => {
    expect(await until((n) => n === 0)).toBe(0);
    const phone = await Phone.open({
      proxy: stack.sip.proxy,
      target: stack.sip.target,
      host: stack.sip.callerHost,
    });
    try {
      await phone.dial();
      expect(await until((n) => n === 1)).toBe(1);
    } finally {
      await phone.close();
    }
    expect(await until((n) => n === 0)).toBe(0);
  }, 30_000);
});

describe("an outbound call from the REST API to a callee through Kamailio", () => {
  it("is answered, the callee hears the agent, and GET /v1/calls/:id shows answered then completed", async () => {
    const callId = await originate(CALLEE);
    const answered = await viewUntil(callId, (v) => v.outbound?.status === "answered", 20_000);
    expect(answered.seen.at(-1)).toBe("answered");

    // The agent speaks (its greeting) into the call: speech energy at the callee's RTP endpoint.
    await callee.waitForPackets(50, { timeoutMs: 10_000 });
    const heardDeadline = Date.now() + 10_000;
    let speechMs = 0;
    while (Date.now() < heardDeadline) {
      speechMs = speechSegments(callee.receivedAudio()).reduce((sum, s) => sum + (s.endMs - s.startMs), 0);
      if (speechMs > 1000) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(speechMs).toBeGreaterThan(1000);

    // The callee hangs up after HOLD_MS: completed, with how it ended and the SIP status.
    const completed = await viewUntil(
      callId,
      (v) => v.outbound?.status === "completed" && v.status === "ended",
      HOLD_MS + 15_000,
    );
    expect(completed.view.outbound).toMatchObject({ status: "completed", reason: "callee-hangup" });
    expect(completed.view.transcript?.some((line) => line.role === "agent")).toBe(true);
    const finished = await sipp.finished(10_000);
    expect(finished.exitCode, describeSippResult(finished)).toBe(0);

    const metrics = await stack.metrics();
    expect(metrics).toMatch(
      /patchbay_calls_total\{direction="outbound",outcome="callee-hangup",sip_status="200"\} 1/,
    );
    expect(await stack.metric("patchbay_calls_active")).toBe(0);
  }, 60_000);

  it("refuses a destination outside the allowed patterns: failed, and no SIP sent", async () => {
    const callId = await originate("+15551234567");
    const { view } = await viewUntil(callId, (v) => v.outbound?.status === "failed", 15_000);
    expect(view.outbound).toMatchObject({ status: "failed", reason: "destination-not-allowed" });
    expect(stack.kamailio?.logs().join("\n") ?? "").not.toMatch(/INVITE sip:\+15551234567/);
    expect(await stack.metrics()).toMatch(
      /patchbay_calls_total\{direction="outbound",outcome="destination-not-allowed",sip_status="none"\} 1/,
    );
  }, 30_000);
});
