import { describe, expect, it } from "vitest";
import { parseDtmfRelay } from "../../src/call/call";
import { answeredCall, createStack, flush, inDialog, invite, offerWith, ourTag } from "./harness";

function statuses(stack: ReturnType<typeof createStack>): number[] {
  return stack.transport.responses().map((r) => r.status);
}

function body(message: { body: Uint8Array }): string {
  return new TextDecoder().decode(message.body);
}

describe("inbound call setup", () => {
  it("sends 100, 180 and a 200 with an SDP answer, Contact, Allow and Record-Route copied", async () => {
    const stack = createStack();
    await answeredCall(stack, invite({ extra: "Record-Route: <sip:10.0.0.1;lr>\nX-Patchbay-Agent: sales" }));
    expect(statuses(stack)).toEqual([100, 180, 200]);
    const ok = stack.transport.responses(200)[0]!;
    expect(ok.headers.get("Contact")).toBe("<sip:bridge@127.0.0.1:5060>");
    expect(ok.headers.getAll("Allow")).toContain("UPDATE");
    expect(ok.headers.get("Record-Route")).toBe("<sip:10.0.0.1;lr>");
    expect(ok.headers.get("Content-Type")).toBe("application/sdp");
    expect(body(ok)).toMatch(/m=audio 40000 RTP\/AVP 0 101/);
    expect(stack.calls.list()[0]!.info.headers).toEqual({ "X-Patchbay-Agent": "sales" });
  });

  it("retransmits the 200 (T1 doubling, capped at T2) until the ACK, then starts media and emits answered", async () => {
    const stack = createStack();
    await answeredCall(stack);
    const call = stack.calls.list()[0]!;
    let answered = 0;
    call.on("answered", () => answered++);
    stack.clock.advance(500 + 1000 + 2000 + 4000);
    await flush();
    expect(stack.transport.responses(200)).toHaveLength(5);
    stack.transport.deliver(inDialog(stack, "ACK", 1));
    stack.clock.advance(10_000);
    await flush();
    expect(stack.transport.responses(200)).toHaveLength(5);
    expect(answered).toBe(1);
    expect(stack.media.opened[0]!.started).toBe(1);
    expect(call.state).toBe("confirmed");
  });

  it("sends BYE and ends with no-ack after 64*T1 without an ACK", async () => {
    const stack = createStack();
    await answeredCall(stack);
    stack.clock.advance(32_000);
    await flush();
    expect(stack.transport.requests("BYE")).toHaveLength(1);
    expect(stack.ended.map((e) => e.cause)).toEqual(["no-ack"]);
    expect(stack.media.opened[0]!.closedWith).toBe("no-ack");
    // The 200 went out at 0, 0.5, 1.5, 3.5, 7.5, 11.5 … 31.5 s.
    expect(stack.transport.responses(200)).toHaveLength(11);
  });

  it("holds back the BYE for a hangup before the ACK, and sends it once the ACK arrives (§15)", async () => {
    const stack = createStack();
    await answeredCall(stack);
    const call = stack.calls.list()[0]!;
    const hangingUp = call.hangup("agent-hangup");
    await flush();
    expect(stack.transport.requests("BYE")).toHaveLength(0);
    stack.transport.deliver(inDialog(stack, "ACK", 1));
    await hangingUp;
    expect(stack.transport.requests("BYE")).toHaveLength(1);
    expect(stack.ended.map((e) => e.cause)).toEqual(["agent-hangup"]);
  });

  it("answers after the configured delay, and a CANCEL before it gets 200 + 487", async () => {
    const stack = createStack({ answerDelayMs: 2000 });
    const inv = invite();
    await answeredCall(stack, inv);
    expect(statuses(stack)).toEqual([100, 180]);
    const cancel = inDialog(stack, "CANCEL", 1, { branch: "z9hG4bK-invite-1" });
    cancel.headers.set("To", inv.headers.get("To")!);
    stack.transport.deliver(cancel);
    await flush();
    expect(statuses(stack)).toEqual([100, 180, 200, 487]);
    expect(stack.transport.responses(200)[0]!.headers.get("CSeq")).toBe("1 CANCEL");
    stack.clock.advance(5000);
    await flush();
    expect(stack.transport.responses(200)).toHaveLength(1);
    expect(stack.ended.map((e) => [e.cause, e.status])).toEqual([["cancelled", 487]]);
  });

  it("refuses an offer without G.711 with 488 and releases nothing it did not take", async () => {
    const stack = createStack();
    const g722 = offerWith(1)
      .replace("RTP/AVP 0 8 101", "RTP/AVP 9")
      .replace(/a=rtpmap:[08] .*\r\n/g, "");
    await answeredCall(stack, invite({ body: g722 }));
    expect(statuses(stack)).toEqual([100, 488]);
    expect(stack.media.opened).toHaveLength(0);
    expect(stack.ended.map((e) => e.cause)).toEqual(["rejected"]);
  });

  it("answers 420 + Unsupported when the INVITE requires an extension we lack (100rel)", async () => {
    const stack = createStack();
    await answeredCall(stack, invite({ extra: "Require: 100rel" }));
    expect(statuses(stack)).toEqual([100, 420]);
    expect(stack.transport.responses(420)[0]!.headers.get("Unsupported")).toBe("100rel");
  });

  it("answers 486 beyond the concurrent-call cap", async () => {
    const stack = createStack({ maxConcurrentCalls: 1 });
    await answeredCall(stack);
    stack.transport.deliver(invite({ branch: "z9hG4bK-second" }));
    await flush();
    expect(stack.transport.responses(486)).toHaveLength(1);
  });

  it("refuses INVITEs not addressed to our token with 403", async () => {
    const stack = createStack();
    await answeredCall(stack, invite({ uriUser: "1001" }));
    expect(statuses(stack)).toEqual([403]);
    expect(stack.policy.counters.refusedRequestUri).toBe(1);
  });
});

