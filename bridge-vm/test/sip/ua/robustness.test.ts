/**
 * Property: whatever sequence of (well-formed but arbitrary) requests and responses arrives, in any
 * order, nothing throws out of the transport's delivery path and every timer eventually drains. This is
 * the "never an exception out of a socket handler" rule above the parser (whose own properties live in
 * test/sip/message).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createResponse } from "../../../src/sip/message";
import { createStack, flush, OFFER, offerWith } from "../../call/harness";
import { request } from "../transaction/helpers";

const METHODS = [
  "INVITE",
  "ACK",
  "BYE",
  "CANCEL",
  "UPDATE",
  "INFO",
  "OPTIONS",
  "REFER",
  "NOTIFY",
  "PRACK",
  "FOO",
];

const event = fc.record({
  kind: fc.constantFrom("request", "response"),
  method: fc.constantFrom(...METHODS),
  cseq: fc.integer({ min: 1, max: 5 }),
  branch: fc.constantFrom("z9hG4bK-a", "z9hG4bK-b", "z9hG4bK-c"),
  withTag: fc.boolean(),
  status: fc.constantFrom(100, 180, 200, 401, 407, 481, 491, 500),
  body: fc.constantFrom(
    "",
    OFFER,
    offerWith(2, "sendonly"),
    "v=0\r\nm=audio 99999 RTP/AVP 4294967296\r\n",
    "Signal=5",
  ),
  advanceMs: fc.integer({ min: 0, max: 40_000 }),
  source: fc.constantFrom("127.0.0.1", "203.0.113.5"),
});

describe("UA robustness", () => {
  it("never throws and ends with no timers or transactions left", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(event, { minLength: 1, maxLength: 25 }), async (events) => {
        const stack = createStack({ answerDelayMs: 100, sessionExpiresS: 90 });
        let tag = "nobody";
        for (const e of events) {
          const extra =
            e.body && e.method !== "INFO"
              ? "Content-Type: application/sdp"
              : "Content-Type: application/dtmf-relay";
          const req = request(e.method, {
            branch: e.branch,
            cseq: e.cseq,
            ...(e.withTag ? { toTag: tag } : {}),
            ...(e.body ? { body: e.body, extra } : {}),
          });
          const message =
            e.kind === "request" ? req : createResponse(req, e.status, undefined, { toTag: "peer" });
          expect(() => stack.transport.deliver(message, { address: e.source })).not.toThrow();
          await flush();
          tag = stack.calls.list()[0]?.dialog?.id.localTag ?? tag;
          stack.clock.advance(e.advanceMs);
          await flush();
        }
        // Everything winds down: calls end (no ACK / session expiry / BYE), transactions time out.
        for (let i = 0; i < 10; i++) {
          stack.clock.advance(4 * 3600_000);
          await flush();
        }
        expect(stack.calls.active).toBe(0);
        expect(stack.layer.serverCount + stack.layer.clientCount).toBe(0);
        expect(stack.ua.dialogCount).toBe(0);
      }),
      { numRuns: 60 },
    );
  }, 60_000);
});
