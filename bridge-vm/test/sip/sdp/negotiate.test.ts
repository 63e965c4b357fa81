import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as sdpTransform from "sdp-transform";
import { describe, expect, it } from "vitest";
import type { MediaParams } from "../../../src/media/types";
import { parseSipMessage } from "../../../src/sip/message";
import {
  type AnswerResult,
  answerOffer,
  createOffer,
  isSameSession,
  parseAnswer,
} from "../../../src/sip/sdp";

const sdp = (...lines: string[]): string => `${lines.join("\r\n")}\r\n`;
const LOCAL = { address: "10.0.0.2", port: 40000, sessionId: "8000", sessionVersion: 1 };

function answered(result: AnswerResult): Extract<AnswerResult, { ok: true }> {
  if (!result.ok) throw new Error(`expected an answer, got ${result.status} ${result.reason}`);
  return result;
}

/** FreePBX 16 / Asterisk 18 chan_pjsip, as in the INVITE dump of tayler6000/pyVoIP#270. */
const ASTERISK_OFFER = sdp(
  "v=0",
  "o=- 1617822380 1617822380 IN IP4 192.168.1.10",
  "s=Asterisk",
  "c=IN IP4 192.168.1.10",
  "t=0 0",
  "m=audio 16866 RTP/AVP 0 8 107 9 3 111 101 103",
  "a=rtpmap:0 PCMU/8000",
  "a=rtpmap:8 PCMA/8000",
  "a=rtpmap:107 opus/48000/2",
  "a=fmtp:107 useinbandfec=1",
  "a=rtpmap:9 G722/8000",
  "a=rtpmap:3 GSM/8000",
  "a=rtpmap:111 G726-32/8000",
  "a=rtpmap:101 telephone-event/8000",
  "a=fmtp:101 0-16",
  "a=rtpmap:103 telephone-event/48000",
  "a=fmtp:103 0-16",
  "a=ptime:20",
  "a=maxptime:60",
  "a=sendrecv",
);

/** SIPp uac_pcap offer as relayed by Kamailio (record_route, no SDP rewrite). */
const SIPP_OFFER = sdp(
  "v=0",
  "o=user1 53655765 2353687637 IN IP4 127.0.0.1",
  "s=-",
  "c=IN IP4 127.0.0.1",
  "t=0 0",
  "m=audio 6000 RTP/AVP 8 101",
  "a=rtpmap:8 PCMA/8000",
  "a=rtpmap:101 telephone-event/8000",
  "a=fmtp:101 0-11,16",
);

/** baresip 1.x default: opus first, media-level c=, IPv4, rtcp-mux offered. */
const BARESIP_OFFER = sdp(
  "v=0",
  "o=- 1213345806 2064359385 IN IP4 192.168.1.50",
  "s=-",
  "t=0 0",
  "m=audio 10102 RTP/AVP 111 9 0 8 101",
  "c=IN IP4 192.168.1.50",
  "b=AS:89",
  "a=rtpmap:111 opus/48000/2",
  "a=fmtp:111 stereo=1;sprop-stereo=1",
  "a=rtpmap:9 G722/8000",
  "a=rtpmap:0 PCMU/8000",
  "a=rtpmap:8 PCMA/8000",
  "a=rtpmap:101 telephone-event/8000",
  "a=fmtp:101 0-15",
  "a=rtcp-mux",
  "a=sendrecv",
  "a=label:1",
  "a=ssrc:1931178024 cname:3e0b8f7a",
);

