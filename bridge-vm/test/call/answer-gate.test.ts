import { describe, expect, it } from "vitest";
import type { AnswerDecision } from "../../src/call/call";
import { answeredCall, createStack, flush, inDialog, invite } from "./harness";

function deferred() {
  let resolve!: (decision: AnswerDecision) => void;
  const promise = new Promise<AnswerDecision>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

describe("answer gate (the agent's socket opens while the call rings)", () => {
  it("holds the 200 OK until the gate says answer, with media already open", async () => {
    const gate = deferred();
    let mediaAtGate = false;
    const stack = createStack({
      beforeAnswer: (_call, media) => {
        mediaAtGate = media.localPort > 0;
        return gate.promise;
      },
    });
    await answeredCall(stack, invite());
    expect(stack.transport.responses(180)).toHaveLength(1);
    expect(stack.transport.responses(200)).toHaveLength(0);
    expect(mediaAtGate).toBe(true);
    gate.resolve({ ok: true });
    await flush();
    expect(stack.transport.responses(200)).toHaveLength(1);
  });

  it("refuses with 503 and Retry-After when the agent cannot be reached, so the PBX fails over", async () => {
    const stack = createStack({
      beforeAnswer: async () => ({ ok: false, status: 503, reason: "agent unavailable", retryAfterS: 30 }),
    });
    await answeredCall(stack, invite());
    await flush();
    const [refusal] = stack.transport.responses(503);
    expect(refusal!.headers.get("Retry-After")).toBe("30");
    expect(stack.transport.responses(200)).toHaveLength(0);
    expect(stack.ended.map((ended) => [ended.cause, ended.status])).toEqual([["rejected", 503]]);
    expect(stack.media.opened[0]!.closedWith).toBeDefined();
  });

  it("waits for both the gate and the answer delay, and a CANCEL meanwhile wins", async () => {
    const gate = deferred();
    const stack = createStack({ answerDelayMs: 2000, beforeAnswer: () => gate.promise });
    const inv = invite();
    await answeredCall(stack, inv);
    gate.resolve({ ok: true });
    await flush();
    expect(stack.transport.responses(200)).toHaveLength(0); // the delay is not over
    const cancel = inDialog(stack, "CANCEL", 1, { branch: "z9hG4bK-invite-1" });
    cancel.headers.set("To", inv.headers.get("To")!);
    stack.transport.deliver(cancel);
    await flush();
    stack.clock.advance(2000);
    await flush();
    expect(
      stack.transport.responses(200).filter((response) => response.headers.get("CSeq")?.endsWith("INVITE")),
    ).toHaveLength(0);
    expect(stack.transport.responses(487).length).toBeGreaterThanOrEqual(1); // retransmitted until the ACK
    expect(stack.ended.map((ended) => [ended.cause, ended.status])).toEqual([["cancelled", 487]]);
  });

  it("answers 500 when the gate itself fails", async () => {
    const stack = createStack({ beforeAnswer: async () => Promise.reject(new Error("boom")) });
    await answeredCall(stack, invite());
    await flush();
    expect(stack.transport.responses(500)).toHaveLength(1);
  });
});
