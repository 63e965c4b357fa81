/**
 * SIP_TRACE=true is enough on its own: at the default LOG_LEVEL=info the real bridge logs every SIP
 * message of its digest registration on Kamailio ("sip message" lines), with the Authorization value
 * masked and the password nowhere in the output; without the switch, nothing is traced.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BridgeInstance, startBridge } from "../support/bridge";
import { type KamailioInstance, startKamailio } from "../support/kamailio";

const TRACED = { username: "2101", password: "trace-test-pass-7d1c" };
const QUIET = { username: "2102", password: "quiet-test-pass-9e4f" };

let kamailio: KamailioInstance;
const bridges: BridgeInstance[] = [];

beforeAll(async () => {
  kamailio = await startKamailio({ users: [TRACED, QUIET] });
});

afterAll(async () => {
  for (const bridge of bridges) await bridge.stop();
  await kamailio?.stop();
});

async function bridgeFor(user: { username: string; password: string }, env: Record<string, string>) {
  const bridge = await startBridge({
    registrar: `${kamailio.host}:${kamailio.port}`,
    host: "127.0.0.3",
    ...user,
    env: { LOG_LEVEL: "info", ...env },
  });
  bridges.push(bridge);
  return bridge;
}

describe("SIP_TRACE", () => {
  it("at LOG_LEVEL=info traces the digest REGISTER exchange, credentials masked", async () => {
    const bridge = await bridgeFor(TRACED, { SIP_TRACE: "true" });
    const traces = bridge.logs().filter((line) => line.msg === "sip message");
    const texts = traces.map((line) => String(line.sip));
    // REGISTER → 401 → REGISTER with credentials → 200, both directions.
    expect(traces.some((line) => line.direction === "out" && /^REGISTER /.test(String(line.sip)))).toBe(true);
    expect(texts.some((text) => /^SIP\/2\.0 401 /.test(text))).toBe(true);
    expect(texts.some((text) => /^SIP\/2\.0 200 /.test(text))).toBe(true);
    const withCredentials = texts.filter((text) => /^Authorization:/im.test(text));
    expect(withCredentials.length).toBeGreaterThan(0);
    for (const text of withCredentials) {
      expect(text).toMatch(/^Authorization: Digest \*\*\*\r?$/m);
      expect(text).not.toMatch(/response=/i);
    }
    expect(bridge.process.stdout.join("\n")).not.toContain(TRACED.password);
    expect(bridge.process.stderr.join("\n")).not.toContain(TRACED.password);
  });

  it("without it, the same registration at LOG_LEVEL=info traces nothing", async () => {
    const bridge = await bridgeFor(QUIET, {});
    expect(bridge.logs().filter((line) => line.msg === "sip message")).toEqual([]);
    expect(bridge.process.stdout.join("\n")).not.toContain(QUIET.password);
  });
});
