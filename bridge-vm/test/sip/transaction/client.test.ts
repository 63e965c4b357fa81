import { describe, expect, it } from "vitest";
import type { SipRequest, SipResponse } from "../../../src/sip/message/types";
import { InviteClientTransaction, NonInviteClientTransaction } from "../../../src/sip/transaction/client";
import { ManualClock } from "../../../src/sip/transaction/clock";
import { RFC3261_TIMERS, transactionTimers } from "../../../src/sip/transaction/timers";
import { request, responseTo } from "./helpers";

function harness(reliable: boolean) {
  const clock = new ManualClock();
  const sent: Array<{ at: number; message: SipRequest }> = [];
  const responses: SipResponse[] = [];
  const failures: string[] = [];
  let terminated = false;
  let failSend = false;
  const context = {
    clock,
    timers: transactionTimers(RFC3261_TIMERS, reliable),
    reliable,
    send: (message: SipRequest) => {
      if (failSend) return Promise.reject(new Error("ECONNREFUSED"));
      sent.push({ at: clock.now(), message });
      return Promise.resolve();
    },
    onTerminated: () => {
      terminated = true;
    },
  };
  const user = {
    onResponse: (response: SipResponse) => responses.push(response),
    onFailure: (reason: string) => failures.push(reason),
  };
  return {
    clock,
    sent,
    responses,
    failures,
    context,
    user,
    terminated: () => terminated,
    failNextSends: () => {
      failSend = true;
    },
  };
}

describe("INVITE client transaction (RFC 3261 §17.1.1)", () => {
  it("retransmits on Timer A doubling (0.5, 1, 2, 4, 8, 16 s) and times out on Timer B at 64*T1", () => {
    const h = harness(false);
    const tx = new InviteClientTransaction(request("INVITE"), h.user, h.context);
    tx.start();
    h.clock.advance(32_000);
    expect(h.sent.map((s) => s.at)).toEqual([0, 500, 1500, 3500, 7500, 15500, 31500]);
    expect(h.failures).toEqual(["timeout"]);
    expect(tx.state).toBe("calling");
    expect(h.terminated()).toBe(true);
    expect(h.clock.pendingTimers).toBe(0);
  });

  it("does not retransmit over a reliable transport, but still times out", () => {
    const h = harness(true);
    new InviteClientTransaction(request("INVITE"), h.user, h.context).start();
    h.clock.advance(40_000);
    expect(h.sent).toHaveLength(1);
    expect(h.failures).toEqual(["timeout"]);
  });

  it("stops retransmitting on a provisional response and has no Timer B in Proceeding", () => {
    const h = harness(false);
    const invite = request("INVITE");
    const tx = new InviteClientTransaction(invite, h.user, h.context);
    tx.start();
    h.clock.advance(600);
    tx.receiveResponse(responseTo(invite, 180));
    h.clock.advance(60_000);
    expect(h.sent).toHaveLength(2);
    expect(tx.state).toBe("proceeding");
    expect(h.failures).toEqual([]);
  });

  it("ACKs a non-2xx final inside the transaction, re-ACKs retransmissions, ends after Timer D", () => {
    const h = harness(false);
    const invite = request("INVITE", { branch: "z9hG4bK-inv" });
    const tx = new InviteClientTransaction(invite, h.user, h.context);
    tx.start();
    const busy = responseTo(invite, 486);
    tx.receiveResponse(busy);
    expect(tx.state).toBe("completed");
    const ack = h.sent[1]!.message;
    expect(ack.method).toBe("ACK");
    expect(ack.headers.get("Via")).toContain("branch=z9hG4bK-inv");
    expect(ack.headers.get("CSeq")).toBe("1 ACK");
    expect(ack.headers.get("To")).toContain("tag=remote-tag");
    tx.receiveResponse(busy);
    expect(h.sent.filter((s) => s.message.method === "ACK")).toHaveLength(2);
    expect(h.responses.map((r) => r.status)).toEqual([486]);
    h.clock.advance(31_999);
    expect(h.terminated()).toBe(false);
    h.clock.advance(1);
    expect(h.terminated()).toBe(true);
  });

  it("passes 2xx and its retransmissions to the TU (Accepted, RFC 6026) and ends after Timer M", () => {
    const h = harness(false);
    const invite = request("INVITE");
    const tx = new InviteClientTransaction(invite, h.user, h.context);
    tx.start();
    const ok = responseTo(invite, 200);
    tx.receiveResponse(ok);
    tx.receiveResponse(ok);
    expect(tx.state).toBe("accepted");
    expect(h.responses.map((r) => r.status)).toEqual([200, 200]);
    expect(h.sent).toHaveLength(1); // no ACK from the transaction for a 2xx
    h.clock.advance(32_000);
    expect(h.terminated()).toBe(true);
  });

  it("reports a transport error and terminates", async () => {
    const h = harness(false);
    h.failNextSends();
    new InviteClientTransaction(request("INVITE"), h.user, h.context).start();
    await Promise.resolve();
    await Promise.resolve();
    expect(h.failures).toEqual(["transport-error"]);
    expect(h.terminated()).toBe(true);
  });
});

describe("non-INVITE client transaction (RFC 3261 §17.1.2)", () => {
  it("retransmits on Timer E doubling up to T2 and times out on Timer F", () => {
    const h = harness(false);
    new NonInviteClientTransaction(request("OPTIONS"), h.user, h.context).start();
    h.clock.advance(32_000);
    expect(h.sent.map((s) => s.at)).toEqual([
      0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
    ]);
    expect(h.failures).toEqual(["timeout"]);
  });

  it("retransmits every T2 once Proceeding", () => {
    const h = harness(false);
    const req = request("REGISTER");
    const tx = new NonInviteClientTransaction(req, h.user, h.context);
    tx.start();
    tx.receiveResponse(responseTo(req, 100));
    h.clock.advance(9_000);
    expect(h.sent.map((s) => s.at)).toEqual([0, 500, 4500, 8500]);
    expect(tx.state).toBe("proceeding");
  });

  it("delivers the final response once, absorbs retransmissions, ends after Timer K", () => {
    const h = harness(false);
    const req = request("BYE");
    const tx = new NonInviteClientTransaction(req, h.user, h.context);
    tx.start();
    const ok = responseTo(req, 200);
    tx.receiveResponse(ok);
    tx.receiveResponse(ok);
    expect(h.responses).toHaveLength(1);
    h.clock.advance(4_999);
    expect(tx.state).toBe("completed");
    h.clock.advance(1);
    expect(h.terminated()).toBe(true);
    expect(h.sent).toHaveLength(1);
  });

  it("Timer K is zero over a reliable transport", () => {
    const h = harness(true);
    const req = request("BYE");
    const tx = new NonInviteClientTransaction(req, h.user, h.context);
    tx.start();
    tx.receiveResponse(responseTo(req, 200));
    h.clock.advance(0);
    expect(h.terminated()).toBe(true);
  });
});
