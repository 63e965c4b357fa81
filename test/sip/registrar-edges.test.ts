/**
 * Registrar behaviours Kamailio does not show by default, played by SIPp as the registrar: Asterisk's
 * expires-1 grant, 423 Interval Too Brief, and stale=true on a refresh. Plus Kamailio variants: SHA-256
 * digest, registration over TCP, and SIP trace logging with credentials masked.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type BridgeInstance, startBridge } from "../support/bridge";
import { type KamailioInstance, startKamailio } from "../support/kamailio";
import { describeSippResult, type SippServer, startSippServer } from "../support/sipp";

const USER = { username: "3001", password: "edge-case-pass" };
let bridge: BridgeInstance | undefined;
let registrar: SippServer | undefined;
let kamailio: KamailioInstance | undefined;

afterEach(async () => {
  await bridge?.stop();
  await registrar?.stop();
  await kamailio?.stop();
  bridge = undefined;
  registrar = undefined;
  kamailio = undefined;
});

async function bridgeOn(address: string, env: Record<string, string> = {}, wait = true) {
  return startBridge({ registrar: address, ...USER, domain: "example.test", env, waitForRegistration: wait });
}

describe("registration edge cases (SIPp as registrar)", () => {
  it("honours an expires-1 grant (59) from the Contact and keeps requesting the configured value", async () => {
    registrar = await startSippServer({
      scenario: "reg-401-200",
      calls: 1,
      keys: { user: USER.username, password: USER.password, expires: "59" },
    });
    bridge = await bridgeOn(registrar.address, { SIP_REGISTER_EXPIRES: "60" });
    const registered = bridge.logs().find((l) => l.msg === "registered")!;
    expect(registered.expiresS).toBe(59);
    const result = await registrar.finished(5_000);
    expect(result.exitCode, describeSippResult(result)).toBe(0);
    const expiresHeaders = [...result.messages.matchAll(/^Expires: (\d+)/gm)].map((m) => m[1]);
    expect(new Set(expiresHeaders)).toEqual(new Set(["60"]));
  });

  it("adopts Min-Expires after 423 Interval Too Brief", async () => {
    registrar = await startSippServer({
      scenario: "reg-423",
      calls: 1,
      keys: { min_expires: "3600", expires: "3600" },
    });
    bridge = await bridgeOn(registrar.address, { SIP_REGISTER_EXPIRES: "600" });
    expect(bridge.logs().find((l) => l.msg === "registered")!.expiresS).toBe(3600);
    const result = await registrar.finished(5_000);
    expect(result.exitCode, describeSippResult(result)).toBe(0);
    expect([...result.messages.matchAll(/^Expires: (\d+)/gm)].map((m) => m[1])).toEqual(["600", "3600"]);
  });

  it("retries a refresh challenged with stale=true at once, without calling it a failure", async () => {
    registrar = await startSippServer({
      scenario: "reg-stale",
      calls: 1,
      keys: { user: USER.username, password: USER.password, expires: "4" },
    });
    bridge = await bridgeOn(registrar.address);
    await bridge.waitForLog("registration refreshed", 8_000);
    const result = await registrar.finished(5_000);
    expect(result.exitCode, describeSippResult(result)).toBe(0);
    expect(bridge.logs().some((l) => /^registration (rejected|failed)/.test(l.msg))).toBe(false);
  });
});

describe("registration variants on Kamailio", () => {
  it("registers with a SHA-256 digest challenge", async () => {
    kamailio = await startKamailio({ users: [USER], algorithm: "SHA-256" });
    bridge = await startBridge({ registrar: `${kamailio.host}:${kamailio.port}`, ...USER });
    expect(bridge.token).toBeTruthy();
  });

  it("registers over TCP with a ;transport=tcp Contact", async () => {
    kamailio = await startKamailio({ users: [USER], transport: "tcp" });
    bridge = await startBridge({ registrar: `${kamailio.host}:${kamailio.port}`, ...USER, transport: "tcp" });
    expect(bridge.contact).toMatch(/;transport=tcp$/);
    expect(await bridge.stop()).toBe(0);
    expect(bridge.logs().some((l) => l.msg === "unregistered" && l.status === 200)).toBe(true);
  });

  it("traces full SIP messages at debug level with digest credentials masked", async () => {
    kamailio = await startKamailio({ users: [USER] });
    bridge = await startBridge({
      registrar: `${kamailio.host}:${kamailio.port}`,
      ...USER,
      env: { SIP_TRACE: "true" },
    });
    const traces = bridge.logs().filter((l) => l.msg === "sip message");
    const sent = traces.map((l) => String(l.sip)).filter((text) => text.startsWith("REGISTER"));
    expect(sent.length).toBeGreaterThanOrEqual(2);
    expect(sent.some((text) => /\r\nAuthorization: Digest \*\*\*\r\n/.test(text))).toBe(true);
    const everything = JSON.stringify(bridge.logs());
    expect(everything).not.toContain("response=");
    expect(everything).not.toContain(USER.password);
  });
});
