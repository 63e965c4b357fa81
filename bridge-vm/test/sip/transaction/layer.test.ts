import { describe, expect, it } from "vitest";
import { createResponse } from "../../../src/sip/message";
import type { SipRequest, SipResponse } from "../../../src/sip/message/types";
import { ManualClock } from "../../../src/sip/transaction/clock";
import { TransactionLayer } from "../../../src/sip/transaction/layer";
import type { ServerTransaction } from "../../../src/sip/transaction/server";
import { FakeTransport, flush, quietLogger } from "./fake-transport";
import { request } from "./helpers";

function setup() {
  const clock = new ManualClock();
  const transport = new FakeTransport();
  const layer = new TransactionLayer({
    transports: [transport],
    clock,
    logger: quietLogger,
    sentBy: () => "192.0.2.10:5062",
  });
  const requests: Array<{ request: SipRequest; transaction: ServerTransaction | undefined }> = [];
  const strays: SipResponse[] = [];
  layer.setUser({
    onRequest: (req, transaction) => requests.push({ request: req, transaction }),
    onStrayResponse: (response) => strays.push(response),
  });
  return { clock, transport, layer, requests, strays };
}

describe("transaction layer", () => {
  it("puts our Via on top (sent-by, rport, fresh magic-cookie branch) and matches responses by branch + method", async () => {
    const { transport, layer, strays } = setup();
    const options = request("OPTIONS");
    options.headers.delete("Via");
    const responses: number[] = [];
    layer.sendRequest(
      options,
      { protocol: "udp", address: "192.0.2.1", port: 5060 },
      {
        onResponse: (response) => responses.push(response.status),
        onFailure: () => undefined,
      },
    );
    await flush();
    const sent = transport.requests("OPTIONS")[0]!;
    expect(sent.headers.get("Via")).toMatch(/^SIP\/2\.0\/UDP 192\.0\.2\.10:5062;rport;branch=z9hG4bK\S+$/);
    const ok = createResponse(sent, 200);
    transport.deliver(ok);
    // Same branch, other method: not ours.
    const other = createResponse(sent, 200);
    other.headers.set("CSeq", "1 INFO");
    transport.deliver(other);
    expect(responses).toEqual([200]);
    expect(strays).toHaveLength(1);
  });

  it("creates one server transaction per request and hands the retransmission to it", () => {
    const { transport, layer, requests } = setup();
    transport.deliver(request("OPTIONS"));
    transport.deliver(request("OPTIONS"));
    expect(requests).toHaveLength(1);
    expect(layer.serverCount).toBe(1);
  });

  it("routes a non-2xx ACK to its INVITE transaction and a 2xx ACK (new branch) to the UA core", () => {
    const { transport, layer, requests } = setup();
    const invite = request("INVITE", { branch: "z9hG4bK-inv" });
    transport.deliver(invite);
    const transaction = requests[0]!.transaction!;
    transaction.respond(createResponse(invite, 486, undefined, { toTag: "t" }));
    transport.deliver(request("ACK", { branch: "z9hG4bK-inv", toTag: "t" }));
    expect((transaction as { state: string }).state).toBe("confirmed");
    transport.deliver(request("ACK", { branch: "z9hG4bK-other", toTag: "t" }));
    expect(requests.map((r) => [r.request.method, r.transaction])).toEqual([
      ["INVITE", transaction],
      ["ACK", undefined],
    ]);
    expect(layer.serverCount).toBe(1);
  });

  it("finds the INVITE a CANCEL refers to", () => {
    const { transport, layer, requests } = setup();
    transport.deliver(request("INVITE", { branch: "z9hG4bK-x" }));
    const cancel = request("CANCEL", { branch: "z9hG4bK-x" });
    expect(layer.findInviteFor(cancel)).toBe(requests[0]!.transaction);
    expect(layer.findInviteFor(request("CANCEL", { branch: "z9hG4bK-y" }))).toBeUndefined();
  });

  it("answers a request whose Via has no branch with 400 and creates nothing", async () => {
    const { transport, layer, requests } = setup();
    const req = request("OPTIONS");
    req.headers.set("Via", "SIP/2.0/UDP 127.0.0.1:5070");
    transport.deliver(req);
    await flush();
    expect(requests).toHaveLength(0);
    expect(layer.serverCount).toBe(0);
    expect(transport.responses().map((r) => r.status)).toEqual([400]);
  });

  it("forgets transactions when they terminate", () => {
    const { clock, transport, layer, requests } = setup();
    const req = request("OPTIONS");
    transport.deliver(req);
    requests[0]!.transaction!.respond(createResponse(req, 200, undefined, { toTag: "t" }));
    clock.advance(32_000);
    expect(layer.serverCount).toBe(0);
  });
});
