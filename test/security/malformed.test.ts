/**
 * Parsing is the attack surface (sip-interop.md §3.3: pjproject#2016 Via without branch, pjproject#2093
 * huge SDP payload type, CVE-2021-33056 a lone slash in From, sofia-sip's crafted-UDP DoS, AST-2016-005 TCP
 * exhaustion). Each malformed message is sent from the allowed PBX address, so it gets past the allow-list
 * to the parser, over the wire to the real bridge process: the answer must be a 400 (or a refusal) or
 * silence, never a 2xx/18x, and afterwards the bridge is alive and answers a normal call through Kamailio.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BridgeInstance, startBridge } from "../support/bridge";
import { type KamailioInstance, startKamailio } from "../support/kamailio";
import { describeSippResult, runSipp } from "../support/sipp";
import {
  audioOffer,
  buildSipRequest,
  metricTotal,
  opsUrlOf,
  type ReceivedResponse,
  tcpExchange,
  UdpAttacker,
} from "./attack";

const BRIDGE_HOST = "127.0.0.3";
/** Kamailio's address: the bridge's default allow-list. */
const PBX = "127.0.0.1";
const USER = { username: "3201", password: "malformed-test-pass" };

let kamailio: KamailioInstance;
let bridge: BridgeInstance;

beforeAll(async () => {
  kamailio = await startKamailio({ users: [USER] });
  bridge = await startBridge({
    registrar: `${kamailio.host}:${kamailio.port}`,
    host: BRIDGE_HOST,
    ...USER,
    env: { SIP_REJECT_MODE: "403", RTP_PORT_MIN: "44500", RTP_PORT_MAX: "44598", LOG_LEVEL: "info" },
  });
});

afterAll(async () => {
  await bridge?.stop();
  await kamailio?.stop();
});

/** Insert raw header lines after the request line of a built request. */
function withHeaders(request: string, lines: readonly string[]): string {
  const end = request.indexOf("\r\n");
  return `${request.slice(0, end + 2)}${lines.map((line) => `${line}\r\n`).join("")}${request.slice(end + 2)}`;
}

/** Replace the first header line starting with `name:`. */
function replaceHeader(request: string, name: string, line: string): string {
  return request.replace(new RegExp(`^${name}:.*$`, "m"), line);
}

/** The malformed UDP cases, each a function of where answers should go and who we address. */
function udpCases(sentBy: string, token: string, port: number): Array<[string, string | Uint8Array]> {
  const uri = `sip:${token}@${BRIDGE_HOST}:${port}`;
  const invite = (extra: Partial<Parameters<typeof buildSipRequest>[0]> = {}) =>
    buildSipRequest({ method: "INVITE", uri, via: sentBy, body: audioOffer(PBX, 40_010), ...extra });
  const options = buildSipRequest({ method: "OPTIONS", uri, via: sentBy });
  const hundredVias = Array.from(
    { length: 99 },
    (_, i) => `Via: SIP/2.0/UDP 127.0.0.1:${5000 + i};branch=z9hG4bK-via${i}`,
  );
  return [
    ["NUL byte in a header", withHeaders(options, ["Subject: a\u0000b"])],
    ["NUL in the request line", options.replace(" SIP/2.0", "\u0000 SIP/2.0")],
    ["INVITE whose Via has no branch", invite({ branch: null })],
    ["CSeq method differs from the request method", invite({ cseq: "1 BYE" })],
    ["CSeq number above 2^31", invite({ cseq: "4294967296 INVITE" })],
    ["Content-Length larger than the body", invite({ contentLength: 4_000 })],
    ["negative Content-Length", replaceHeader(options, "Content-Length", "Content-Length: -1")],
    ["100 Via headers", withHeaders(invite(), hundredVias)],
    ["SDP payload type 4294967296", invite({ body: audioOffer(PBX, 40_012, "4294967296") })],
    ["SDP port 99999", invite({ body: audioOffer(PBX, 99_999) })],
    ["a lone slash as From (CVE-2021-33056)", replaceHeader(invite(), "From", "From: /")],
    ["a 60 KB header in one datagram", withHeaders(options, [`X-Padding: ${"a".repeat(60_000)}`])],
    ["no headers at all", `INVITE ${uri} SIP/2.0\r\n\r\n`],
    ["1,400 random bytes", randomBytes(1_400)],
    ["an empty datagram", new Uint8Array(0)],
  ];
}

