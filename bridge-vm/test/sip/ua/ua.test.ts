import { describe, expect, it } from "vitest";
import { createStack, flush, invite } from "../../call/harness";
import { request } from "../transaction/helpers";

describe("UA core dispatch", () => {
  it("answers OPTIONS outside a dialog with Allow and Accept", async () => {
    const stack = createStack();
    stack.transport.deliver(request("OPTIONS"));
    await flush();
    const [ok] = stack.transport.responses();
    expect(ok!.status).toBe(200);
    expect(ok!.headers.getAll("Allow").join(", ")).toBe(
      "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER, NOTIFY",
    );
    expect(ok!.headers.get("Accept")).toBe("application/sdp");
    expect(ok!.headers.get("To")).toMatch(/;tag=/);
  });

  it("answers in-dialog methods outside any dialog with 481, unknown methods with 405", async () => {
    const stack = createStack();
    stack.transport.deliver(request("BYE", { branch: "z9hG4bK-1" }));
    stack.transport.deliver(request("BYE", { branch: "z9hG4bK-2", toTag: "nobody" }));
    stack.transport.deliver(request("MESSAGE", { branch: "z9hG4bK-3" }));
    stack.transport.deliver(request("CANCEL", { branch: "z9hG4bK-4" }));
    await flush();
    expect(stack.transport.responses().map((r) => r.status)).toEqual([481, 481, 405, 481]);
    expect(stack.ua.counters.outOfDialog481).toBe(2);
  });

  it("absorbs a retransmitted INVITE: one call, the last provisional replayed", async () => {
    const stack = createStack({ answerDelayMs: 5000 });
    stack.transport.deliver(invite());
    await flush();
    stack.transport.deliver(invite());
    await flush();
    expect(stack.calls.active).toBe(1);
    expect(stack.media.opened).toHaveLength(1);
    expect(stack.transport.responses().map((r) => r.status)).toEqual([100, 180, 180]);
  });

  it("says nothing to a source outside the allow-list in silent mode, and keeps no transaction", async () => {
    const stack = createStack({ rejectMode: "silent" });
    stack.transport.deliver(invite(), { address: "203.0.113.66" });
    await flush();
    expect(stack.transport.sent).toHaveLength(0);
    expect(stack.layer.serverCount).toBe(0);
    expect(stack.ua.counters.refused).toBe(1);
  });

  it("answers 403 to a source outside the allow-list in 403 mode", async () => {
    const stack = createStack();
    stack.transport.deliver(invite(), { address: "203.0.113.66" });
    await flush();
    expect(stack.transport.responses().map((r) => r.status)).toEqual([403]);
    expect(stack.transport.sent[0]!.destination.address).toBe("203.0.113.66");
  });

  it("ignores stray responses and ACKs that belong to nothing", async () => {
    const stack = createStack();
    const { createResponse } = await import("../../../src/sip/message");
    stack.transport.deliver(createResponse(request("INVITE"), 200, undefined, { toTag: "x" }));
    stack.transport.deliver(request("ACK", { toTag: "x" }));
    await flush();
    expect(stack.transport.sent).toHaveLength(0);
  });
});
