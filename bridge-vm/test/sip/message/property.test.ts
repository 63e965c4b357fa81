import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  createHeaders,
  parseNameAddr,
  parseSipMessage,
  parseSipUri,
  parseVia,
  type SipMessage,
  SipStreamFramer,
  serializeSipMessage,
} from "../../../src/sip/message";

const enc = new TextEncoder();

/** Fragments that steer random input into the parser's interesting branches. */
const sipFragment = fc.constantFrom(
  "INVITE sip:a@b SIP/2.0\r\n",
  "SIP/2.0 200 OK\r\n",
  "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n",
  "v: SIP/2.0/TCP [::1]:5060;rport\r\n",
  "From: <sip:a@b>;tag=1\r\n",
  't: "x\\"y" <sip:c@d>\r\n',
  "Call-ID: c\r\n",
  "CSeq: 1 INVITE\r\n",
  "CSeq: 99999999999 INVITE\r\n",
  "Content-Length: 5\r\n",
  "l: 4294967296\r\n",
  " folded\r\n",
  "\r\n",
  "\r\n\r\n",
  "<sip:",
  '"',
  ";",
  ",",
  "\u0000",
  "\u00ff",
);

const randomSipish = fc
  .array(fc.oneof(sipFragment, fc.string({ maxLength: 20 })), { maxLength: 30 })
  .map((parts) => enc.encode(parts.join("")));

describe("parser robustness (property)", () => {
  it("never throws on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), (bytes) => {
        const result = parseSipMessage(bytes);
        expect(typeof result.ok).toBe("boolean");
      }),
      { numRuns: 2000 },
    );
  });

  it("never throws on SIP-shaped noise, and error messages stay valid reason phrases", () => {
    fc.assert(
      fc.property(
        randomSipish,
        fc.constantFrom<"datagram" | "stream">("datagram", "stream"),
        (bytes, framing) => {
          const result = parseSipMessage(bytes, { framing });
          if (!result.ok) expect(result.error.message).toMatch(/^[\x20-\x7e]{1,100}$/);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("structured header parsers never throw", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 80 }),
          randomSipish.map((b) => new TextDecoder().decode(b)),
        ),
        (s) => {
          parseSipUri(s);
          parseNameAddr(s);
          parseVia(s);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("the stream framer never throws, never buffers past its cap, under any chunking", () => {
    fc.assert(
      fc.property(fc.array(randomSipish, { maxLength: 10 }), (chunks) => {
        const framer = new SipStreamFramer({ maxBufferBytes: 512 });
        for (const chunk of chunks) {
          framer.push(chunk);
          expect(framer.bufferedBytes).toBeLessThanOrEqual(512);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------
// Round trip over generated valid messages

const token = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,15}$/);
const headerValue = fc
  .stringMatching(/^[\x21-\x7e\u00e9\u4e2d]([\x20-\x7e\u00e9\u4e2d]{0,40}[\x21-\x7e\u00e9\u4e2d])?$/)
  .filter((v) => v.trim() === v);
const extraHeaders = fc.array(
  fc.tuple(
    token.map((t) => `X-${t}`),
    headerValue,
  ),
  { maxLength: 10 },
);
const body = fc.uint8Array({ maxLength: 500 });

function requiredHeaders(method: string): Array<[string, string]> {
  return [
    ["Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKprop"],
    ["From", "<sip:alice@example.com>;tag=1"],
    ["To", "<sip:bob@example.com>"],
    ["Call-ID", "prop-call"],
    ["CSeq", `1 ${method}`],
  ];
}

const requestArb = fc
  .record({ method: token.map((t) => t.toUpperCase()), user: token, extra: extraHeaders, body })
  .map(
    ({ method, user, extra, body }): SipMessage => ({
      kind: "request",
      method,
      uri: `sip:${user}@example.com`,
      headers: createHeaders([...requiredHeaders(method), ...extra]),
      body,
    }),
  );

const responseArb = fc
  .record({
    status: fc.integer({ min: 100, max: 699 }),
    reason: fc.stringMatching(/^[A-Za-z][A-Za-z ]{0,20}$/),
    extra: extraHeaders,
    body,
  })
  .map(
    ({ status, reason, extra, body }): SipMessage => ({
      kind: "response",
      status,
      reason,
      headers: createHeaders([...requiredHeaders("INVITE"), ...extra]),
      body,
    }),
  );

describe("parse(serialize(m)) round trip (property)", () => {
  it("preserves start line, headers in order, and body bytes, for both framings", () => {
    fc.assert(
      fc.property(fc.oneof(requestArb, responseArb), (message) => {
        const bytes = serializeSipMessage(message);
        for (const framing of ["datagram", "stream"] as const) {
          const result = parseSipMessage(bytes, { framing });
          if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
          const parsed = result.message;
          expect(parsed.kind).toBe(message.kind);
          if (parsed.kind === "request" && message.kind === "request") {
            expect(parsed.method).toBe(message.method);
            expect(parsed.uri).toBe(message.uri);
          }
          if (parsed.kind === "response" && message.kind === "response") {
            expect(parsed.status).toBe(message.status);
            expect(parsed.reason).toBe(message.reason);
          }
          const expected = [...message.headers.entries(), ["Content-Length", String(message.body.length)]];
          expect([...parsed.headers.entries()]).toEqual(expected);
          expect(parsed.body).toEqual(message.body);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("frames any split of several serialized messages back into the same messages", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(requestArb, responseArb), { minLength: 1, maxLength: 4 }),
        fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 20 }),
        (messages, cuts) => {
          const all = messages.map(serializeSipMessage);
          const stream = new Uint8Array(all.reduce((n, b) => n + b.length, 0));
          let offset = 0;
          for (const bytes of all) {
            stream.set(bytes, offset);
            offset += bytes.length;
          }
          const framer = new SipStreamFramer();
          const results = [];
          let position = 0;
          let cut = 0;
          while (position < stream.length) {
            const size = cuts[cut++ % cuts.length]!;
            results.push(...framer.push(stream.subarray(position, position + size)));
            position += size;
          }
          expect(results.map((r) => (r.ok ? r.message.body.length : r.error.code))).toEqual(
            messages.map((m) => m.body.length),
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});
