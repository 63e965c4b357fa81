/**
 * OutboundLeg on a FakeTransport and a ManualClock: the UAC side of the same mid-dialog code InboundCall
 * runs (src/call/leg.ts). The callee's re-INVITE/UPDATE, RFC 4028 in both roles as the 2xx granted it,
 * INFO DTMF, glare, BYE with 407, 481 after the end, REFER with a ready Refer-To, CANCEL while ringing.
 * SIPp proves the same against a real peer (test/outbound/mid-dialog.test.ts).
 */
import { describe, expect, it } from "vitest";
import { OutboundLeg } from "../../src/outbound/leg";
import { createResponse } from "../../src/sip/message";
import type { SipRequest, SipResponse } from "../../src/sip/message/types";
import { ManualClock } from "../../src/sip/transaction/clock";
import { TransactionLayer } from "../../src/sip/transaction/layer";
import { SourceAllowList } from "../../src/sip/ua/cidr";
import { CallPolicy } from "../../src/sip/ua/policy";
import { UaCore } from "../../src/sip/ua/ua";
import { offerWith, RecordingEngine } from "../call/harness";
import { captureLogger, FakeTransport, flush } from "../sip/transaction/fake-transport";
import { parse } from "../sip/transaction/helpers";

const ANSWER = offerWith(1).replace("o=caller", "o=callee");

function stack(options: { sessionExpiresS?: number } = {}) {
  const clock = new ManualClock(1_000_000);
  const transport = new FakeTransport();
  const { logger } = captureLogger();
  const layer = new TransactionLayer({
    transports: [transport],
    clock,
    logger,
    sentBy: () => "127.0.0.1:5060",
  });
  const ua = new UaCore({
    layer,
    policy: new CallPolicy({
      allowList: new SourceAllowList(["127.0.0.1"]),
      rejectMode: "403",
      contactToken: "bridge",
    }),
    clock,
    logger,
    contactUri: () => "sip:bridge@127.0.0.1:5060",
  });
  const media = new RecordingEngine();
  const leg = new OutboundLeg({
    ua,
    clock,
    logger,
    media,
    timers: layer.timers,
    proxy: { protocol: "udp", address: "127.0.0.1", port: 5070 },
    requestUri: "sip:2001@pbx.test",
    fromUri: "sip:1050@pbx.test",
    ringTimeoutMs: 30_000,
    credentials: { username: "1050", password: "hunter2" },
    settings: {
      sessionExpiresS: options.sessionExpiresS ?? 1800,
      minSessionExpiresS: 90,
      maxCallS: 3600,
      mediaAddress: "127.0.0.1",
      domain: "pbx.test",
    },
  });
  const events: string[] = [];
  leg.on("progress", (p) => events.push(`progress ${p.sipStatus}`));
  leg.on("answered", () => events.push("answered"));
  leg.on("mediaUpdated", (params) => events.push(`media ${params.direction} ${params.remotePort}`));
  leg.on("dtmf", (dtmf) => events.push(`dtmf ${dtmf.digit}`));
  leg.on("ended", (info) => events.push(`ended ${info.cause} ${info.status ?? "-"}`));
  return { clock, transport, leg, media, events };
}

type Stack = ReturnType<typeof stack>;

function ok(invite: SipRequest, extra: Array<[string, string]> = []): SipResponse {
  return createResponse(
    invite,
    200,
    undefined,
    [
      ["Contact", "<sip:callee@127.0.0.1:5070>"],
      ["Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE"],
      ["Content-Type", "application/sdp"],
      ...extra,
    ],
    { toTag: "callee-tag", body: ANSWER },
  );
}

/** Dial, answer with `extra` headers on the 200; returns once the ACK went out. */
async function answered(s: Stack, extra: Array<[string, string]> = []) {
  const dialing = s.leg.dial();
  await flush();
  const invite = s.transport.requests("INVITE")[0]!;
  s.transport.deliver(createResponse(invite, 180, undefined, [], { toTag: "callee-tag" }));
  s.transport.deliver(ok(invite, extra));
  expect(await dialing).toEqual({ outcome: "answered", sipStatus: 200 });
  await flush();
  return invite;
}