describe("answerOffer with real-world offers", () => {
  it("answers FreePBX/Asterisk: PCMU, telephone-event/8000 on 101 (not /48000 on 103)", () => {
    const { answer, params } = answered(answerOffer(ASTERISK_OFFER, LOCAL));
    expect(params).toEqual({
      codec: "PCMU",
      payloadType: 0,
      dtmfPayloadType: 101,
      remoteAddress: "192.168.1.10",
      remotePort: 16866,
      direction: "sendrecv",
      ptimeMs: 20,
    });
    const parsed = sdpTransform.parse(answer);
    expect(parsed.media).toHaveLength(1);
    expect(parsed.media[0]).toMatchObject({
      type: "audio",
      port: 40000,
      protocol: "RTP/AVP",
      payloads: "0 101",
    });
    expect(parsed.media[0]?.ptime).toBe(20);
    expect(parsed.media[0]?.direction).toBe("sendrecv");
    expect(answer).toContain("a=rtpmap:101 telephone-event/8000\r\n");
    expect(answer).toContain("a=fmtp:101 0-16\r\n");
    expect(answer).toContain("c=IN IP4 10.0.0.2\r\n");
    expect(answer).toMatch(/^v=0\r\no=- 8000 1 IN IP4 10\.0\.0\.2\r\n/);
    expect(answer).not.toMatch(/opus|G722/);
  });

  it("prefers our codec order when given", () => {
    expect(
      answered(answerOffer(ASTERISK_OFFER, { ...LOCAL, preferredCodecs: ["PCMA", "PCMU"] })).params.codec,
    ).toBe("PCMA");
  });

  it("answers Kamailio-relayed SIPp PCMA and echoes its fmtp", () => {
    const { params, answer } = answered(answerOffer(SIPP_OFFER, LOCAL));
    expect(params).toMatchObject({ codec: "PCMA", payloadType: 8, dtmfPayloadType: 101, remotePort: 6000 });
    expect(answer).toContain("a=fmtp:101 0-11,16");
  });

  it("answers baresip (opus first, media-level c=) with PCMU", () => {
    const { params, answer } = answered(answerOffer(BARESIP_OFFER, LOCAL));
    expect(params).toMatchObject({
      codec: "PCMU",
      payloadType: 0,
      dtmfPayloadType: 101,
      remoteAddress: "192.168.1.50",
    });
    expect(answer).toContain("m=audio 40000 RTP/AVP 0 101\r\n");
  });

  it("uses the offer's telephone-event PT when it is 96", () => {
    const offer = sdp(
      "v=0",
      "o=- 1 1 IN IP4 10.0.0.9",
      "s=-",
      "c=IN IP4 10.0.0.9",
      "t=0 0",
      "m=audio 7000 RTP/AVP 8 96",
      "a=rtpmap:96 telephone-event/8000",
    );
    const { params, answer } = answered(answerOffer(offer, LOCAL));
    expect(params).toMatchObject({ codec: "PCMA", payloadType: 8, dtmfPayloadType: 96 });
    expect(answer).toContain("m=audio 40000 RTP/AVP 8 96\r\n");
    expect(answer).toContain("a=rtpmap:96 telephone-event/8000");
  });

  it("rejects G.722 + opus only with 488", () => {
    const offer = sdp(
      "v=0",
      "o=- 1 1 IN IP4 10.0.0.9",
      "s=-",
      "c=IN IP4 10.0.0.9",
      "t=0 0",
      "m=audio 7000 RTP/AVP 9 107",
      "a=rtpmap:9 G722/8000",
      "a=rtpmap:107 opus/48000/2",
    );
    expect(answerOffer(offer, LOCAL)).toMatchObject({ ok: false, status: 488 });
  });

  it("keeps m-line count and order, answering video/image and SRTP audio with port 0", () => {
    const offer = sdp(
      "v=0",
      "o=- 1 1 IN IP4 10.0.0.9",
      "s=-",
      "c=IN IP4 10.0.0.9",
      "t=0 0",
      "m=video 9000 RTP/AVP 96",
      "a=rtpmap:96 H264/90000",
      "m=audio 7002 RTP/SAVP 0",
      "m=audio 7000 RTP/AVP 0",
      "m=image 9002 udptl t38",
      "m=audio 7004 RTP/AVP 8",
    );
    const { answer, params } = answered(answerOffer(offer, LOCAL));
    expect(params.remotePort).toBe(7000);
    const media = sdpTransform.parse(answer).media;
    expect(media.map((m) => [m.type, m.port, m.protocol])).toEqual([
      ["video", 0, "RTP/AVP"],
      ["audio", 0, "RTP/SAVP"],
      ["audio", 40000, "RTP/AVP"],
      ["image", 0, "udptl"],
      ["audio", 0, "RTP/AVP"],
    ]);
  });

  it("mirrors hold directions and treats c=0.0.0.0 as hold", () => {
    const withDirection = (direction: string, address = "10.0.0.9") =>
      sdp(
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.9",
        "s=-",
        `c=IN IP4 ${address}`,
        "t=0 0",
        "m=audio 7000 RTP/AVP 0",
        direction,
      );
    const cases: Array<[string, string, string]> = [
      ["a=sendonly", "10.0.0.9", "recvonly"],
      ["a=recvonly", "10.0.0.9", "sendonly"],
      ["a=inactive", "10.0.0.9", "inactive"],
      ["a=sendrecv", "10.0.0.9", "sendrecv"],
      ["a=sendrecv", "0.0.0.0", "recvonly"],
      ["a=sendonly", "0.0.0.0", "recvonly"],
    ];
    for (const [attribute, address, expected] of cases) {
      const { params, answer } = answered(answerOffer(withDirection(attribute, address), LOCAL));
      expect(params.direction, `${attribute} ${address}`).toBe(expected);
      expect(answer).toContain(`a=${expected}\r\n`);
    }
  });

  it("takes ptime from the offer (30 ms) but asks for 20 ms in the answer", () => {
    const offer = sdp(
      "v=0",
      "o=- 1 1 IN IP4 h",
      "s=-",
      "c=IN IP4 10.0.0.9",
      "t=0 0",
      "m=audio 7000 RTP/AVP 8",
      "a=ptime:30",
    );
    const { params, answer } = answered(answerOffer(offer, LOCAL));
    expect(params.ptimeMs).toBe(30);
    expect(answer).toContain("a=ptime:20\r\n");
  });

  it("answers IPv6 offers", () => {
    const offer = sdp(
      "v=0",
      "o=- 1 1 IN IP6 2001:db8::9",
      "s=-",
      "c=IN IP6 2001:db8::9",
      "t=0 0",
      "m=audio 7000 RTP/AVP 0",
    );
    const { params, answer } = answered(answerOffer(offer, { ...LOCAL, address: "2001:db8::2" }));
    expect(params.remoteAddress).toBe("2001:db8::9");
    expect(answer).toContain("c=IN IP6 2001:db8::2\r\n");
  });
});

