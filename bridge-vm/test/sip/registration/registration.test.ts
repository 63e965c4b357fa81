import { describe, expect, it } from "vitest";
import { createResponse } from "../../../src/sip/message";
import type { SipRequest } from "../../../src/sip/message/types";
import { backoffDelayMs, grantedExpires, refreshDelayMs } from "../../../src/sip/registration/expiry";
import { type BackoffPolicy, Registration } from "../../../src/sip/registration/registration";
import { ManualClock } from "../../../src/sip/transaction/clock";
import { TransactionLayer } from "../../../src/sip/transaction/layer";
import { captureLogger, FakeTransport, flush } from "../transaction/fake-transport";
import { parse } from "../transaction/helpers";

const TOKEN = "tok3nTOKENtok3nTOKENxx";
const BACKOFF: BackoffPolicy = {
  errorBaseMs: 2_000,
  errorMaxMs: 60_000,
  authBaseMs: 30_000,
  authMaxMs: 600_000,
};

function setup(requestedExpiresS = 600, onAddressLearned?: (address: string, port: number) => boolean) {
  const clock = new ManualClock();
  const transport = new FakeTransport();
  const { logger, lines } = captureLogger();
  const layer = new TransactionLayer({
    transports: [transport],
    clock,
    logger,
    sentBy: () => "192.0.2.10:5060",
  });
  layer.setUser({ onRequest: () => undefined, onStrayResponse: () => undefined });
  const failures: number[] = [];
  const registration = new Registration({
    layer,
    clock,
    logger,
    registrar: { protocol: "udp", address: "192.0.2.1", port: 5060 },
    domain: "pbx.example",
    username: "1001",
    authUsername: "1001",
    password: "hunter2",
    contactUser: TOKEN,
    contactUri: () => `sip:${TOKEN}@192.0.2.10:5060`,
    requestedExpiresS,
    backoff: BACKOFF,
    random: () => 0.5,
    ...(onAddressLearned ? { onAddressLearned } : {}),
  });
  registration.on("failed", (info) => failures.push(info.retryInMs));
  return { clock, transport, registration, lines, failures };
}

function lastRegister(transport: FakeTransport): SipRequest {
  const all = transport.requests("REGISTER");
  return all[all.length - 1]!;
}

function challenge(
  request: SipRequest,
  options: { nonce?: string; stale?: boolean; status?: 401 | 407 } = {},
) {
  const status = options.status ?? 401;
  const header = status === 401 ? "WWW-Authenticate" : "Proxy-Authenticate";
  const stale = options.stale ? ", stale=true" : "";
  return createResponse(request, status, undefined, [
    [
      header,
      `Digest realm="pbx.example", nonce="${options.nonce ?? "n1"}", qop="auth", algorithm=MD5${stale}`,
    ],
  ]);
}

function ok(request: SipRequest, contactExpires?: number, expiresHeader?: number) {
  const headers: Array<[string, string]> = [];
  const contact = `<sip:${TOKEN}@192.0.2.10:5060>${contactExpires === undefined ? "" : `;expires=${contactExpires}`}`;
  headers.push(["Contact", contact]);
  if (expiresHeader !== undefined) headers.push(["Expires", String(expiresHeader)]);
  return createResponse(request, 200, undefined, headers, { toTag: "reg" });
}

async function answer(transport: FakeTransport, response: ReturnType<typeof ok>) {
  transport.deliver(response);
  await flush();
}

