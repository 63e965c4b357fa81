/**
 * Kamailio from the generated config behaves as the registrar/proxy the SIP tests rely on:
 * 401 + digest for REGISTER, 407 for calls from local users, trusted trunk calls routed without auth
 * (to a registered contact and to a static route), Record-Route on INVITE, SHA-256 challenges.
 */
import { afterAll, describe, expect, it } from "vitest";
import { type KamailioInstance, sipOptionsPing, startKamailio } from "../support/kamailio";
import { assertNothingLeft, stopAllPeers } from "../support/process";
import { describeSippResult, runSipp, startSippServer } from "../support/sipp";

const ALICE = { username: "alice", password: "s3cret" };

describe("startKamailio", () => {
  const instances: KamailioInstance[] = [];
  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.stop()));
    await stopAllPeers();
    assertNothingLeft();
  });

  it("registers with digest auth, challenges locals with 407 and routes trunk calls", async () => {
    const kamailio = await startKamailio({ users: [ALICE], minExpires: 60, maxExpires: 3600 });
    instances.push(kamailio);
    expect(await sipOptionsPing(kamailio.host, kamailio.port)).toBe(true);
    const remote = `${kamailio.host}:${kamailio.port}`;

    const wrong = await runSipp({
      scenario: "uac-register",
      remote,
      service: "alice",
      auth: { username: "alice", password: "wrong" },
      timeoutMs: 5000,
    });
    expect(wrong.exitCode).not.toBe(0);
    await wrong.cleanup();

    // Below min_expires: 423 Interval Too Brief with Min-Expires (after the digest exchange).
    const brief = await runSipp({
      scenario: "uac-register",
      remote,
      service: "alice",
      auth: ALICE,
      templateVars: { EXPIRES: "30" },
      keepTraces: true,
      timeoutMs: 5000,
    });
    expect(brief.messages).toMatch(/SIP\/2\.0 423 [^\r\n]*[\s\S]*Min-Expires: 60/);
    await brief.cleanup();

    // A SIPp UAS plays the registered phone; SIPp registers its address as alice's contact.
    const phone = await startSippServer({ scenario: "uas-answer", calls: 1 });
    const register = await runSipp({
      scenario: "uac-register-contact",
      remote,
      service: "alice",
      auth: ALICE,
      keys: { contact: `sip:alice@${phone.address}` },
    });
    expect(register.exitCode, describeSippResult(register)).toBe(0);
    await kamailio.waitForLog(/registered sip:alice@/);

    // An untrusted caller claiming a local From gets 407 (uac-basic does not answer challenges: it fails).
    const untrusted = await runSipp({
      scenario: "uac-basic",
      remote,
      service: "alice",
      timeoutMs: 5000,
      keepTraces: true,
    });
    expect(untrusted.messages).toMatch(/SIP\/2\.0 407 Proxy Authentication Required/);
    expect(untrusted.messages).toMatch(/Proxy-Authenticate: Digest realm="127\.0\.0\.1".*qop="auth"/);
    await untrusted.cleanup();

    // The trusted trunk (127.0.0.2) reaches the registered phone without auth, record-routed.
    const call = await runSipp({
      scenario: "uac-basic",
      remote,
      service: "alice",
      localIp: "127.0.0.2",
      pauseMs: 100,
    });
    expect(call.exitCode, describeSippResult(call)).toBe(0);
    const answered = await phone.finished();
    expect(answered.exitCode, describeSippResult(answered)).toBe(0);
  });

  it("forwards static routes and challenges with SHA-256 when asked", async () => {
    const pbx = await startSippServer({ scenario: "uas-answer", calls: 1, keepTraces: true });
    const kamailio = await startKamailio({
      users: [ALICE],
      algorithm: "SHA-256",
      staticRoutes: { "5551234": `sip:${pbx.address}` },
    });
    instances.push(kamailio);
    const remote = `${kamailio.host}:${kamailio.port}`;
    const call = await runSipp({
      scenario: "uac-basic",
      remote,
      service: "5551234",
      localIp: "127.0.0.2",
      pauseMs: 100,
    });
    expect(call.exitCode, describeSippResult(call)).toBe(0);
    const received = await pbx.finished();
    expect(received.messages).toMatch(/Record-Route: <sip:127\.0\.0\.1:\d+;lr;ftag=/);
    await received.cleanup();

    const register = await runSipp({
      scenario: "uac-register",
      remote,
      service: "alice",
      auth: ALICE,
      keepTraces: true,
      timeoutMs: 5000,
    });
    expect(register.messages).toMatch(/WWW-Authenticate: Digest .*algorithm=SHA-256/);
    await register.cleanup();
  });
});
