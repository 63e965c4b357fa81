import { describe, expect, it } from "vitest";
import {
  createHeaders,
  createRequest,
  createResponse,
  formatNameAddr,
  formatSipUri,
  formatVia,
  generateBranch,
  generateCallId,
  generateTag,
  parseCSeq,
  parseNameAddr,
  parseParams,
  parseSipUri,
  parseVia,
  reasonPhrase,
} from "../../../src/sip/message";

describe("SipHeaders", () => {
  it("is case-insensitive and compact-form aware", () => {
    const headers = createHeaders([
      ["v", "SIP/2.0/UDP a;branch=z9hG4bK1"],
      ["CALL-ID", "x"],
    ]);
    expect(headers.get("Via")).toBe("SIP/2.0/UDP a;branch=z9hG4bK1");
    expect(headers.get("i")).toBe("x");
    expect(headers.has("call-id")).toBe(true);
    expect([...headers.entries()]).toEqual([
      ["Via", "SIP/2.0/UDP a;branch=z9hG4bK1"],
      ["Call-ID", "x"],
    ]);
  });

  it("prepends before existing values, sets, deletes and clones independently", () => {
    const headers = createHeaders([
      ["From", "<sip:a@b>"],
      ["Via", "SIP/2.0/UDP b;branch=z9hG4bK2"],
      ["Via", "SIP/2.0/UDP c;branch=z9hG4bK3"],
    ]);
    headers.prepend("Via", "SIP/2.0/UDP a;branch=z9hG4bK1");
    expect(headers.getAll("Via").map((v) => parseVia(v)?.host)).toEqual(["a", "b", "c"]);
    const copy = headers.clone();
    headers.set("Via", "SIP/2.0/UDP z;branch=z9hG4bK9");
    expect(headers.getAll("Via")).toEqual(["SIP/2.0/UDP z;branch=z9hG4bK9"]);
    expect(copy.getAll("Via")).toHaveLength(3);
    headers.delete("v");
    expect(headers.has("Via")).toBe(false);
    expect([...headers.entries()]).toEqual([["From", "<sip:a@b>"]]);
  });

  it("splits list headers respecting quotes and brackets, but never auth headers", () => {
    const headers = createHeaders([
      ["Contact", '"Doe, John" <sip:j@h;x=a,b>;expires=60, <sip:k@h>'],
      ["WWW-Authenticate", 'Digest realm="r", nonce="n"'],
    ]);
    expect(headers.getAll("Contact")).toEqual(['"Doe, John" <sip:j@h;x=a,b>;expires=60', "<sip:k@h>"]);
    expect(headers.getAll("WWW-Authenticate")).toEqual(['Digest realm="r", nonce="n"']);
  });
});

describe("URIs", () => {
  it("parses user, password, host, port, params and headers", () => {
    const uri = parseSipUri("sip:alice:secret@Example.com:5070;transport=TCP;lr?subject=hi&priority=urgent");
    expect(uri).toMatchObject({
      scheme: "sip",
      user: "alice",
      password: "secret",
      host: "Example.com",
      port: 5070,
    });
    expect(uri?.params.get("transport")).toBe("TCP");
    expect(uri?.params.get("lr")).toBe("");
    expect(uri?.headers.get("subject")).toBe("hi");
    expect(formatSipUri(uri!)).toBe(
      "sip:alice:secret@Example.com:5070;transport=TCP;lr?subject=hi&priority=urgent",
    );
  });

  it("handles IPv6 references, sips and tel", () => {
    expect(parseSipUri("sips:[2001:db8::10]:5061")).toMatchObject({ host: "[2001:db8::10]", port: 5061 });
    expect(parseSipUri("sip:[2001:db8::10]")).toMatchObject({ host: "[2001:db8::10]" });
    expect(parseSipUri("tel:+15551234567;phone-context=x")).toMatchObject({
      scheme: "tel",
      host: "+15551234567",
    });
  });

  it("rejects malformed URIs", () => {
    for (const bad of [
      "",
      "http://x",
      "sip:",
      "sip:a@",
      "sip:host:99999",
      "sip:[::1",
      "sip:a b@c",
      "sip:@host",
    ]) {
      expect(parseSipUri(bad), bad).toBeUndefined();
    }
  });
});