describe("registration rules", () => {
  const register = parse(
    "REGISTER sip:x SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@x>;tag=1\nTo: <sip:a@x>\nCall-ID: c\nCSeq: 1 REGISTER\nContent-Length: 0\n\n",
  ) as SipRequest;

  it("takes the expiry from our Contact's expires param, else the Expires header, else what we asked", () => {
    expect(grantedExpires(ok(register, 59, 3600), TOKEN, 600)).toBe(59);
    expect(grantedExpires(ok(register, undefined, 120), TOKEN, 600)).toBe(120);
    expect(grantedExpires(ok(register), TOKEN, 600)).toBe(600);
    const otherContact = createResponse(register, 200, undefined, [
      ["Contact", "<sip:someone-else@192.0.2.99>;expires=30"],
      ["Expires", "300"],
    ]);
    expect(grantedExpires(otherContact, TOKEN, 600)).toBe(300);
  });

  it("refreshes at about half the granted time", () => {
    expect(refreshDelayMs(600)).toBe(300_000);
    expect(refreshDelayMs(59)).toBe(29_500);
    expect(refreshDelayMs(8)).toBe(3_000);
    expect(refreshDelayMs(1)).toBe(1_000);
  });

  it("backs off exponentially with a cap", () => {
    const mid = () => 0.5;
    expect([1, 2, 3, 4, 10].map((n) => backoffDelayMs(n, 2000, 60_000, mid))).toEqual([
      2000, 4000, 8000, 16000, 60000,
    ]);
    expect(backoffDelayMs(1, 2000, 60_000, () => 0)).toBe(1600);
    expect(backoffDelayMs(1, 2000, 60_000, () => 1)).toBe(2400);
  });
});

