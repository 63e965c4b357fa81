import { describe, expect, it } from "vitest";
import { type SipParseResult, SipStreamFramer } from "../../../src/sip/message";

const enc = new TextEncoder();

function options(cseq: number, body = ""): string {
  return [
    "OPTIONS sip:bridge@10.0.0.2 SIP/2.0",
    `Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK${cseq}`,
    "From: <sip:pbx@10.0.0.1>;tag=a",
    "To: <sip:bridge@10.0.0.2>",
    "Call-ID: ka",
    `CSeq: ${cseq} OPTIONS`,
    `l: ${enc.encode(body).length}`,
    "",
    body,
  ].join("\r\n");
}

function cseqs(results: SipParseResult[]): number[] {
  return results.map((r) => {
    if (!r.ok) throw new Error(r.error.message);
    return Number(r.message.headers.get("CSeq")?.split(" ")[0]);
  });
}

describe("SipStreamFramer", () => {
  it("frames several messages in one chunk", () => {
    const framer = new SipStreamFramer();
    expect(cseqs(framer.push(enc.encode(options(1) + options(2, "héllo") + options(3))))).toEqual([1, 2, 3]);
    expect(framer.bufferedBytes).toBe(0);
  });

  it("frames a message split into one-byte chunks, with the body across the boundary", () => {
    const framer = new SipStreamFramer();
    const bytes = enc.encode(options(7, "0123456789"));
    const results: SipParseResult[] = [];
    for (let i = 0; i < bytes.length; i++) {
      results.push(...framer.push(bytes.subarray(i, i + 1)));
      if (i < bytes.length - 1) expect(results).toHaveLength(0);
    }
    expect(cseqs(results)).toEqual([7]);
    const message = results[0]!.ok ? results[0]!.message : undefined;
    expect(new TextDecoder().decode(message?.body)).toBe("0123456789");
  });

  it("reports CRLFCRLF pings (even split across chunks) and lone-CRLF pongs, then keeps framing", () => {
    const seen: string[] = [];
    const framer = new SipStreamFramer({ onKeepalive: (kind) => seen.push(kind) });
    expect(framer.push(enc.encode("\r\n"))).toEqual([]);
    expect(framer.push(enc.encode("\r\n"))).toEqual([]);
    expect(framer.keepalives).toBe(1);
    expect(cseqs(framer.push(enc.encode(`\r\n${options(4)}\r\n\r\n`)))).toEqual([4]);
    expect(seen).toEqual(["ping", "pong", "ping"]);
    expect(framer.keepalives).toBe(2);
    expect(framer.pongs).toBe(1);
  });

  it("fails fatally without Content-Length, and stays failed", () => {
    const framer = new SipStreamFramer();
    const noLength = options(1).replace(/l: 0\r\n/, "");
    const results = framer.push(enc.encode(noLength));
    expect(results).toHaveLength(1);
    expect(results[0]!.ok).toBe(false);
    expect(framer.failed).toBe(true);
    expect(framer.push(enc.encode(options(2)))).toEqual([]);
  });

  it("fails fatally when the buffer overflows without a complete message", () => {
    const framer = new SipStreamFramer({ maxBufferBytes: 1024 });
    const results = framer.push(enc.encode(`INVITE sip:a@b SIP/2.0\r\nX: ${"a".repeat(2000)}`));
    expect(results.map((r) => (r.ok ? "ok" : r.error.code))).toEqual(["too-large"]);
    expect(framer.failed).toBe(true);
  });

  it("fails fatally when a declared Content-Length exceeds the cap, before buffering the body", () => {
    const framer = new SipStreamFramer({ maxBufferBytes: 1024 });
    const results = framer.push(enc.encode(options(1).replace("l: 0", "l: 100000")));
    expect(results.map((r) => (r.ok ? "ok" : r.error.code))).toEqual(["too-large"]);
    expect(framer.failed).toBe(true);
  });

  it("passes a semantically bad message through as a non-fatal error", () => {
    const framer = new SipStreamFramer();
    const noBranch = options(1).replace(";branch=z9hG4bK1", "");
    const results = framer.push(enc.encode(noBranch + options(2)));
    expect(results[0]!.ok).toBe(false);
    expect(results[0]!.ok ? undefined : results[0]!.request).toBeDefined();
    expect(cseqs(results.slice(1))).toEqual([2]);
    expect(framer.failed).toBe(false);
  });
});
