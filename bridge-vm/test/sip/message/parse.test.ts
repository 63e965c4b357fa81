import { describe, expect, it } from "vitest";
import {
  isWellFormedNameAddr,
  parseNameAddr,
  parseSipMessage,
  requestPolicyError,
  type SipParseResult,
  type SipRequest,
  type SipResponse,
  serializeSipMessage,
} from "../../../src/sip/message";

const enc = new TextEncoder();
const dec = new TextDecoder();
const crlf = (lines: string[]): Uint8Array => enc.encode(lines.join("\r\n"));

function expectRequest(result: SipParseResult): SipRequest {
  if (!result.ok) throw new Error(`expected ok, got ${result.error.code}: ${result.error.message}`);
  if (result.message.kind !== "request") throw new Error("expected a request");
  return result.message;
}

function expectResponse(result: SipParseResult): SipResponse {
  if (!result.ok) throw new Error(`expected ok, got ${result.error.code}: ${result.error.message}`);
  if (result.message.kind !== "response") throw new Error("expected a response");
  return result.message;
}

function expectError(result: SipParseResult, code: string): Extract<SipParseResult, { ok: false }> {
  if (result.ok) throw new Error(`expected ${code}, got ok`);
  expect(result.error.code).toBe(code);
  return result;
}

const SDP =
  "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

const INVITE_LINES = [
  "INVITE sip:bridge@10.0.0.2:5060 SIP/2.0",
  "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport",
  "Max-Forwards: 70",
  'To: "Bridge" <sip:bridge@10.0.0.2>',
  "From: Alice <sip:alice@10.0.0.1>;tag=1928301774",
  "Call-ID: a84b4c76e66710@pc33.atlanta.com",
  "CSeq: 314159 INVITE",
  "Contact: <sip:alice@10.0.0.1:5060>",
  "Content-Type: application/sdp",
  `Content-Length: ${SDP.length}`,
  "",
  SDP,
];

