/**
 * "A scanner on the internet can never make a call through us" (sip-interop.md §3.3), checked with the
 * tools scanners actually use: SIPVicious svmap (discovery) and svwar (extension enumeration) from a
 * source outside the allow-list, plus hand-made INVITEs from an allowed source that guess the
 * Request-URI user. The bridges register on Kamailio (127.0.0.1), so by default they allow only
 * 127.0.0.1; the attackers sit on 127.0.0.5 and 127.0.0.7.
 *
 * svwar (sipvicious 0.3.x as packaged by Debian) ignores `-b`: its main() never passes the binding IP on,
 * so it always sends from 127.0.0.1 here. It therefore plays two parts: against the bridges above it is an
 * *allowed* source guessing extensions, and against a second pair that allows only 127.0.0.4 (a PBX
 * elsewhere) it is a stranger.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BridgeInstance, startBridge } from "../support/bridge";
import { type KamailioInstance, startKamailio } from "../support/kamailio";
import { freeUdpPort } from "../support/ports";
import {
  audioOffer,
  buildSipRequest,
  callLines,
  headerNames,
  metricTotal,
  opsUrlOf,
  refusals,
  runSipvicious,
  tcpExchange,
  UdpAttacker,
} from "./attack";

const BRIDGE_HOST = "127.0.0.3";
const SCANNER = "127.0.0.5";
/** A second scanner address, so the 403 fingerprint check starts with a full refusal budget. */
const PROBER = "127.0.0.7";
const PBX = "127.0.0.1";
/** Where svwar's packets come from, whatever it is told (see the header). */
const SVWAR_SOURCE = "127.0.0.1";
const SILENT_USER = { username: "3001", password: "scan-test-pass-1" };
const LOUD_USER = { username: "3002", password: "scan-test-pass-2" };
const SILENT_ELSEWHERE_USER = { username: "3003", password: "scan-test-pass-3" };
const LOUD_ELSEWHERE_USER = { username: "3004", password: "scan-test-pass-4" };
/** Headers a bare 403 needs (RFC 3261 §8.2.6.2); anything else would be a fingerprint. */
const MINIMAL_RESPONSE_HEADERS = ["via", "from", "to", "call-id", "cseq", "content-length"];
/** What svwar prints when it believes an extension exists. */
const SVWAR_FOUND = /exists|authentication not required|probably exists/i;

let kamailio: KamailioInstance;
/** Default SIP_REJECT_MODE (silent). */
let silent: BridgeInstance;
/** SIP_REJECT_MODE=403. */
let loud: BridgeInstance;
/** The same two modes, allowing only 127.0.0.4: svwar (on 127.0.0.1) is a stranger to them. */
let silentElsewhere: BridgeInstance;
let loudElsewhere: BridgeInstance;
const callsBefore = new Map<BridgeInstance, number>();

beforeAll(async () => {
  kamailio = await startKamailio({
    users: [SILENT_USER, LOUD_USER, SILENT_ELSEWHERE_USER, LOUD_ELSEWHERE_USER],
  });
  const registrar = `${kamailio.host}:${kamailio.port}`;
  const bridgeOn = (user: typeof SILENT_USER, rtpPortMin: number, env: Record<string, string>) =>
    startBridge({
      registrar,
      host: BRIDGE_HOST,
      ...user,
      env: { RTP_PORT_MIN: String(rtpPortMin), RTP_PORT_MAX: String(rtpPortMin + 98), ...env },
    });
  [silent, loud, silentElsewhere, loudElsewhere] = await Promise.all([
    bridgeOn(SILENT_USER, 44_000, {}),
    bridgeOn(LOUD_USER, 44_100, { SIP_REJECT_MODE: "403" }),
    bridgeOn(SILENT_ELSEWHERE_USER, 44_200, { SIP_ALLOWED_SOURCES: "127.0.0.4" }),
    bridgeOn(LOUD_ELSEWHERE_USER, 44_300, { SIP_ALLOWED_SOURCES: "127.0.0.4", SIP_REJECT_MODE: "403" }),
  ]);
  for (const bridge of [silent, loud, silentElsewhere, loudElsewhere]) {
    callsBefore.set(bridge, await metricTotal(await opsUrlOf(bridge), "patchbay_calls_total"));
  }
});