describe("answerOffer validation", () => {
  const base = (mLine: string, ...extra: string[]) =>
    sdp("v=0", "o=- 1 1 IN IP4 10.0.0.9", "s=-", "c=IN IP4 10.0.0.9", "t=0 0", mLine, ...extra);

  it.each([
    ["PT 4294967296", base("m=audio 7000 RTP/AVP 0 4294967296")],
    ["PT 128", base("m=audio 7000 RTP/AVP 128")],
    ["rtpmap PT 4294967296", base("m=audio 7000 RTP/AVP 0", "a=rtpmap:4294967296 PCMA/8000")],
    ["port 70000", base("m=audio 70000 RTP/AVP 0")],
    ["negative port", base("m=audio -1 RTP/AVP 0")],
    ["no c=", sdp("v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0", "m=audio 7000 RTP/AVP 0")],
    ["garbage", "hello"],
    ["empty", ""],
    ["no media", sdp("v=0", "o=- 1 1 IN IP4 h", "s=-", "c=IN IP4 10.0.0.9", "t=0 0")],
    ["bad origin", sdp("v=0", "o=broken", "s=-", "c=IN IP4 10.0.0.9", "t=0 0", "m=audio 7000 RTP/AVP 0")],
  ])("rejects %s with 400", (_name, offer) => {
    expect(answerOffer(offer, LOCAL)).toMatchObject({ ok: false, status: 400 });
  });

  it("rejects more than 8 m-lines with 488", () => {
    const lines = Array.from({ length: 9 }, (_, i) => `m=audio ${7000 + 2 * i} RTP/AVP 0`);
    expect(answerOffer(base(lines[0]!, ...lines.slice(1)), LOCAL)).toMatchObject({ ok: false, status: 488 });
  });

  it("rejects when the only audio stream has port 0", () => {
    expect(answerOffer(base("m=audio 0 RTP/AVP 0"), LOCAL)).toMatchObject({ ok: false, status: 488 });
  });

  it("tolerates trailing whitespace and LF-only line endings", () => {
    const offer =
      "v=0\no=- 1 1 IN IP4 10.0.0.9 \ns=-\nc=IN IP4 10.0.0.9\nt=0 0\nm=audio 7000 RTP/AVP 0 101 \na=rtpmap:101 telephone-event/8000\n";
    expect(answered(answerOffer(offer, LOCAL)).params).toMatchObject({ codec: "PCMU", dtmfPayloadType: 101 });
  });

  it("treats an out-of-range ptime as the 20 ms default", () => {
    expect(
      answered(answerOffer(base("m=audio 7000 RTP/AVP 0", "a=ptime:4294967296"), LOCAL)).params.ptimeMs,
    ).toBe(20);
  });
});

