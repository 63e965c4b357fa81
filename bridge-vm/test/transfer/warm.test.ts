/**
 * The warm transfer's state machine with scripted legs (our own boundary: the legs are SIP-tested in
 * bridge-vm/test/call and test/outbound; the whole transfer against Kamailio in test/outbound).
 */
import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { uriWithHeaders } from "../../src/call/leg";
import type { CallEndCause, CallEnded } from "../../src/call/types";
import { silentLogger } from "../../src/logging";
import { ManualClock } from "../../src/sip/transaction/clock";
import { DuplexRouter } from "../../src/transfer/duplex-router";
import { type ConsultLeg, WarmTransfer, type WarmTransferOptions } from "../../src/transfer/warm";
import { FakeDuplex } from "../cloud/fake-duplex";

type DialResult = Awaited<ReturnType<ConsultLeg["dial"]>>;

class ScriptedLeg implements ConsultLeg {
  readonly logger = silentLogger();
  readonly duplex: FakeDuplex;
  readonly media: { duplex: FakeDuplex };
  readonly requestUri = "sip:2001@pbx.example";
  dialogId = { callId: "consult-1@bridge", localTag: "ours", remoteTag: "theirs" };
  ended: CallEnded | undefined;
  hangups: CallEndCause[] = [];
  abandoned: string[] = [];
  refers: Array<{ target: string; referTo?: string }> = [];
  referOutcome: "accept" | "refuse" = "accept";
  private readonly events = new EventEmitter();
  private resolveDial!: (result: DialResult) => void;
  private readonly dialing = new Promise<DialResult>((resolve) => {
    this.resolveDial = resolve;
  });

  constructor(codec: "PCMU" | "PCMA" = "PCMU") {
    this.duplex = new FakeDuplex(codec);
    this.media = { duplex: this.duplex };
  }

  // biome-ignore lint/suspicious/noExplicitAny: one emitter stands in for the legs' typed events
  on(event: string, listener: (...args: any[]) => void): void {
    this.events.on(event, listener);
  }
  // biome-ignore lint/suspicious/noExplicitAny: as above
  off(event: string, listener: (...args: any[]) => void): void {
    this.events.off(event, listener);
  }
  dial(): Promise<DialResult> {
    return this.dialing;
  }
  answer(): void {
    this.resolveDial({ outcome: "answered", sipStatus: 200 });
  }
  failDial(reason: string, sipStatus?: number): void {
    this.resolveDial({ outcome: "failed", reason, ...(sipStatus ? { sipStatus } : {}) });
    this.end("rejected");
  }
  ring(): void {
    this.events.emit("progress", { state: "ringing", sipStatus: 180 });
  }
  abandon(why = "abandoned"): void {
    this.abandoned.push(why);
  }
  async hangup(cause: CallEndCause): Promise<void> {
    this.hangups.push(cause);
    this.end(cause);
  }
  async transfer(target: string, options: { referTo?: string }): Promise<void> {
    this.refers.push({ target, ...(options.referTo ? { referTo: options.referTo } : {}) });
    if (this.referOutcome === "refuse") throw new Error("REFER refused: 501");
    this.end("transferred");
  }
  end(cause: CallEndCause): void {
    if (this.ended) return;
    this.ended = { cause, durationMs: 1 };
    this.events.emit("ended", this.ended);
  }
}

function setUp(overrides: Partial<WarmTransferOptions> = {}) {
  const caller = new ScriptedLeg();
  const human = new ScriptedLeg();
  const router = new DuplexRouter(caller.duplex);
  const clock = new ManualClock(0);
  const progress: string[] = [];
  const transfer = new WarmTransfer({
    target: "2001",
    callerLeg: caller,
    router,
    method: "relay",
    createConsultLeg: () => human,
    reportProgress: (state) => progress.push(state),
    uriWithHeaders,
    clock,
    logger: silentLogger(),
    ...overrides,
  });
  return { caller, human, router, clock, progress, transfer };
}