afterAll(async () => {
  await Promise.all([silent?.stop(), loud?.stop(), silentElsewhere?.stop(), loudElsewhere?.stop()]);
  await kamailio?.stop();
});

/**
 * Every refusal was for `reason`, or (403 mode) dropped unanswered because the source had used up its
 * refusal rate; and at least one names the reason.
 */
function expectRefusedFor(seen: Array<{ reason: string }>, reason: string): void {
  const reasons = seen.map((r) => r.reason);
  expect(reasons).toContain(reason);
  expect(reasons.filter((r) => r !== reason && r !== "rate-limited")).toEqual([]);
}

/** svmap/svwar arguments that bind the scanner to `SCANNER` on a free port and target one bridge. */
async function scannerArgs(bridge: BridgeInstance): Promise<string[]> {
  return ["-b", SCANNER, "-P", String(await freeUdpPort(SCANNER)), "-p", String(bridge.port)];
}

describe("svmap (discovery) from a source outside the allow-list", () => {
  it("finds nothing on a silent bridge, with OPTIONS or INVITE, over UDP or TCP", async () => {
    const [options, invite] = await Promise.all([
      runSipvicious("svmap", [...(await scannerArgs(silent)), "-d", BRIDGE_HOST], 15_000),
      runSipvicious("svmap", [...(await scannerArgs(silent)), "-d", "-m", "INVITE", BRIDGE_HOST], 15_000),
    ]);
    for (const run of [options, invite]) {
      expect(run.output).toMatch(/found nothing/);
      expect(run.output).not.toMatch(/SIP\/2\.0 \d{3}/); // -d prints every response it gets: none
    }
    // The requests did arrive: the bridge saw them and chose silence.
    const seen = refusals(silent, SCANNER);
    expect(seen.map((r) => r.method)).toEqual(expect.arrayContaining(["OPTIONS", "INVITE"]));
    expect(new Set(seen.map((r) => r.reason))).toEqual(new Set(["source-not-allowed"]));

    // TCP: the port accepts the connection (it must, for the PBX) but never says a word to a stranger.
    const viaTcp = await tcpExchange(
      BRIDGE_HOST,
      silent.port,
      SCANNER,
      [
        Buffer.from(
          buildSipRequest({
            method: "OPTIONS",
            uri: `sip:100@${BRIDGE_HOST}:${silent.port}`,
            via: `${SCANNER}:5060`,
          }),
        ),
      ],
      1_500,
    );
    expect(viaTcp.reply).toBe("");
  });

  it("on a 403 bridge gets 403 and nothing else, with no User-Agent or Server to fingerprint", async () => {
    const run = await runSipvicious("svmap", [...(await scannerArgs(loud)), "-d", BRIDGE_HOST], 15_000);
    const statuses = [...run.output.matchAll(/SIP\/2\.0 (\d{3})/g)].map((m) => Number(m[1]));
    expect(statuses.length).toBeGreaterThan(0);
    expect(new Set(statuses)).toEqual(new Set([403]));
    // svmap's result table: the device is there, but its "User Agent" column has nothing to show.
    expect(run.output).toMatch(
      new RegExp(`${BRIDGE_HOST.replaceAll(".", "\\.")}:${loud.port}\\s*\\|\\s*unknown`),
    );

    // The same from our own socket, to read every header of the answer.
    const prober = await UdpAttacker.bind(PROBER);
    try {
      await prober.send(
        buildSipRequest({
          method: "OPTIONS",
          uri: `sip:100@${BRIDGE_HOST}:${loud.port}`,
          via: prober.sentBy,
        }),
        BRIDGE_HOST,
        loud.port,
      );
      await prober.settle(500);
      expect(prober.received).toHaveLength(1);
      const answer = prober.received[0]!;
      expect(answer.status).toBe(403);
      expect(headerNames(answer.text).filter((name) => !MINIMAL_RESPONSE_HEADERS.includes(name))).toEqual([]);
      expect(answer.text).toMatch(/^SIP\/2\.0 403 Forbidden\r\n/); // the stock reason phrase, nothing chatty
    } finally {
      prober.close();
    }
  });
});

