/**
 * The bridge's outbound UAC (bridge-vm/src/outbound) against real peers: SIPp playing the PBX/callee
 * directly, and Kamailio as registrar/proxy in front of SIPp (407 challenges, Record-Route). The SIP
 * stack under test is the bridge's own transport + transaction layer on a loopback UDP port; the
 * control-channel glue (policy → limits → dial) is the bridge's OriginateHandler.
 */
import { createSocket, type Socket } from "node:dgram";
import { join } from "node:path";
import { OriginateHandler } from "@patchbay/bridge/src/control/originate";
import { DestinationPolicy, OutboundLimits } from "@patchbay/bridge/src/control/policy";
import { createLogger } from "@patchbay/bridge/src/logging";
import { OutboundInvite, type OutboundResult } from "@patchbay/bridge/src/outbound/uac";
import { createOffer, parseAnswer } from "@patchbay/bridge/src/sip/sdp";
import { systemClock } from "@patchbay/bridge/src/sip/transaction/clock";
import { TransactionLayer } from "@patchbay/bridge/src/sip/transaction/layer";
import type { Endpoint } from "@patchbay/bridge/src/sip/transport/types";
import { UdpTransport } from "@patchbay/bridge/src/sip/transport/udp";
import type { OutboundCallState } from "@patchbay/shared/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type KamailioInstance, startKamailio } from "../support/kamailio";
import { freePortPair, LOOPBACK } from "../support/ports";
import { describeSippResult, type SippServer, startSippServer } from "../support/sipp";

const USER = { username: "1050", password: "outbound-secret" };
const SCENARIOS = join(import.meta.dirname, "scenarios");
const logger = createLogger({ level: "silent" });

interface Stack {
  transport: UdpTransport;
  layer: TransactionLayer;
  dialogs: Map<string, { handleRequest: OutboundResultDialog["handleRequest"] }>;
}
type OutboundResultDialog = Extract<OutboundResult, { outcome: "answered" }>["dialog"];

let stack: Stack | undefined;
let sipp: SippServer | undefined;
let kamailio: KamailioInstance | undefined;

beforeEach(async () => {
  const transport = new UdpTransport({ address: LOOPBACK, port: 0, logger });
  await transport.listen();
  const layer = new TransactionLayer({
    transports: [transport],
    clock: systemClock,
    logger,
    timers: { t1: 100, t2: 400, t4: 500 },
    sentBy: () => `${LOOPBACK}:${transport.local.port}`,
  });
  const dialogs = new Map<string, { handleRequest: OutboundResultDialog["handleRequest"] }>();
  // The slice of the UA core these tests need: in-dialog requests to their dialog.
  layer.setUser({
    onRequest(request, transaction) {
      const callId = request.headers.get("Call-ID") ?? "";
      const dialog = [...dialogs.entries()].find(([key]) => key.startsWith(`${callId}|`))?.[1];
      if (dialog) dialog.handleRequest(request, transaction);
    },
    onStrayResponse() {},
  });
  stack = { transport, layer, dialogs };
});

afterEach(async () => {
  stack?.layer.close();
  await stack?.transport.close();
  await sipp?.stop();
  await kamailio?.stop();
  stack = undefined;
  sipp = undefined;
  kamailio = undefined;
});

async function invite(options: {
  proxy: Endpoint;
  requestUri: string;
  domain: string;
  ringTimeoutMs?: number;
  credentials?: boolean;
}): Promise<{ result: OutboundResult; progress: number[]; offer: string }> {
  if (!stack) throw new Error("no stack");
  const media = await freePortPair();
  const offer = createOffer({ address: LOOPBACK, port: media.rtp, sessionId: "1", sessionVersion: 1 });
  const call = new OutboundInvite({
    layer: stack.layer,
    clock: systemClock,
    logger,
    proxy: options.proxy,
    requestUri: options.requestUri,
    fromUri: `sip:${USER.username}@${options.domain}`,
    displayName: "Patchbay",
    contactUri: `sip:${USER.username}@${LOOPBACK}:${stack.transport.local.port}`,
    sdpOffer: offer,
    ringTimeoutMs: options.ringTimeoutMs ?? 10_000,
    ...(options.credentials === false ? {} : { credentials: USER }),
  });
  const progress: number[] = [];
  call.on("progress", (p) => progress.push(p.sipStatus));
  const result = await call.start();
  if (result.outcome === "answered") stack.dialogs.set(result.dialog.key, result.dialog);
  return { result, progress, offer };
}

function udp(address: string, port: number): Endpoint {
  return { protocol: "udp", address, port };
}

