/**
 * INVITEs in the shapes real PBXes send, through the whole UA stack (fake transport, fake clock):
 * Asterisk/FreePBX PJSIP with session timers and two telephone-event rates, Kamailio-proxied with two
 * Vias and Record-Route, and a softphone offering PCMA first with a dynamic telephone-event PT.
 */
import { describe, expect, it } from "vitest";
import { parse } from "../sip/transaction/helpers";
import { createStack, flush } from "./harness";

function sipText(lines: string[], body: string): string {
  const sdp = body.replace(/\n/g, "\r\n");
  return `${lines.join("\r\n")}\r\nContent-Length: ${Buffer.byteLength(sdp)}\r\n\r\n${sdp}`;
}

const ASTERISK_SDP = `v=0
o=- 1839196208 1839196208 IN IP4 127.0.0.1
s=Asterisk
c=IN IP4 127.0.0.1
t=0 0
m=audio 16024 RTP/AVP 0 8 101 103
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:103 telephone-event/48000
a=fmtp:103 0-16
a=ptime:20
a=maxptime:140
a=sendrecv
`;

describe("INVITEs as PBXes send them", () => {
  it("Asterisk PJSIP (FreePBX 16): session timer 1800 with Min-SE 90, telephone-event 101 and 103/48000", async () => {
    const stack = createStack();
    const invite = parse(
      sipText(
        [
          "INVITE sip:bridge@127.0.0.1:5060 SIP/2.0",
          "Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKPjd3c9a0f5-6b9e-4c1b-9a7e-5b2d8f0e1a11",
          'From: "Sales Queue" <sip:600@127.0.0.1>;tag=7b7f5a8e-2d0f-4c35-9a61-3b5e9f2c1d44',
          "To: <sip:bridge@127.0.0.1>",
          "Contact: <sip:asterisk@127.0.0.1:5060>",
          "Call-ID: 2f1c7d2e-8c7b-4d8a-9a7c-0e6f7b1c2d3e",
          "CSeq: 29711 INVITE",
          "Allow: OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INVITE, ACK, BYE, CANCEL, UPDATE, PRACK, MESSAGE, REFER",
          "Supported: 100rel, timer, replaces, norefersub, histinfo",
          "Session-Expires: 1800",
          "Min-SE: 90",
          'P-Asserted-Identity: "Sales Queue" <sip:600@127.0.0.1>',
          "Max-Forwards: 70",
          "User-Agent: FPBX-16.0.40(18.20.0)",
          "Content-Type: application/sdp",
        ],
        ASTERISK_SDP,
      ),
    );
    stack.transport.deliver(invite);
    await flush();
    const ok = stack.transport.responses(200)[0]!;
    expect(ok.headers.get("Session-Expires")).toBe("1800;refresher=uac");
    expect(ok.headers.get("Require")).toBe("timer");
    const sdp = new TextDecoder().decode(ok.body);
    expect(sdp).toMatch(/m=audio 40000 RTP\/AVP 0 101\r\n/);
    expect(sdp).not.toContain("103");
    expect(stack.calls.list()[0]!.params).toMatchObject({
      codec: "PCMU",
      payloadType: 0,
      dtmfPayloadType: 101,
      remoteAddress: "127.0.0.1",
      remotePort: 16024,
    });
  });

  it("through Kamailio: two Vias, Record-Route; responses go to the proxy, BYE along the route", async () => {
    const stack = createStack();
    const invite = parse(
      sipText(
        [
          "INVITE sip:bridge@127.0.0.1:5060 SIP/2.0",
          "Record-Route: <sip:127.0.0.1:5080;lr;ftag=abc>",
          "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK1e1b.proxy.0",
          "Via: SIP/2.0/UDP 10.0.0.9:5060;received=127.0.0.2;rport=5099;branch=z9hG4bK-caller",
          "Max-Forwards: 69",
          "From: <sip:caller@10.0.0.9>;tag=abc",
          "To: <sip:2001@127.0.0.1>",
          "Call-ID: routed-1",
          "CSeq: 1 INVITE",
          "Contact: <sip:caller@10.0.0.9:5060>",
          "Content-Type: application/sdp",
        ],
        ASTERISK_SDP,
      ),
    );
    stack.transport.deliver(invite, { address: "127.0.0.1", port: 5080 });
    await flush();
    const sent200 = stack.transport.sent.find(
      (s) => s.message.kind === "response" && s.message.status === 200,
    )!;
    expect(sent200.destination).toEqual({ protocol: "udp", address: "127.0.0.1", port: 5080 });
    expect(sent200.message.headers.getAll("Via")).toHaveLength(2);
    const call = stack.calls.list()[0]!;
    const hangingUp = call.hangup();
    await flush();
    // Still waiting for the ACK: the BYE is held back.
    expect(stack.transport.requests("BYE")).toHaveLength(0);
    const ack = parse(
      sipText(
        [
          `ACK sip:bridge@127.0.0.1:5060 SIP/2.0`,
          "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK1e1b.proxy.ack",
          "Via: SIP/2.0/UDP 10.0.0.9:5060;received=127.0.0.2;rport=5099;branch=z9hG4bK-caller-ack",
          "From: <sip:caller@10.0.0.9>;tag=abc",
          `To: <sip:2001@127.0.0.1>;tag=${call.dialog!.id.localTag}`,
          "Call-ID: routed-1",
          "CSeq: 1 ACK",
        ],
        "",
      ),
    );
    stack.transport.deliver(ack, { address: "127.0.0.1", port: 5080 });
    await hangingUp;
    await flush();
    const bye = stack.transport.sent.find((s) => s.message.kind === "request" && s.message.method === "BYE")!;
    expect(bye.destination).toEqual({ protocol: "udp", address: "127.0.0.1", port: 5080 });
    expect(bye.message.headers.get("Route")).toBe("<sip:127.0.0.1:5080;lr;ftag=abc>");
    expect((bye.message as { uri: string }).uri).toBe("sip:caller@10.0.0.9:5060");
  });

  it("a softphone offering PCMA first with telephone-event on PT 96 gets PCMA and PT 96", async () => {
    const stack = createStack();
    const sdp = ASTERISK_SDP.replace("RTP/AVP 0 8 101 103", "RTP/AVP 8 0 96").replace(
      "a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\na=rtpmap:103 telephone-event/48000\na=fmtp:103 0-16",
      "a=rtpmap:96 telephone-event/8000\na=fmtp:96 0-15",
    );
    const invite = parse(
      sipText(
        [
          "INVITE sip:bridge@127.0.0.1:5060 SIP/2.0",
          "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-linphone;rport",
          "From: <sip:alice@127.0.0.1>;tag=lp1",
          "To: sip:bridge@127.0.0.1",
          "Call-ID: lp-1",
          "CSeq: 20 INVITE",
          'Contact: <sip:alice@127.0.0.1:5062;transport=udp>;+sip.instance="<urn:uuid:1>"',
          "Content-Type: application/sdp",
        ],
        sdp,
      ),
    );
    stack.transport.deliver(invite);
    await flush();
    const answer = new TextDecoder().decode(stack.transport.responses(200)[0]!.body);
    expect(answer).toMatch(/m=audio 40000 RTP\/AVP 8 96\r\n/);
    expect(answer).toContain("a=fmtp:96 0-15");
  });
});