describe("parseSipMessage: requests", () => {
  it("parses a typical INVITE with an exact body", () => {
    const request = expectRequest(parseSipMessage(crlf(INVITE_LINES)));
    expect(request.method).toBe("INVITE");
    expect(request.uri).toBe("sip:bridge@10.0.0.2:5060");
    expect(request.headers.get("call-id")).toBe("a84b4c76e66710@pc33.atlanta.com");
    expect(request.headers.get("CSEQ")).toBe("314159 INVITE");
    expect(dec.decode(request.body)).toBe(SDP);
  });

  it("expands compact forms, splits multi-value and repeated headers", () => {
    const request = expectRequest(
      parseSipMessage(
        crlf([
          "OPTIONS sip:bridge@10.0.0.2 SIP/2.0",
          "v: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1, SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bKa1",
          "v: SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bKa0",
          "f: <sip:alice@example.com>;tag=1",
          "t: sip:bridge@example.com",
          "i: abc123",
          "CSeq: 1 OPTIONS",
          "k: timer, 100rel",
          "Allow: INVITE, ACK",
          "Allow: BYE",
          "l: 0",
          "",
          "",
        ]),
      ),
    );
    expect(request.headers.getAll("Via")).toEqual([
      "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1",
      "SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bKa1",
      "SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bKa0",
    ]);
    expect(request.headers.get("via")).toBe("SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1");
    expect(request.headers.getAll("Supported")).toEqual(["timer", "100rel"]);
    expect(request.headers.getAll("Allow")).toEqual(["INVITE", "ACK", "BYE"]);
    expect(request.headers.get("Call-ID")).toBe("abc123");
    expect([...request.headers.entries()].map(([n]) => n)).toEqual([
      "Via",
      "Via",
      "From",
      "To",
      "Call-ID",
      "CSeq",
      "Supported",
      "Allow",
      "Allow",
      "Content-Length",
    ]);
  });

  it("unfolds LWS continuation lines", () => {
    const request = expectRequest(
      parseSipMessage(
        crlf([
          "OPTIONS sip:bridge@10.0.0.2 SIP/2.0",
          "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx",
          "Subject: I know you're there,",
          "\tpick up the phone",
          "   and talk to me!",
          "From: <sip:a@b>;tag=1",
          "To: <sip:c@d>",
          "Call-ID: x",
          "CSeq: 8",
          "  OPTIONS",
          "",
          "",
        ]),
      ),
    );
    expect(request.headers.get("Subject")).toBe("I know you're there, pick up the phone and talk to me!");
    expect(request.headers.get("CSeq")).toBe("8 OPTIONS");
  });

  it("ignores CRLFs before the start line and tolerates a missing Content-Length on UDP", () => {
    const request = expectRequest(
      parseSipMessage(crlf(["", "", ...INVITE_LINES.filter((l) => !l.startsWith("Content-Length"))])),
    );
    expect(dec.decode(request.body)).toBe(SDP);
  });

  it("truncates extra datagram bytes beyond Content-Length", () => {
    const lines = INVITE_LINES.map((l) => (l.startsWith("Content-Length") ? "Content-Length: 5" : l));
    expect(dec.decode(expectRequest(parseSipMessage(crlf(lines))).body)).toBe("v=0\r\n");
  });

  it("rejects Content-Length larger than the datagram with the request attached", () => {
    const lines = INVITE_LINES.map((l) => (l.startsWith("Content-Length") ? "Content-Length: 9999" : l));
    const error = expectError(parseSipMessage(crlf(lines)), "bad-content-length");
    expect(error.request?.method).toBe("INVITE");
  });

  it("requires an exact Content-Length in stream framing", () => {
    const noLength = INVITE_LINES.filter((l) => !l.startsWith("Content-Length"));
    expectError(parseSipMessage(crlf(noLength), { framing: "stream" }), "bad-content-length");
    expectRequest(parseSipMessage(crlf(INVITE_LINES), { framing: "stream" }));
  });

  it("rejects a request Via without branch as bad-via, with the request so a 400 can be sent", () => {
    const lines = INVITE_LINES.map((l) => (l.startsWith("Via") ? "Via: SIP/2.0/UDP 10.0.0.1:5060" : l));
    const error = expectError(parseSipMessage(crlf(lines)), "bad-via");
    expect(error.request?.headers.get("Call-ID")).toBe("a84b4c76e66710@pc33.atlanta.com");
    expect(error.error.message).toMatch(/branch/);
  });

  it("a Via without branch is valid syntax refused by policy: syntaxOnly parses it, requestPolicyError says why", () => {
    const lines = INVITE_LINES.map((l) => (l.startsWith("Via") ? "Via: SIP/2.0/UDP 10.0.0.1:5060" : l));
    const request = expectRequest(parseSipMessage(crlf(lines), { syntaxOnly: true }));
    expect(requestPolicyError(request)).toEqual({ code: "bad-via", message: "Missing Via branch" });
    expect(requestPolicyError(expectRequest(parseSipMessage(crlf(INVITE_LINES))))).toBeUndefined();
    // syntaxOnly relaxes policy, never syntax or limits.
    const noBranchBadCseq = lines.map((l) => (l.startsWith("CSeq") ? "CSeq: 1 BYE" : l));
    expectError(parseSipMessage(crlf(noBranchBadCseq), { syntaxOnly: true }), "bad-cseq");
  });

  it("allows a CTL only as a quoted-pair inside a quoted string (RFC 4475 intmeth), nowhere else", () => {
    const withTo = (to: string) => INVITE_LINES.map((l) => (l.startsWith("To:") ? to : l));
    const quoted = expectRequest(
      parseSipMessage(crlf(withTo('To: "a\\\u0000b\\\u0007" <sip:bridge@10.0.0.2>'))),
    );
    expect(parseNameAddr(quoted.headers.get("To")!)?.displayName).toBe("a\u0000b\u0007");
    // Unescaped inside quotes, escaped outside quotes, or escaping CR/LF: refused.
    expectError(parseSipMessage(crlf(withTo('To: "a\u0000b" <sip:bridge@10.0.0.2>'))), "bad-character");
    expectError(parseSipMessage(crlf(withTo("To: a\\\u0000 <sip:bridge@10.0.0.2>"))), "bad-character");
    expectError(parseSipMessage(crlf(withTo('To: "a\\\rb" <sip:bridge@10.0.0.2>'))), "bad-character");
    // A stray quote cannot carry the exception into the next header line.
    const stray = INVITE_LINES.flatMap((l) =>
      l.startsWith("Call-ID") ? ['Call-ID: a"b@c', "Subject: \\\u0000"] : [l],
    );
    expectError(parseSipMessage(crlf(stray)), "bad-character");
    // ...but a folded continuation of the same quoted string keeps it.
    const folded = withTo('To: "a\r\n \\\u0000b" <sip:bridge@10.0.0.2>');
    expect(parseNameAddr(expectRequest(parseSipMessage(crlf(folded))).headers.get("To")!)?.displayName).toBe(
      "a \u0000b",
    );
  });

  it("accepts any URI scheme in From/To/Contact (RFC 4475 unksm2) but only SIP URIs in Route/Record-Route", () => {
    const replace = (name: string, value: string) =>
      INVITE_LINES.map((l) => (l.startsWith(`${name}:`) ? `${name}: ${value}` : l));
    const request = expectRequest(
      parseSipMessage(
        crlf(
          replace("From", "<http://www.example.com>;tag=3234233").map((l) =>
            l.startsWith("To:") ? "To: isbn:2983792873" : l,
          ),
        ),
      ),
    );
    // Upper layers read them with parseNameAddr: nothing for a non-SIP scheme, so no dialog (400 there).
    expect(parseNameAddr(request.headers.get("From")!)).toBeUndefined();
    expectRequest(parseSipMessage(crlf(replace("Contact", "<name:John_Smith>"))));
    expectError(parseSipMessage(crlf(replace("Contact", "<name:John Smith>"))), "bad-header");
    expectError(parseSipMessage(crlf(replace("From", "<http://example.com"))), "bad-header");
    expectError(parseSipMessage(crlf(replace("To", "/"))), "bad-header");
    expectError(
      parseSipMessage(
        crlf([...INVITE_LINES.slice(0, 2), "Route: <http://proxy.example.com>", ...INVITE_LINES.slice(2)]),
      ),
      "bad-header",
    );
    expect(isWellFormedNameAddr('"x" <urn:service:sos>')).toBe(true);
    expect(isWellFormedNameAddr("<sip:>")).toBe(false);
  });

  it("a Request-URI user part may contain '?', URI headers after the host may not (RFC 4475 intmeth vs escruri)", () => {
    const withUri = (uri: string) => [`INVITE ${uri} SIP/2.0`, ...INVITE_LINES.slice(1)];
    expect(expectRequest(parseSipMessage(crlf(withUri("sip:crazy?,/;;*@10.0.0.2")))).uri).toBe(
      "sip:crazy?,/;;*@10.0.0.2",
    );
    expectError(parseSipMessage(crlf(withUri("sip:bridge@10.0.0.2?Route=%3Csip:x%3E"))), "bad-uri");
    expectError(parseSipMessage(crlf(withUri("sip:10.0.0.2?Route=%3Csip:x%3E"))), "bad-uri");
  });

  it("rejects a CSeq method mismatch and a CSeq >= 2^31", () => {
    const mismatch = INVITE_LINES.map((l) => (l.startsWith("CSeq") ? "CSeq: 1 ACK" : l));
    expect(expectError(parseSipMessage(crlf(mismatch)), "bad-cseq").request).toBeDefined();
    const huge = INVITE_LINES.map((l) => (l.startsWith("CSeq") ? "CSeq: 2147483648 INVITE" : l));
    expectError(parseSipMessage(crlf(huge)), "bad-cseq");
    const max = INVITE_LINES.map((l) => (l.startsWith("CSeq") ? "CSeq: 2147483647 INVITE" : l));
    expectRequest(parseSipMessage(crlf(max)));
  });

  it("requires Via, From, To, Call-ID and CSeq", () => {
    for (const name of ["Via", "From", "To", "Call-ID", "CSeq"]) {
      const lines = INVITE_LINES.filter((l) => !l.startsWith(`${name}:`));
      const error = expectError(parseSipMessage(crlf(lines)), "missing-header");
      expect(error.error.message).toContain(name);
    }
    const noMaxForwards = INVITE_LINES.filter((l) => !l.startsWith("Max-Forwards"));
    expectRequest(parseSipMessage(crlf(noMaxForwards)));
  });

  it("rejects NUL and other control characters in the header section", () => {
    const lines = INVITE_LINES.map((l) => (l.startsWith("Contact") ? "Contact: <sip:a\u0000@b>" : l));
    expectError(parseSipMessage(crlf(lines)), "bad-character");
    const bareCr = INVITE_LINES.map((l) =>
      l.startsWith("Subject") || l.startsWith("Call-ID") ? "Call-ID: x\ry" : l,
    );
    expectError(parseSipMessage(crlf(bareCr)), "bad-character");
    const bell = INVITE_LINES.map((l) => (l.startsWith("Call-ID") ? "Call-ID: x\u0007y" : l));
    expectError(parseSipMessage(crlf(bell)), "bad-character");
  });

  it("rejects duplicate singleton headers", () => {
    const lines = [...INVITE_LINES.slice(0, 4), "From: <sip:mallory@evil>;tag=2", ...INVITE_LINES.slice(4)];
    expectError(parseSipMessage(crlf(lines)), "duplicate-header");
  });

  it("enforces the limits", () => {
    // 70 Vias (as many as Max-Forwards 70 allows hops) pass; 71 and 100 do not.
    const vias = (n: number) =>
      Array.from({ length: n }, (_, i) => `Via: SIP/2.0/UDP h${i};branch=z9hG4bK${i}`);
    expectRequest(parseSipMessage(crlf([INVITE_LINES[0]!, ...vias(70), ...INVITE_LINES.slice(2)])));
    expectError(
      parseSipMessage(crlf([INVITE_LINES[0]!, ...vias(71), ...INVITE_LINES.slice(2)])),
      "too-many-headers",
    );
    const manyVias = vias(100);
    expectError(
      parseSipMessage(crlf([INVITE_LINES[0]!, ...manyVias, ...INVITE_LINES.slice(2)])),
      "too-many-headers",
    );
    const longLine = `X-Long: ${"a".repeat(9000)}`;
    expectError(parseSipMessage(crlf([INVITE_LINES[0]!, longLine, ...INVITE_LINES.slice(1)])), "too-large");
    expectError(parseSipMessage(new Uint8Array(70000).fill(65)), "too-large");
    expectError(parseSipMessage(crlf(INVITE_LINES), { maxMessageBytes: 100 }), "too-large");
  });

  it("rejects bad start lines and versions", () => {
    expectError(parseSipMessage(enc.encode("hello world\r\n\r\n")), "bad-start-line");
    const v3 = ["INVITE sip:a@b SIP/3.0", ...INVITE_LINES.slice(1)];
    expect(expectError(parseSipMessage(crlf(v3)), "bad-version").request?.method).toBe("INVITE");
    const spaced = ["INVITE  sip:a@b  SIP/2.0 ", ...INVITE_LINES.slice(1)];
    const sloppy = expectError(parseSipMessage(crlf(spaced)), "bad-start-line");
    expect(sloppy.request?.uri).toBe("sip:a@b");
    expect(sloppy.error.message).toBe("Bad Request-Line");
    expect(expectError(parseSipMessage(crlf(spaced.slice(0, 3))), "bad-start-line").request).toBeUndefined();
    expectError(parseSipMessage(new Uint8Array(0)), "empty");
    expectError(parseSipMessage(enc.encode("\r\n\r\n")), "empty");
  });

  it("keeps error messages usable as reason phrases", () => {
    const result = parseSipMessage(enc.encode("\u00ff\u00fe garbage"));
    if (result.ok) throw new Error("expected error");
    expect(result.error.message).toMatch(/^[\x20-\x7e]{1,100}$/);
  });
});

