/** The RTP peer talks to itself over real UDP sockets, and the audio helpers measure what arrived. */
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import {
  concat,
  crossCorrelationPeak,
  dominantFrequency,
  espeak,
  g711RoundTrip,
  goertzelPower,
  readWav,
  rmsDbfs,
  silence,
  speechSegments,
  tone,
  writeWav,
} from "../support/audio";
import { readRtpPcap } from "../support/pcap";
import { freePortPair } from "../support/ports";
import { type Impairment, RtpPeer } from "../support/rtp-peer";
import { PCAPS } from "../support/sipp";

const peers: RtpPeer[] = [];
async function pair(impairment?: Impairment) {
  const { rtp } = await freePortPair();
  const receiver = await RtpPeer.start({ port: rtp });
  const sender = await RtpPeer.start(impairment === undefined ? {} : { impairment });
  sender.setRemote(receiver.host, receiver.port);
  peers.push(receiver, sender);
  return { sender, receiver };
}

afterEach(async () => {
  await Promise.all(peers.splice(0).map((peer) => peer.close()));
});

describe("audio helpers", () => {
  it("finds a tone's frequency and level, and speech-like segments", () => {
    const signal = concat(
      silence(300),
      tone(440, 500, 0.5),
      silence(400),
      tone(1800, 300, 0.25),
      silence(300),
    );
    expect(dominantFrequency(tone(440, 500))).toBeCloseTo(440, 0);
    expect(goertzelPower(tone(1000, 200, 0.5), 1000)).toBeCloseTo(0.25, 2);
    expect(goertzelPower(tone(1000, 200, 0.5), 1500)).toBeLessThan(0.001);
    expect(rmsDbfs(tone(1000, 200, 1))).toBeCloseTo(-3, 0);
    const segments = speechSegments(signal);
    expect(segments).toHaveLength(2);
    expect(segments[0]!.startMs).toBeCloseTo(300, -2);
    expect(segments[1]!.endMs).toBeCloseTo(1500, -2);
  });

  it("round-trips WAV and finds a delayed copy by cross-correlation", () => {
    const original = tone(700, 300, 0.3);
    const wav = readWav(writeWav({ sampleRate: 8000, channels: 1, samples: original }));
    expect(Array.from(wav.samples)).toEqual(Array.from(original));
    const noise = Int16Array.from({ length: 4000 }, (_, i) => Math.round(8000 * Math.sin(i * i * 0.001)));
    const delayed = concat(silence(125), g711RoundTrip("PCMA", noise));
    const peak = crossCorrelationPeak(noise, delayed);
    expect(peak.lag).toBe(1000);
    expect(peak.correlation).toBeGreaterThan(0.95);
  });

  it("espeak-ng produces 8 kHz speech with onsets", async () => {
    const speech = await espeak("one two three", { wpm: 160 });
    expect(speech.length).toBeGreaterThan(4000);
    expect(speechSegments(speech).length).toBeGreaterThanOrEqual(1);
    expect(rmsDbfs(speech)).toBeGreaterThan(-35);
  });

  it("the committed speech pcap decodes to speech", () => {
    const packets = readRtpPcap(readFileSync(PCAPS.speech.path));
    expect(packets.length).toBeGreaterThan(200);
    expect(packets.every((packet) => packet.payloadType === 0 && packet.payload.length === 160)).toBe(true);
  });
});

describe("RtpPeer over loopback UDP", () => {
  it("sends a paced tone and digits that arrive intact", async () => {
    const { sender, receiver } = await pair();
    await sender.sendAudio(tone(1000, 600, 0.5));
    await sender.sendDigits("12#", { durationMs: 60, gapMs: 40 });
    await receiver.waitForPackets(30, { payloadType: 0 });
    await receiver.waitForPackets(18, { payloadType: 101 });
    const audio = receiver.receivedAudio();
    expect(audio.length).toBe(4800);
    expect(dominantFrequency(audio)).toBeCloseTo(1000, -1);
    const reference = g711RoundTrip("PCMU", tone(1000, 600, 0.5));
    expect(crossCorrelationPeak(reference, audio, 160).correlation).toBeGreaterThan(0.99);
    expect(receiver.receivedDigits().map((digit) => digit.digit)).toEqual(["1", "2", "#"]);
    expect(receiver.stats()).toMatchObject({ lost: 0, duplicates: 0, reordered: 0 });
  });

  it("impairs with a seeded RNG and the receiver's stats see it", async () => {
    const { sender, receiver } = await pair({ dropRate: 0.1, reorderRate: 0.1, duplicateRate: 0.1, seed: 7 });
    await sender.sendAudio(tone(500, 2000, 0.5), { paced: false });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const stats = receiver.stats();
    expect(stats.lost).toBeGreaterThan(0);
    expect(stats.duplicates).toBeGreaterThan(0);
    expect(stats.reordered).toBeGreaterThan(0);
    // Reassembly by timestamp keeps the tone recognisable despite the damage.
    expect(dominantFrequency(receiver.receivedAudio())).toBeCloseTo(500, -1);
  });
});
