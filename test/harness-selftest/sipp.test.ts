/** SIPp scenarios run against SIPp itself: proves the runner, the stats parsing and the scenario files. */
import { createSocket } from "node:dgram";
import { readdirSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { dominantFrequency, goertzelPower } from "../support/audio";
import { assertNothingLeft, stopAllPeers } from "../support/process";
import { RtpPeer } from "../support/rtp-peer";
import {
  describeSippResult,
  PCAPS,
  pcapVars,
  runSipp,
  SIPP_SCENARIO_DIR,
  startSippServer,
} from "../support/sipp";

describe("runSipp / startSippServer", () => {
  afterAll(async () => {
    await stopAllPeers();
    assertNothingLeft();
  });

  it("uac-basic completes a call against SIPp's built-in UAS", async () => {
    const uas = await startSippServer({ scenario: { builtin: "uas" }, calls: 2 });
    const result = await runSipp({ scenario: "uac-basic", remote: uas.address, calls: 2, pauseMs: 100 });
    expect(result.exitCode, describeSippResult(result)).toBe(0);
    expect(result.stats?.successfulCalls).toBe(2);
    const server = await uas.finished();
    expect(server.exitCode, describeSippResult(server)).toBe(0);
  });

  it("uac-cancel sends CANCEL and a non-2xx ACK on the INVITE's branch", async () => {
    const uas = await startSippServer({ scenario: "uas-ring-cancel", calls: 1 });
    const result = await runSipp({ scenario: "uac-cancel", remote: uas.address, keepTraces: true });
    expect(result.exitCode, describeSippResult(result)).toBe(0);
    const branches = [
      ...result.messages.matchAll(/^(INVITE|CANCEL|ACK) [^\n]*\nVia: [^\n]*branch=([^;\s]+)/gm),
    ];
    expect(branches.map((match) => match[1])).toEqual(["INVITE", "CANCEL", "ACK"]);
    expect(new Set(branches.map((match) => match[2])).size).toBe(1);
    await result.cleanup();
    expect((await uas.finished()).exitCode).toBe(0);
  });

  it("uac-dtmf-rtp plays the tone and DTMF pcaps to the answerer's RTP port", async () => {
    const peer = await RtpPeer.start();
    try {
      const uas = await startSippServer({
        scenario: "uas-answer-extmedia",
        calls: 1,
        keys: { rtp_port: String(peer.port) },
      });
      const result = await runSipp({
        scenario: "uac-dtmf-rtp",
        remote: uas.address,
        templateVars: pcapVars(PCAPS.tone1k, PCAPS.dtmf123, 200),
        timeoutMs: 15_000,
      });
      expect(result.exitCode, describeSippResult(result)).toBe(0);
      const audio = peer.receivedAudio();
      expect(audio.length).toBeGreaterThan(8000 * 1.5);
      expect(dominantFrequency(audio.subarray(0, 8000))).toBeCloseTo(1000, -1);
      expect(goertzelPower(audio.subarray(0, 8000), 1000)).toBeGreaterThan(0.2);
      expect(peer.receivedDigits().map((digit) => digit.digit)).toEqual(["1", "2", "3"]);
      expect(peer.receivedDigits().every((digit) => digit.ended && digit.durationMs === 100)).toBe(true);
      expect((await uas.finished()).exitCode).toBe(0);
    } finally {
      await peer.close();
    }
  });

  it("registrar scenario reg-401-200 verifies SIPp's own digest (uac-register)", async () => {
    const registrar = await startSippServer({
      scenario: "reg-401-200",
      calls: 1,
      keys: { user: "alice", password: "s3cret", expires: "59" },
    });
    const result = await runSipp({
      scenario: "uac-register",
      remote: registrar.address,
      service: "alice",
      auth: { username: "alice", password: "s3cret" },
      keepTraces: true,
    });
    expect(result.exitCode, describeSippResult(result)).toBe(0);
    expect(result.messages).toMatch(/SIP\/2\.0 200 OK[\s\S]*expires=59/);
    await result.cleanup();
    expect((await registrar.finished()).exitCode).toBe(0);
  });
});

const LINT_KEYS = {
  rtp_port: "20000",
  user: "alice",
  password: "s3cret",
  expires: "59",
  min_expires: "120",
  contact: "sip:alice@127.0.0.1:5999",
};
const SIPP_COMPLAINT = /Unknown element|XML|Unable to|unknown keyword|Invalid|not found/i;

/** Runs a scenario for about a second against a silent socket; returns what SIPp complained about. */
async function lintScenario(scenario: string, role: "client" | "server"): Promise<string> {
  const blackHole = createSocket("udp4");
  await new Promise<void>((resolve) => blackHole.bind(0, "127.0.0.1", resolve));
  try {
    const result =
      role === "client"
        ? await runSipp({
            scenario,
            remote: `127.0.0.1:${blackHole.address().port}`,
            keys: LINT_KEYS,
            templateVars: pcapVars(),
            auth: { username: "alice", password: "s3cret" },
            timeoutMs: 1200,
          })
        : await (async () => {
            const server = await startSippServer({ scenario, keys: LINT_KEYS });
            await new Promise((resolve) => setTimeout(resolve, 800));
            return server.stop();
          })().catch((error: unknown) => error as Error);
    if (result instanceof Error) return result.message; // exited during start-up: the message quotes SIPp
    await result.cleanup();
    return `${result.stderr}\n${result.errors}`;
  } finally {
    blackHole.close();
  }
}

describe.concurrent("every scenario in test/peers/sipp", () => {
  const scenarios = readdirSync(SIPP_SCENARIO_DIR)
    .filter((name) => name.endsWith(".xml"))
    .map((name) => name.slice(0, -4));

  afterAll(async () => {
    await stopAllPeers();
  });

  it("the lint catches a broken scenario (control)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "patchbay-lint-"));
    const broken = join(dir, "broken.xml");
    await writeFile(
      broken,
      '<?xml version="1.0"?>\n<scenario name="x"><recv request="INVITE"/><bogus/></scenario>\n',
    );
    try {
      expect(await lintScenario(broken, "server")).toMatch(SIPP_COMPLAINT);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each(scenarios)("%s loads in SIPp 3.6.1 without XML or keyword errors", async (scenario) => {
    const complaints = await lintScenario(scenario, scenario.startsWith("uac-") ? "client" : "server");
    expect(complaints).not.toMatch(SIPP_COMPLAINT);
  });
});
