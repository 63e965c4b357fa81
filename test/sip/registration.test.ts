/**
 * The bridge registers on a real Kamailio registrar with digest auth, refreshes, and un-registers on
 * shutdown; a wrong password gives one clear error line and backs off instead of hammering.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type BridgeInstance, startBridge } from "../support/bridge";
import { type KamailioInstance, startKamailio } from "../support/kamailio";

const USER = { username: "1001", password: "s3cret-pass" };
let kamailio: KamailioInstance | undefined;
let bridge: BridgeInstance | undefined;

afterEach(async () => {
  await bridge?.stop();
  await kamailio?.stop();
  bridge = undefined;
  kamailio = undefined;
});

describe("registration against Kamailio", () => {
  it("registers with digest auth (401 → Authorization), refreshes at half the granted expiry, un-registers on SIGTERM", async () => {
    kamailio = await startKamailio({ users: [USER], minExpires: 4, maxExpires: 8, defaultExpires: 8 });
    bridge = await startBridge({
      registrar: `${kamailio.host}:${kamailio.port}`,
      username: USER.username,
      password: USER.password,
      // Asks for 60 s; Kamailio caps at 8 s, so the refresh comes after ~4 s.
      env: { SIP_REGISTER_EXPIRES: "60" },
    });
    const registered = bridge.logs().find((line) => line.msg === "registered")!;
    expect(registered.expiresS).toBe(8);
    expect(bridge.token).toMatch(/^[A-Za-z0-9_-]{22,}$/);
    await bridge.waitForLog("registration refreshed", 10_000);
    // Every REGISTER keeps asking for the configured 60 s, whatever was granted before.
    const code = await bridge.stop();
    expect(code).toBe(0);
    expect(bridge.logs().some((line) => line.msg === "unregistered" && line.status === 200)).toBe(true);
    expect(bridge.logs().some((line) => /registration (rejected|failed)/.test(line.msg))).toBe(false);
  });

  it("says once that the password is wrong and backs off instead of retrying in a loop", async () => {
    kamailio = await startKamailio({ users: [USER] });
    bridge = await startBridge({
      registrar: `${kamailio.host}:${kamailio.port}`,
      username: USER.username,
      password: "wrong-password",
      waitForRegistration: false,
    });
    const line = await bridge.waitForLog(/^registration rejected/, 10_000);
    expect(line.msg).toMatch(
      /^registration rejected: wrong credentials for 1001@127\.0\.0\.1 \(401 after fresh nonce\); retrying in \d+s$/,
    );
    expect(JSON.stringify(bridge.logs())).not.toContain("wrong-password");
    // The first retry is ≥ 24 s away (30 s base, ±20 % jitter): nothing else happens for a while.
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    expect(bridge.logs().filter((l) => /^registration rejected/.test(l.msg))).toHaveLength(1);
    expect(Number(line.retryInMs)).toBeGreaterThanOrEqual(24_000);
    const registers = kamailio.logs().filter((l) => /request REGISTER/.test(l));
    expect(registers.length).toBeLessThanOrEqual(2);
  });
});
