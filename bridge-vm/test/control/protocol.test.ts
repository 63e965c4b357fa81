import {
  CONTROL_PROTOCOL_VERSION,
  parseBridgeControlMessage,
  parseWorkerControlMessage,
} from "@patchbay/shared/protocol";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

describe("control protocol parsers (untrusted input never throws)", () => {
  it("turn any text into ok or a coded error", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.string({ maxLength: 20_000 })), (text) => {
        for (const parse of [parseBridgeControlMessage, parseWorkerControlMessage]) {
          const result = parse(text);
          expect(typeof result.ok).toBe("boolean");
        }
      }),
    );
  });

  it("round-trips a register and refuses an originate with an unsafe destination", () => {
    const register = {
      type: "register",
      protocol: CONTROL_PROTOCOL_VERSION,
      bridgeId: "vm-1",
      version: "1.0.0",
      capacity: { maxCalls: 10, activeCalls: 2 },
      health: "ok",
    };
    expect(parseBridgeControlMessage(JSON.stringify(register))).toEqual({ ok: true, message: register });
    const originate = { type: "originate", requestId: "req-00000001", callId: "call-0001" };
    for (const to of ["+15551234567", "1234", "sip:201@pbx.example.com"]) {
      expect(parseWorkerControlMessage(JSON.stringify({ ...originate, to })).ok).toBe(true);
    }
    for (const to of ["sip:201@pbx\r\nVia: evil", "tel:+1555", "", "x".repeat(300)]) {
      expect(parseWorkerControlMessage(JSON.stringify({ ...originate, to })).ok).toBe(false);
    }
    expect(parseBridgeControlMessage("x".repeat(20_000))).toMatchObject({ ok: false });
  });
});