describe("parseSipMessage: responses", () => {
  it("parses a 401 with two challenges kept as separate values", () => {
    const response = expectResponse(
      parseSipMessage(
        crlf([
          "SIP/2.0 401 Unauthorized",
          "Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKabc;received=10.0.0.2;rport=5060",
          "From: <sip:bridge@pbx>;tag=aa",
          "To: <sip:bridge@pbx>;tag=bb",
          "Call-ID: reg-1",
          "CSeq: 1 REGISTER",
          'WWW-Authenticate: Digest realm="asterisk",nonce="1/a",opaque="o",algorithm=SHA-256,qop="auth"',
          'WWW-Authenticate: Digest realm="asterisk",nonce="1/a",opaque="o",algorithm=MD5,qop="auth"',
          "Content-Length: 0",
          "",
          "",
        ]),
      ),
    );
    expect(response.status).toBe(401);
    expect(response.reason).toBe("Unauthorized");
    expect(response.headers.getAll("WWW-Authenticate")).toHaveLength(2);
  });

  it("accepts an empty reason phrase", () => {
    const response = expectResponse(
      parseSipMessage(
        crlf([
          "SIP/2.0 200 ",
          "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
          "From: <sip:a@b>;tag=1",
          "To: <sip:a@b>;tag=2",
          "Call-ID: c",
          "CSeq: 1 OPTIONS",
          "",
          "",
        ]),
      ),
    );
    expect(response.reason).toBe("");
  });
});

