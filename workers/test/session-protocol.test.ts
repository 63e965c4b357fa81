/**
 * The media socket protocol as the Durable Object enforces it: handshake, validation of every frame,
 * the close codes, and that nothing a bridge sends can crash the object.
 */
import { CloseCode, encodeAudioFrame, FrameKind, PROTOCOL_VERSION } from "@patchbay/shared";
import { beforeEach, describe, expect, it } from "vitest";
import { hub } from "./fakes/register";
import { callMetadata, newCallId, TestBridge } from "./helpers/bridge";

beforeEach(() => hub.reset());

describe("handshake", () => {
  it("answers hello with welcome (protocol, resume token, chosen agent)", async () => {
    const callId = newCallId();
    const { bridge, welcome } = await TestBridge.start(callId, { call: { agent: "test-silent" } });
    expect(welcome).toMatchObject({
      type: "welcome",
      protocol: PROTOCOL_VERSION,
      callId,
      resumed: false,
      agent: "test-silent",
    });
    expect(welcome.resumeToken).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    bridge.close();
  });

  it("routes by extension (the To user part) when no agent is named", async () => {
    const { bridge, welcome } = await TestBridge.start(newCallId(), { call: { to: "<sip:7001@10.0.0.1>" } });
    expect(welcome.agent).toBe("test-basic");
    bridge.close();
  });

  it("falls back to DEFAULT_AGENT", async () => {
    hub.replies = [];
    const { bridge, welcome } = await TestBridge.start(newCallId(), { call: { to: "sip:9999@pbx" } });
    expect(welcome.agent).toBe("receptionist");
    bridge.close();
  });

  it("rejects another protocol version with an error and 4400", async () => {
    const callId = newCallId();
    const bridge = await TestBridge.connect(callId);
    bridge.sendRaw(
      JSON.stringify({
        type: "hello",
        protocol: 99,
        callId,
        call: callMetadata(),
        bridge: { id: "b", version: "1" },
      }),
    );
    await bridge.until(() => bridge.closed !== undefined);
    expect(bridge.closed?.code).toBe(CloseCode.protocolError);
    expect(bridge.messagesOf("error")[0]?.code).toBe("protocol-version");
  });
});

describe("malformed input closes the socket with 4400 and never crashes the object", () => {
  const cases: [string, (bridge: TestBridge) => void][] = [
    ["text that is not JSON", (bridge) => bridge.sendRaw("{not json")],
    ["an unknown message type", (bridge) => bridge.sendRaw(JSON.stringify({ type: "bogus" }))],
    [
      "a message before hello",
      (bridge) => bridge.send({ type: "dtmf", digit: "5", durationMs: 100, atMs: 1 }),
    ],
    ["a truncated binary frame", (bridge) => bridge.sendRaw(new Uint8Array([1, 1, 0]))],
    [
      "an agent-audio frame from the bridge",
      (bridge) =>
        bridge.sendRaw(
          encodeAudioFrame(
            { kind: FrameKind.agentAudio, codec: "PCMU", flags: 0, seq: 0, timeMs: 0 },
            new Uint8Array(160),
          ),
        ),
    ],
    [
      "caller audio that is not whole frames",
      (bridge) =>
        bridge.sendRaw(
          encodeAudioFrame(
            { kind: FrameKind.callerAudio, codec: "PCMU", flags: 0, seq: 0, timeMs: 0 },
            new Uint8Array(100),
          ),
        ),
    ],
    [
      "a hello for another call id",
      (bridge) =>
        bridge.sendRaw(
          JSON.stringify({
            type: "hello",
            protocol: 1,
            callId: "other-call-123",
            call: callMetadata(),
            bridge: { id: "b", version: "1" },
          }),
        ),
    ],
  ];

  for (const [name, sendBad] of cases) {
    it(name, async () => {
      const callId = newCallId();
      const bridge = await TestBridge.connect(callId);
      sendBad(bridge);
      await bridge.until(() => bridge.closed !== undefined);
      expect(bridge.closed?.code).toBe(CloseCode.protocolError);
      expect(bridge.messagesOf("error")[0]?.code).toBe("malformed-message");
      // The object is fine: a new socket for the same call completes the handshake.
      const { bridge: again, welcome } = await TestBridge.start(callId, { call: { agent: "test-silent" } });
      expect(welcome.callId).toBe(callId);
      again.close();
    });
  }

  it("after hello too (garbage mid-call)", async () => {
    const callId = newCallId();
    const { bridge, welcome } = await TestBridge.start(callId, { call: { agent: "test-silent" } });
    bridge.sendRaw(JSON.stringify({ type: "mark_played", name: 5 }));
    await bridge.until(() => bridge.closed !== undefined);
    expect(bridge.closed?.code).toBe(CloseCode.protocolError);
    const { bridge: again, welcome: resumed } = await TestBridge.start(callId, {
      resumeToken: welcome.resumeToken,
    });
    expect(resumed.resumed).toBe(true);
    again.close();
  });
});

describe("socket ownership", () => {
  it("a new socket for the same call supersedes the old one (4409)", async () => {
    const callId = newCallId();
    const { bridge: first, welcome } = await TestBridge.start(callId, { call: { agent: "test-silent" } });
    const { bridge: second, welcome: again } = await TestBridge.start(callId, {
      resumeToken: welcome.resumeToken,
    });
    await first.until(() => first.closed !== undefined);
    expect(first.closed?.code).toBe(CloseCode.superseded);
    expect(again.resumed).toBe(true);
    second.close();
  });

  it("a wrong resume token is refused with 4401", async () => {
    const callId = newCallId();
    const { bridge: first } = await TestBridge.start(callId, { call: { agent: "test-silent" } });
    const second = await TestBridge.connect(callId);
    second.send({
      type: "hello",
      protocol: PROTOCOL_VERSION,
      callId,
      call: callMetadata(),
      bridge: { id: "b", version: "1" },
      resumeToken: "not-the-token",
    });
    await second.until(() => second.closed !== undefined);
    expect(second.closed?.code).toBe(CloseCode.unauthorized);
    first.close();
  });
});