describe("outbound INVITE against SIPp as the PBX", () => {
  it("is answered: 100/180/200, ACK, SDP answer parsed, BYE from us → 200", async () => {
    sipp = await startSippServer({ scenario: "uas-answer", calls: 1 });
    const { result, progress, offer } = await invite({
      proxy: udp(sipp.host, sipp.port),
      requestUri: `sip:5551234@${sipp.address}`,
      domain: sipp.host,
    });
    expect(result.outcome).toBe("answered");
    if (result.outcome !== "answered") return;
    expect(progress).toContain(180);
    const answer = parseAnswer(result.answerSdp, offer);
    expect(answer.ok).toBe(true);
    expect(await result.dialog.bye()).toBe(200);
    const finished = await sipp.finished(10_000);
    expect(finished.exitCode, describeSippResult(finished)).toBe(0);
  });

  it("answers an Asterisk-style 401 on INVITE with the registration credentials", async () => {
    sipp = await startSippServer({
      scenario: "uas-challenge-401",
      calls: 1,
      keys: { user: USER.username, password: USER.password },
    });
    const { result } = await invite({
      proxy: udp(sipp.host, sipp.port),
      requestUri: `sip:5551234@${sipp.address}`,
      domain: sipp.host,
    });
    expect(result.outcome, JSON.stringify(result)).toBe("answered");
    if (result.outcome !== "answered") return;
    await result.dialog.bye();
    const finished = await sipp.finished(10_000);
    expect(finished.exitCode, describeSippResult(finished)).toBe(0);
    const invites = [...finished.messages.matchAll(/^INVITE /gm)];
    expect(invites.length).toBeGreaterThanOrEqual(2);
  });

  it("reports busy with the SIP cause (486)", async () => {
    sipp = await startSippServer({ scenario: join(SCENARIOS, "uas-busy-486.xml"), calls: 1 });
    const { result, progress } = await invite({
      proxy: udp(sipp.host, sipp.port),
      requestUri: `sip:5551234@${sipp.address}`,
      domain: sipp.host,
    });
    expect(progress).toContain(180);
    expect(result).toMatchObject({ outcome: "failed", reason: "busy", sipStatus: 486 });
    const finished = await sipp.finished(10_000);
    expect(finished.exitCode, describeSippResult(finished)).toBe(0);
  });

  it("CANCELs after the ring timeout and reports no-answer (487)", async () => {
    sipp = await startSippServer({ scenario: "uas-ring-cancel", calls: 1 });
    const { result } = await invite({
      proxy: udp(sipp.host, sipp.port),
      requestUri: `sip:5551234@${sipp.address}`,
      domain: sipp.host,
      ringTimeoutMs: 800,
    });
    expect(result).toMatchObject({ outcome: "failed", reason: "no-answer", sipStatus: 487 });
    const finished = await sipp.finished(10_000);
    expect(finished.exitCode, describeSippResult(finished)).toBe(0);
  });
});

describe("provisional, redirect and glare cases (SIPp)", () => {
  it("reports 183 with SDP as early media, then is answered", async () => {
    sipp = await startSippServer({ scenario: join(SCENARIOS, "uas-183-early.xml"), calls: 1 });
    if (!stack) throw new Error("no stack");
    const media = await freePortPair();
    const offer = createOffer({ address: LOOPBACK, port: media.rtp, sessionId: "1", sessionVersion: 1 });
    const call = new OutboundInvite({
      layer: stack.layer,
      clock: systemClock,
      logger,
      proxy: udp(sipp.host, sipp.port),
      requestUri: `sip:5551234@${sipp.address}`,
      fromUri: `sip:${USER.username}@${sipp.host}`,
      contactUri: `sip:${USER.username}@${LOOPBACK}:${stack.transport.local.port}`,
      sdpOffer: offer,
      ringTimeoutMs: 10_000,
    });
    const early: string[] = [];
    call.on("progress", (p) => {
      if (p.state === "ringing" && p.earlyMediaSdp) early.push(`${p.sipStatus}`);
    });
    const result = await call.start();
    expect(early).toEqual(["183"]);
    expect(result.outcome).toBe("answered");
    if (result.outcome === "answered") expect(await result.dialog.bye()).toBe(200);
    const finished = await sipp.finished(10_000);
    expect(finished.exitCode, describeSippResult(finished)).toBe(0);
  });

  it("does not follow a 302: reports redirected with the Contact", async () => {
    sipp = await startSippServer({ scenario: join(SCENARIOS, "uas-redirect-302.xml"), calls: 1 });
    const { result } = await invite({
      proxy: udp(sipp.host, sipp.port),
      requestUri: `sip:5551234@${sipp.address}`,
      domain: sipp.host,
    });
    expect(result).toMatchObject({ outcome: "failed", reason: "redirected", sipStatus: 302 });
    if (result.outcome === "failed") expect(result.redirectTo?.[0]).toContain("sip:2000@127.0.0.1:5999");
    const finished = await sipp.finished(10_000);
    expect(finished.exitCode, describeSippResult(finished)).toBe(0);
  });

  it("answered as our CANCEL left (glare): ACKs, BYEs, and counts it as not answered", async () => {
    sipp = await startSippServer({ scenario: join(SCENARIOS, "uas-cancel-glare.xml"), calls: 1 });
    const { result } = await invite({
      proxy: udp(sipp.host, sipp.port),
      requestUri: `sip:5551234@${sipp.address}`,
      domain: sipp.host,
      ringTimeoutMs: 600,
      credentials: false,
    });
    expect(result).toMatchObject({ outcome: "failed", reason: "no-answer", sipStatus: 200 });
    const finished = await sipp.finished(10_000);
    expect(finished.exitCode, describeSippResult(finished)).toBe(0);
  });
});