describe("Registration", () => {
  it("answers a 401 with Authorization (new branch, CSeq+1), then refreshes at half the granted expiry", async () => {
    const { clock, transport, registration, lines } = setup();
    registration.start();
    await flush();
    const first = lastRegister(transport);
    expect(first.uri).toBe("sip:pbx.example");
    expect(first.headers.get("Contact")).toBe(`<sip:${TOKEN}@192.0.2.10:5060>`);
    expect(first.headers.get("Expires")).toBe("600");
    expect(first.headers.get("Via")).toMatch(/;rport;branch=z9hG4bK/);
    await answer(transport, challenge(first));
    const second = lastRegister(transport);
    expect(second.headers.get("Authorization")).toMatch(/^Digest username="1001", realm="pbx.example"/);
    expect(second.headers.get("Authorization")).toMatch(/nc=00000001/);
    expect(second.headers.get("CSeq")).toBe("2 REGISTER");
    expect(second.headers.get("Call-ID")).toBe(first.headers.get("Call-ID"));
    expect(second.headers.get("Via")).not.toBe(first.headers.get("Via"));
    // Asterisk grants expires-1 (59 for 60); we must not shrink our next request to 59.
    await answer(transport, ok(second, 59));
    expect(registration.state).toBe("registered");
    expect(lines.filter((l) => l.msg === "registered")).toHaveLength(1);
    clock.advance(29_499);
    await flush();
    expect(transport.requests("REGISTER")).toHaveLength(2);
    clock.advance(1);
    await flush();
    const refresh = lastRegister(transport);
    expect(refresh.headers.get("Expires")).toBe("600");
    // Pre-emptive credentials from the cached challenge, with the nonce count moved on.
    expect(refresh.headers.get("Authorization")).toMatch(/nc=00000002/);
    expect(JSON.stringify(lines)).not.toContain("hunter2");
  });

  it("retries at once on stale=true and does not count it as a failure", async () => {
    const { clock, transport, registration, failures } = setup();
    registration.start();
    await flush();
    await answer(transport, challenge(lastRegister(transport)));
    await answer(transport, ok(lastRegister(transport), 60));
    clock.advance(30_000);
    await flush();
    await answer(transport, challenge(lastRegister(transport), { nonce: "n2", stale: true }));
    const retried = lastRegister(transport);
    expect(retried.headers.get("Authorization")).toContain('nonce="n2"');
    await answer(transport, ok(retried, 60));
    expect(registration.state).toBe("registered");
    expect(failures).toEqual([]);
    expect(registration.failures).toBe(0);
  });

  it("treats a second non-stale challenge after a fresh nonce as wrong credentials: one error line, slow backoff", async () => {
    const { clock, transport, registration, lines, failures } = setup();
    registration.start();
    await flush();
    await answer(transport, challenge(lastRegister(transport), { nonce: "n1" }));
    await answer(transport, challenge(lastRegister(transport), { nonce: "n2" }));
    expect(transport.requests("REGISTER")).toHaveLength(2);
    const errors = lines.filter((l) => l.level >= 50);
    expect(errors.map((l) => l.msg)).toEqual([
      "registration rejected: wrong credentials for 1001@pbx.example (401 after fresh nonce); retrying in 30s",
    ]);
    expect(failures).toEqual([30_000]);
    clock.advance(29_999);
    await flush();
    expect(transport.requests("REGISTER")).toHaveLength(2);
    clock.advance(1);
    await flush();
    expect(transport.requests("REGISTER")).toHaveLength(3);
    // Still wrong: the next wait doubles.
    await answer(transport, challenge(lastRegister(transport), { nonce: "n3" }));
    await answer(transport, challenge(lastRegister(transport), { nonce: "n4" }));
    expect(failures).toEqual([30_000, 60_000]);
  });

  it("handles 407 like 401 (Proxy-Authorization) and 403 as rejected credentials", async () => {
    const { transport, registration, failures } = setup();
    registration.start();
    await flush();
    await answer(transport, challenge(lastRegister(transport), { status: 407 }));
    expect(lastRegister(transport).headers.get("Proxy-Authorization")).toMatch(/^Digest /);
    await answer(transport, createResponse(lastRegister(transport), 403, undefined, { toTag: "x" }));
    expect(failures).toEqual([30_000]);
  });

  it("adopts Min-Expires from a 423 and retries at once", async () => {
    const { transport, registration } = setup(60);
    registration.start();
    await flush();
    await answer(
      transport,
      createResponse(lastRegister(transport), 423, undefined, [["Min-Expires", "3600"]], { toTag: "x" }),
    );
    expect(lastRegister(transport).headers.get("Expires")).toBe("3600");
    await answer(transport, ok(lastRegister(transport), 3600));
    expect(registration.grantedS).toBe(3600);
  });

  it("backs off after timeouts (Timer F) and retries", async () => {
    const { clock, transport, registration, failures } = setup();
    registration.start();
    await flush();
    clock.advance(32_000); // Timer F
    await flush();
    expect(failures).toEqual([2_000]);
    expect(registration.state).toBe("waiting-retry");
    const before = transport.requests("REGISTER").length;
    clock.advance(2_000);
    await flush();
    expect(transport.requests("REGISTER").length).toBe(before + 1);
  });

  it("backs off after a transport error", async () => {
    const { transport, registration, failures, lines } = setup();
    transport.failSends = true;
    registration.start();
    await flush();
    expect(failures).toEqual([2_000]);
    expect(lines.some((l) => /cannot reach registrar 192\.0\.2\.1:5060 \(ECONNREFUSED\)/.test(l.msg))).toBe(
      true,
    );
  });

  it("un-registers with Expires: 0 on stop, answering a challenge", async () => {
    const { transport, registration } = setup();
    registration.start();
    await flush();
    await answer(transport, challenge(lastRegister(transport)));
    await answer(transport, ok(lastRegister(transport), 600));
    const stopping = registration.stop();
    await flush();
    const unregister = lastRegister(transport);
    expect(unregister.headers.get("Expires")).toBe("0");
    await answer(transport, challenge(unregister, { nonce: "n9", stale: true }));
    const retry = lastRegister(transport);
    expect(retry.headers.get("Expires")).toBe("0");
    await answer(transport, ok(retry));
    await stopping;
    expect(registration.state).toBe("stopped");
  });

  it("re-registers at once when the registrar sees us at another address (Via received/rport)", async () => {
    let learned: string | undefined;
    const { clock, transport, registration } = setup(600, (address, port) => {
      const changed = learned === undefined;
      learned = `${address}:${port}`;
      return changed;
    });
    registration.start();
    await flush();
    const first = lastRegister(transport);
    const response = ok(first, 600);
    const via = response.headers.get("Via")!;
    response.headers.set("Via", `${via.replace(";rport", "")};received=203.0.113.7;rport=40000`);
    await answer(transport, response);
    expect(learned).toBe("203.0.113.7:40000");
    clock.advance(0);
    await flush();
    expect(transport.requests("REGISTER")).toHaveLength(2);
    await answer(transport, ok(lastRegister(transport), 600));
    expect(registration.state).toBe("registered");
  });
});
