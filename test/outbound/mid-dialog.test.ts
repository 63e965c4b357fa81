/**
 * An outbound call's dialog after the answer, against SIPp playing an Asterisk-like callee: the bridge's
 * OutboundLeg (the same mid-dialog code as an inbound call, bridge-vm/src/call/leg.ts) on a real UDP
 * socket, transaction layer, UA core and RTP engine.
 *
 * - The callee puts the call on hold and resumes it by re-INVITE (answers recvonly / sendrecv, media
 *   retargeted), refreshes the session by UPDATE, and the bridge — refresher by the 2xx's
 *   `Session-Expires: 90;refresher=uac` — refreshes by UPDATE at SE/2 (45 s).
 * - The callee is the refresher (`refresher=uas` in its 2xx) and refreshes at 40 s; its BYE at 75 s
 *   proves the bridge counted the refresh (it would have hung up at 60 s otherwise).
 * Both calls run at once (SE 90 is the smallest RFC 4028 allows), so the file takes about 75 s.
 */
import { OutboundLeg } from "@patchbay/bridge/src/outbound/leg";
import { systemClock } from "@patchbay/bridge/src/sip/transaction/clock";
import { afterEach, describe, expect, it } from "vitest";
import { LOOPBACK } from "../support/ports";
import { describeSippResult, type SippServer, startSippServer } from "../support/sipp";
import { type BridgeSide, testLogger as logger, startBridgeSide } from "./bridge-side";

const cleanups: Array<() => unknown> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function leg(side: BridgeSide, sipp: SippServer) {
  const call = new OutboundLeg({
    ua: side.ua,
    clock: systemClock,
    logger,
    media: side.media,
    timers: side.layer.timers,
    proxy: { protocol: "udp", address: sipp.host, port: sipp.port },
    requestUri: `sip:2001@${sipp.address}`,
    fromUri: `sip:1050@${LOOPBACK}`,
    ringTimeoutMs: 10_000,
    settings: {
      sessionExpiresS: 90,
      minSessionExpiresS: 90,
      maxCallS: 3600,
      mediaAddress: LOOPBACK,
      domain: LOOPBACK,
    },
  });
  const events: string[] = [];
  call.on("mediaUpdated", (params) => events.push(`media ${params.direction}`));
  call.on("ended", (info) => events.push(`ended ${info.cause}`));
  return { call, events };
}

describe("an outbound call's dialog after the answer (SIPp as an Asterisk-like callee)", () => {
  it("hold/resume and UPDATE from the callee; RFC 4028 refreshes by the bridge (SE/2) and by the callee", async () => {
    // SIPp sends no RTP here: keep the media timeout out of the way of a 75 s call.
    const side = await startBridgeSide({ mediaTimeoutS: 600 });
    cleanups.push(side.close);
    const bridgeRefreshes = await startSippServer({
      scenario: new URL("./scenarios/uas-midcall-bridge-refreshes.xml", import.meta.url).pathname,
      calls: 1,
    });
    const calleeRefreshes = await startSippServer({
      scenario: new URL("./scenarios/uas-callee-refreshes.xml", import.meta.url).pathname,
      calls: 1,
    });
    cleanups.push(
      () => bridgeRefreshes.stop(),
      () => calleeRefreshes.stop(),
    );
    const first = leg(side, bridgeRefreshes);
    const second = leg(side, calleeRefreshes);
    const [a, b] = await Promise.all([first.call.dial(), second.call.dial()]);
    expect(a.outcome, JSON.stringify(a)).toBe("answered");
    expect(b.outcome, JSON.stringify(b)).toBe("answered");

    const [resultA, resultB] = await Promise.all([
      bridgeRefreshes.finished(70_000),
      calleeRefreshes.finished(90_000),
    ]);
    expect(resultA.exitCode, describeSippResult(resultA)).toBe(0);
    expect(resultB.exitCode, describeSippResult(resultB)).toBe(0);
    // Hold then resume reached the media layer; both calls ended by the callee's BYE, not by us.
    expect(first.events).toEqual(["media recvonly", "media sendrecv", "ended callee-hangup"]);
    expect(second.events).toEqual(["ended callee-hangup"]);
    expect(side.media.activeSessions).toBe(0);
  }, 120_000);
});
