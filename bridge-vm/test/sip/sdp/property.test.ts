import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { answerOffer, createOffer, isSameSession, parseAnswer } from "../../../src/sip/sdp";

const LOCAL = { address: "10.0.0.2", port: 40000, sessionId: "1", sessionVersion: 1 };

const sdpLine = fc.oneof(
  fc.constantFrom(
    "v=0",
    "o=- 1 1 IN IP4 10.0.0.9",
    "s=-",
    "c=IN IP4 10.0.0.9",
    "c=IN IP6 ::1",
    "c=IN IP4 0.0.0.0",
    "t=0 0",
    "m=audio 7000 RTP/AVP 0 8 101",
    "m=audio 0 RTP/AVP 0",
    "m=video 9000 RTP/AVP 96",
    "m=audio 7000 RTP/SAVP 0",
    "a=rtpmap:101 telephone-event/8000",
    "a=rtpmap:96 telephone-event/48000",
    "a=rtpmap:0 PCMA/16000",
    "a=fmtp:101 0-16",
    "a=ptime:",
    "a=ptime:30",
    "a=sendonly",
    "a=inactive",
  ),
  fc.string({ maxLength: 30 }).map((s) => s.replace(/[\r\n]/g, "")),
  fc
    .tuple(
      fc.constantFrom("m=audio ", "a=rtpmap:", "a=ptime:", "c=IN IP4 "),
      fc.integer(),
      fc.string({ maxLength: 10 }),
    )
    .map(([prefix, n, rest]) => `${prefix}${n} ${rest}`),
);

const sdpish = fc.array(sdpLine, { maxLength: 20 }).map((lines) => `${lines.join("\r\n")}\r\n`);

describe("SDP robustness (property)", () => {
  it("answerOffer never throws and always yields a well-formed result", () => {
    fc.assert(
      fc.property(fc.oneof(sdpish, fc.string({ maxLength: 300 })), (offer) => {
        const result = answerOffer(offer, LOCAL);
        if (result.ok) {
          expect(result.params.payloadType === 0 || result.params.payloadType === 8).toBe(true);
          expect(result.params.remotePort).toBeGreaterThan(0);
          expect(result.params.remotePort).toBeLessThanOrEqual(65535);
          expect(result.answer.startsWith("v=0\r\n")).toBe(true);
        } else {
          expect([400, 488]).toContain(result.status);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("parseAnswer and isSameSession never throw", () => {
    const offer = createOffer(LOCAL);
    fc.assert(
      fc.property(sdpish, sdpish, (a, b) => {
        parseAnswer(a, offer);
        parseAnswer(a, b);
        isSameSession(a, b);
      }),
      { numRuns: 1000 },
    );
  });
});
