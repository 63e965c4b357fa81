/**
 * A whole outbound call on the bridge side: OriginateHandler → OutboundCall (real media engine, real
 * UA core, real transaction layer) → SIPp as the callee → answered → the call's media socket opened to
 * a local `ws` server playing the Worker (our own boundary; the Worker side is tested in workers/) with
 * direction "outbound", the agent and the variables → SIPp hangs up → "completed" reported and the
 * slot released.
 */
import type { IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { uriWithHeaders } from "@patchbay/bridge/src/call/leg";
import { OriginateHandler } from "@patchbay/bridge/src/control/originate";
import { DestinationPolicy, OutboundLimits, TransferPolicy } from "@patchbay/bridge/src/control/policy";
import { createLogger } from "@patchbay/bridge/src/logging";
import { OutboundCall, type OutboundCallResult } from "@patchbay/bridge/src/outbound/call";
import { systemClock } from "@patchbay/bridge/src/sip/transaction/clock";
import { TransferDesk } from "@patchbay/bridge/src/transfer/index";
import { type OutboundCallState, PROTOCOL_VERSION, parseBridgeMessage } from "@patchbay/shared/protocol";
import { verifyCallToken } from "@patchbay/shared/token";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { LOOPBACK } from "../support/ports";
import { describeSippResult, type SippServer, startSippServer } from "../support/sipp";
import { startBridgeSide } from "./bridge-side";

const SECRET = "outbound-call-secret-0123456789";
const logger = createLogger({ level: "silent" });
const cleanups: Array<() => unknown> = [];
let sipp: SippServer | undefined;

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await sipp?.stop();
  sipp = undefined;
});

/**
 * The Worker's media socket as far as the bridge can tell: token checked, hello → welcome, then
 * `afterWelcome` (e.g. the agent's transfer requests) on each socket.
 */
async function fakeWorker(afterWelcome?: (socket: import("ws").WebSocket) => void) {
  const hellos: unknown[] = [];
  const hangups: unknown[] = [];
  const transferResults: Array<{ ok: boolean; target: string; reason?: string }> = [];
  const server = new WebSocketServer({
    host: LOOPBACK,
    port: 0,
    verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, code?: number) => void) => {
      const callId = decodeURIComponent(info.req.url?.split("/").pop() ?? "");
      const token = /^Bearer (\S+)$/.exec(info.req.headers.authorization ?? "")?.[1] ?? "";
      void verifyCallToken(SECRET, callId, token).then((check) => done(check.ok, 401));
    },
  });
  server.on("connection", (socket) => {
    socket.on("message", (data, isBinary) => {
      if (isBinary) return;
      const parsed = parseBridgeMessage(data.toString());
      if (!parsed.ok) return;
      if (parsed.message.type === "hello") {
        hellos.push(parsed.message);
        socket.send(
          JSON.stringify({
            type: "welcome",
            protocol: PROTOCOL_VERSION,
            callId: parsed.message.callId,
            resumeToken: "resume-token",
            resumed: false,
            agent: parsed.message.call.agent ?? "default",
          }),
        );
        afterWelcome?.(socket);
      }
      if (parsed.message.type === "hangup") hangups.push(parsed.message);
      if (parsed.message.type === "transfer_result") transferResults.push(parsed.message);
    });
  });
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return {
    url: `http://${LOOPBACK}:${(server.address() as AddressInfo).port}`,
    hellos,
    hangups,
    transferResults,
  };
}

