import { describe, expect, it } from "vitest";
import { Keepalive } from "../../../src/sip/registration/keepalive";
import { ManualClock } from "../../../src/sip/transaction/clock";
import { TransactionLayer } from "../../../src/sip/transaction/layer";
import { FakeTransport, flush, quietLogger } from "../transaction/fake-transport";

function setup(mode: "crlf" | "options" | "off") {
  const clock = new ManualClock();
  const transport = new FakeTransport();
  const layer = new TransactionLayer({
    transports: [transport],
    clock,
    logger: quietLogger,
    sentBy: () => "192.0.2.10:5060",
  });
  layer.setUser({ onRequest: () => undefined, onStrayResponse: () => undefined });
  const keepalive = new Keepalive({
    mode,
    intervalS: 25,
    layer,
    clock,
    logger: quietLogger,
    target: { protocol: "udp", address: "192.0.2.1", port: 5060 },
    domain: "pbx.example",
    fromUri: "sip:1001@pbx.example",
  });
  return { clock, transport, keepalive };
}

describe("NAT keepalive", () => {
  it("sends a CRLFCRLF ping to the registrar every interval", async () => {
    const { clock, transport, keepalive } = setup("crlf");
    keepalive.start();
    clock.advance(24_999);
    expect(transport.raw).toHaveLength(0);
    clock.advance(1);
    clock.advance(25_000);
    await flush();
    expect(transport.raw.map((r) => Buffer.from(r.bytes).toString())).toEqual(["\r\n\r\n", "\r\n\r\n"]);
    expect(transport.raw[0]!.destination.address).toBe("192.0.2.1");
    keepalive.stop();
    clock.advance(100_000);
    expect(transport.raw).toHaveLength(2);
  });

  it("sends OPTIONS in options mode", async () => {
    const { clock, transport, keepalive } = setup("options");
    keepalive.start();
    clock.advance(25_000);
    await flush();
    const [options] = transport.requests("OPTIONS");
    expect(options!.uri).toBe("sip:pbx.example");
    expect(options!.headers.get("From")).toMatch(/^<sip:1001@pbx\.example>;tag=/);
    keepalive.stop();
  });

  it("does nothing when off", () => {
    const { clock, transport, keepalive } = setup("off");
    keepalive.start();
    clock.advance(100_000);
    expect(transport.raw).toHaveLength(0);
    expect(transport.sent).toHaveLength(0);
  });
});