describe("in-dialog requests", () => {
  async function confirmed(options: Parameters<typeof createStack>[0] = {}, extra?: string) {
    const stack = createStack(options);
    await answeredCall(stack, invite(extra ? { extra } : {}));
    stack.transport.deliver(inDialog(stack, "ACK", 1));
    await flush();
    stack.transport.clear();
    return stack;
  }

  it("ends on the caller's BYE with 200 and closes media", async () => {
    const stack = await confirmed();
    stack.transport.deliver(inDialog(stack, "BYE", 2));
    await flush();
    expect(statuses(stack)).toEqual([200]);
    expect(stack.ended.map((e) => e.cause)).toEqual(["caller-hangup"]);
    expect(stack.media.opened[0]!.closedWith).toBe("caller-hangup");
    // The dialog is gone: a late BYE gets 481 once its transaction is new.
    stack.transport.deliver(inDialog(stack, "BYE", 3));
    await flush();
    expect(statuses(stack)).toEqual([200, 481]);
  });

  it("hangs up with BYE at the call-length limit", async () => {
    const stack = await confirmed({ maxCallS: 60 });
    stack.clock.advance(60_000);
    await flush();
    const bye = stack.transport.requests("BYE")[0]!;
    expect(bye.uri).toBe("sip:caller@127.0.0.1:5070");
    expect(bye.headers.get("To")).toContain("tag=caller-tag");
    expect(stack.ended.map((e) => e.cause)).toEqual(["max-duration"]);
  });

  it("sends in-dialog requests along the Record-Route set (loose routing)", async () => {
    const stack = await confirmed({}, "Record-Route: <sip:10.9.9.9:5080;lr>");
    await stack.calls.list()[0]!.hangup("agent-hangup");
    await flush();
    const sent = stack.transport.sent.find(
      (s) => s.message.kind === "request" && s.message.method === "BYE",
    )!;
    expect(sent.destination).toEqual({ protocol: "udp", address: "10.9.9.9", port: 5080 });
    const bye = sent.message as { uri: string; headers: { get(n: string): string | undefined } };
    expect(bye.uri).toBe("sip:caller@127.0.0.1:5070");
    expect(bye.headers.get("Route")).toBe("<sip:10.9.9.9:5080;lr>");
  });

  it("answers a challenge to its BYE once with digest credentials (CSeq + 1, new branch)", async () => {
    const stack = await confirmed();
    await stack.calls.list()[0]!.hangup("agent-hangup");
    await flush();
    const [bye] = stack.transport.requests("BYE");
    const { createResponse } = await import("../../src/sip/message");
    stack.transport.deliver(
      createResponse(
        bye!,
        407,
        undefined,
        [["Proxy-Authenticate", 'Digest realm="pbx", nonce="abc", qop="auth"']],
        {
          toTag: "caller-tag",
        },
      ),
    );
    await flush();
    const [, retry] = stack.transport.requests("BYE");
    expect(retry!.headers.get("Proxy-Authorization")).toMatch(/^Digest username="1001", realm="pbx"/);
    const seq = (r: typeof bye) => Number(r!.headers.get("CSeq")!.split(" ")[0]);
    expect(seq(retry)).toBe(seq(bye) + 1);
    expect(retry!.headers.getAll("Via")).toHaveLength(1);
    expect(retry!.headers.get("Via")).not.toBe(bye!.headers.get("Via"));
  });

  it("holds and resumes on re-INVITE (sendonly → our recvonly), updating media", async () => {
    const stack = await confirmed();
    stack.transport.deliver(inDialog(stack, "INVITE", 2, { body: offerWith(2, "sendonly") }));
    await flush();
    expect(body(stack.transport.responses(200)[0]!)).toContain("a=recvonly");
    stack.transport.deliver(inDialog(stack, "ACK", 2));
    stack.transport.deliver(inDialog(stack, "INVITE", 3, { body: offerWith(3, "sendrecv", 30002) }));
    await flush();
    const media = stack.media.opened[0]!;
    expect(media.updates.map((u) => [u.direction, u.remotePort])).toEqual([
      ["recvonly", 30000],
      ["sendrecv", 30002],
    ]);
  });

  it("answers a same-SDP refresh re-INVITE with the same answer (o= version unchanged)", async () => {
    const stack = await confirmed();
    stack.transport.deliver(inDialog(stack, "INVITE", 2, { body: offerWith(1) }));
    await flush();
    const refresh = body(stack.transport.responses(200)[0]!);
    expect(refresh).toMatch(/o=- \d+ 1 IN IP4/);
    expect(stack.media.opened[0]!.updates).toHaveLength(0);
  });

  it("offers in the 200 to an SDP-less re-INVITE and takes the answer from the ACK", async () => {
    const stack = await confirmed();
    stack.transport.deliver(inDialog(stack, "INVITE", 2));
    await flush();
    expect(body(stack.transport.responses(200)[0]!)).toMatch(/m=audio 40000/);
    stack.transport.deliver(inDialog(stack, "ACK", 2, { body: offerWith(5, "sendrecv", 31000) }));
    await flush();
    expect(stack.media.opened[0]!.updates.map((u) => u.remotePort)).toEqual([31000]);
  });

  it("answers UPDATE without SDP with 200", async () => {
    const stack = await confirmed();
    stack.transport.deliver(inDialog(stack, "UPDATE", 2));
    await flush();
    expect(statuses(stack)).toEqual([200]);
  });

  it("rejects an out-of-order CSeq with 500", async () => {
    const stack = await confirmed();
    stack.transport.deliver(inDialog(stack, "UPDATE", 5));
    stack.transport.deliver(inDialog(stack, "UPDATE", 4));
    await flush();
    expect(statuses(stack)).toEqual([200, 500]);
  });

  it("surfaces INFO application/dtmf-relay as a DTMF event", async () => {
    const stack = await confirmed();
    const digits: string[] = [];
    stack.calls.list()[0]!.on("dtmf", (event) => digits.push(event.digit));
    const info = inDialog(stack, "INFO", 2, { body: "Signal=5\r\nDuration=160\r\n" });
    info.headers.set("Content-Type", "application/dtmf-relay");
    stack.transport.deliver(info);
    await flush();
    expect(statuses(stack)).toEqual([200]);
    expect(digits).toEqual(["5"]);
    expect(parseDtmfRelay("Signal= #\nDuration= 100", "application/dtmf-relay")?.digit).toBe("#");
    expect(parseDtmfRelay("Signal=X", "application/dtmf-relay")).toBeUndefined();
  });

  it("answers OPTIONS in the dialog with Allow; 481 for a request in an unknown dialog", async () => {
    const stack = await confirmed();
    stack.transport.deliver(inDialog(stack, "OPTIONS", 2));
    const stranger = inDialog(stack, "BYE", 9);
    stranger.headers.set("Call-ID", "unknown@test");
    stack.transport.deliver(stranger);
    await flush();
    expect(statuses(stack)).toEqual([200, 481]);
    expect(stack.transport.responses(200)[0]!.headers.getAll("Allow")).toContain("INFO");
  });

  it("ends with media-timeout when media reports no RTP", async () => {
    const stack = await confirmed();
    stack.media.opened[0]!.fireTimeout();
    await flush();
    expect(stack.transport.requests("BYE")).toHaveLength(1);
    expect(stack.ended.map((e) => e.cause)).toEqual(["media-timeout"]);
  });

  it("keeps the dialog's To tag on every response", async () => {
    const stack = await confirmed();
    stack.transport.deliver(inDialog(stack, "UPDATE", 2));
    await flush();
    expect(stack.transport.responses(200)[0]!.headers.get("To")).toContain(`tag=${ourTag(stack)}`);
  });
});

