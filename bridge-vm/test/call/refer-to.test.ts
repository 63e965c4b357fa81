/**
 * What warm transfer builds on, on an inbound call: the dialog's identifiers, a REFER with a ready
 * Refer-To (e.g. `?Replaces=`, escaped per RFC 3261 §19.1.1), and the bridge's transfer policy in front
 * of every agent-requested REFER (the transfer desk, shared with outbound calls).
 */
import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { type InboundCall, uriWithHeaders } from "../../src/call/call";
import type { CloudLink } from "../../src/cloud/index";
import { TransferPolicy } from "../../src/control/policy";
import { createLogger, type Logger } from "../../src/logging";
import { createResponse } from "../../src/sip/message";
import { systemClock } from "../../src/sip/transaction/clock";
import { DuplexRouter, TransferDesk } from "../../src/transfer/index";
import { FakeDuplex } from "../cloud/fake-duplex";
import { confirmedCall, flush, inDialog } from "./harness";

describe("uriWithHeaders (RFC 3261 §19.1.1)", () => {
  it("escapes what would end a header value or the URI, keeps hnv-unreserved characters", () => {
    expect(uriWithHeaders("sip:2001@pbx.test", { Replaces: "abc@host;to-tag=1;from-tag=2" })).toBe(
      "sip:2001@pbx.test?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2",
    );
    expect(uriWithHeaders("sip:x@h", { A: "a b&c", B: "[x]/y?:+$" })).toBe("sip:x@h?A=a%20b%26c&B=[x]/y?:+$");
    expect(uriWithHeaders("sip:x@h", {})).toBe("sip:x@h");
  });
});

describe("InboundCall: dialog ids and a ready Refer-To", () => {
  it("exposes Call-ID, our tag and the caller's tag", async () => {
    const { call } = await confirmedCall();
    expect(call.dialogId).toEqual({
      callId: "call-1@test",
      localTag: call.dialog!.id.localTag,
      remoteTag: "caller-tag",
    });
  });

  it("REFERs to the given URI as is, and refuses one that is not a plain SIP URI", async () => {
    const { stack, call } = await confirmedCall();
    const referTo = uriWithHeaders("sip:2002@pbx.test", { Replaces: "c@h;to-tag=a;from-tag=b" });
    void call.transfer("2002", { referTo }).catch(() => undefined);
    await flush();
    expect(stack.transport.requests("REFER")[0]!.headers.get("Refer-To")).toBe(`<${referTo}>`);
    const { call: other } = await confirmedCall();
    await expect(other.transfer("x", { referTo: "<sip:2002@pbx.test>" })).rejects.toThrow(/plain/);
  });
});

class FakeLink extends EventEmitter {
  results: unknown[] = [];
  reportTransferResult(result: unknown): void {
    this.results.push(result);
  }
}

/** The transfer desk's blind path, bound as the call bindings bind it. */
function bindTransfers(
  link: CloudLink,
  call: InboundCall,
  policy: TransferPolicy | undefined,
  logger: Logger,
) {
  const desk = new TransferDesk({ policy, warmMethod: "relay", uriWithHeaders, clock: systemClock });
  desk.bind(link, call, new DuplexRouter(new FakeDuplex()), logger);
}

describe("TransferDesk: the transfer policy before any REFER", () => {
  const logger = createLogger({ level: "silent" });
  const policy = new TransferPolicy(
    { transferAllowedDestinations: ["^20\\d\\d$"], allowedDestinations: [], allowedHosts: [] },
    "pbx.test",
  );

  it("refuses a target outside the policy with transfer_result and sends no SIP", async () => {
    const { stack, call } = await confirmedCall();
    const link = new FakeLink();
    bindTransfers(link as unknown as CloudLink, call, policy, logger);
    link.emit("transferRequested", "0044207000000", "blind", undefined);
    await flush();
    expect(stack.transport.requests("REFER")).toHaveLength(0);
    expect(link.results).toEqual([
      { ok: false, target: "0044207000000", reason: expect.stringMatching(/^transfer target not allowed/) },
    ]);
  });

  it("refuses every transfer when the bridge has no policy", async () => {
    const { stack, call } = await confirmedCall();
    const link = new FakeLink();
    bindTransfers(link as unknown as CloudLink, call, undefined, logger);
    link.emit("transferRequested", "2001", "blind", undefined);
    await flush();
    expect(stack.transport.requests("REFER")).toHaveLength(0);
    expect(link.results).toEqual([{ ok: false, target: "2001", reason: expect.any(String) }]);
  });

  it("REFERs an allowed target to the policy's URI and reports ok before the call ends", async () => {
    const { stack, call } = await confirmedCall();
    const link = new FakeLink();
    const order: string[] = [];
    link.reportTransferResult = (result) => order.push(`result ${(result as { ok: boolean }).ok}`);
    call.on("ended", (info) => order.push(`ended ${info.cause}`));
    bindTransfers(link as unknown as CloudLink, call, policy, logger);
    link.emit("transferRequested", "2001", "blind", undefined);
    await flush();
    const [refer] = stack.transport.requests("REFER");
    expect(refer!.headers.get("Refer-To")).toBe("<sip:2001@pbx.test>");
    stack.transport.deliver(createResponse(refer!, 202));
    const notify = inDialog(stack, "NOTIFY", 2, { extra: "Event: refer\nSubscription-State: terminated" });
    notify.headers.set("Content-Type", "message/sipfrag;version=2.0");
    notify.body = new TextEncoder().encode("SIP/2.0 200 OK\r\n");
    stack.transport.deliver(notify);
    await flush();
    expect(order).toEqual(["result true", "ended transferred"]);
  });
});