/** "silence" or the distinct statuses that came back, for the report. */
function describeAnswers(answers: readonly ReceivedResponse[]): string {
  return answers.length === 0 ? "silence" : [...new Set(answers.map((a) => a.status ?? "non-SIP"))].join("/");
}

describe("malformed messages from an allowed source", () => {
  it("get a 400, a refusal or silence over UDP, never a call", async () => {
    const pbxSide = await UdpAttacker.bind(PBX);
    const verdicts: string[] = [];
    try {
      for (const [name, message] of udpCases(pbxSide.sentBy, bridge.token!, bridge.port)) {
        const from = pbxSide.received.length;
        await pbxSide.send(message, BRIDGE_HOST, bridge.port);
        // 250 ms of quiet also spaces the messages out: the bridge answers at most 5 malformed per second per
        // source (transport/base.ts), so without the gap the later cases would only measure that limit.
        await pbxSide.settle(250, 3_000);
        const answers = pbxSide.since(from);
        verdicts.push(`${name}: ${describeAnswers(answers)}`);
        // A well-formed INVITE with a bad body may get 100 Trying first; what ends it must be a refusal.
        const finals = answers.filter((answer) => answer.status !== 100);
        if (answers.length > finals.length) expect(finals.length, name).toBeGreaterThan(0);
        for (const answer of finals) {
          expect(answer.status, `${name}\n${answer.text.slice(0, 400)}`).toBeGreaterThanOrEqual(400);
        }
      }
    } finally {
      pbxSide.close();
      console.info(`malformed over UDP:\n  ${verdicts.join("\n  ")}`);
    }
    expect(bridge.logs().filter((l) => l.msg === "answered")).toEqual([]);
  });

  it("over TCP: a 70 KB header, a huge Content-Length and 256 KB of garbage end the connection, not the bridge", async () => {
    const uri = `sip:${bridge.token}@${BRIDGE_HOST}:${bridge.port}`;
    const options = buildSipRequest({ method: "OPTIONS", uri, via: `${PBX}:5060` }).replace("/UDP", "/TCP");
    const cases: Array<[string, Uint8Array[]]> = [
      ["a 70 KB header", [Buffer.from(withHeaders(options, [`X-Padding: ${"a".repeat(70_000)}`]))]],
      [
        "Content-Length 2^40 and a trickle of body",
        [
          Buffer.from(replaceHeader(options, "Content-Length", "Content-Length: 1099511627776")),
          randomBytes(4_096),
        ],
      ],
      ["256 KB of random bytes", Array.from({ length: 16 }, () => randomBytes(16_384))],
      ["an endless header line", Array.from({ length: 8 }, () => Buffer.from("X".repeat(16_384)))],
    ];
    const verdicts: string[] = [];
    for (const [name, chunks] of cases) {
      const { reply, closedByPeer } = await tcpExchange(BRIDGE_HOST, bridge.port, PBX, chunks, 1_500);
      const statuses = [...reply.matchAll(/^SIP\/2\.0 (\d{3})/gm)].map((m) => Number(m[1]));
      verdicts.push(
        `${name}: ${statuses.join("/") || "no answer"}, ${closedByPeer ? "closed by the bridge" : "left open"}`,
      );
      for (const status of statuses)
        expect(status, `${name}\n${reply.slice(0, 400)}`).toBeGreaterThanOrEqual(400);
    }
    console.info(`malformed over TCP:\n  ${verdicts.join("\n  ")}`);
  });

  it("after the whole batch the bridge is alive and answers a normal call through Kamailio", async () => {
    expect(bridge.process.running).toBe(true);
    expect(bridge.logs().filter((l) => l.level >= 50)).toEqual([]); // no error/fatal lines (uncaught exception…)
    const result = await runSipp({
      scenario: "uac-basic",
      remote: `${kamailio.host}:${kamailio.port}`,
      localIp: "127.0.0.2",
      service: USER.username,
      pauseMs: 200,
      timeoutMs: 20_000,
    });
    expect(result.exitCode, describeSippResult(result)).toBe(0);
    const opsUrl = await opsUrlOf(bridge);
    // The one answered call, ended by the caller's BYE...
    expect(await metricTotal(opsUrl, "patchbay_calls_total", { outcome: "caller-hangup" })).toBe(1);
    // ...and the two well-formed INVITEs with impossible SDP, recorded as refused with 400, never answered.
    expect(await metricTotal(opsUrl, "patchbay_calls_total", { sip_status: "400" })).toBe(2);
    expect(await metricTotal(opsUrl, "patchbay_calls_total")).toBe(3);
  });
});