/** Plays the internal mark the join waits for, as the human's pacer would once the summary is out. */
function playJoinMark(human: ScriptedLeg): void {
  const internal = human.duplex.marks.find((name) => name.startsWith("patchbay-internal:"));
  if (!internal) throw new Error("no join mark queued");
  human.duplex.emitMarkPlayed(internal);
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("WarmTransfer", () => {
  it("dials, routes the agent to the human, joins by relay after the summary, then owns both legs", async () => {
    const { caller, human, router, progress, transfer } = setUp();
    const heardByAgent: number[] = [];
    router.on("callerFrame", (frame) => heardByAgent.push(frame[0]!));
    transfer.start();
    human.ring();
    expect(progress).toEqual(["dialing", "ringing"]);
    human.answer();
    await tick();
    expect(progress).toEqual(["dialing", "ringing", "consulting"]);

    router.enqueueAgentAudio(new Uint8Array(320).fill(9)); // the summary
    human.duplex.emitCallerFrames(1); // "ok, put them through"
    caller.duplex.emitCallerFrames(1); // the caller, waiting: not heard by the agent
    expect(human.duplex.agentAudio).toHaveLength(1);
    expect(caller.duplex.agentAudio).toHaveLength(0);
    expect(heardByAgent).toEqual([0]);

    transfer.join();
    await tick();
    let settled = false;
    void transfer.done.then(() => {
      settled = true;
    });
    await tick();
    expect(settled).toBe(false); // not before the summary has played
    playJoinMark(human);
    await expect(transfer.done).resolves.toEqual({ ok: true, joinedBy: "relay" });

    caller.duplex.emitCallerFrames(2);
    human.duplex.emitCallerFrames(1);
    expect(human.duplex.agentAudio).toHaveLength(3); // summary + two relayed caller frames
    expect(caller.duplex.agentAudio).toHaveLength(1);
    expect(heardByAgent).toEqual([0]); // the agent has left

    caller.end("caller-hangup");
    expect(human.hangups).toEqual(["caller-hangup"]);
  });

  it("the human hanging up after the join ends the caller's leg too", async () => {
    const { caller, human, transfer } = setUp();
    transfer.start();
    human.answer();
    await tick();
    transfer.join();
    playJoinMark(human);
    await transfer.done;
    human.end("callee-hangup");
    expect(caller.hangups).toEqual(["transferred"]);
  });

  it("no answer: the outcome says so and the agent still talks to the caller", async () => {
    const { caller, human, router, transfer } = setUp();
    transfer.start();
    human.failDial("no-answer", 487);
    await expect(transfer.done).resolves.toEqual({
      ok: false,
      reason: "the person did not answer",
      sipStatus: 487,
    });
    router.enqueueAgentAudio(new Uint8Array(160));
    expect(caller.duplex.agentAudio).toHaveLength(1);
  });

  it("the human hanging up before the join hands the caller back to the agent", async () => {
    const { caller, human, router, transfer } = setUp();
    transfer.start();
    human.answer();
    await tick();
    human.end("callee-hangup");
    await expect(transfer.done).resolves.toMatchObject({ ok: false, reason: /hung up/ });
    router.enqueueAgentAudio(new Uint8Array(160));
    expect(caller.duplex.agentAudio).toHaveLength(1);
    expect(router.current).toBe(caller.duplex);
  });

  it("transfer_cancel while ringing abandons the call; while consulting hangs it up", async () => {
    const ringing = setUp();
    ringing.transfer.start();
    ringing.transfer.cancel();
    await expect(ringing.transfer.done).resolves.toMatchObject({
      ok: false,
      reason: "cancelled by the agent",
    });
    expect(ringing.human.abandoned).toHaveLength(1);

    const consulting = setUp();
    consulting.transfer.start();
    consulting.human.answer();
    await tick();
    consulting.transfer.cancel();
    await expect(consulting.transfer.done).resolves.toMatchObject({ ok: false });
    expect(consulting.human.hangups).toEqual(["agent-hangup"]);
    expect(consulting.router.current).toBe(consulting.caller.duplex);
  });

  it("ends the consultation when no join comes in time", async () => {
    const { human, clock, transfer } = setUp({ joinTimeoutMs: 60_000 });
    transfer.start();
    human.answer();
    await tick();
    clock.advance(60_000);
    await expect(transfer.done).resolves.toMatchObject({ ok: false, reason: /in time/ });
    expect(human.hangups).toEqual(["agent-hangup"]);
  });

  it("the caller hanging up while the human rings abandons the consultation call", async () => {
    const { caller, human, transfer } = setUp();
    transfer.start();
    caller.end("caller-hangup");
    await expect(transfer.done).resolves.toMatchObject({ ok: false, reason: "the caller hung up" });
    expect(human.abandoned).toHaveLength(1);
  });

  it("a target the policy refuses fails at once, with nothing dialled", async () => {
    const { transfer, progress } = setUp({
      createConsultLeg: () => ({ refused: "destination not allowed" }),
    });
    transfer.start();
    await expect(transfer.done).resolves.toEqual({ ok: false, reason: "destination not allowed" });
    expect(progress).toEqual([]);
  });

  it("replaces: REFERs the caller with Replaces naming the consultation dialog (RFC 3891 tags)", async () => {
    const { caller, human, clock, transfer } = setUp({ method: "replaces" });
    transfer.start();
    human.answer();
    await tick();
    transfer.join();
    playJoinMark(human);
    await expect(transfer.done).resolves.toEqual({ ok: true, joinedBy: "replaces" });
    expect(caller.refers).toEqual([
      {
        target: "2001",
        referTo: "sip:2001@pbx.example?Replaces=consult-1%40bridge%3Bto-tag%3Dtheirs%3Bfrom-tag%3Dours",
      },
    ]);
    // The PBX normally ends the replaced leg; when it does not, we do after the grace period.
    expect(human.hangups).toEqual([]);
    clock.advance(10_000);
    expect(human.hangups).toEqual(["transferred"]);
  });

  it("replaces refused by the PBX: joins through the bridge instead", async () => {
    const { caller, human, transfer } = setUp({ method: "replaces" });
    caller.referOutcome = "refuse";
    transfer.start();
    human.answer();
    await tick();
    transfer.join();
    playJoinMark(human);
    await expect(transfer.done).resolves.toEqual({ ok: true, joinedBy: "relay" });
    caller.duplex.emitCallerFrames(1);
    expect(human.duplex.agentAudio).toHaveLength(1);
  });
});