describe("outbound INVITE through Kamailio", () => {
  it("answers Kamailio's 407, is relayed to the callee, ACKs and BYEs along the Record-Route", async () => {
    sipp = await startSippServer({ scenario: "uas-answer", calls: 1 });
    kamailio = await startKamailio({
      users: [USER],
      staticRoutes: { "5551234": `sip:5551234@${sipp.address}` },
    });
    const { result } = await invite({
      proxy: udp(kamailio.host, kamailio.port),
      requestUri: `sip:5551234@${kamailio.domain}`,
      domain: kamailio.domain,
    });
    expect(result.outcome, JSON.stringify(result)).toBe("answered");
    if (result.outcome !== "answered") return;
    expect(result.dialog.routeSet.length).toBeGreaterThan(0);
    expect(await result.dialog.bye()).toBe(200);
    const finished = await sipp.finished(10_000);
    expect(finished.exitCode, describeSippResult(finished)).toBe(0);
    expect(kamailio.logs().join("\n")).toMatch(/challenge/);
  });
});

describe("policy before SIP", () => {
  let listener: Socket | undefined;
  afterEach(() => {
    listener?.close();
    listener = undefined;
  });

  it("refuses a destination outside the allowed patterns without sending a single datagram", async () => {
    if (!stack) throw new Error("no stack");
    const received: Buffer[] = [];
    const socket = createSocket("udp4");
    listener = socket;
    socket.on("message", (message) => received.push(message));
    await new Promise<void>((resolve) => socket.bind(0, LOOPBACK, () => resolve()));
    const pbx = udp(LOOPBACK, socket.address().port);
    const reports: { state: OutboundCallState; reason?: string }[] = [];
    const layer = stack.layer;
    const contact = `sip:${USER.username}@${LOOPBACK}:${stack.transport.local.port}`;
    const handler = new OriginateHandler({
      policy: new DestinationPolicy(
        { allowedDestinations: ["^\\+1\\d{10}$", "^\\d{3,4}$"], allowedHosts: [] },
        LOOPBACK,
      ),
      limits: new OutboundLimits({ maxCalls: 5, cps: 5, burst: 5, maxQueueDelayMs: 1000 }, Date.now()),
      clock: systemClock,
      dial: (_request, destination) =>
        new OutboundInvite({
          layer,
          clock: systemClock,
          logger,
          proxy: pbx,
          requestUri: destination.requestUri,
          fromUri: `sip:${USER.username}@${LOOPBACK}`,
          contactUri: contact,
          sdpOffer: createOffer({ address: LOOPBACK, port: 40000, sessionId: "1", sessionVersion: 1 }),
          ringTimeoutMs: 500,
        }),
      report: (_callId, state, details) =>
        reports.push({ state, ...(details?.reason ? { reason: details.reason } : {}) }),
      onAnswered: () => {},
      logger,
    });
    for (const to of ["+441234567890", "011441234567890", "sip:1234@evil.example.net", "9001234"]) {
      expect(
        await handler.handle({
          type: "originate",
          requestId: `req-${to.length}-abcdef`,
          callId: "call-0000001",
          to,
        }),
      ).toEqual({
        accepted: false,
        reason: "destination-not-allowed",
      });
    }
    // Control: an allowed destination does reach the same listener, so the silence above means something.
    expect(
      await handler.handle({
        type: "originate",
        requestId: "req-allowed-1",
        callId: "call-0000002",
        to: "1234",
      }),
    ).toEqual({
      accepted: true,
    });
    const deadline = Date.now() + 3000;
    while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(received).toHaveLength(1);
    expect(received[0]?.toString()).toMatch(/^INVITE sip:1234@127\.0\.0\.1 SIP\/2\.0/);
    expect(received.every((datagram) => !/441234567890|evil\.example/.test(datagram.toString()))).toBe(true);
  });
});