describe("session timers (RFC 4028)", () => {
  const SE = (value: string) => `Supported: timer\nSession-Expires: ${value}\nMin-SE: 90`;

  async function confirmedWith(extra: string) {
    const stack = createStack();
    await answeredCall(stack, invite({ extra }));
    const ok = stack.transport.responses(200)[0]!;
    stack.transport.deliver(inDialog(stack, "ACK", 1));
    await flush();
    stack.transport.clear();
    return { stack, ok };
  }

  it("echoes Session-Expires with the peer as refresher and Require: timer", async () => {
    const { ok } = await confirmedWith(SE("1800;refresher=uac"));
    expect(ok.headers.get("Session-Expires")).toBe("1800;refresher=uac");
    expect(ok.headers.get("Require")).toBe("timer");
  });

  it("answers 422 with Min-SE when the interval is below our minimum", async () => {
    const stack = createStack();
    await answeredCall(stack, invite({ extra: "Supported: timer\nSession-Expires: 60" }));
    expect(statuses(stack)).toEqual([100, 422]);
    expect(stack.transport.responses(422)[0]!.headers.get("Min-SE")).toBe("90");
  });

  it("as refreshee, hangs up at SE - min(32, SE/3) without a refresh, and a refresh resets the clock", async () => {
    const { stack } = await confirmedWith(SE("90;refresher=uac"));
    stack.clock.advance(50_000);
    stack.transport.deliver(inDialog(stack, "UPDATE", 2, { extra: SE("90;refresher=uac") }));
    await flush();
    expect(stack.transport.responses(200)[0]!.headers.get("Session-Expires")).toBe("90;refresher=uac");
    stack.clock.advance(59_999); // 90 - 30 = 60 s after the refresh
    await flush();
    expect(stack.transport.requests("BYE")).toHaveLength(0);
    stack.clock.advance(1);
    await flush();
    expect(stack.transport.requests("BYE")).toHaveLength(1);
    expect(stack.ended.map((e) => e.cause)).toEqual(["session-expired"]);
  });

  it("as refresher (refresher=uas), sends UPDATE at SE/2 when the peer allows UPDATE", async () => {
    const { stack, ok } = await confirmedWith(SE("120;refresher=uas"));
    expect(ok.headers.get("Session-Expires")).toBe("120;refresher=uas");
    stack.clock.advance(60_000);
    await flush();
    const update = stack.transport.requests("UPDATE")[0]!;
    expect(update.headers.get("Session-Expires")).toBe("120;refresher=uac");
    expect(update.headers.get("Supported")).toBe("timer");
    // Glare: the peer's re-INVITE while our UPDATE is pending gets 491.
    stack.transport.deliver(inDialog(stack, "INVITE", 2, { body: offerWith(2) }));
    await flush();
    expect(stack.transport.responses(491)).toHaveLength(1);
    const { createResponse } = await import("../../src/sip/message");
    stack.transport.deliver(
      createResponse(update, 200, undefined, [["Session-Expires", "120;refresher=uac"]], { toTag: "x" }),
    );
    await flush();
    stack.clock.advance(60_000);
    await flush();
    expect(stack.transport.requests("UPDATE")).toHaveLength(2);
    expect(stack.ended).toHaveLength(0);
  });

  it("as refresher without UPDATE in the peer's Allow, refreshes with a same-SDP re-INVITE and ACKs the 2xx", async () => {
    const stack = createStack();
    const inv = invite({ extra: SE("100;refresher=uas") });
    inv.headers.set("Allow", "INVITE, ACK, BYE, CANCEL");
    await answeredCall(stack, inv);
    const answer = body(stack.transport.responses(200)[0]!);
    stack.transport.deliver(inDialog(stack, "ACK", 1));
    await flush();
    stack.clock.advance(50_000);
    await flush();
    const reinvite = stack.transport.requests("INVITE")[0]!;
    expect(body(reinvite)).toBe(answer);
    const { createResponse } = await import("../../src/sip/message");
    stack.transport.deliver(
      createResponse(reinvite, 200, undefined, [["Contact", "<sip:caller@127.0.0.1:5070>"]], {
        toTag: "caller-tag",
        body: offerWith(1),
      }),
    );
    await flush();
    const ack = stack.transport.requests("ACK")[0]!;
    expect(ack.headers.get("CSeq")).toBe(`${reinvite.headers.get("CSeq")!.split(" ")[0]} ACK`);
  });
});