/** A request from the callee inside the dialog. */
function fromCallee(
  invite: SipRequest,
  method: string,
  cseq: number,
  options: { body?: string; extra?: string[] } = {},
): SipRequest {
  const body = options.body ?? "";
  const text = [
    `${method} sip:bridge@127.0.0.1:5060 SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-callee-${method}-${cseq};rport`,
    "Max-Forwards: 70",
    `From: ${invite.headers.get("To")};tag=callee-tag`,
    `To: ${invite.headers.get("From")}`,
    `Call-ID: ${invite.headers.get("Call-ID")}`,
    `CSeq: ${cseq} ${method}`,
    "Contact: <sip:callee@127.0.0.1:5070>",
    ...(body ? ["Content-Type: application/sdp"] : []),
    ...(options.extra ?? []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    "",
    body,
  ].join("\r\n");
  return parse(text) as SipRequest;
}

describe("OutboundLeg: dialling", () => {
  it("offers SDP with Supported: timer, Session-Expires and Min-SE, reports 180, ACKs the 2xx, starts media", async () => {
    const s = stack();
    const invite = await answered(s);
    expect(invite.headers.get("Supported")).toBe("timer");
    expect(invite.headers.get("Session-Expires")).toBe("1800");
    expect(invite.headers.get("Min-SE")).toBe("90");
    expect(s.transport.requests("ACK")).toHaveLength(1);
    expect(s.events).toEqual(["progress 180", "answered"]);
    expect(s.media.opened[0]!.started).toBe(1);
    expect(s.leg.dialogId).toEqual({
      callId: invite.headers.get("Call-ID"),
      localTag: expect.any(String),
      remoteTag: "callee-tag",
    });
    expect(invite.headers.get("From")).toContain(`tag=${s.leg.dialogId!.localTag}`);
  });

  it("abandon() while ringing CANCELs and ends the leg cancelled, without an answer", async () => {
    const s = stack();
    const dialing = s.leg.dial();
    await flush();
    const invite = s.transport.requests("INVITE")[0]!;
    s.transport.deliver(createResponse(invite, 180, undefined, [], { toTag: "callee-tag" }));
    s.leg.abandon("consultation withdrawn");
    await flush();
    expect(s.transport.requests("CANCEL")).toHaveLength(1);
    s.transport.deliver(createResponse(invite, 487, undefined, [], { toTag: "callee-tag" }));
    expect(await dialing).toMatchObject({ outcome: "failed", reason: "no-answer", sipStatus: 487 });
    expect(s.events.at(-1)).toBe("ended cancelled 487");
    expect(s.media.opened[0]!.closedWith).toBe("cancelled");
  });
});

describe("OutboundLeg: a same-version re-offer right after the answer", () => {
  it("gets a real answer (a subset of the re-offer), not our initial offer back", async () => {
    const s = stack();
    const invite = await answered(s);
    s.transport.clear();
    // The callee's answer was PCMU/PCMA/101 version 1; it re-offers only PCMA, version unchanged.
    const reoffer = ANSWER.replace("RTP/AVP 0 8 101", "RTP/AVP 8").replace("a=rtpmap:0 PCMU/8000\r\n", "");
    s.transport.deliver(fromCallee(invite, "INVITE", 1, { body: reoffer }));
    await flush();
    const body = new TextDecoder().decode(s.transport.responses(200)[0]!.body);
    expect(body).toMatch(/m=audio \d+ RTP\/AVP 8\r\n/);
    expect(body).not.toContain("PCMU");
  });
});

describe("OutboundLeg: 422 Session Interval Too Small", () => {
  it("asks again with the callee's Min-SE (CSeq + 1) and is answered", async () => {
    const s = stack({ sessionExpiresS: 90 });
    const dialing = s.leg.dial();
    await flush();
    const first = s.transport.requests("INVITE")[0]!;
    expect(first.headers.get("Session-Expires")).toBe("90");
    s.transport.deliver(createResponse(first, 422, undefined, [["Min-SE", "300"]], { toTag: "callee-tag" }));
    await flush();
    const second = s.transport.requests("INVITE")[1]!;
    expect(second.headers.get("Session-Expires")).toBe("300");
    expect(second.headers.get("Min-SE")).toBe("300");
    expect(second.headers.get("CSeq")).toBe("2 INVITE");
    s.transport.deliver(
      ok(second, [
        ["Session-Expires", "300;refresher=uac"],
        ["Require", "timer"],
      ]),
    );
    expect(await dialing).toMatchObject({ outcome: "answered" });
  });
});

describe("OutboundLeg: the callee's mid-dialog requests (the same code as InboundCall)", () => {
  it("answers a hold re-INVITE recvonly, resume sendrecv, and a same-session UPDATE refresh unchanged", async () => {
    const s = stack();
    const invite = await answered(s);
    s.transport.clear();
    s.transport.deliver(fromCallee(invite, "INVITE", 1, { body: offerWith(2, "sendonly") }));
    await flush();
    const hold = s.transport.responses(200)[0]!;
    expect(new TextDecoder().decode(hold.body)).toContain("a=recvonly");
    s.transport.deliver(fromCallee(invite, "ACK", 1));
    s.transport.deliver(fromCallee(invite, "INVITE", 2, { body: offerWith(3, "sendrecv", 31000) }));
    await flush();
    s.transport.deliver(fromCallee(invite, "ACK", 2));
    s.transport.deliver(
      fromCallee(invite, "UPDATE", 3, { extra: ["Session-Expires: 90;refresher=uac", "Supported: timer"] }),
    );
    await flush();
    const update = s.transport.responses(200).at(-1)!;
    expect(update.headers.get("Session-Expires")).toBe("90;refresher=uac");
    expect(s.events, s.events.join(" | ")).toContain("media recvonly 30000");
    expect(s.events).toContain("media sendrecv 31000");
    // Peer refreshes: without another refresh the leg ends at 90 − 30 s.
    s.clock.advance(59_000);
    await flush();
    expect(s.transport.requests("BYE")).toHaveLength(0);
    s.clock.advance(2_000);
    await flush();
    expect(s.transport.requests("BYE")).toHaveLength(1);
    expect(s.events.at(-1)).toBe("ended session-expired 200");
  });

  it("INFO DTMF reaches the listener; a BYE from the callee ends it; later requests get 481", async () => {
    const s = stack();
    const invite = await answered(s);
    const info = fromCallee(invite, "INFO", 1, { extra: [] });
    info.headers.set("Content-Type", "application/dtmf-relay");
    info.body = new TextEncoder().encode("Signal=7\r\nDuration=160\r\n");
    s.transport.deliver(info);
    s.transport.deliver(fromCallee(invite, "BYE", 2));
    await flush();
    s.transport.clear();
    s.transport.deliver(fromCallee(invite, "UPDATE", 3));
    await flush();
    expect(s.events).toContain("dtmf 7");
    expect(s.events).toContain("ended callee-hangup 200");
    expect(s.transport.responses(481)).toHaveLength(1);
  });
});

describe("OutboundLeg: RFC 4028 from the 2xx to our INVITE", () => {
  it("refresher=uac in the 2xx: we refresh at SE/2 with UPDATE (the callee allows it)", async () => {
    const s = stack({ sessionExpiresS: 90 });
    await answered(s, [
      ["Session-Expires", "90;refresher=uac"],
      ["Require", "timer"],
    ]);
    s.clock.advance(44_000);
    await flush();
    expect(s.transport.requests("UPDATE")).toHaveLength(0);
    s.clock.advance(1_000);
    await flush();
    const [update] = s.transport.requests("UPDATE");
    expect(update!.headers.get("Session-Expires")).toBe("90;refresher=uac");
    expect(update!.headers.get("To")).toContain("tag=callee-tag");
    s.transport.deliver(
      createResponse(update!, 200, undefined, [
        ["Session-Expires", "90;refresher=uac"],
        ["Require", "timer"],
      ]),
    );
    s.clock.advance(45_000);
    await flush();
    expect(s.transport.requests("UPDATE")).toHaveLength(2);
  });

  it("refresher=uas in the 2xx: the callee refreshes; we BYE when it does not", async () => {
    const s = stack({ sessionExpiresS: 90 });
    await answered(s, [
      ["Session-Expires", "90;refresher=uas"],
      ["Require", "timer"],
    ]);
    s.clock.advance(61_000);
    await flush();
    expect(s.transport.requests("UPDATE")).toHaveLength(0);
    expect(s.transport.requests("BYE")).toHaveLength(1);
  });

  it("a Session-Expires a proxy added (no Require: timer) makes us the refresher", async () => {
    const s = stack({ sessionExpiresS: 90 });
    await answered(s, [["Session-Expires", "120;refresher=uas"]]);
    s.clock.advance(60_000);
    await flush();
    expect(s.transport.requests("UPDATE")).toHaveLength(1);
  });

  it("glare: the callee's re-INVITE while our refresh is open gets 491", async () => {
    const s = stack({ sessionExpiresS: 90 });
    const invite = await answered(s, [
      ["Session-Expires", "90;refresher=uac"],
      ["Require", "timer"],
    ]);
    s.clock.advance(45_000);
    await flush();
    s.transport.deliver(fromCallee(invite, "INVITE", 1, { body: offerWith(2, "sendonly") }));
    await flush();
    expect(s.transport.responses(491)).toHaveLength(1);
  });
});

describe("OutboundLeg: ending and transfer", () => {
  it("hangup() sends BYE and answers a 407 on it once with credentials", async () => {
    const s = stack();
    await answered(s);
    await s.leg.hangup("agent-hangup");
    await flush();
    const [bye] = s.transport.requests("BYE");
    s.transport.deliver(
      createResponse(bye!, 407, undefined, [
        ["Proxy-Authenticate", 'Digest realm="pbx.test", nonce="abc", qop="auth"'],
      ]),
    );
    await flush();
    const byes = s.transport.requests("BYE");
    expect(byes).toHaveLength(2);
    expect(byes[1]!.headers.get("Proxy-Authorization")).toContain('username="1050"');
    expect(s.events.at(-1)).toBe("ended agent-hangup 200");
  });

  it("transfer() with a ready Refer-To sends it as is and leaves after the final NOTIFY", async () => {
    const s = stack();
    const invite = await answered(s);
    const referTo = "sip:2002@pbx.test?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2";
    const done = s.leg.transfer("2002", { referTo });
    await flush();
    const [refer] = s.transport.requests("REFER");
    expect(refer!.headers.get("Refer-To")).toBe(`<${referTo}>`);
    s.transport.deliver(createResponse(refer!, 202));
    const notify = fromCallee(invite, "NOTIFY", 1, {
      extra: ["Event: refer", "Subscription-State: terminated"],
    });
    notify.headers.set("Content-Type", "message/sipfrag;version=2.0");
    notify.body = new TextEncoder().encode("SIP/2.0 200 OK\r\n");
    s.transport.deliver(notify);
    await done;
    await flush();
    expect(s.transport.requests("BYE")).toHaveLength(1);
    expect(s.events.at(-1)).toBe("ended transferred 200");
  });
});
