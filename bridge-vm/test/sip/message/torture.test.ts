/**
 * RFC 4475-style torture cases written inline (abridged from the RFC's messages), so the tricky grammar is
 * pinned even without fixture files. fixtures.test.ts runs the byte-exact files from test/fixtures/sip.
 */
import { describe, expect, it } from "vitest";
import { parseNameAddr, parseSipMessage, parseSipUri, parseVia } from "../../../src/sip/message";

const enc = new TextEncoder();
const msg = (...lines: string[]) => enc.encode(lines.join("\r\n"));

describe("RFC 4475 valid shapes", () => {
  it("wsinv: tortuous whitespace, folding, case, leading zeros", () => {
    const body =
      "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\n";
    const result = parseSipMessage(
      msg(
        "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0",
        "TO :",
        " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
        'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>',
        "  ;",
        "  tag = 98asjd8",
        "MaX-fOrWaRdS: 0068",
        "Call-ID: wsinv.ndaksdj@192.0.2.1",
        `Content-Length   : ${body.length}`,
        "cseq: 0009",
        "  INVITE",
        "Via  : SIP  /   2.0",
        " /UDP",
        "    192.0.2.2;branch=390skdjuw",
        "s :",
        "NewFangledHeader:   newfangled value",
        " continued newfangled value",
        "UnknownHeaderWithUnusualValue: ;;,,;;,;",
        "Content-Type: application/sdp",
        "Route:",
        " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>",
        "v:  SIP  / 2.0  / TCP     spindle.example.com   ;",
        "  branch  =   z9hG4bK9ikj8  ,",
        " SIP  /    2.0   / UDP  192.168.255.111   ; branch=",
        " z9hG4bK30239",
        'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =',
        "      newvalue ;",
        "  secondparam ; q = 0.33",
        "",
        body,
      ),
    );
    if (!result.ok) throw new Error(result.error.message);
    const { headers } = result.message;
    expect(parseNameAddr(headers.get("To")!)?.params.get("tag")).toBe("1918181833n");
    expect(parseNameAddr(headers.get("From")!)?.displayName).toBe('J Rosenberg \\"');
    expect(parseNameAddr(headers.get("From")!)?.params.get("tag")).toBe("98asjd8");
    expect(headers.getAll("Via").map((v) => parseVia(v)?.params.get("branch"))).toEqual([
      "390skdjuw",
      "z9hG4bK9ikj8",
      "z9hG4bK30239",
    ]);
    expect(headers.get("Subject")).toBe("");
    expect(parseNameAddr(headers.get("Contact")!)?.displayName).toBe('Quoted string ""');
    expect(parseNameAddr(headers.get("Contact")!)?.params.get("q")).toBe("0.33");
  });

  it("intmeth: token characters in method, user part with ? ; / and a password", () => {
    const method = "!interesting-Method0123456789_*+`.%indeed'~";
    const uri =
      "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com";
    const result = parseSipMessage(
      msg(
        `${method} ${uri} SIP/2.0`,
        "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~",
        'To: "BEL:\\\u0007 NUL:\\\u0000 DEL:\\\u007f" <sip:1_unusual.URI~(to-be!sure)&isn\'t+it$/crazy?,/;;*@example.com>',
        "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439\";tag=_token~1'+`*%!-.",
        "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
        `CSeq: 139122385 ${method}`,
        "Max-Forwards: 255",
        "extensionHeader-!.%*+_`'~:\u5927\u505c\u96fb",
        "Content-Length: 0",
        "",
        "",
      ),
    );
    // The RFC's To carries BEL/NUL/DEL as quoted-pairs inside its quoted display name: legal (RFC 3261
    // §25.1 quoted-pair), so the message parses; a raw CTL anywhere else is still refused (parse.test.ts).
    if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
    expect(result.message.kind === "request" && result.message.method).toBe(method);
    expect(parseNameAddr(result.message.headers.get("To")!)?.displayName).toBe(
      "BEL:\u0007 NUL:\u0000 DEL:\u007f",
    );
    expect(result.message.headers.get("extensionHeader-!.%*+_`'~")).toBe("\u5927\u505c\u96fb");
    const uriParsed = parseSipUri(uri);
    expect(uriParsed?.user).toBe("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
    expect(uriParsed?.password).toBe("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
    expect(uriParsed?.host).toBe("example.com");
  });

  it("esc02 / dblreq / noreason / unreason", () => {
    const esc02 = parseSipMessage(
      msg(
        "RE%47IST%45R sip:registrar.example.com SIP/2.0",
        'To: "%Z%45" <sip:resource@example.com>',
        'From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23',
        "Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf",
        "Via: SIP/2.0/TCP host.example.com;rport;branch=z9hG4bK209934",
        "CSeq: 29344 RE%47IST%45R",
        "Max-Forwards: 70",
        "Contact: <sip:alias1@host1.example.com>",
        "C%6Fntact: <sip:alias2@host2.example.com>",
        "Contact: <sip:alias3@host3.example.com>",
        "l: 0",
        "",
        "",
      ),
    );
    expect(esc02.ok && esc02.message.kind === "request" ? esc02.message.method : "fail").toBe("RE%47IST%45R");

    const dblreq = parseSipMessage(
      msg(
        "REGISTER sip:example.com SIP/2.0",
        "To: sip:j.user@example.com",
        "From: sip:j.user@example.com;tag=43251j3j324",
        "Max-Forwards: 8",
        "I: dblreq.0ha0isndaksdj99sdfafnl3lk233412",
        "Contact: sip:j.user@host.example.com",
        "CSeq: 8 REGISTER",
        "Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492",
        "Content-Length: 0",
        "",
        "INVITE sip:joe@example.com SIP/2.0",
        "t: sip:joe@example.com",
        "",
      ),
    );
    expect(dblreq.ok && dblreq.message.body.length).toBe(0);

    const head = [
      "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
      "From: <sip:a@b>;tag=1",
      "To: <sip:c@d>;tag=2",
    ];
    const tail = ["Call-ID: noreason.asndj203insdf99223ndf", "CSeq: 35 INVITE", "Content-Length: 0", "", ""];
    const noreason = parseSipMessage(msg("SIP/2.0 100 ", ...head, ...tail));
    expect(noreason.ok && noreason.message.kind === "response" && noreason.message.reason).toBe("");
    const unreason = parseSipMessage(
      msg(
        "SIP/2.0 200 = 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f\u043d\u043e\u0441\u0442\u043e",
        ...head,
        ...tail,
      ),
    );
    expect(unreason.ok && unreason.message.kind === "response" && unreason.message.reason).toBe(
      "= 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f\u043d\u043e\u0441\u0442\u043e",
    );
  });
});

describe("RFC 4475 invalid shapes", () => {
  const base = [
    "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bK1",
    "To: sip:j.user@example.com",
    "From: sip:caller@example.net;tag=134161461246",
    "Max-Forwards: 7",
    "Call-ID: torture",
    "CSeq: 8 INVITE",
    "Content-Length: 0",
    "",
    "",
  ];
  const replace = (prefix: string, line: string) => base.map((l) => (l.startsWith(prefix) ? line : l));

  it.each([
    [
      "badinv01 (empty Via params)",
      msg("INVITE sip:user@example.com SIP/2.0", ...replace("Via", "Via: SIP/2.0/UDP 192.0.2.15;;,;,,")),
      "bad-via",
    ],
    ["ltgtruri", msg("INVITE <sip:user@example.com> SIP/2.0", ...base), "bad-uri"],
    ["lwsruri", msg("INVITE sip:user@example.com; lr SIP/2.0", ...base), "bad-start-line"],
    ["lwsstart", msg("INVITE  sip:user@example.com  SIP/2.0", ...base), "bad-start-line"],
    ["trws", msg("INVITE sip:user@example.com SIP/2.0 ", ...base), "bad-start-line"],
    ["escruri", msg("INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0", ...base), "bad-uri"],
    ["badvers", msg("INVITE sip:user@example.com SIP/7.0", ...base), "bad-version"],
    ["mismatch01", msg("OPTIONS sip:user@example.com SIP/2.0", ...base), "bad-cseq"],
    [
      "clerr",
      msg("INVITE sip:user@example.com SIP/2.0", ...replace("Content-Length", "Content-Length: 9999")),
      "bad-content-length",
    ],
    [
      "ncl",
      msg("INVITE sip:user@example.com SIP/2.0", ...replace("Content-Length", "Content-Length: -999")),
      "bad-content-length",
    ],
    [
      "scalar02",
      msg("INVITE sip:user@example.com SIP/2.0", ...replace("CSeq", "CSeq: 36893488147419103232 INVITE")),
      "bad-cseq",
    ],
    [
      "quotbal",
      msg(
        "INVITE sip:user@example.com SIP/2.0",
        ...replace("To", 'To: "Mr. J. User <sip:j.user@example.com>'),
      ),
      "bad-header",
    ],
    [
      "badaspec",
      msg(
        "INVITE sip:user@example.com SIP/2.0",
        ...replace("To", 'To: "Watson, Thomas" < sip:t.watson@example.org >'),
      ),
      "bad-header",
    ],
    [
      "regbadct",
      msg(
        "INVITE sip:user@example.com SIP/2.0",
        "Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        ...base,
      ),
      "bad-header",
    ],
    [
      "multi01",
      msg("INVITE sip:user@example.com SIP/2.0", "To: sip:other@example.net", ...base),
      "duplicate-header",
    ],
    ["bigcode", msg("SIP/2.0 4294967301 better not break the receiver", ...base), "bad-start-line"],
  ])("%s → %s", (_name, bytes, code) => {
    const result = parseSipMessage(bytes);
    expect(result.ok ? "ok" : result.error.code).toBe(code);
  });
});
