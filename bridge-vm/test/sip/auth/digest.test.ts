import { describe, expect, it } from "vitest";
import {
  buildAuthorization,
  chooseChallenge,
  type DigestChallenge,
  DigestClient,
  parseChallenge,
} from "../../../src/sip/auth";
import { createRequest, createResponse, type SipRequest } from "../../../src/sip/message";

function responseParam(header: string): string | undefined {
  return /response="([0-9a-f]+)"/.exec(header)?.[1];
}

function param(header: string, name: string): string | undefined {
  return new RegExp(`[ ,]${name}=("?)([^",]*)\\1`).exec(header)?.[2];
}

describe("known digest vectors", () => {
  it("RFC 2617 §3.5 (MD5, qop=auth)", () => {
    const challenge = parseChallenge(
      'Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
    )!;
    const header = buildAuthorization({
      challenge,
      method: "GET",
      uri: "/dir/index.html",
      username: "Mufasa",
      password: "Circle Of Life",
      nc: 1,
      cnonce: "0a4f113b",
    });
    expect(responseParam(header)).toBe("6629fae49393a05397450978507c4ef1");
    expect(header).toContain('opaque="5ccc069c403ebaf9f0171e9517f40e41"');
    expect(header).toContain("qop=auth, nc=00000001");
    expect(header).toContain('cnonce="0a4f113b"');
  });

  const rfc7616 = (algorithm: string): DigestChallenge =>
    parseChallenge(
      `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=${algorithm}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
    )!;
  const rfc7616Input = {
    method: "GET",
    uri: "/dir/index.html",
    username: "Mufasa",
    password: "Circle of Life",
    nc: 1,
    cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
  };

  it("RFC 7616 §3.9.1 MD5", () => {
    const header = buildAuthorization({ challenge: rfc7616("MD5"), ...rfc7616Input });
    expect(responseParam(header)).toBe("8ca523f5e9506fed4657c9700eebdbec");
    expect(param(header, "algorithm")).toBe("MD5");
  });

  it("RFC 7616 §3.9.1 SHA-256", () => {
    const header = buildAuthorization({ challenge: rfc7616("SHA-256"), ...rfc7616Input });
    expect(responseParam(header)).toBe("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
    expect(param(header, "algorithm")).toBe("SHA-256");
    expect(param(header, "opaque")).toBe("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS");
  });

  it("legacy RFC 2069 §2.4 form when the challenge has no qop (errata 749 corrected value)", () => {
    const challenge = parseChallenge(
      'Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"',
    )!;
    const header = buildAuthorization({
      challenge,
      method: "GET",
      uri: "/dir/index.html",
      username: "Mufasa",
      password: "CircleOfLife",
      nc: 1,
    });
    // MD5(MD5(A1):nonce:MD5(A2)); no qop, nc or cnonce may appear.
    expect(responseParam(header)).toBe("1949323746fe6a43ef61f9606e7febea");
    expect(header).not.toMatch(/qop|nc=|cnonce/);
  });

  it("SHA-512-256 and -sess variants produce hex of the right width", () => {
    const sha512 = buildAuthorization({ challenge: rfc7616("SHA-512-256"), ...rfc7616Input });
    expect(responseParam(sha512)).toMatch(/^[0-9a-f]{64}$/);
    const sess = buildAuthorization({ challenge: rfc7616("MD5-sess"), ...rfc7616Input });
    expect(responseParam(sess)).toMatch(/^[0-9a-f]{32}$/);
    expect(responseParam(sess)).not.toBe("8ca523f5e9506fed4657c9700eebdbec");
  });

  it("qop=auth-int hashes the body", () => {
    const challenge = parseChallenge('Digest realm="r", nonce="n", qop="auth-int"')!;
    const base = {
      challenge,
      method: "INVITE",
      uri: "sip:x@y",
      username: "u",
      password: "p",
      nc: 1,
      cnonce: "c",
    };
    const a = buildAuthorization({ ...base, body: new TextEncoder().encode("v=0\r\n") });
    const b = buildAuthorization({ ...base, body: new TextEncoder().encode("v=1\r\n") });
    expect(a).toContain("qop=auth-int");
    expect(responseParam(a)).not.toBe(responseParam(b));
  });

  it("escapes quotes and backslashes in quoted values", () => {
    const challenge = parseChallenge('Digest realm="a \\"b\\" c", nonce="n"')!;
    expect(challenge.realm).toBe('a "b" c');
    const header = buildAuthorization({
      challenge,
      method: "REGISTER",
      uri: "sip:h",
      username: 'x"y',
      password: "p",
      nc: 1,
    });
    expect(header).toContain('username="x\\"y"');
    expect(header).toContain('realm="a \\"b\\" c"');
  });
});

describe("parseChallenge / chooseChallenge", () => {
  it("parses Asterisk- and Kamailio-shaped challenges", () => {
    expect(
      parseChallenge(
        'Digest realm="asterisk",nonce="1700000000/0123456789abcdef",opaque="66f7",algorithm=md5,qop="auth",stale=TRUE',
      ),
    ).toEqual({
      scheme: "Digest",
      realm: "asterisk",
      nonce: "1700000000/0123456789abcdef",
      opaque: "66f7",
      algorithm: "MD5",
      qop: ["auth"],
      stale: true,
    });
    const kamailio = parseChallenge(
      'Digest realm="10.0.0.5", nonce="ZX1a", qop="auth", domain="sip:10.0.0.5"',
    );
    expect(kamailio).toMatchObject({ algorithm: "MD5", stale: false, domain: "sip:10.0.0.5" });
  });

  it("rejects other schemes, unknown algorithms and missing nonce", () => {
    expect(parseChallenge('Basic realm="x"')).toBeUndefined();
    expect(parseChallenge('Digest realm="x", nonce="n", algorithm=AKAv1-MD5')).toBeUndefined();
    expect(parseChallenge('Digest realm="x"')).toBeUndefined();
    expect(parseChallenge("")).toBeUndefined();
  });

  it("picks the strongest algorithm regardless of order", () => {
    const list = ["MD5", "SHA-512-256", "SHA-256"].map(
      (alg) => parseChallenge(`Digest realm="r", nonce="n", algorithm=${alg}, qop="auth"`)!,
    );
    expect(chooseChallenge(list)?.algorithm).toBe("SHA-512-256");
    expect(chooseChallenge(list.slice(2).concat(list[0]!))?.algorithm).toBe("SHA-256");
    expect(chooseChallenge([])).toBeUndefined();
  });
});

describe("DigestClient", () => {
  const register = (authorization?: string): SipRequest =>
    createRequest("REGISTER", "sip:pbx.example", [
      ["Via", "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK1"],
      ["From", "<sip:bridge@pbx.example>;tag=1"],
      ["To", "<sip:bridge@pbx.example>"],
      ["Call-ID", "reg"],
      ["CSeq", "1 REGISTER"],
      ...(authorization ? ([["Authorization", authorization]] as Array<[string, string]>) : []),
    ]);
  const challengeResponse = (request: SipRequest, status: 401 | 407, ...challenges: string[]) =>
    createResponse(
      request,
      status,
      undefined,
      challenges.map(
        (c) => [status === 401 ? "WWW-Authenticate" : "Proxy-Authenticate", c] as [string, string],
      ),
    );

  it("retries a first 401 with the strongest challenge, then refuses the same nonce again", () => {
    const client = new DigestClient({ username: "bridge", password: "s3cret-pw" }, { cnonce: () => "cn" });
    const first = register();
    const decision = client.respondToChallenge(
      challengeResponse(
        first,
        401,
        'Digest realm="asterisk",nonce="N1",algorithm=SHA-256,qop="auth"',
        'Digest realm="asterisk",nonce="N1",algorithm=MD5,qop="auth"',
      ),
      first,
    );
    if (decision.action !== "retry") throw new Error(decision.reason);
    expect(decision.headerName).toBe("Authorization");
    expect(decision.stale).toBe(false);
    expect(decision.headerValue).toContain("algorithm=SHA-256");
    expect(decision.headerValue).toContain("nc=00000001");
    expect(decision.headerValue).not.toContain("s3cret-pw");

    const second = register(decision.headerValue);
    const again = client.respondToChallenge(
      challengeResponse(second, 401, 'Digest realm="asterisk",nonce="N1",algorithm=SHA-256,qop="auth"'),
      second,
    );
    expect(again).toEqual({ action: "fail", reason: "credentials-rejected" });
  });

  it("retries at once on stale=true and says it is not a failure", () => {
    const client = new DigestClient({ username: "bridge", password: "pw" }, { cnonce: () => "cn" });
    const sent = register(
      'Digest username="bridge", realm="asterisk", nonce="OLD", uri="sip:pbx.example", response="x"',
    );
    const decision = client.respondToChallenge(
      challengeResponse(sent, 401, 'Digest realm="asterisk",nonce="NEW",qop="auth",stale=true'),
      sent,
    );
    expect(decision).toMatchObject({ action: "retry", stale: true });
  });

  it("treats a fresh nonce after a just-answered challenge (Kamailio, wrong password) as rejected", () => {
    const client = new DigestClient({ username: "bridge", password: "wrong" }, { cnonce: () => "cn" });
    const first = register();
    const decision = client.respondToChallenge(
      challengeResponse(first, 401, 'Digest realm="k", nonce="N1", qop="auth"'),
      first,
    );
    if (decision.action !== "retry") throw new Error(decision.reason);
    const second = register(decision.headerValue);
    expect(
      client.respondToChallenge(
        challengeResponse(second, 401, 'Digest realm="k", nonce="N2", qop="auth"'),
        second,
      ),
    ).toEqual({ action: "fail", reason: "credentials-rejected" });
  });

  it("retries once when a cached nonce used pre-emptively is refused without stale", () => {
    const client = new DigestClient({ username: "bridge", password: "pw" }, { cnonce: () => "cn" });
    const first = register();
    client.respondToChallenge(
      challengeResponse(first, 401, 'Digest realm="k", nonce="N1", qop="auth"'),
      first,
    );
    client.succeeded();
    const refresh = register(client.authorize("REGISTER", "sip:pbx.example")?.headerValue);
    const decision = client.respondToChallenge(
      challengeResponse(refresh, 401, 'Digest realm="k", nonce="N2", qop="auth"'),
      refresh,
    );
    expect(decision).toMatchObject({ action: "retry", stale: false });
  });

  it("uses Proxy-Authorization for 407 and counts nonce uses for pre-emptive refreshes", () => {
    const client = new DigestClient({ username: "bridge", password: "pw" }, { cnonce: () => "cn" });
    const invite = register();
    const decision = client.respondToChallenge(
      challengeResponse(invite, 407, 'Digest realm="kamailio", nonce="K1", qop="auth"'),
      invite,
    );
    expect(decision).toMatchObject({ action: "retry", headerName: "Proxy-Authorization" });
    const next = client.authorize("REGISTER", "sip:pbx.example");
    expect(next?.headerName).toBe("Proxy-Authorization");
    expect(next?.headerValue).toContain("nc=00000002");
  });

  it("fails when nothing is answerable, and stops a server that never accepts", () => {
    const client = new DigestClient({ username: "u", password: "p" }, { maxConsecutiveChallenges: 2 });
    const request = register();
    expect(client.respondToChallenge(challengeResponse(request, 401, 'Basic realm="x"'), request)).toEqual({
      action: "fail",
      reason: "no-supported-challenge",
    });
    for (const nonce of ["a", "b"]) {
      const r = client.respondToChallenge(
        challengeResponse(request, 401, `Digest realm="r", nonce="${nonce}"`),
        request,
      );
      expect(r.action).toBe("retry");
    }
    expect(
      client.respondToChallenge(challengeResponse(request, 401, 'Digest realm="r", nonce="c"'), request),
    ).toEqual({
      action: "fail",
      reason: "too-many-attempts",
    });
    client.succeeded();
    expect(
      client.respondToChallenge(challengeResponse(request, 401, 'Digest realm="r", nonce="d"'), request)
        .action,
    ).toBe("retry");
  });
});
