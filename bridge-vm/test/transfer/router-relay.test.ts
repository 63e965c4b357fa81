import { decodeG711Sample, encodeG711 } from "@patchbay/shared/audio";
import { describe, expect, it } from "vitest";
import { DuplexRouter } from "../../src/transfer/duplex-router";
import { relayMedia } from "../../src/transfer/relay";
import { FakeDuplex } from "../cloud/fake-duplex";

/** One 160-byte frame of a constant sample value in `codec`. */
function constantFrame(codec: "PCMU" | "PCMA", sample: number): Uint8Array {
  return encodeG711(codec, new Int16Array(160).fill(sample));
}

describe("DuplexRouter", () => {
  it("starts at home and forwards audio, marks, clear, digits and frames both ways", async () => {
    const caller = new FakeDuplex("PCMU");
    const router = new DuplexRouter(caller);
    const frames: number[] = [];
    const played: string[] = [];
    router.on("callerFrame", (_frame, seq) => frames.push(seq));
    router.on("markPlayed", (name) => played.push(name));
    router.enqueueAgentAudio(new Uint8Array(320).fill(0x7f));
    router.mark("t1.c0");
    await router.sendDtmf("5");
    caller.emitCallerFrames(2);
    caller.emitMarkPlayed("t1.c0");
    expect(caller.agentAudio.map((chunk) => chunk.length)).toEqual([320]);
    expect(caller.marks).toEqual(["t1.c0"]);
    expect(caller.dtmfSent).toEqual(["5"]);
    expect(frames).toEqual([0, 1]);
    expect(played).toEqual(["t1.c0"]);
    expect(router.clearAgentAudio()).toEqual({ discardedMs: 240 });
  });

  it("once routed to the human, the agent speaks to and hears only the human", () => {
    const caller = new FakeDuplex("PCMU");
    const human = new FakeDuplex("PCMU");
    const router = new DuplexRouter(caller);
    const heard: number[] = [];
    router.on("callerFrame", (frame) => heard.push(frame[0]!));
    router.route(human);
    router.enqueueAgentAudio(new Uint8Array(160).fill(1));
    caller.emitCallerFrames(3); // the caller, on hold, is not heard by the agent
    human.emitCallerFrames(2);
    expect(human.agentAudio).toHaveLength(1);
    expect(caller.agentAudio).toHaveLength(0);
    expect(heard).toEqual([0, 1]);
    expect(caller.listenerCount("callerFrame")).toBe(0);
    router.routeHome();
    expect(human.listenerCount("callerFrame")).toBe(0);
    caller.emitCallerFrames(1);
    expect(heard).toEqual([0, 1, 3]);
  });

  it("converts between G.711 laws when the human's leg uses the other one, both ways", () => {
    const caller = new FakeDuplex("PCMU");
    const human = new FakeDuplex("PCMA");
    const router = new DuplexRouter(caller);
    router.route(human);
    router.enqueueAgentAudio(constantFrame("PCMU", 1000));
    expect(Math.abs(decodeG711Sample("PCMA", human.agentAudio[0]![0]!) - 1000)).toBeLessThan(64);
    let heard = 0;
    router.on("callerFrame", (frame) => {
      heard = decodeG711Sample("PCMU", frame[0]!);
    });
    human.emitCallerFrames(1); // bytes 0x00: an A-law value
    expect(Math.abs(heard - decodeG711Sample("PCMA", 0x00))).toBeLessThan(
      Math.abs(decodeG711Sample("PCMA", 0x00)) / 8 + 16,
    );
    expect(router.codec).toBe("PCMU");
  });

  it("runs an internal mark's action when it is played and never reports it to the link", () => {
    const human = new FakeDuplex("PCMU");
    const router = new DuplexRouter(new FakeDuplex("PCMU"));
    router.route(human);
    const reported: string[] = [];
    router.on("markPlayed", (name) => reported.push(name));
    let joined = 0;
    router.markThen(() => joined++);
    router.mark("t4.c0");
    expect(human.marks).toHaveLength(2);
    human.emitMarkPlayed(human.marks[0]!);
    human.emitMarkPlayed("t4.c0");
    expect(joined).toBe(1);
    expect(reported).toEqual(["t4.c0"]);
  });

  it("drops a queued internal mark when the agent is routed elsewhere before it plays", () => {
    const human = new FakeDuplex("PCMU");
    const router = new DuplexRouter(new FakeDuplex("PCMU"));
    router.route(human);
    let joined = 0;
    router.markThen(() => joined++);
    const internal = human.marks[0]!;
    router.routeHome();
    router.route(human);
    human.emitMarkPlayed(internal);
    expect(joined).toBe(0);
  });
});

describe("relayMedia", () => {
  it("plays each leg's frames on the other and passes digits, until stopped", async () => {
    const caller = new FakeDuplex("PCMU");
    const human = new FakeDuplex("PCMA");
    const relay = relayMedia(caller, human);
    caller.emitCallerFrames(3);
    human.emitCallerFrames(2);
    caller.emitDtmf("7");
    await Promise.resolve();
    expect(human.agentAudio).toHaveLength(3);
    expect(caller.agentAudio).toHaveLength(2);
    expect(human.dtmfSent).toEqual(["7"]);
    // μ-law 0x01 crossed into A-law as the nearest A-law code, not copied byte for byte.
    expect(human.agentAudio[1]![0]).not.toBe(0x01);
    relay.stop();
    relay.stop();
    caller.emitCallerFrames(1);
    expect(human.agentAudio).toHaveLength(3);
    expect(caller.listenerCount("callerFrame")).toBe(0);
    expect(human.listenerCount("dtmf")).toBe(0);
  });
});
