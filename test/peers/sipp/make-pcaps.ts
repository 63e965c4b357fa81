/**
 * Regenerates the RTP captures in test/peers/sipp/pcap/ that SIPp replays with play_pcap_audio:
 *   tone-1000hz.pcap   2 s of a 1 kHz tone at -6 dBFS, PCMU (PT 0), 20 ms packets
 *   speech.pcap        espeak-ng speech of SPEECH_TEXT (en-us, 150 wpm), PCMU, 20 ms packets
 *   dtmf-123.pcap      RFC 4733 digits 1, 2, 3 on PT 101: 100 ms each, 3 end packets, 100 ms gaps
 * Run: pnpm --filter @patchbay/e2e exec tsx peers/sipp/make-pcaps.ts
 * The outputs are committed (small); rerun only when changing what they contain.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { encodeG711 } from "@patchbay/shared/audio";
import { espeak, tone } from "../../support/audio";
import { type PcapRtpPacket, writeRtpPcap } from "../../support/pcap";
import { SIPP_PCAP_DIR } from "../../support/sipp";

export const SPEECH_TEXT = "Hello, this is the patch bay bridge test. Please say one, two, three.";

function audioPackets(samples: Int16Array, ssrc: number): PcapRtpPacket[] {
  const packets: PcapRtpPacket[] = [];
  for (let i = 0; i * 160 < samples.length; i++) {
    const frame = new Int16Array(160);
    frame.set(samples.subarray(i * 160, (i + 1) * 160));
    packets.push({
      timeUs: i * 20_000,
      payloadType: 0,
      marker: i === 0,
      sequence: (1000 + i) & 0xffff,
      timestamp: 16_000 + i * 160,
      ssrc,
      payload: encodeG711("PCMU", frame),
    });
  }
  return packets;
}

function dtmfPackets(digits: string, ssrc: number): PcapRtpPacket[] {
  const packets: PcapRtpPacket[] = [];
  let timeUs = 0;
  let timestamp = 32_000;
  let sequence = 2000;
  for (const digit of digits) {
    const event = "0123456789*#".indexOf(digit);
    for (let i = 0; i < 5; i++) {
      const duration = (i + 1) * 160;
      packets.push({
        timeUs,
        payloadType: 101,
        marker: i === 0,
        sequence: sequence++,
        timestamp,
        ssrc,
        payload: Uint8Array.of(event, 10, duration >> 8, duration & 0xff),
      });
      timeUs += 20_000;
    }
    for (let i = 0; i < 3; i++) {
      packets.push({
        timeUs,
        payloadType: 101,
        marker: false,
        sequence: sequence++,
        timestamp,
        ssrc,
        payload: Uint8Array.of(event, 0x80 | 10, 800 >> 8, 800 & 0xff),
      });
      timeUs += 20_000;
    }
    timeUs += 100_000;
    timestamp += 8 * 160 + 800;
  }
  return packets;
}

async function main(): Promise<void> {
  const beep = tone(1000, 2000, 0.5);
  await writeFile(join(SIPP_PCAP_DIR, "tone-1000hz.pcap"), writeRtpPcap(audioPackets(beep, 0x1000_0001)));
  const speech = await espeak(SPEECH_TEXT);
  await writeFile(join(SIPP_PCAP_DIR, "speech.pcap"), writeRtpPcap(audioPackets(speech, 0x1000_0002)));
  await writeFile(join(SIPP_PCAP_DIR, "dtmf-123.pcap"), writeRtpPcap(dtmfPackets("123", 0x1000_0003)));
  console.log(`wrote pcaps to ${SIPP_PCAP_DIR} (speech ${(speech.length / 8000).toFixed(2)} s)`);
}

await main();
