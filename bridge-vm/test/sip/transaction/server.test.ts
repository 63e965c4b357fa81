import { describe, expect, it } from "vitest";
import type { SipResponse } from "../../../src/sip/message/types";
import { ManualClock } from "../../../src/sip/transaction/clock";
import { InviteServerTransaction, NonInviteServerTransaction } from "../../../src/sip/transaction/server";
import { RFC3261_TIMERS, transactionTimers } from "../../../src/sip/transaction/timers";
import { request, responseTo } from "./helpers";

function harness(reliable: boolean) {
  const clock = new ManualClock();
  const sent: Array<{ at: number; status: number }> = [];
  let terminated = false;
  let ackTimeouts = 0;
  const context = {
    clock,
    timers: transactionTimers(RFC3261_TIMERS, reliable),
    reliable,
    send: (response: SipResponse) => {
      sent.push({ at: clock.now(), status: response.status });
      return Promise.resolve();
    },
    onTerminated: () => {
      terminated = true;
    },
    onAckTimeout: () => {
      ackTimeouts++;
    },
  };
  return { clock, sent, context, terminated: () => terminated, ackTimeouts: () => ackTimeouts };
}

describe("INVITE server transaction (RFC 3261 §17.2.1)", () => {
  it("replays the last provisional response for a retransmitted INVITE", () => {
    const h = harness(false);
    const invite = request("INVITE");
    const tx = new InviteServerTransaction(invite, h.context);
    tx.receiveRetransmission(); // nothing sent yet: absorbed
    tx.respond(responseTo(invite, 100));
    tx.respond(responseTo(invite, 180));
    tx.receiveRetransmission();
    expect(h.sent.map((s) => s.status)).toEqual([100, 180, 180]);
  });

  it("retransmits a non-2xx final on Timer G (capped at T2) until Timer H, then reports no ACK", () => {
    const h = harness(false);
    const invite = request("INVITE");
    const tx = new InviteServerTransaction(invite, h.context);
    tx.respond(responseTo(invite, 486));
    h.clock.advance(32_000);
    expect(h.sent.map((s) => s.at)).toEqual([
      0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
    ]);
    expect(h.ackTimeouts()).toBe(1);
    expect(h.terminated()).toBe(true);
  });

  it("stops on ACK (Confirmed), absorbs ACK retransmits for Timer I = T4, then terminates", () => {
    const h = harness(false);
    const invite = request("INVITE");
    const tx = new InviteServerTransaction(invite, h.context);
    tx.respond(responseTo(invite, 487));
    h.clock.advance(600);
    tx.receiveAck();
    expect(tx.state).toBe("confirmed");
    tx.receiveAck();
    tx.receiveRetransmission();
    h.clock.advance(4_999);
    expect(h.terminated()).toBe(false);
    h.clock.advance(1);
    expect(h.terminated()).toBe(true);
    expect(h.sent).toHaveLength(2);
    expect(h.ackTimeouts()).toBe(0);
  });

  it("over TCP: no Timer G, Timer I is zero", () => {
    const h = harness(true);
    const invite = request("INVITE");
    const tx = new InviteServerTransaction(invite, h.context);
    tx.respond(responseTo(invite, 603));
    h.clock.advance(10_000);
    expect(h.sent).toHaveLength(1);
    tx.receiveAck();
    h.clock.advance(0);
    expect(h.terminated()).toBe(true);
  });

  it("goes to Accepted on 2xx, absorbs INVITE retransmissions (the UA core owns 2xx retransmission), ends on Timer L", () => {
    const h = harness(false);
    const invite = request("INVITE");
    const tx = new InviteServerTransaction(invite, h.context);
    tx.respond(responseTo(invite, 200));
    tx.receiveRetransmission();
    expect(tx.state).toBe("accepted");
    expect(h.sent).toHaveLength(1);
    expect(tx.respond(responseTo(invite, 500))).toBe(false);
    h.clock.advance(32_000);
    expect(h.terminated()).toBe(true);
  });
});

describe("non-INVITE server transaction (RFC 3261 §17.2.2)", () => {
  it("absorbs retransmissions in Trying and replays the final one in Completed", () => {
    const h = harness(false);
    const bye = request("BYE");
    const tx = new NonInviteServerTransaction(bye, h.context);
    tx.receiveRetransmission();
    expect(h.sent).toHaveLength(0);
    tx.respond(responseTo(bye, 200));
    tx.receiveRetransmission();
    expect(h.sent.map((s) => s.status)).toEqual([200, 200]);
    expect(tx.respond(responseTo(bye, 500))).toBe(false);
  });

  it("replays a provisional response in Proceeding", () => {
    const h = harness(false);
    const req = request("OPTIONS");
    const tx = new NonInviteServerTransaction(req, h.context);
    tx.respond(responseTo(req, 100));
    tx.receiveRetransmission();
    expect(h.sent.map((s) => s.status)).toEqual([100, 100]);
  });

  it("stays Completed for Timer J = 64*T1 over UDP and 0 over TCP", () => {
    for (const [reliable, wait] of [
      [false, 32_000],
      [true, 0],
    ] as const) {
      const h = harness(reliable);
      const req = request("OPTIONS");
      const tx = new NonInviteServerTransaction(req, h.context);
      tx.respond(responseTo(req, 200));
      if (wait > 0) {
        h.clock.advance(wait - 1);
        expect(h.terminated()).toBe(false);
        h.clock.advance(1);
      } else h.clock.advance(0);
      expect(h.terminated()).toBe(true);
    }
  });
});