describe("createOffer / parseAnswer / isSameSession", () => {
  const offer = createOffer(LOCAL);

  it("creates a PCMU+PCMA+telephone-event/8000 offer", () => {
    expect(offer).toBe(
      sdp(
        "v=0",
        "o=- 8000 1 IN IP4 10.0.0.2",
        "s=patchbay",
        "c=IN IP4 10.0.0.2",
        "t=0 0",
        "m=audio 40000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
      ),
    );
    expect(createOffer(LOCAL, ["PCMA"], 96, "sendonly")).toContain("m=audio 40000 RTP/AVP 8 96\r\n");
  });

  it("round-trips: our answer to our own offer parses back to the same params", () => {
    const remote = { ...LOCAL, address: "10.0.0.7", port: 50000 };
    const { answer, params } = answered(answerOffer(offer, remote));
    const parsed = parseAnswer(answer, offer);
    expect(parsed).toEqual({
      ok: true,
      params: { ...params, remoteAddress: "10.0.0.7", remotePort: 50000 },
    });
  });

  it("reads an Asterisk answer: PCMA and DTMF on the answer's PT", () => {
    const answer = sdp(
      "v=0",
      "o=- 1 2 IN IP4 192.168.1.10",
      "s=Asterisk",
      "c=IN IP4 192.168.1.10",
      "t=0 0",
      "m=audio 18000 RTP/AVP 8 101",
      "a=rtpmap:8 PCMA/8000",
      "a=rtpmap:101 telephone-event/8000",
      "a=fmtp:101 0-16",
      "a=ptime:20",
      "a=maxptime:150",
      "a=sendrecv",
    );
    expect(parseAnswer(answer, offer)).toEqual({
      ok: true,
      params: {
        codec: "PCMA",
        payloadType: 8,
        dtmfPayloadType: 101,
        remoteAddress: "192.168.1.10",
        remotePort: 18000,
        direction: "sendrecv",
        ptimeMs: 20,
      },
    });
  });

  it("combines our hold offer with the answer's direction", () => {
    const hold = createOffer({ ...LOCAL, sessionVersion: 2 }, undefined, undefined, "sendonly");
    const answer = sdp(
      "v=0",
      "o=- 1 3 IN IP4 h",
      "s=-",
      "c=IN IP4 10.0.0.9",
      "t=0 0",
      "m=audio 7000 RTP/AVP 0",
      "a=recvonly",
    );
    expect(parseAnswer(answer, hold)).toMatchObject({ ok: true, params: { direction: "sendonly" } });
  });

  it("fails on a rejected stream, a codec we did not offer, or junk", () => {
    const rejected = sdp(
      "v=0",
      "o=- 1 1 IN IP4 h",
      "s=-",
      "c=IN IP4 10.0.0.9",
      "t=0 0",
      "m=audio 0 RTP/AVP 0",
    );
    expect(parseAnswer(rejected, offer).ok).toBe(false);
    const g722 = sdp(
      "v=0",
      "o=- 1 1 IN IP4 h",
      "s=-",
      "c=IN IP4 10.0.0.9",
      "t=0 0",
      "m=audio 7000 RTP/AVP 9",
    );
    expect(parseAnswer(g722, offer).ok).toBe(false);
    expect(parseAnswer(g722, createOffer(LOCAL, ["PCMA"])).ok).toBe(false);
    expect(parseAnswer("junk", offer).ok).toBe(false);
  });

  it("detects an unchanged session by o= version, with ids beyond 2^53", () => {
    const v1 = sdp(
      "v=0",
      "o=- 98765432109876543210 5 IN IP4 h",
      "s=-",
      "c=IN IP4 10.0.0.9",
      "t=0 0",
      "m=audio 1 RTP/AVP 0",
    );
    const sameButNewPort = v1.replace("m=audio 1", "m=audio 2");
    expect(isSameSession(v1, sameButNewPort)).toBe(true);
    expect(isSameSession(v1, v1.replace(" 5 IN", " 6 IN"))).toBe(false);
    expect(isSameSession(v1, v1.replace("98765432109876543210", "98765432109876543211"))).toBe(false);
    expect(isSameSession(v1, "junk")).toBe(false);
  });
});

describe("answerOffer on the vendor fixture INVITEs (test/fixtures/sip/vendor)", () => {
  const dir = join(import.meta.dirname, "../../fixtures/sip/vendor");
  const expectations: Record<string, Partial<MediaParams>> = {
    "asterisk-pjsip-invite.sip": {
      codec: "PCMU",
      payloadType: 0,
      dtmfPayloadType: 101,
      direction: "sendrecv",
    },
    "asterisk-hold-reinvite.sip": { codec: "PCMU", dtmfPayloadType: 101, direction: "recvonly" },
    "baresip-invite.sip": { codec: "PCMU", dtmfPayloadType: 101, direction: "sendrecv" },
    "kamailio-proxied-invite.sip": { codec: "PCMU", dtmfPayloadType: 101, direction: "sendrecv" },
    "linphone-compact-invite.sip": { codec: "PCMU", dtmfPayloadType: 100, direction: "sendrecv" },
  };
  for (const [file, expected] of Object.entries(expectations)) {
    const path = join(dir, file);
    it.skipIf(!existsSync(path))(`${file} → ${JSON.stringify(expected)}`, () => {
      const parsed = parseSipMessage(readFileSync(path));
      if (!parsed.ok) throw new Error(parsed.error.message);
      const { answer, params } = answered(answerOffer(new TextDecoder().decode(parsed.message.body), LOCAL));
      expect(params).toMatchObject(expected);
      // Our answer must itself be an acceptable answer to that offer from the peer's point of view.
      expect(parseAnswer(answer, new TextDecoder().decode(parsed.message.body)).ok).toBe(true);
    });
  }
});
