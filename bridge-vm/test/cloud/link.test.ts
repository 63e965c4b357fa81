import { once } from "node:events";
import { decodeG711Sample } from "@patchbay/shared/audio";
import { CloseCode, encodeAudioFrame, FrameFlag, FrameKind } from "@patchbay/shared/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  CloudLink,
  type CloudLinkOptions,
  type LinkLogger,
  mediaSocketUrl,
  openCloudLink,
} from "../../src/cloud/index";
import { FakeDuplex } from "./fake-duplex";
import { FakeWorker } from "./fake-worker";

const quietLogger: LinkLogger = { debug() {}, info() {}, warn() {}, error() {} };

const metadata = {
  sipCallId: "abc@pbx",
  direction: "inbound" as const,
  from: "sip:+15551230000@pbx",
  to: "sip:200@pbx",
  headers: {},
  codec: "PCMU" as const,
  sampleRate: 8000 as const,
  frameMs: 20 as const,
};

async function until(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("CloudLink", () => {
  let worker: FakeWorker;
  let url: string;
  let duplex: FakeDuplex;
  const links: CloudLink[] = [];

  function makeLink(overrides: Partial<CloudLinkOptions> = {}): CloudLink {
    const link = new CloudLink({
      callId: "call_linktest01",
      metadata,
      duplex,
      url,
      secret: worker.secret,
      bridgeId: "bridge-test",
      bridgeVersion: "0.0.0",
      connectTimeoutMs: 1000,
      logger: quietLogger,
      reconnectDelaysMs: [0, 20, 50],
      ...overrides,
    });
    links.push(link);
    return link;
  }

  beforeEach(async () => {
    worker = new FakeWorker();
    url = await worker.start();
    duplex = new FakeDuplex();
  });

  afterEach(async () => {
    for (const link of links.splice(0)) link.close();
    await worker.stop();
  });

  it("builds the media URL from any base URL form", () => {
    expect(mediaSocketUrl("https://x.workers.dev", "call_1")).toBe("wss://x.workers.dev/v1/media/call_1");
    expect(mediaSocketUrl("http://127.0.0.1:8787/", "call_1")).toBe("ws://127.0.0.1:8787/v1/media/call_1");
    expect(mediaSocketUrl("wss://a.example/base", "c")).toBe("wss://a.example/base/v1/media/c");
  });

  it("says hello with the call metadata and streams caller frames in order as binary", async () => {
    const link = makeLink();
    await link.start();
    const hello = worker.controlsOfType("hello")[0]!;
    expect(hello).toMatchObject({ callId: "call_linktest01", call: { codec: "PCMU", sipCallId: "abc@pbx" } });
    expect(hello.resumeToken).toBeUndefined();
    duplex.emitCallerFrames(50);
    await until(() => worker.frames.length === 50);
    expect(worker.frames.map((frame) => frame.seq)).toEqual([...Array(50).keys()]);
    expect(
      worker.frames.every((frame) => frame.length === 160 && frame.firstByte === (frame.seq & 0xff)),
    ).toBe(true);
    expect(worker.protocolViolations).toEqual([]);
    expect(link.counters.framesSent).toBe(50);
  });

  it("plays agent audio and carries out clear, mark, send_dtmf, hangup and transfer", async () => {
    const link = makeLink();
    const hangups: string[] = [];
    const transfers: string[] = [];
    link.on("hangupRequested", (cause) => hangups.push(cause));
    link.on("transferRequested", (target, mode) => transfers.push(`${mode}:${target}`));
    await link.start();

    worker.sendAgentAudio(new Uint8Array(480).fill(0x55));
    worker.send({ type: "mark", name: "clause-1" });
    worker.send({ type: "clear" });
    worker.send({ type: "send_dtmf", digits: "42#" });
    worker.send({ type: "transfer", target: "sip:100@pbx", mode: "blind" });
    worker.send({ type: "hangup", cause: "agent-hangup" });
    await until(() => hangups.length === 1);
    expect(duplex.agentAudio.map((chunk) => chunk.length)).toEqual([480]);
    expect(duplex.marks).toEqual(["clause-1"]);
    expect(duplex.clears).toBe(1);
    expect(duplex.dtmfSent).toEqual(["42#"]);
    expect(transfers).toEqual(["blind:sip:100@pbx"]);
    await until(() => worker.controlsOfType("cleared").length === 1);
    expect(worker.controlsOfType("cleared")[0]).toMatchObject({ discardedMs: 240 });

    duplex.emitMarkPlayed("clause-1");
    duplex.emitDtmf("7");
    await until(() => worker.controlsOfType("dtmf").length === 1);
    expect(worker.controlsOfType("mark_played")[0]).toMatchObject({ name: "clause-1" });
    expect(worker.controlsOfType("dtmf")[0]).toMatchObject({ digit: "7", durationMs: 120 });
  });

  it("carries a warm transfer's join and cancel to the call and reports its progress", async () => {
    const link = makeLink();
    const requests: string[] = [];
    link.on("transferRequested", (target, mode, summary) => requests.push(`${mode}:${target}:${summary}`));
    link.on("transferJoinRequested", () => requests.push("join"));
    link.on("transferCancelRequested", () => requests.push("cancel"));
    await link.start();
    worker.send({ type: "transfer", target: "2001", mode: "warm", summary: "Ann about a refund" });
    worker.send({ type: "transfer_join" });
    worker.send({ type: "transfer_cancel" });
    await until(() => requests.length === 3);
    expect(requests).toEqual(["warm:2001:Ann about a refund", "join", "cancel"]);
    link.reportTransferProgress("2001", "ringing");
    link.reportTransferProgress("2001", "consulting");
    await until(() => worker.controlsOfType("transfer_progress").length === 2);
    expect(worker.controlsOfType("transfer_progress").map((message) => message.state)).toEqual([
      "ringing",
      "consulting",
    ]);
  });

  it("transcodes agent audio that arrives in the other G.711 law", async () => {
    const link = makeLink();
    await link.start();
    worker.sendAgentAudio(new Uint8Array(160).fill(0xd5), "PCMA"); // A-law silence
    await until(() => duplex.agentAudio.length === 1);
    // Still near-silence after crossing laws (A-law "silence" decodes to +8, not 0).
    expect(duplex.agentAudio[0]!.every((byte) => Math.abs(decodeG711Sample("PCMU", byte)) <= 16)).toBe(true);
    expect(link.counters.agentBytesTranscoded).toBe(160);
  });

  /**
   * The outage must last long enough for the test to talk into it: with a 0 ms first retry the
   * reconnect can finish between two polls of `link.state`, so these tests wait for the
   * "disconnected" event and give the first retry a delay.
   */
  const slowFirstRetry = { reconnectDelaysMs: [100, 20, 50] };

  it("survives a dropped socket: reconnects, resumes, and delivers the audio buffered in the gap", async () => {
    const link = makeLink(slowFirstRetry);
    const events: string[] = [];
    link.on("connected", ({ resumed }) => events.push(resumed ? "resumed" : "connected"));
    link.on("lost", () => events.push("lost"));
    await link.start();
    duplex.emitCallerFrames(10);
    await until(() => worker.frames.length === 10);

    const disconnected = once(link, "disconnected");
    worker.drop();
    await disconnected;
    expect(link.state).toBe("reconnecting");
    duplex.emitCallerFrames(20); // caller keeps talking during the outage
    duplex.emitMarkPlayed("clause-9");
    await until(() => link.state === "connected");

    await until(() => worker.frames.length === 30);
    expect(worker.connections).toBe(2);
    const secondHello = worker.controlsOfType("hello")[1]!;
    expect(secondHello.resumeToken).toBe("resume-call_linktest01");
    expect(worker.frames.map((frame) => frame.seq)).toEqual([...Array(30).keys()]);
    expect(worker.frames[10]!.flags & FrameFlag.discontinuity).toBe(FrameFlag.discontinuity);
    expect(worker.frames[11]!.flags).toBe(0);
    expect(worker.controlsOfType("mark_played").map((message) => message.name)).toEqual(["clause-9"]);
    expect(events).toEqual(["connected", "resumed"]);
    expect(link.counters.reconnects).toBe(1);
  });

  it("keeps only the newest audio when an outage outlasts the buffer, and counts the rest", async () => {
    const link = makeLink({ bufferMs: 200, ...slowFirstRetry }); // 10 frames
    await link.start();
    const disconnected = once(link, "disconnected");
    worker.drop();
    await disconnected;
    duplex.emitCallerFrames(25); // the caller talks while the link is down
    await until(() => worker.frames.length === 10);
    expect(worker.frames.map((frame) => frame.seq)).toEqual([15, 16, 17, 18, 19, 20, 21, 22, 23, 24]);
    expect(link.counters.framesDroppedWhileDown).toBe(15);
  });

  it("does not retry when the Worker says the call is over or the token is refused", async () => {
    for (const code of [CloseCode.callEnded, CloseCode.unauthorized, CloseCode.superseded]) {
      const link = makeLink();
      const lost: string[] = [];
      link.on("lost", (reason) => lost.push(reason));
      await link.start();
      const connectionsBefore = worker.connections;
      worker.closeWith(code);
      await until(() => lost.length === 1);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(worker.connections).toBe(connectionsBefore);
      expect(link.state).toBe("closed");
    }
  });

  it("reconnects after a protocol-error close, but gives up on the third instead of looping", async () => {
    const link = makeLink();
    const lost: string[] = [];
    link.on("lost", (reason) => lost.push(reason));
    await link.start();
    for (let close = 1; close <= 2; close++) {
      const reconnected = once(link, "connected");
      worker.closeWith(CloseCode.protocolError, "malformed-message");
      await reconnected;
      expect(worker.connections).toBe(close + 1);
    }
    worker.closeWith(CloseCode.protocolError, "malformed-message");
    await until(() => lost.length === 1);
    expect(lost).toEqual(["protocol-error"]);
    expect(link.state).toBe("closed");
  });

  it("gives up after the configured outage and reports it", async () => {
    const link = makeLink({ maxOutageMs: 150 });
    const lost: string[] = [];
    link.on("lost", (reason) => lost.push(reason));
    await link.start();
    worker.rejectAll = true; // reconnects get 401... which is fatal; use an unreachable server instead
    await worker.stop();
    await until(() => lost.length === 1);
    expect(lost).toEqual(["outage"]);
    expect(duplex.listenerCount("callerFrame")).toBe(0);
    worker = new FakeWorker(); // afterEach stops a fresh one
    url = await worker.start();
  });

  it("counts malformed messages from the Worker and keeps the call", async () => {
    const link = makeLink();
    await link.start();
    worker.send("{not json");
    worker.send({ type: "transfer", target: "" });
    worker.sendRaw(new Uint8Array([1, 2, 3]));
    worker.sendRaw(
      encodeAudioFrame(
        { kind: FrameKind.callerAudio, codec: "PCMU", flags: 0, seq: 0, timeMs: 0 },
        new Uint8Array(160),
      ),
    );
    worker.sendAgentAudio(new Uint8Array(160));
    await until(() => duplex.agentAudio.length === 1);
    expect(link.counters.malformedMessages).toBe(4);
    expect(link.state).toBe("connected");
  });

  it("hangs up cleanly: tells the Worker, closes normally, detaches from the media", async () => {
    const link = makeLink();
    await link.start();
    link.hangup("caller-hangup", "caller");
    await until(() => worker.controlsOfType("hangup").length === 1);
    expect(worker.controlsOfType("hangup")[0]).toMatchObject({ cause: "caller-hangup", by: "caller" });
    expect(link.state).toBe("closed");
    expect(duplex.listenerCount("callerFrame")).toBe(0);
    link.close(); // idempotent
  });

  it("falls back as configured when the Worker refuses or cannot be reached at answer time", async () => {
    worker.rejectAll = true;
    const common = {
      callId: "call_linktest02",
      metadata,
      duplex,
      logger: quietLogger,
      bridgeId: "b",
      bridgeVersion: "0",
    };
    const refused = await openCloudLink({
      ...common,
      cloud: { url, secret: worker.secret, fallback: "reject", connectTimeoutMs: 500 },
    });
    expect(refused).toMatchObject({
      ok: false,
      error: { reason: "unauthorized" },
      fallback: { action: "reject", sipStatus: 503 },
    });

    const unreachable = await openCloudLink({
      ...common,
      cloud: {
        url: "http://127.0.0.1:9",
        secret: worker.secret,
        fallback: "transfer",
        fallbackTarget: "sip:100@pbx",
        connectTimeoutMs: 500,
      },
    });
    expect(unreachable).toMatchObject({
      ok: false,
      error: { reason: "unreachable" },
      fallback: { action: "transfer", target: "sip:100@pbx" },
    });
    expect(duplex.listenerCount("callerFrame")).toBe(0);
  });

  it("times out a Worker that upgrades but never welcomes", async () => {
    worker.welcomeDelayMs = 2000;
    const link = makeLink({ connectTimeoutMs: 200 });
    await expect(link.start()).rejects.toMatchObject({ reason: "timeout" });
  });
});
