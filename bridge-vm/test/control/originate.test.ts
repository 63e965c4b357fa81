import { EventEmitter } from "node:events";
import type { OriginateMessage, OutboundCallState } from "@patchbay/shared/protocol";
import { describe, expect, it } from "vitest";
import { type DialResult, OriginateHandler } from "../../src/control/originate";
import { DestinationPolicy, OutboundLimits } from "../../src/control/policy";
import { ManualClock } from "../../src/sip/transaction/clock";

const silent = { info() {}, warn() {} };

/** A scripted SIP leg: the test decides when it rings and how it ends. */
class FakeDial extends EventEmitter<{ progress: [{ state: "trying" | "ringing"; sipStatus: number }] }> {
  startedAt: number | undefined;
  private resolve: ((result: DialResult) => void) | undefined;
  constructor(private readonly clock: ManualClock) {
    super();
  }
  start(): Promise<DialResult> {
    this.startedAt = this.clock.now();
    return new Promise((resolve) => {
      this.resolve = resolve;
    });
  }
  ring(status = 180) {
    this.emit("progress", { state: "ringing", sipStatus: status });
  }
  end(result: DialResult) {
    this.resolve?.(result);
  }
}

function setup(limits = { maxCalls: 2, cps: 1, burst: 1, maxQueueDelayMs: 5_000 }) {
  const clock = new ManualClock(0);
  const dials: FakeDial[] = [];
  const reports: { callId: string; state: OutboundCallState; sipStatus?: number; reason?: string }[] = [];
  const answered: string[] = [];
  const handler = new OriginateHandler({
    policy: new DestinationPolicy({ allowedDestinations: ["^\\d{3,4}$"], allowedHosts: [] }, "pbx.test"),
    limits: new OutboundLimits(limits, 0),
    clock,
    dial: () => {
      const dial = new FakeDial(clock);
      dials.push(dial);
      return dial;
    },
    report: (callId, state, details) => reports.push({ callId, state, ...details }),
    onAnswered: (request) => answered.push(request.callId),
    logger: silent,
  });
  return { clock, dials, reports, answered, handler };
}

const request = (n: number, to = "1234"): OriginateMessage => ({
  type: "originate",
  requestId: `request-${n}`,
  callId: `call-0000${n}`,
  to,
});
const flush = () => new Promise((resolve) => setImmediate(resolve));

describe("OriginateHandler", () => {
  it("refuses a forbidden destination without dialling", async () => {
    const { handler, dials } = setup();
    expect(await handler.handle(request(1, "+449999"))).toEqual({
      accepted: false,
      reason: "destination-not-allowed",
    });
    expect(dials).toHaveLength(0);
    expect(handler.activeCalls).toBe(0);
  });

  it("paces calls by the CPS bucket and refuses beyond the concurrency limit", async () => {
    const { handler, dials, clock } = setup();
    expect(await handler.handle(request(1))).toEqual({ accepted: true });
    expect(await handler.handle(request(2))).toEqual({ accepted: true });
    expect(await handler.handle(request(3))).toEqual({ accepted: false, reason: "concurrency-limit" });
    clock.advance(0);
    expect(dials.map((d) => d.startedAt)).toEqual([0]);
    clock.advance(999);
    expect(dials).toHaveLength(1);
    clock.advance(1);
    expect(dials.map((d) => d.startedAt)).toEqual([0, 1000]);
  });

  it("reports ringing once, answered, then completed when the call layer says it ended", async () => {
    const { handler, dials, clock, reports, answered } = setup();
    await handler.handle(request(1));
    clock.advance(0);
    dials[0]?.ring(180);
    dials[0]?.ring(183);
    dials[0]?.end({ outcome: "answered", sipStatus: 200 });
    await flush();
    expect(answered).toEqual(["call-00001"]);
    handler.callEnded("call-00001", "caller-hangup");
    handler.callEnded("call-00001", "caller-hangup");
    expect(reports.map((r) => [r.state, r.sipStatus ?? r.reason])).toEqual([
      ["ringing", 180],
      ["answered", 200],
      ["completed", "caller-hangup"],
    ]);
    expect(handler.activeCalls).toBe(0);
  });

  it("reports a failure with its SIP cause and frees the slot", async () => {
    const { handler, dials, clock, reports } = setup();
    await handler.handle(request(1));
    clock.advance(0);
    dials[0]?.end({ outcome: "failed", reason: "busy", sipStatus: 486 });
    await flush();
    expect(reports).toEqual([{ callId: "call-00001", state: "failed", reason: "busy", sipStatus: 486 }]);
    expect(handler.activeCalls).toBe(0);
  });
});