describe("name-addr", () => {
  it("parses quoted display names with escapes", () => {
    const parsed = parseNameAddr('"Bob \\"the\\" <Builder>" <sip:bob@b.example>;tag=xyz');
    expect(parsed?.displayName).toBe('Bob "the" <Builder>');
    expect(parsed?.uri.user).toBe("bob");
    expect(parsed?.params.get("tag")).toBe("xyz");
    expect(parseNameAddr(formatNameAddr(parsed!))).toEqual(parsed);
  });

  it("parses unquoted display names and bare addr-specs", () => {
    expect(parseNameAddr("Alice Smith <sip:alice@a>")?.displayName).toBe("Alice Smith");
    const bare = parseNameAddr("sip:alice@a.example;tag=88");
    expect(bare?.uri.params.size).toBe(0);
    expect(bare?.params.get("tag")).toBe("88");
    const bracketed = parseNameAddr("<sip:alice@a.example;transport=udp>;tag=88");
    expect(bracketed?.uri.params.get("transport")).toBe("udp");
    expect(bracketed?.params.get("tag")).toBe("88");
  });

  it("keeps quoted param values as written", () => {
    const contact = parseNameAddr('<sip:b@h>;+sip.instance="<urn:uuid:1>";expires=60');
    expect(contact?.params.get("+sip.instance")).toBe('"<urn:uuid:1>"');
    expect(formatNameAddr(contact!)).toBe('<sip:b@h>;+sip.instance="<urn:uuid:1>";expires=60');
  });

  it("rejects malformed values", () => {
    for (const bad of ["*", '"unterminated <sip:a@b>', "<sip:a@b", "Name sip:a@b", "<sip:a@b> junk"]) {
      expect(parseNameAddr(bad), bad).toBeUndefined();
    }
  });
});

describe("Via, CSeq, params", () => {
  it("parses Via with LWS, IPv6 and flags", () => {
    const via = parseVia("SIP / 2.0 / udp [2001:db8::1]:5060 ;branch=z9hG4bKx;rport;received=1.2.3.4");
    expect(via).toMatchObject({ transport: "UDP", host: "[2001:db8::1]", port: 5060 });
    expect(via?.params.get("rport")).toBe("");
    expect(formatVia(via!)).toBe("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKx;rport;received=1.2.3.4");
    expect(parseVia("SIP/2.0 UDP host")).toBeUndefined();
    expect(parseVia("SIP/2.0/UDP")).toBeUndefined();
  });

  it("parses CSeq within 2^31", () => {
    expect(parseCSeq("101 INVITE")).toEqual({ seq: 101, method: "INVITE" });
    expect(parseCSeq("2147483648 INVITE")).toBeUndefined();
    expect(parseCSeq("-1 INVITE")).toBeUndefined();
    expect(parseCSeq("1")).toBeUndefined();
  });

  it("parses params with flags and lower-cased keys", () => {
    expect([...parseParams(";Tag=AbC;lr;q=0.5")]).toEqual([
      ["tag", "AbC"],
      ["lr", ""],
      ["q", "0.5"],
    ]);
  });

  it("generates identifiers with enough randomness", () => {
    const branches = new Set(Array.from({ length: 100 }, generateBranch));
    expect(branches.size).toBe(100);
    for (const branch of branches) expect(branch).toMatch(/^z9hG4bK[A-Za-z0-9_-]{16,}$/);
    expect(generateTag()).toMatch(/^[0-9a-f]{16}$/);
    expect(generateCallId()).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe("builders", () => {
  const request = createRequest("INVITE", "sip:bridge@10.0.0.2", [
    ["Via", "SIP/2.0/UDP p1;branch=z9hG4bK1"],
    ["Via", "SIP/2.0/UDP p2;branch=z9hG4bK2"],
    ["From", "<sip:a@b>;tag=from1"],
    ["To", "<sip:bridge@10.0.0.2>"],
    ["Call-ID", "cid"],
    ["CSeq", "7 INVITE"],
    ["Contact", "<sip:a@10.0.0.1>"],
  ]);

  it("createResponse copies Via, From, To, Call-ID, CSeq and adds a To tag only when asked", () => {
    const trying = createResponse(request, 100);
    expect(trying.reason).toBe("Trying");
    expect([...trying.headers.entries()]).toEqual([
      ["Via", "SIP/2.0/UDP p1;branch=z9hG4bK1"],
      ["Via", "SIP/2.0/UDP p2;branch=z9hG4bK2"],
      ["From", "<sip:a@b>;tag=from1"],
      ["To", "<sip:bridge@10.0.0.2>"],
      ["Call-ID", "cid"],
      ["CSeq", "7 INVITE"],
    ]);
    const ok = createResponse(request, 200, undefined, [["Contact", "<sip:bridge@10.0.0.2>"]], {
      toTag: "t1",
    });
    expect(ok.headers.get("To")).toBe("<sip:bridge@10.0.0.2>;tag=t1");
    expect(ok.headers.get("Contact")).toBe("<sip:bridge@10.0.0.2>");
    const ringing = createResponse(request, 180, "Ringing", { toTag: "t1", headers: [["Allow", "INVITE"]] });
    expect(ringing.headers.get("To")).toBe("<sip:bridge@10.0.0.2>;tag=t1");
    expect(ringing.headers.get("Allow")).toBe("INVITE");
  });

  it("does not add a second To tag", () => {
    const inDialog = createRequest("BYE", "sip:x@y", [["To", "<sip:a@b>;tag=existing"]]);
    expect(createResponse(inDialog, 200, "OK", { toTag: "new" }).headers.get("To")).toBe(
      "<sip:a@b>;tag=existing",
    );
  });

  it("knows reason phrases", () => {
    expect(reasonPhrase(488)).toBe("Not Acceptable Here");
    expect(reasonPhrase(481)).toBe("Call/Transaction Does Not Exist");
    expect(reasonPhrase(499)).toBe("Client Error");
  });
});
