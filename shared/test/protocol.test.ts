import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeAudioFrame,
  encodeAudioFrame,
  FRAME_HEADER_BYTES,
  FrameFlag,
  FrameKind,
  PROTOCOL_VERSION,
  parseBridgeMessage,
  parseWorkerMessage,
} from "../src/protocol/index";

const hello = {
  type: "hello",
  protocol: PROTOCOL_VERSION,
  callId: "call_0123456789",
  call: {
    sipCallId: "a84b4c76e66710@pc33.atlanta.example.com",
    direction: "inbound",
    from: "sip:+15551230000@pbx.example.com",
    to: "sip:200@pbx.example.com",
    displayName: "Alice",
    headers: { "X-Patchbay-Agent": "sales" },
    codec: "PCMU",
    sampleRate: 8000,
    frameMs: 20,
  },
  bridge: { id: "bridge-1", version: "0.1.0" },
};

describe("control messages", () => {
  it("accept a well-formed hello and each Worker message", () => {
    expect(parseBridgeMessage(JSON.stringify(hello))).toMatchObject({ ok: true, message: { type: "hello" } });
    for (const message of [
      {
        type: "welcome",
        protocol: 1,
        callId: "call_0123456789",
        resumeToken: "r",
        resumed: false,
        agent: "a",
      },
      { type: "clear" },
      { type: "mark", name: "clause-3" },
      { type: "hangup", cause: "agent-hangup" },
      { type: "transfer", target: "sip:100@pbx", mode: "blind" },
      { type: "transfer", target: "2001", mode: "warm", summary: "Ann, asking about a refund" },
      { type: "transfer_join" },
      { type: "transfer_cancel" },
      { type: "send_dtmf", digits: "12#" },
      { type: "turn_timing", turn: 2, sttMs: 120, totalMs: 480 },
      { type: "error", code: "provider-failure", message: "tts down" },
    ]) {
      expect(parseWorkerMessage(JSON.stringify(message))).toMatchObject({
        ok: true,
        message: { type: message.type },
      });
    }
  });

  it("accept warm transfer progress from the bridge and refuse an unknown state", () => {
    const progress = { type: "transfer_progress", target: "2001", state: "consulting", atMs: 12_000 };
    expect(parseBridgeMessage(JSON.stringify(progress))).toMatchObject({ ok: true, message: progress });
    expect(parseBridgeMessage(JSON.stringify({ ...progress, state: "joined" }))).toMatchObject({ ok: false });
  });

  it("name what is wrong with a bad message instead of throwing", () => {
    expect(parseBridgeMessage("{")).toEqual({ ok: false, error: "control message is not JSON" });
    const badCodec = { ...hello, call: { ...hello.call, codec: "G729" } };
    const result = parseBridgeMessage(JSON.stringify(badCodec));
    expect(result.ok).toBe(false);
    expect(!result.ok && result.error).toMatch(/call\.codec/);
    expect(parseWorkerMessage(JSON.stringify({ type: "send_dtmf", digits: "12x" })).ok).toBe(false);
    expect(parseWorkerMessage(JSON.stringify({ type: "launch_missiles" })).ok).toBe(false);
    expect(parseWorkerMessage("x".repeat(70000)).ok).toBe(false);
  });

  it("never throw on arbitrary text", () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        parseBridgeMessage(text);
        parseWorkerMessage(text);
      }),
    );
  });
});

describe("binary audio frames", () => {
  it("round-trip header and payload, reusing the caller's buffer", () => {
    const payload = new Uint8Array(320).map((_, i) => i & 0xff);
    const buffer = new Uint8Array(2048);
    const encoded = encodeAudioFrame(
      {
        kind: FrameKind.callerAudio,
        codec: "PCMA",
        flags: FrameFlag.discontinuity,
        seq: 4_000_000_000,
        timeMs: 123_456,
      },
      payload,
      buffer,
    );
    expect(encoded.buffer).toBe(buffer.buffer);
    expect(encoded.length).toBe(FRAME_HEADER_BYTES + 320);
    const decoded = decodeAudioFrame(encoded);
    expect(decoded).toMatchObject({
      ok: true,
      frame: { kind: FrameKind.callerAudio, codec: "PCMA", flags: 1, seq: 4_000_000_000, timeMs: 123_456 },
    });
    expect(decoded.ok && Array.from(decoded.frame.payload)).toEqual(Array.from(payload));
  });

  it("reject malformed frames with the reason", () => {
    expect(decodeAudioFrame(new Uint8Array(5))).toEqual({
      ok: false,
      error: "audio frame too short: got 5 < need 12",
    });
    const frame = encodeAudioFrame(
      { kind: FrameKind.callerAudio, codec: "PCMU", flags: 0, seq: 1, timeMs: 0 },
      new Uint8Array(160),
    );
    expect(decodeAudioFrame(frame.slice(0, 100))).toMatchObject({
      ok: false,
      error: /not a multiple of 160/,
    });
    const wrongCodec = frame.slice();
    wrongCodec[2] = 18;
    expect(decodeAudioFrame(wrongCodec)).toMatchObject({ ok: false, error: /codec 18/ });
    const agent = encodeAudioFrame(
      { kind: FrameKind.agentAudio, codec: "PCMU", flags: 0, seq: 1, timeMs: 0 },
      new Uint8Array(77),
    );
    expect(decodeAudioFrame(agent).ok).toBe(true); // agent audio may be any length
  });

  it("never throw on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        decodeAudioFrame(bytes);
      }),
    );
  });
});
