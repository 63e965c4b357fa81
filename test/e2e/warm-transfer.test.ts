/**
 * Warm (attended) transfer over the whole path, with real peers: a caller phone → Kamailio → the bridge
 * → the `front-desk` agent (transfer.mode warm) in workerd with the offline providers. The caller asks
 * for a person; the agent says it will put them through; the bridge calls extension 2001 through
 * Kamailio (digest-challenged like any call from the bridge) where SIPp answers as the human, its media
 * on an RtpPeer. Then (PROTOCOL.md §9):
 *
 * - relay: the human hears the agent's summary (speech), the legs are joined through the bridge, and a
 *   tone each side plays is heard by the other (Goertzel at 700 Hz and 1 kHz, not bytes), the agent's
 *   Durable Object ends its call as transferred; when the caller hangs up the bridge hangs up the human.
 * - busy: the human's line answers 486; the agent tells the caller and the call goes on with the agent.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { epochNow, Phone } from "../caller/phone";
import { type CallReport, type Stack, startStack } from "../stack/stack";
import { goertzelPower, speechSegments, tone } from "../support/audio";
import { freePortPair } from "../support/ports";
import { assertNothingLeft } from "../support/process";
import { RtpPeer } from "../support/rtp-peer";
import { describeSippResult, type SippServer, startSippServer } from "../support/sipp";

const HUMAN = "2001";
const CALLER_TONE_HZ = 700;
const HUMAN_TONE_HZ = 1000;
const ASK_FOR_A_PERSON = "i want to talk to a human";

/** Power at `freqHz` well above the power at a frequency nobody sends: the tone is there. */
function hasTone(samples: Int16Array, freqHz: number): boolean {
  if (samples.length < 1600) return false;
  return goertzelPower(samples, freqHz) > 50 * goertzelPower(samples, 1_900);
}

async function reportUntil(
  stack: Stack,
  callId: string,
  predicate: (report: CallReport) => boolean,
  timeoutMs = 20_000,
): Promise<CallReport> {
  const deadline = Date.now() + timeoutMs;
  let report: CallReport | undefined;
  while (Date.now() < deadline) {
    report = await stack.callReport(callId).catch(() => undefined);
    if (report && predicate(report)) return report;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`call ${callId}: condition not met; last report ${JSON.stringify(report)?.slice(0, 800)}`);
}

/** Dials the front desk and waits through the greeting. */
async function callFrontDesk(stack: Stack): Promise<{ phone: Phone; callId: string }> {
  const phone = await Phone.open({
    proxy: stack.sip.proxy,
    target: stack.sip.target,
    host: stack.sip.callerHost,
  });
  await phone.dial({ headers: { "X-Patchbay-Agent": "front-desk" } });
  const callId = await stack.callIdFor(phone.sipCallId);
  await phone.listen(phone.answeredAt, { startTimeoutMs: 10_000 });
  return { phone, callId };
}

/** The stack plus SIPp as the human on extension 2001, started and stopped around one describe block. */
function useHumanOn2001(options: {
  scenario: string;
  /** Media on an RtpPeer the test can listen to and play from (the scenario's SDP names [rtp_port]). */
  withMedia: boolean;
  bridgeEnv?: Record<string, string>;
}): { stack: Stack; sipp: SippServer; human: RtpPeer } {
  const rig = {} as { stack: Stack; sipp: SippServer; human: RtpPeer };
  beforeAll(async () => {
    if (options.withMedia) rig.human = await RtpPeer.start({ port: (await freePortPair()).rtp });
    rig.sipp = await startSippServer({
      scenario: new URL(options.scenario, import.meta.url).pathname,
      calls: 1,
      ...(options.withMedia ? { keys: { rtp_port: String(rig.human.port) } } : {}),
    });
    rig.stack = await startStack({
      kamailioRoutes: { [HUMAN]: `sip:${HUMAN}@${rig.sipp.address}` },
      ...(options.bridgeEnv ? { bridgeEnv: options.bridgeEnv } : {}),
    });
  }, 120_000);
  afterAll(async () => {
    await rig.stack?.close();
    await rig.sipp?.stop();
    await rig.human?.close();
    assertNothingLeft();
  });
  return rig;
}