describe("a whole outbound call", () => {
  it("is answered, joins its agent with the request's agent and variables, and completes when the callee hangs up", async () => {
    const worker = await fakeWorker();
    // SIPp answers, holds 1 s, then hangs up (BYE from the callee).
    sipp = await startSippServer({
      scenario: new URL("./scenarios/uas-answer-then-bye.xml", import.meta.url).pathname,
      calls: 1,
    });

    const { ua, media, close } = await startBridgeSide();
    cleanups.push(close);

    const reports: { state: OutboundCallState; sipStatus?: number; reason?: string }[] = [];
    const results: OutboundCallResult[] = [];
    const handler: OriginateHandler<OutboundCallResult> = new OriginateHandler<OutboundCallResult>({
      policy: new DestinationPolicy({ allowedDestinations: ["^\\d{3,4}$"], allowedHosts: [] }, sipp.address),
      limits: new OutboundLimits({ maxCalls: 1, cps: 1, burst: 1, maxQueueDelayMs: 0 }, Date.now()),
      clock: systemClock,
      dial: (request, destination) => {
        const call = new OutboundCall(request, destination, {
          ua,
          clock: systemClock,
          logger,
          media,
          proxy: { protocol: "udp", address: sipp!.host, port: sipp!.port },
          fromUri: `sip:1050@${LOOPBACK}`,
          rtpAddress: LOOPBACK,
          cloud: { url: worker.url, secret: SECRET, fallback: "reject", connectTimeoutMs: 2000 },
          bridgeId: "vm-test",
          bridgeVersion: "test",
          defaults: { ringTimeoutS: 10, maxDurationS: 60 },
          // No policy: every transfer is refused (this test places calls, it does not transfer them).
          transfers: new TransferDesk({
            policy: undefined,
            warmMethod: "relay",
            uriWithHeaders,
            clock: systemClock,
          }),
        });
        call.once("ended", ({ reason }) => handler.callEnded(request.callId, reason));
        const start = call.start.bind(call);
        call.start = async () => {
          const result = await start();
          results.push(result);
          return result;
        };
        return call;
      },
      report: (_callId, state, details) => reports.push({ state, ...details }),
      onAnswered: () => {},
      logger,
    });

    const decision = await handler.handle({
      type: "originate",
      requestId: "call-outbound-1",
      callId: "call-outbound-1",
      to: "1234",
      agent: "reminder",
      variables: { name: "Ada" },
    });
    expect(decision).toEqual({ accepted: true });
    // A second call while the first is up: refused by the concurrency limit, before any SIP.
    expect(
      await handler.handle({
        type: "originate",
        requestId: "call-outbound-2",
        callId: "call-outbound-2",
        to: "1234",
      }),
    ).toEqual({ accepted: false, reason: "concurrency-limit" });

    const deadline = Date.now() + 8_000;
    while (!reports.some((r) => r.state === "completed" || r.state === "failed") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(
      reports.map((r) => r.state),
      JSON.stringify({ reports, results }),
    ).toEqual(["ringing", "answered", "completed"]);
    expect(reports.at(-1)).toMatchObject({ reason: "callee-hangup" });
    expect(worker.hellos[0]).toMatchObject({
      callId: "call-outbound-1",
      call: { direction: "outbound", agent: "reminder", variables: { name: "Ada" }, codec: "PCMU" },
    });
    const hangupDeadline = Date.now() + 3_000;
    while (worker.hangups.length === 0 && Date.now() < hangupDeadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(worker.hangups[0]).toMatchObject({ type: "hangup", by: "caller" });
    expect(handler.activeCalls).toBe(0);
    expect(media.activeSessions).toBe(0);
    const finished = await sipp.finished(10_000);
    expect(finished.exitCode, describeSippResult(finished)).toBe(0);
  });
});

describe("the agent's transfer on an outbound call", () => {
  it("refuses a target outside the transfer policy without SIP, then REFERs an allowed one and leaves after the NOTIFY", async () => {
    const worker = await fakeWorker((socket) => {
      // A moment after the welcome: the bridge attaches its listeners once the link is up.
      setTimeout(
        () => socket.send(JSON.stringify({ type: "transfer", target: "+4420700000", mode: "blind" })),
        200,
      );
      setTimeout(() => socket.send(JSON.stringify({ type: "transfer", target: "2002", mode: "blind" })), 400);
    });
    sipp = await startSippServer({
      scenario: new URL("./scenarios/uas-answer-refer.xml", import.meta.url).pathname,
      calls: 1,
    });
    const { ua, media, close } = await startBridgeSide();
    cleanups.push(close);
    const call = new OutboundCall(
      { type: "originate", requestId: "call-transfer-1", callId: "call-transfer-1", to: "2001" },
      { user: "2001", requestUri: `sip:2001@${sipp.address}` },
      {
        ua,
        clock: systemClock,
        logger,
        media,
        proxy: { protocol: "udp", address: sipp.host, port: sipp.port },
        fromUri: `sip:1050@${LOOPBACK}`,
        rtpAddress: LOOPBACK,
        sip: { domain: LOOPBACK },
        cloud: { url: worker.url, secret: SECRET, fallback: "reject", connectTimeoutMs: 2000 },
        bridgeId: "vm-test",
        bridgeVersion: "test",
        defaults: { ringTimeoutS: 10, maxDurationS: 60 },
        transfers: new TransferDesk({
          policy: new TransferPolicy(
            { transferAllowedDestinations: ["^200\\d$"], allowedDestinations: [], allowedHosts: [] },
            LOOPBACK,
          ),
          warmMethod: "relay",
          uriWithHeaders,
          clock: systemClock,
        }),
      },
    );
    const ended = new Promise<string>((resolve) => call.once("ended", ({ reason }) => resolve(reason)));
    expect(await call.start()).toMatchObject({ outcome: "answered" });
    expect(await ended).toBe("transferred");
    const finished = await sipp.finished(10_000);
    expect(finished.exitCode, describeSippResult(finished)).toBe(0);
    // One REFER only (the allowed target); the refused one never reached SIP.
    expect([...finished.messages.matchAll(/^REFER /gm)]).toHaveLength(1);
    const hangupDeadline = Date.now() + 3_000;
    while (worker.hangups.length === 0 && Date.now() < hangupDeadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(worker.transferResults).toEqual([
      expect.objectContaining({
        ok: false,
        target: "+4420700000",
        reason: expect.stringMatching(/not allowed/),
      }),
      expect.objectContaining({ ok: true, target: "2002" }),
    ]);
    expect(worker.hangups[0]).toMatchObject({ type: "hangup", cause: "transferred", by: "bridge" });
    expect(media.activeSessions).toBe(0);
  });
});
