import { describe, expect, it } from "vitest";
import { createLogger } from "../../src/logging";
import { OutboundDialog } from "../../src/outbound/dialog";
import { endpointFor } from "../../src/outbound/route";
import { failureForStatus } from "../../src/outbound/uac";
import { createHeaders } from "../../src/sip/message";
import type { SipRequest, SipResponse } from "../../src/sip/message/types";
import type { TransactionLayer } from "../../src/sip/transaction/layer";

const proxy = { protocol: "udp" as const, address: "192.0.2.1", port: 5060 };
const deps = { layer: {} as TransactionLayer, proxy, logger: createLogger({ level: "silent" }) };

function invite(): SipRequest {
  const headers = createHeaders([
    ["From", '"Patchbay" <sip:1050@pbx.test>;tag=ours'],
    ["To", "<sip:5551234@pbx.test>"],
    ["Call-ID", "abc@host"],
    ["CSeq", "2 INVITE"],
    ["Proxy-Authorization", 'Digest username="1050"'],
  ]);
  return { kind: "request", method: "INVITE", uri: "sip:5551234@pbx.test", headers, body: new Uint8Array() };
}

function ok(recordRoutes: string[]): SipResponse {
  const headers = createHeaders([
    ["To", "<sip:5551234@pbx.test>;tag=theirs"],
    ["Contact", "<sip:pbx@198.51.100.7:5070>"],
    ...recordRoutes.map((rr) => ["Record-Route", rr] as const),
  ]);
  return { kind: "response", status: 200, reason: "OK", headers, body: new Uint8Array() };
}

describe("OutboundDialog (UAC side, RFC 3261 §12.1.2)", () => {
  it("reverses the Record-Route, targets the Contact, keys like an incoming in-dialog request", () => {
    const dialog = OutboundDialog.fromSuccess(
      invite(),
      ok(["<sip:192.0.2.9;lr>", "<sip:192.0.2.1;lr>"]),
      deps,
    );
    expect(dialog?.routeSet).toEqual(["<sip:192.0.2.1;lr>", "<sip:192.0.2.9;lr>"]);
    expect(dialog?.remoteTarget).toBe("sip:pbx@198.51.100.7:5070");
    expect(dialog?.key).toBe("abc@host|ours|theirs");
    expect(dialog?.nextHop()).toEqual({ protocol: "udp", address: "192.0.2.1", port: 5060 });
  });

  it("builds the 2xx ACK with the INVITE's CSeq number, the Route set and its credentials", () => {
    const dialog = OutboundDialog.fromSuccess(invite(), ok(["<sip:192.0.2.1;lr>"]), deps);
    const ack = dialog?.buildAck(invite());
    expect(ack?.uri).toBe("sip:pbx@198.51.100.7:5070");
    expect(ack?.headers.get("CSeq")).toBe("2 ACK");
    expect(ack?.headers.getAll("Route")).toEqual(["<sip:192.0.2.1;lr>"]);
    expect(ack?.headers.get("To")).toContain("tag=theirs");
    expect(ack?.headers.get("Proxy-Authorization")).toContain("1050");
  });

  it("sends to the Contact when there is no route set", () => {
    const dialog = OutboundDialog.fromSuccess(invite(), ok([]), deps);
    expect(dialog?.nextHop()).toEqual({ protocol: "udp", address: "198.51.100.7", port: 5070 });
  });

  it("refuses a 2xx without a To tag or Contact", () => {
    const response = ok([]);
    response.headers.set("To", "<sip:5551234@pbx.test>");
    expect(OutboundDialog.fromSuccess(invite(), response, deps)).toBeUndefined();
  });
});

describe("failure causes", () => {
  it.each([
    [302, "redirected"],
    [486, "busy"],
    [600, "busy"],
    [480, "no-answer"],
    [487, "no-answer"],
    [407, "unauthorized"],
    [404, "rejected"],
    [503, "rejected"],
  ])("%i → %s", (status, reason) => {
    expect(failureForStatus(status)).toBe(reason);
  });

  it("routes a host name through the proxy (no DNS here)", () => {
    expect(endpointFor("sip:x@pbx.example.com", proxy)).toBe(proxy);
    expect(endpointFor("sip:x@10.0.0.5:5080;transport=tcp", proxy)).toEqual({
      protocol: "tcp",
      address: "10.0.0.5",
      port: 5080,
    });
  });
});