describe("serializeSipMessage", () => {
  it("round-trips the INVITE, writing the real Content-Length", () => {
    const request = expectRequest(parseSipMessage(crlf(INVITE_LINES)));
    const bytes = serializeSipMessage(request);
    expect(dec.decode(bytes)).toBe(INVITE_LINES.join("\r\n"));
  });

  it("cannot be made to inject header lines through a value", () => {
    const request = expectRequest(parseSipMessage(crlf(INVITE_LINES)));
    request.headers.set("Subject", "hi\r\nX-Injected: yes\u0000");
    const text = dec.decode(serializeSipMessage(request));
    expect(text).toContain("Subject: hi  X-Injected: yes \r\n");
    const again = expectRequest(parseSipMessage(serializeSipMessage(request)));
    expect(again.headers.has("X-Injected")).toBe(false);
  });

  it("fixes a wrong Content-Length and appends one when missing", () => {
    const request = expectRequest(parseSipMessage(crlf(INVITE_LINES)));
    request.headers.set("Content-Length", "999");
    request.body = enc.encode("abc");
    expect(dec.decode(serializeSipMessage(request))).toContain("Content-Length: 3\r\n\r\nabc");
    request.headers.delete("Content-Length");
    expect(dec.decode(serializeSipMessage(request))).toMatch(/Content-Length: 3\r\n\r\nabc$/);
  });
});
