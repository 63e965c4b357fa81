/**
 * Floods (sip-interop.md §3.3: scanners escalate to > 80 REGISTER/s for days): 2,000 INVITEs from a
 * stranger and 2,000 OPTIONS from an allowed-but-misbehaving peer, each sent within about a second, while
 * the real PBX trunk places a call through Kamailio. The bridge must answer the stranger with at most a
 * trickle of 403s, cap what it answers the noisy peer, keep answering the PBX, and stay up.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BridgeInstance, startBridge } from "../support/bridge";
import { type KamailioInstance, startKamailio } from "../support/kamailio";
import { describeSippResult, runSipp, type SippResult } from "../support/sipp";
import { buildSipRequest, metricTotal, opsUrlOf, randomToken, sleep, UdpAttacker } from "./attack";

const BRIDGE_HOST = "127.0.0.3";
const STRANGER = "127.0.0.5";
/** Allowed (a second PBX node, say) but stuck in a loop. */
const NOISY_PEER = "127.0.0.4";
const USER = { username: "3101", password: "flood-test-pass" };
const FLOOD_SIZE = 2_000;
/** Datagrams per burst, one burst per tick: 2,000 go out in ~1 s, four times the allowed 500/s. */
const BURST = 100;
const TICK_MS = 50;
/** CallPolicy defaults (bridge-vm/src/sip/ua/policy.ts), the bounds asserted below. */
const REFUSALS_PER_S = 2;
const REFUSAL_BURST = 6;
const ALLOWED_PER_S = 500;
const ALLOWED_BURST = 1_000;

let kamailio: KamailioInstance;
let bridge: BridgeInstance;

beforeAll(async () => {
  kamailio = await startKamailio({ users: [USER] });
  bridge = await startBridge({
    registrar: `${kamailio.host}:${kamailio.port}`,
    host: BRIDGE_HOST,
    ...USER,
    env: {
      SIP_ALLOWED_SOURCES: `${kamailio.host},${NOISY_PEER}`,
      // 403 mode, so the stranger's answers are countable (silent mode gives none: scanners.test.ts).
      SIP_REJECT_MODE: "403",
      RTP_PORT_MIN: "44400",
      RTP_PORT_MAX: "44498",
      LOG_LEVEL: "info", // thousands of "request refused" debug lines would only slow the bridge down
    },
  });
});

afterAll(async () => {
  await bridge?.stop();
  await kamailio?.stop();
});

/** A call from Kamailio's trusted trunk address, routed by Kamailio to the registered bridge. */
function callThroughPbx(pauseMs: number): Promise<SippResult> {
  return runSipp({
    scenario: "uac-basic",
    remote: `${kamailio.host}:${kamailio.port}`,
    localIp: "127.0.0.2",
    service: USER.username,
    pauseMs,
    timeoutMs: 20_000,
  });
}

/** Send `count` requests made by `make(i)` in bursts; resolves with the seconds it took. */
async function flood(
  attacker: UdpAttacker,
  count: number,
  make: (i: number) => string,
  started = performance.now(),
): Promise<number> {
  for (let sent = 0; sent < count; ) {
    const batch: Promise<void>[] = [];
    for (const end = Math.min(count, sent + BURST); sent < end; sent++) {
      batch.push(attacker.send(make(sent), BRIDGE_HOST, bridge.port));
    }
    await Promise.all(batch);
    await sleep(TICK_MS);
  }
  return (performance.now() - started) / 1000;
}

/** Distinct transactions (Call-IDs) a set of responses answers: retransmitted 403s count once. */
function distinctAnswered(responses: ReadonlyArray<{ text: string }>): number {
  return new Set(responses.map((r) => /^Call-ID: *(.+)$/im.exec(r.text)?.[1])).size;
}

describe("floods", () => {
  it("2,000 INVITEs from a stranger get a trickle of 403s while the PBX's call is answered", async () => {
    const callsBefore = await metricTotal(await opsUrlOf(bridge), "patchbay_calls_total");
    const stranger = await UdpAttacker.bind(STRANGER);
    try {
      const uri = `sip:${USER.username}@${BRIDGE_HOST}:${bridge.port}`;
      const [call, seconds] = await Promise.all([
        callThroughPbx(1_500),
        flood(stranger, FLOOD_SIZE, () => buildSipRequest({ method: "INVITE", uri, via: stranger.sentBy })),
      ]);
      expect(call.exitCode, describeSippResult(call)).toBe(0);
      expect(call.stats?.successfulCalls, describeSippResult(call)).toBe(1);
      await stranger.settle(300, 2_000);

      const answered = distinctAnswered(stranger.received);
      const elapsedS = seconds + 2.5; // flood + settle: the refusal bucket refills meanwhile
      console.info(
        `INVITE flood: ${FLOOD_SIZE} sent in ${seconds.toFixed(2)} s; ${answered} answered ` +
          `(${stranger.received.length} datagrams incl. 403 retransmissions), all ${[...new Set(stranger.received.map((r) => r.status))].join("/")}`,
      );
      expect(new Set(stranger.received.map((r) => r.status))).toEqual(new Set([403]));
      expect(answered).toBeGreaterThan(0);
      expect(answered).toBeLessThanOrEqual(REFUSAL_BURST + Math.ceil(REFUSALS_PER_S * elapsedS));
      // The only call counted is the PBX's.
      expect(await metricTotal(await opsUrlOf(bridge), "patchbay_calls_total")).toBe(callsBefore + 1);
      expect(bridge.logs().filter((l) => l.msg === "incoming call")).toHaveLength(1);
    } finally {
      stranger.close();
    }
  });

  it("2,000 OPTIONS from an allowed peer are capped at its rate, and the PBX's next call still works", async () => {
    const peer = await UdpAttacker.bind(NOISY_PEER);
    try {
      const uri = `sip:${bridge.token}@${BRIDGE_HOST}:${bridge.port}`;
      const started = performance.now();
      const [call, seconds] = await Promise.all([
        callThroughPbx(1_500),
        flood(
          peer,
          FLOOD_SIZE,
          () =>
            buildSipRequest({ method: "OPTIONS", uri, via: peer.sentBy, callId: `${randomToken(8)}@flood` }),
          started,
        ),
      ]);
      expect(call.exitCode, describeSippResult(call)).toBe(0);
      await peer.settle(300, 2_000);
      const answered = distinctAnswered(peer.received);
      // The bridge works through its socket queue after the last datagram went out; its bucket refills
      // until then, so the bound runs to the last answer, not to the end of sending.
      const busyS = ((peer.received.at(-1)?.at ?? started) - started) / 1000;
      console.info(
        `OPTIONS flood: ${FLOOD_SIZE} sent in ${seconds.toFixed(2)} s; ${answered} answered within ` +
          `${busyS.toFixed(2)} s (rate limit ${ALLOWED_PER_S}/s, burst ${ALLOWED_BURST})`,
      );
      expect(new Set(peer.received.map((r) => r.status))).toEqual(new Set([200]));
      expect(answered).toBeLessThan(FLOOD_SIZE);
      expect(answered).toBeLessThanOrEqual(ALLOWED_BURST + Math.ceil(ALLOWED_PER_S * busyS) + 1);
    } finally {
      peer.close();
    }
    // And afterwards: alive, answering the PBX, every call ended.
    const after = await callThroughPbx(200);
    expect(after.exitCode, describeSippResult(after)).toBe(0);
    expect(bridge.process.running).toBe(true);
    expect(await metricTotal(await opsUrlOf(bridge), "patchbay_calls_active")).toBe(0);
  });
});
