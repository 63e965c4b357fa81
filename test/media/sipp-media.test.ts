/**
 * The bridge's media path with SIPp as the real caller (sip-interop.md §4 "inbound-basic"): SIPp calls the
 * extension through Kamailio (the bridge registered there with digest auth), and replays with
 * `play_pcap_audio` (a) espeak-ng speech as G.711 µ-law RTP (test/peers/sipp/pcap/speech.pcap) and then
 * (b) RFC 4733 digits 1, 2, 3 on PT 101 (dtmf-123.pcap), both made by test/peers/sipp/make-pcaps.ts. The
 * RTP comes from SIPp's own code and clock, not ours, and from SIPp's media port, which is what its SDP
 * offers, so the bridge's latch takes it as the exact SDP ip:port. The two pcaps are two RTP streams with
 * their own SSRC, sequence and timestamp bases, as a PBX switching sources would send.
 * Checked on the signal: the recording's caller channel matches the speech that was sent (piece by
 * piece, see the threshold's comment), and the digits
 * reach the agent (the fake cloud's `dtmf` messages) once each, in order.
 * SIPp 3.6.1 cannot record what it receives, so the bridge → caller direction is covered by
 * bridge-media.test.ts (RtpPeer) and baresip.test.ts (baresip records).
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  crossCorrelationPeak,
  decodePcm,
  deinterleave,
  energyRatio,
  matchedShare,
  matchesInOrder,
  readWavFile,
  rmsDbfs,
  segmentCorrelations,
} from "../support/audio";
import type { BridgeInstance } from "../support/bridge";
import type { KamailioInstance } from "../support/kamailio";
import { readRtpPcapFile } from "../support/pcap";
import { describeSippResult, PCAPS, pcapVars, runSipp } from "../support/sipp";
import type { FakeCloud } from "./fake-cloud";
import { type MediaRig, startMediaRig, until } from "./rig";

const USER = { username: "2401", password: "sipp-media-test-pass" };

let kamailio: KamailioInstance;
let bridge: BridgeInstance;
let cloud: FakeCloud;
let recordings: string;
let rig: MediaRig;

beforeAll(async () => {
  rig = await startMediaRig({ bridgeUser: USER, rtpPorts: [43000, 43998], name: "sipp-media" });
  ({ kamailio, bridge, cloud, recordings } = rig);
}, 60_000);

afterAll(async () => {
  await rig?.close();
});

/** What SIPp sends: the speech pcap's payloads decoded, in sequence order. */
async function speechSent(): Promise<Int16Array> {
  const packets = (await readRtpPcapFile(PCAPS.speech.path)).sort((a, b) => a.sequence - b.sequence);
  const out = new Int16Array(packets.length * 160);
  for (const [index, packet] of packets.entries()) out.set(decodePcm("PCMU", packet.payload), index * 160);
  return out;
}

describe("bridge media with SIPp as the caller, through Kamailio", () => {
  it("records SIPp's speech pcap faithfully and passes its RFC 4733 digits to the agent", async () => {
    const known = new Set(cloud.callIds);
    const result = await runSipp({
      scenario: "uac-dtmf-rtp",
      remote: `${kamailio.host}:${kamailio.port}`,
      localIp: "127.0.0.2", // Kamailio's trusted "PBX trunk": no auth for the caller
      service: USER.username, // Kamailio looks up the registered bridge
      // Speech, a 300 ms margin, the digits, a margin, then BYE.
      templateVars: pcapVars(PCAPS.speech, PCAPS.dtmf123, 300),
      timeoutMs: 30_000,
    });
    expect(result.exitCode, describeSippResult(result)).toBe(0);
    expect(result.stats?.successfulCalls, describeSippResult(result)).toBe(1);

    const callId = await until(() => cloud.callIds.find((id) => !known.has(id)), "the call's media socket");

    // The digits: RFC 4733 events on PT 101 become one `dtmf` message per key press, in order.
    const digits = await until(() => {
      const seen = cloud.controlsOfType("dtmf").filter((message) => message.callId === callId);
      return seen.length >= 3 ? seen : undefined;
    }, "three dtmf messages at the cloud");
    expect(digits.map((message) => message.digit)).toEqual(["1", "2", "3"]);

    // The recording, finalized when the call ends (SIPp's BYE).
    const file = join(recordings, `${callId}.wav`);
    await until(async () => (await readdir(recordings)).includes(`${callId}.wav`), "the recording");
    await until(
      () => bridge.logs().some((line) => line.msg === "call ended" && line.callId === callId),
      "call ended",
    );
    await new Promise((resolve) => setTimeout(resolve, 300)); // header finalized on close
    const wav = await readWavFile(file);
    expect(wav).toMatchObject({ sampleRate: 8000, channels: 2 });
    const [callerChannel] = deinterleave(wav);

    const sent = await speechSent();
    const global = crossCorrelationPeak(sent, callerChannel!);
    const pieces = segmentCorrelations(sent, callerChannel!);
    console.info(
      `SIPp speech → recording: global correlation ${global.correlation.toFixed(4)} at lag ${global.lag}; ` +
        `${(matchedShare(pieces, 0.9) * 100).toFixed(0)} % of the energy in 250 ms pieces > 0.9`,
    );
    // Threshold 0.9 per 250 ms piece, for at least 80 % of the speech energy, in order, and nothing that
    // was never sent. The recording is the same µ-law bytes decoded by the same G.711 table, so a perfect
    // path scores ≈ 1.0 (measured: global 0.994-1.000, every piece > 0.99). Pieces rather than one global
    // figure because SIPp paces its pcap with usleep: on this shared machine a stalled SIPp delays the
    // rest of the speech, which shifts later pieces against earlier ones (a global correlation then drops
    // to ~0.5 though nothing was lost or damaged); the jitter buffer may also conceal or drop a 20 ms
    // frame at a stall. A wrong channel, shuffled or half-missing speech, or noise fail all three checks.
    expect(matchedShare(pieces, 0.9)).toBeGreaterThan(0.8);
    expect(matchesInOrder(pieces, 0.9)).toBe(true);
    expect(energyRatio(sent, callerChannel!)).toBeLessThan(1.25);
    // The speech starts where it was sent: after the answer, not before the recording began.
    expect(pieces.find((piece) => piece.correlation > 0.9)!.lag).toBeGreaterThanOrEqual(0);
    expect(rmsDbfs(callerChannel!)).toBeGreaterThan(-40);
    expect(cloud.violations).toEqual([]);
  });
});