describe("warm transfer joined through the bridge (relay)", () => {
  const rig = useHumanOn2001({
    scenario: "./scenarios/uas-human-answers.xml",
    withMedia: true,
    bridgeEnv: { TRANSFER_WARM_METHOD: "relay" },
  });

  it("the human hears the summary, then caller and human hear each other and the agent is gone", async () => {
    const { stack, sipp, human } = rig;
    const { phone, callId } = await callFrontDesk(stack);
    try {
      const askedAt = epochNow();
      await phone.say(ASK_FOR_A_PERSON);
      // "Sure, I will transfer you to a colleague now." then the bridge calls the human.
      await phone.listen(askedAt, { startTimeoutMs: 15_000 });
      await human.waitForPackets(1, { timeoutMs: 20_000 });
      // The human answered; what they hear first is the agent's summary, spoken.
      const deadline = Date.now() + 20_000;
      while (speechSegments(human.receivedAudio()).length === 0 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 100));
      expect(speechSegments(human.receivedAudio()).length, "the summary reached the human").toBeGreaterThan(
        0,
      );

      // The legs are joined once the summary has played; the agent's call ends as transferred.
      const report = await reportUntil(stack, callId, (r) => r.status === "ended", 30_000);
      expect(report.endCause).toBe("transferred");
      await stack.bridge.waitForLog(/legs joined through the bridge \(relay\)/, 10_000);
      const joinedAt = epochNow();

      // Now each side plays a tone and must hear the other's, through the bridge.
      const humanTone = human.sendAudio(tone(HUMAN_TONE_HZ, 3_000));
      const callerTone = phone.play(tone(CALLER_TONE_HZ, 3_000));
      await Promise.all([humanTone, callerTone]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const callerHeard = phone.audioBetween(joinedAt, epochNow());
      expect(hasTone(callerHeard, HUMAN_TONE_HZ), "the caller hears the human's tone").toBe(true);
      const humanHeard = human.receivedAudio();
      expect(
        hasTone(humanHeard.subarray(-8000 * 3), CALLER_TONE_HZ),
        "the human hears the caller's tone",
      ).toBe(true);
      expect(phone.sip.hungUp).toBe(false);
    } finally {
      // The caller hangs up; the bridge ends the human's leg (SIPp waits for that BYE).
      await phone.sip.hangup().catch(() => undefined);
      await phone.close();
    }
    const finished = await sipp.finished(20_000);
    expect(finished.exitCode, describeSippResult(finished)).toBe(0);
    let active = await stack.metric("patchbay_calls_active");
    for (let i = 0; i < 50 && active !== 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      active = await stack.metric("patchbay_calls_active");
    }
    expect(active).toBe(0);
  });
});

describe("warm transfer to a busy line", () => {
  const rig = useHumanOn2001({ scenario: "../outbound/scenarios/uas-busy-486.xml", withMedia: false });

  it("the agent tells the caller nobody could take the call, and the call goes on", async () => {
    const { stack, sipp } = rig;
    const { phone, callId } = await callFrontDesk(stack);
    try {
      const askedAt = epochNow();
      await phone.say(ASK_FOR_A_PERSON);
      const report = await reportUntil(stack, callId, (r) =>
        r.transcript.some((line) => line.role === "agent" && /nobody could take your call/.test(line.text)),
      );
      expect(report.status).toBe("active");
      // The caller heard the apology as speech after the transfer announcement.
      const announcement = await phone.listen(askedAt, { startTimeoutMs: 15_000 });
      const apology = await phone.listen(announcement.stoppedAt, { startTimeoutMs: 30_000 });
      expect(phone.speechMsBetween(apology.startedAt - 1, apology.stoppedAt)).toBeGreaterThan(500);
      expect(phone.sip.hungUp).toBe(false);
    } finally {
      await phone.close();
    }
    const finished = await sipp.finished(10_000);
    expect(finished.exitCode, describeSippResult(finished)).toBe(0);
  });
});

/**
 * REFER with Replaces (TRANSFER_WARM_METHOD=replaces). No Asterisk here to carry the REFER out, so this
 * checks what the bridge sends: the REFER reaches the caller in-dialog through Kamailio with a Refer-To
 * whose Replaces names the consultation dialog SIPp really had (Call-ID, SIPp's tag as to-tag, ours as
 * from-tag: RFC 3891 from the human's side). The caller's final NOTIFY 200 makes the bridge leave; with
 * no PBX to replace the consultation leg, the bridge ends it itself after its grace period.
 */
describe("warm transfer joined by REFER with Replaces", () => {
  const rig = useHumanOn2001({
    scenario: "./scenarios/uas-human-answers.xml",
    withMedia: true,
    bridgeEnv: { TRANSFER_WARM_METHOD: "replaces" },
  });

  it("REFERs the caller to the human with Replaces naming the consultation dialog, then leaves", async () => {
    const { stack, sipp, human } = rig;
    const { phone, callId } = await callFrontDesk(stack);
    let referTo: string;
    try {
      await phone.say(ASK_FOR_A_PERSON);
      const refer = await phone.waitUntil(
        "a REFER with Replaces",
        () => phone.sip.inDialogRequests.find((request) => request.method === "REFER"),
        45_000,
      );
      referTo = refer.request.headers.get("Refer-To") ?? "";
      expect(
        speechSegments(human.receivedAudio()).length,
        "the summary reached the human first",
      ).toBeGreaterThan(0);
      const bye = await phone.sip.waitForBye(10_000);
      expect(bye.method).toBe("BYE");
      const report = await reportUntil(stack, callId, (r) => r.status === "ended");
      expect(report.endCause).toBe("transferred");
    } finally {
      await phone.close();
    }
    // The consultation leg ends (the bridge's grace period: no PBX here replaces it).
    const finished = await sipp.finished(30_000);
    expect(finished.exitCode, describeSippResult(finished)).toBe(0);
    const invite = /INVITE sip:[\s\S]*?\r?\n\r?\n/.exec(finished.messages)?.[0] ?? "";
    const consultCallId = /^Call-ID:\s*(\S+)/im.exec(invite)?.[1];
    const bridgeTag = /^From:.*;tag=([^;\s>]+)/im.exec(invite)?.[1];
    expect(consultCallId && bridgeTag, "SIPp's trace has the consultation INVITE").toBeTruthy();
    const replaces = decodeURIComponent(/[?&]Replaces=([^&>]+)/.exec(referTo)?.[1] ?? "");
    expect(replaces).toMatch(
      new RegExp(
        `^${escapeRegExp(consultCallId!)};to-tag=[^;]*SIPpTag01[^;]*;from-tag=${escapeRegExp(bridgeTag!)}$`,
      ),
    );
    expect(referTo).toMatch(new RegExp(`^<sip:${HUMAN}@`));
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