describe("svwar (extension enumeration)", () => {
  const methods = ["INVITE", "REGISTER", "OPTIONS"] as const;
  /** The real extensions, their neighbours and the usual defaults. */
  const extensions = "3000-3004,100,1000,2000";
  /** svwar's answer to a silent target: its first probe times out and it gives up. */
  const GAVE_UP = /No server response|socket error: timed out/;

  /**
   * svwar against one bridge with each method, in parallel. A run stops by itself once answers dry up;
   * INVITE's 403 is retransmitted for 32 s (svwar's ACK does not match the transaction), so runs are cut
   * at 8 s: every request has been sent and answered (or rate-limited) long before.
   */
  async function svwar(bridge: BridgeInstance) {
    return Promise.all(
      methods.map(async (method) =>
        runSipvicious(
          "svwar",
          [
            ...(await scannerArgs(bridge)),
            ...["-m", method, "-e", extensions, "--force", "--maximumtime", "2", BRIDGE_HOST],
          ],
          8_000,
        ),
      ),
    );
  }

  it("from a stranger: a silent bridge makes it give up, a 403 bridge gives it nothing to tell apart", async () => {
    const [fromSilent, fromLoud] = await Promise.all([svwar(silentElsewhere), svwar(loudElsewhere)]);
    for (const run of fromSilent) {
      expect(run.output).toMatch(GAVE_UP);
      expect(run.output).not.toMatch(SVWAR_FOUND);
    }
    // It did get 403s (the three runs share one source, so one may meet the refusal rate limit instead)…
    expect(fromLoud.some((run) => !GAVE_UP.test(run.output))).toBe(true);
    // …and the real extension's answer was the same as a random one's.
    for (const run of fromLoud) expect(run.output).not.toMatch(SVWAR_FOUND);
    for (const bridge of [silentElsewhere, loudElsewhere]) {
      expectRefusedFor(refusals(bridge, SVWAR_SOURCE), "source-not-allowed");
    }
  });

  it("from the allowed PBX address: guessed extensions are refused like strangers", async () => {
    const [fromSilent, fromLoud] = await Promise.all([svwar(silent), svwar(loud)]);
    // A guessed INVITE gets silence (or a 403); REGISTER gets 405 and OPTIONS 200 whatever the user (the
    // PBX's keepalive needs OPTIONS): the same answer for every extension, so nothing to enumerate.
    expect(fromSilent[methods.indexOf("INVITE")]?.output).toMatch(GAVE_UP);
    for (const run of [...fromSilent, ...fromLoud]) expect(run.output).not.toMatch(SVWAR_FOUND);
    const invites = [...refusals(silent, SVWAR_SOURCE), ...refusals(loud, SVWAR_SOURCE)];
    expect(new Set(invites.map((r) => r.method))).toEqual(new Set(["INVITE"]));
    expectRefusedFor(invites, "wrong-request-uri");
  });
});

