import { describe, expect, it } from "vitest";
import { referTarget, sipfragStatus, TransferError } from "../../src/call/call";
import { createResponse, type SipRequest } from "../../src/sip/message";
import { answeredCall, confirmedCall, createStack, flush, inDialog, invite } from "./harness";

function notify(
  stack: ReturnType<typeof createStack>,
  cseq: number,
  sipfrag: string,
  state = "active;expires=60",
) {
  const request = inDialog(stack, "NOTIFY", cseq, {
    extra: `Event: refer\nSubscription-State: ${state}`,
  });
  request.headers.set("Content-Type", "message/sipfrag;version=2.0");
  request.body = new TextEncoder().encode(`${sipfrag}\r\n`);
  return request;
}

function accept(stack: ReturnType<typeof createStack>, refer: SipRequest, status = 202) {
  stack.transport.deliver(createResponse(refer, status));
}

describe("blind transfer (REFER)", () => {
  it("REFERs with Refer-To and Referred-By, follows NOTIFY progress, and leaves with BYE only after the final 200", async () => {
    const { stack, call } = await confirmedCall();
    let settled: string | undefined;
    call.transfer("2001").then(
      () => (settled = "ok"),
      (error: Error) => (settled = error.message),
    );
    await flush();
    const [refer] = stack.transport.requests("REFER");
    expect(refer!.headers.get("Refer-To")).toBe("<sip:2001@pbx.test>");
    expect(refer!.headers.get("Referred-By")).toBe("<sip:1001@pbx.test>");
    expect(refer!.headers.get("To")).toContain("tag=caller-tag");

    accept(stack, refer!);
    stack.transport.deliver(notify(stack, 2, "SIP/2.0 100 Trying"));
    await flush();
    expect(stack.transport.responses(200)).toHaveLength(1); // the NOTIFY is answered
    expect(stack.transport.requests("BYE")).toHaveLength(0); // not before the final NOTIFY (RFC 5589)
    expect(settled).toBeUndefined();

    stack.transport.deliver(notify(stack, 3, "SIP/2.0 200 OK", "terminated;reason=noresource"));
    await flush();
    expect(settled).toBe("ok");
    expect(stack.transport.requests("BYE")).toHaveLength(1);
    expect(stack.ended.map((ended) => ended.cause)).toEqual(["transferred"]);
  });

  it("returns the call to the agent when the PBX refuses the REFER", async () => {
    const { stack, call } = await confirmedCall();
    const result = call.transfer("sip:2002@pbx.test").catch((error: unknown) => error);
    await flush();
    accept(stack, stack.transport.requests("REFER")[0]!, 403);
    await flush();
    const error = await result;
    expect(error).toBeInstanceOf(TransferError);
    expect((error as TransferError).sipStatus).toBe(403);
    expect(stack.transport.requests("BYE")).toHaveLength(0);
    expect(stack.ended).toHaveLength(0);
  });

  it("returns the call to the agent when the target is busy (NOTIFY 486)", async () => {
    const { stack, call } = await confirmedCall();
    const result = call.transfer("2001").catch((error: unknown) => error);
    await flush();
    accept(stack, stack.transport.requests("REFER")[0]!);
    stack.transport.deliver(notify(stack, 2, "SIP/2.0 486 Busy Here", "terminated"));
    await flush();
    expect(((await result) as TransferError).sipStatus).toBe(486);
    expect(stack.ended).toHaveLength(0);
    // The call can try again after a failure.
    const retry = call.transfer("2002").catch((error: unknown) => error);
    await flush();
    expect(stack.transport.requests("REFER")).toHaveLength(2);
    accept(stack, stack.transport.requests("REFER")[1]!, 603);
    await flush();
    expect(((await retry) as TransferError).sipStatus).toBe(603);
  });

  it("gives up without a final NOTIFY in time, and refuses a second transfer while one is pending", async () => {
    const { stack, call } = await confirmedCall();
    const result = call.transfer("2001", { timeoutMs: 10_000 }).catch((error: unknown) => error);
    await flush();
    await expect(call.transfer("2002")).rejects.toThrow(/already in progress/);
    accept(stack, stack.transport.requests("REFER")[0]!);
    await flush();
    stack.clock.advance(10_000);
    await flush();
    expect(((await result) as TransferError).sipStatus).toBe(408);
    expect(stack.ended).toHaveLength(0);
  });

  it("refuses to transfer a call that is not answered", async () => {
    const stack = createStack({ answerDelayMs: 5000 });
    await answeredCall(stack, invite());
    await expect(stack.calls.list()[0]!.transfer("2001")).rejects.toThrow(/not answered/);
  });
});

describe("transfer helpers", () => {
  it("turns bare numbers into SIP URIs and passes URIs through", () => {
    expect(referTarget("2001", "pbx.test")).toBe("sip:2001@pbx.test");
    expect(referTarget("+15551230000", "pbx.test")).toBe("sip:+15551230000@pbx.test");
    expect(referTarget("<sip:queue@pbx.test>", undefined)).toBe("sip:queue@pbx.test");
    expect(() => referTarget("2001", undefined)).toThrow(/without a domain/);
    expect(() => referTarget("20 01; rm", "pbx.test")).toThrow(/not a valid target/);
  });

  it("reads the sipfrag status line", () => {
    expect(sipfragStatus("SIP/2.0 200 OK\r\n")).toBe(200);
    expect(sipfragStatus("  SIP/2.0 183 Session Progress")).toBe(183);
    expect(sipfragStatus("garbage")).toBeUndefined();
  });
});
