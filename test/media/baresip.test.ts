/**
 * baresip as a second real UA (sip-interop.md §4 "Real peers"): a softphone that is not SIPp and not ours,
 * with its own SIP stack, jitter buffer, RTP clock and RFC 4733 sender. It registers on Kamailio with
 * digest auth (so does the bridge) and calls the bridge's extension through it, headless (see
 * test/support/baresip.ts for how: aufile microphone, sndfile dumps, ctrl_tcp commands).
 *  - the agent (fake cloud) plays a 1 kHz tone: baresip hears it (its decoded-audio dump, by frequency);
 *  - baresip presses 4, 2, # (RFC 4733 telephone-event): the agent receives those digits, in order;
 *  - baresip's microphone is a 700 Hz tone file: the bridge's recording has it in the caller channel,
 *    for (nearly) the whole call.
 * All three are checked on the signal, not on bytes (style.md §12).
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deinterleave, encodePcm, readWavFile, tone, toneDurationMs } from "../support/audio";
import { type BaresipInstance, startBaresip } from "../support/baresip";
import type { BridgeInstance } from "../support/bridge";
import type { KamailioInstance } from "../support/kamailio";
import type { FakeCloud } from "./fake-cloud";
import { type MediaRig, startMediaRig, until } from "./rig";

const BRIDGE_USER = { username: "2601", password: "baresip-test-bridge-pass" };
const PHONE_USER = { username: "2602", password: "baresip-test-phone-pass" };
const AGENT_TONE_HZ = 1000;
const AGENT_TONE_MS = 1500;
const PHONE_TONE_HZ = 700;

let kamailio: KamailioInstance;
let bridge: BridgeInstance;
let phone: BaresipInstance;
let cloud: FakeCloud;
let recordings: string;
let rig: MediaRig;

beforeAll(async () => {
  rig = await startMediaRig({
    bridgeUser: BRIDGE_USER,
    otherUsers: [PHONE_USER],
    rtpPorts: [41000, 41998],
    name: "baresip-rec",
  });
  ({ kamailio, bridge, cloud, recordings } = rig);
  phone = await startBaresip({
    ...PHONE_USER,
    registrar: { host: kamailio.host, port: kamailio.port, domain: kamailio.domain },
    // Longer than the call: at the end of its file baresip hangs up by itself.
    source: tone(PHONE_TONE_HZ, 60_000, 0.4),
  });
}, 60_000);

afterAll(async () => {
  await phone?.stop();
  await rig?.close();
});

describe("baresip calls the bridge through Kamailio", () => {
  it("hears the agent's tone, sends RFC 4733 digits to the agent, and its microphone is in the recording", async () => {
    const known = new Set(cloud.callIds);
    await phone.command("dial", `sip:${BRIDGE_USER.username}@${kamailio.domain}:${kamailio.port}`);
    await phone.waitForEvent("CALL_ESTABLISHED");
    const callId = await until(() => cloud.callIds.find((id) => !known.has(id)), "the call's media socket");
    // baresip says when RTP from the bridge arrives; from then on what the agent plays reaches it.
    await phone.waitForEvent("CALL_RTPESTAB");

    cloud.playAgentAudio(callId, encodePcm("PCMU", tone(AGENT_TONE_HZ, AGENT_TONE_MS, 0.5)), "tone-end");
    await until(
      () => cloud.controlsOfType("mark_played").find((m) => m.callId === callId && m.name === "tone-end"),
      "the agent's tone to be played",
    );

    for (const [index, digit] of ["4", "2", "#"].entries()) {
      await phone.command("sndcode", digit);
      await until(
        () => cloud.controlsOfType("dtmf").filter((m) => m.callId === callId).length > index,
        `digit ${digit} at the agent`,
      );
    }
    const digits = cloud.controlsOfType("dtmf").filter((m) => m.callId === callId);
    expect(digits.map((m) => m.digit)).toEqual(["4", "2", "#"]);

    // Let baresip's microphone run on its own for 1.5 s, then hang up from the phone.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await phone.command("hangup");
    await phone.waitForEvent("CALL_CLOSED");
    await until(
      () => bridge.logs().some((line) => line.msg === "call ended" && line.callId === callId),
      "the bridge to end the call",
    );
    await new Promise((resolve) => setTimeout(resolve, 300)); // both WAV headers finalized on close

    // What baresip heard: its decoded-audio dump holds the agent's tone. 100 ms windows at 1 kHz, at
    // least 1 s of the 1.5 s played: the rest may straddle window edges or sit in baresip's jitter buffer.
    const { dec } = await phone.dumps();
    expect(dec, "baresip's sndfile dump of what it decoded").toBeDefined();
    const heard = await readWavFile(dec!);
    expect(heard.sampleRate).toBe(8000);
    expect(toneDurationMs(heard.samples, AGENT_TONE_HZ)).toBeGreaterThanOrEqual(1000);

    // What the bridge recorded from baresip: the caller (left) channel holds the 700 Hz microphone for
    // most of the call; the agent (right) channel holds no 700 Hz at all (no crosstalk between channels).
    expect((await readdir(recordings)).includes(`${callId}.wav`)).toBe(true);
    const [caller, agent] = deinterleave(await readWavFile(join(recordings, `${callId}.wav`)));
    const callMs = (caller!.length / 8000) * 1000;
    const phoneToneMs = toneDurationMs(caller!, PHONE_TONE_HZ);
    console.info(
      `baresip: heard ${toneDurationMs(heard.samples, AGENT_TONE_HZ)} ms of the agent's ${AGENT_TONE_MS} ms tone; ` +
        `the recording's caller channel has ${phoneToneMs} ms of its ${PHONE_TONE_HZ} Hz in a ${Math.round(callMs)} ms call`,
    );
    // baresip keeps its audio running while it sends the digits, and its RTP comes from the exact SDP
    // ip:port (support/baresip.ts), so the latch takes it from the first packet: measured 3.7 s of a 3.74 s
    // call. 80 % leaves room for a stall on a loaded machine (the jitter buffer then records nothing
    // rather than inventing audio) and still fails a recording that lost its first second.
    expect(phoneToneMs).toBeGreaterThanOrEqual(callMs * 0.8);
    expect(toneDurationMs(agent!, PHONE_TONE_HZ)).toBe(0);
    expect(toneDurationMs(agent!, AGENT_TONE_HZ)).toBeGreaterThanOrEqual(1000);
    expect(cloud.violations).toEqual([]);
  });
});