describe("INVITEs that must never become calls", () => {
  it("an INVITE to the real Contact token from a non-allowed source is refused too", async () => {
    const scanner = await UdpAttacker.bind(SCANNER);
    try {
      for (const bridge of [silent, loud]) {
        const uri = `sip:${bridge.token}@${BRIDGE_HOST}:${bridge.port}`;
        const body = audioOffer(SCANNER, 40_000);
        await scanner.send(
          buildSipRequest({ method: "INVITE", uri, via: scanner.sentBy, body }),
          BRIDGE_HOST,
          bridge.port,
        );
      }
      await scanner.settle(1_000);
      const fromSilent = scanner.received.filter((r) => r.from.endsWith(`:${silent.port}`));
      const fromLoud = scanner.received.filter((r) => r.from.endsWith(`:${loud.port}`));
      expect(fromSilent).toEqual([]);
      // 403, or nothing if this source's refusal budget is spent by the svmap/svwar runs above.
      expect(fromLoud.every((r) => r.status === 403)).toBe(true);
    } finally {
      scanner.close();
    }
  });

  it("an INVITE from the allowed PBX address guessing the Request-URI user is refused, never answered", async () => {
    const guesses = (bridge: BridgeInstance, username: string): string[] => {
      const token = bridge.token!;
      return [
        username, // the extension number: what an attacker who read the PBX config would try
        "100",
        "admin",
        token.toUpperCase() === token ? token.toLowerCase() : token.toUpperCase(),
        token.slice(0, -1),
        `${token}x`,
      ].map((user) => `sip:${user}@${BRIDGE_HOST}:${bridge.port}`);
    };
    const pbxSide = await UdpAttacker.bind(PBX);
    try {
      for (const [bridge, user] of [
        [silent, SILENT_USER.username],
        [loud, LOUD_USER.username],
      ] as const) {
        for (const uri of [...guesses(bridge, user), `sip:${BRIDGE_HOST}:${bridge.port}`]) {
          const body = audioOffer(PBX, 40_002);
          await pbxSide.send(
            buildSipRequest({ method: "INVITE", uri, via: pbxSide.sentBy, body }),
            BRIDGE_HOST,
            bridge.port,
          );
        }
      }
      await pbxSide.settle(1_000);
      const fromSilent = pbxSide.received.filter((r) => r.from.endsWith(`:${silent.port}`));
      const fromLoud = pbxSide.received.filter((r) => r.from.endsWith(`:${loud.port}`));
      expect(fromSilent.map((r) => r.status)).toEqual([]);
      expect(fromLoud.length).toBeGreaterThan(0);
      // 403 (rate-limited to a trickle per source, so fewer than we sent); no 100/180/200, no dialog.
      expect(new Set(fromLoud.map((r) => r.status))).toEqual(new Set([403]));
      const reasons = [...refusals(silent, pbxSide.sentBy), ...refusals(loud, pbxSide.sentBy)].map(
        (r) => r.reason,
      );
      // Each guess was refused for its Request-URI, or dropped unanswered once this source's refusals ran
      // over their rate (svwar just spent some of 127.0.0.1's budget).
      expect(reasons).toHaveLength(14);
      expectRefusedFor(
        reasons.map((reason) => ({ reason })),
        "wrong-request-uri",
      );
    } finally {
      pbxSide.close();
    }
  });

  it("after everything above, no call was taken or answered and no call was counted", async () => {
    for (const bridge of [silent, loud, silentElsewhere, loudElsewhere]) {
      expect(callLines(bridge)).toEqual([]);
      expect(bridge.process.running).toBe(true);
      const after = await metricTotal(await opsUrlOf(bridge), "patchbay_calls_total");
      expect(after).toBe(callsBefore.get(bridge));
      expect(await metricTotal(await opsUrlOf(bridge), "patchbay_calls_active")).toBe(0);
    }
    // The scanners' requests did reach the policy, and were refused there for the right reason.
    for (const bridge of [silent, loud]) {
      expectRefusedFor([...refusals(bridge, SCANNER), ...refusals(bridge, PROBER)], "source-not-allowed");
    }
  });
  /** Edge refusals are counted by reason on /metrics, so a scan is something to alert on (sip-interop.md §3.3, Ops). */
  it("the scans above show up on /metrics as rejected requests", async () => {
    for (const bridge of [silent, loud]) {
      expect(await metricTotal(await opsUrlOf(bridge), "patchbay_sip_rejected_total")).toBeGreaterThan(0);
      const text = await (await fetch(`${await opsUrlOf(bridge)}/metrics`)).text();
      expect(text).toMatch(/^patchbay_sip_rejected_total\{reason="source-not-allowed"\} [1-9]/m);
    }
  });
});
