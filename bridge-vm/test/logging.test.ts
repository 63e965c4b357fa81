/**
 * SIP_TRACE is self-sufficient: with `sipTrace` the SIP transports' loggers log at debug whatever the
 * root level is, nothing else does, and the trace text keeps digest credentials masked. The real bridge
 * with SIP_TRACE=true and LOG_LEVEL=info against Kamailio is in test/ops/sip-trace.test.ts.
 */
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, redactSipText } from "../src/logging";

function capture(options: { level: "info" | "warn" | "debug"; sipTrace?: boolean }) {
  const stream = new PassThrough();
  const lines: Array<Record<string, unknown>> = [];
  stream.on("data", (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) if (line) lines.push(JSON.parse(line));
  });
  const logger = createLogger({ ...options, destination: stream });
  return { logger, lines, settle: () => new Promise((resolve) => setImmediate(resolve)) };
}

describe("createLogger sipTrace", () => {
  it("lowers only the SIP transports' loggers (and their children) to debug", async () => {
    const { logger, lines, settle } = capture({ level: "info", sipTrace: true });
    logger.child({ component: "sip-udp" }).debug({ direction: "in" }, "sip message");
    logger.child({ component: "sip-tcp" }).child({ connection: "c1" }).debug("sip message");
    logger.child({ component: "media" }).debug("media detail");
    logger.child({ component: "sip-transaction" }).debug("transaction detail");
    logger.debug("root detail");
    logger.child({ component: "sip-udp" }).info("still info");
    await settle();
    expect(lines.map((line) => [line.component, line.msg])).toEqual([
      ["sip-udp", "sip message"],
      ["sip-tcp", "sip message"],
      ["sip-udp", "still info"],
    ]);
  });

  it("does nothing without sipTrace, and never raises a level that is already lower", async () => {
    const off = capture({ level: "info" });
    off.logger.child({ component: "sip-udp" }).debug("sip message");
    await off.settle();
    expect(off.lines).toEqual([]);
    const debug = capture({ level: "debug", sipTrace: true });
    debug.logger.child({ component: "media" }).debug("media detail");
    debug.logger.child({ component: "sip-udp" }).debug("sip message");
    await debug.settle();
    expect(debug.lines.map((line) => line.msg)).toEqual(["media detail", "sip message"]);
  });

  it("traces keep the digest scheme and mask the credentials", () => {
    const text = [
      "REGISTER sip:pbx.example.com SIP/2.0",
      'Authorization: Digest username="2001", realm="pbx", nonce="abc", uri="sip:pbx.example.com", response="0123456789abcdef"',
      'proxy-authorization:Digest username="2001", response="fedcba9876543210"',
      "Content-Length: 0",
      "",
      "",
    ].join("\r\n");
    const masked = redactSipText(text);
    expect(masked).toContain("Authorization: Digest ***");
    expect(masked).toMatch(/^proxy-authorization:Digest \*\*\*/m);
    expect(masked).not.toContain("0123456789abcdef");
    expect(masked).not.toContain("fedcba9876543210");
  });
});
