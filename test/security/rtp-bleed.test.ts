/**
 * RTP bleed (AST-2017-005 / CVE-2017-14099, sip-interop.md §3.3): Asterisk latched its send destination
 * onto whoever sprayed enough packets at an RTP port, so an attacker could capture a live call's audio.
 * Here, during an answered call whose media goes to an RtpPeer on 127.0.0.1, two attackers spray
 * well-formed, sequential RTP at the bridge's RTP port: one from a foreign address (127.0.0.6) starting
 * before the legitimate peer has sent anything, one from the legitimate address but another port once
 * the peer's stream is flowing. Neither may receive a single packet, the peer keeps receiving, and the
 * call's recording (what the agent would hear) holds the peer's 1 kHz tone and none of the attackers'
 * 2 kHz / 2.5 kHz: no injection either.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deinterleave, encodePcm, goertzelPower, readWavFile, tone } from "../support/audio";
import { type BridgeInstance, startBridge } from "../support/bridge";
import { type KamailioInstance, startKamailio } from "../support/kamailio";
import { freePortPair } from "../support/ports";
import { buildRtp, RtpPeer } from "../support/rtp-peer";
import { describeSippResult, runSipp } from "../support/sipp";
import { sleep, UdpAttacker } from "./attack";

const BRIDGE_HOST = "127.0.0.3";
const PBX = "127.0.0.1";
const FOREIGN_ATTACKER = "127.0.0.6";
const USER = { username: "3301", password: "rtp-bleed-test-pass" };
/** Packets per attacker: a 20 ms stream's worth for 2 s, sent 4× faster than real time. */
const SPRAY_PACKETS = 400;
const SPRAY_INTERVAL_MS = 5;

let kamailio: KamailioInstance;
let bridge: BridgeInstance;
const recordings = mkdtempSync(join(tmpdir(), "patchbay-rtp-bleed-"));

beforeAll(async () => {
  kamailio = await startKamailio({ users: [USER] });
  bridge = await startBridge({
    registrar: `${kamailio.host}:${kamailio.port}`,
    host: BRIDGE_HOST,
    ...USER,
    env: {
      RTP_PORT_MIN: "44600",
      RTP_PORT_MAX: "44698",
      LOG_LEVEL: "info",
      RECORDING_ENABLED: "true",
      RECORDING_PATH: join(recordings, "{callId}.wav"),
    },
  });
});

afterAll(async () => {
  await bridge?.stop();
  await kamailio?.stop();
  rmSync(recordings, { recursive: true, force: true });
});

/**
 * Send `count` sequential PCMU packets of a `toneHz` tone (one SSRC, seq +1, timestamp +160): exactly
 * what a latching probation accepts from a real endpoint, and audible in the recording if it got in.
 */
async function spray(
  attacker: UdpAttacker,
  host: string,
  port: number,
  count: number,
  toneHz: number,
): Promise<void> {
  const ssrc = 0x0badf00d;
  const audio = encodePcm("PCMU", tone(toneHz, count * 20));
  for (let i = 0; i < count; i++) {
    const payload = audio.subarray(i * 160, (i + 1) * 160);
    const packet = buildRtp(
      { payloadType: 0, marker: i === 0, sequence: 1000 + i, timestamp: 160 * i, ssrc },
      payload,
    );
    await attacker.send(packet, host, port);
    if (i % 4 === 3) await sleep(SPRAY_INTERVAL_MS * 4);
  }
}

describe("RTP bleed", () => {
  it("spraying RTP at a live call's port never redirects the bridge's audio", async () => {
    const media = await RtpPeer.start({ port: (await freePortPair(PBX)).rtp, host: PBX });
    const foreign = await UdpAttacker.bind(FOREIGN_ATTACKER);
    const sameHost = await UdpAttacker.bind(PBX);
    try {
      const call = runSipp({
        scenario: "uac-record",
        remote: `${BRIDGE_HOST}:${bridge.port}`,
        localIp: PBX,
        service: bridge.token!,
        keys: { rtp_port: String(media.port) },
        pauseMs: 5_000,
        timeoutMs: 25_000,
      });
      await media.waitForPackets(3);
      const bridgeRtp = media.remoteAddress!;
      expect(bridgeRtp.address).toBe(BRIDGE_HOST);

      // 1. A foreign address sprays before the peer has sent anything: the latch is still open.
      const foreignSpray = spray(foreign, bridgeRtp.address, bridgeRtp.port, SPRAY_PACKETS, 2_000);
      await sleep(500);
      // 2. The legitimate peer starts its stream (the bridge latches onto it after 4 sequential packets)…
      const peerStream = media.sendAudio(tone(1_000, 3_000), { paced: true });
      await sleep(1_000);
      // 3. …and the PBX's own address, from another port, tries to take over the latched stream.
      const receivedBeforeTakeover = media.received.length;
      await Promise.all([
        foreignSpray,
        spray(sameHost, bridgeRtp.address, bridgeRtp.port, SPRAY_PACKETS, 2_500),
      ]);
      const receivedDuringTakeover = media.received.length - receivedBeforeTakeover;
      await peerStream;

      const result = await call;
      expect(result.exitCode, describeSippResult(result)).toBe(0);
      console.info(
        `RTP bleed: attackers sent ${2 * SPRAY_PACKETS} packets; got back ${foreign.received.length} (127.0.0.6) ` +
          `and ${sameHost.received.length} (127.0.0.1, other port); the peer got ${media.received.length} ` +
          `(${receivedDuringTakeover} during the takeover attempt)`,
      );
      expect(foreign.received).toHaveLength(0);
      expect(sameHost.received).toHaveLength(0);
      // The bridge kept sending its 50 packets/s to the peer all along (≥ 1 s of spraying).
      expect(receivedDuringTakeover).toBeGreaterThan(25);
      expect(new Set(media.received.map((p) => `${p.from.address}:${p.from.port}`))).toEqual(
        new Set([`${bridgeRtp.address}:${bridgeRtp.port}`]),
      );
      expect(new Set(media.received.map((p) => p.ssrc)).size).toBe(1);

      // What the bridge took in from the caller side: the peer's tone, nothing of the attackers'.
      await bridge.waitForLog("call ended", 5_000);
      const [file] = readdirSync(recordings);
      expect(file).toBeDefined();
      await sleep(300); // the recorder patches the WAV header once the call's media has closed
      const [caller] = deinterleave(await readWavFile(join(recordings, file!)));
      const peerTone = goertzelPower(caller!, 1_000);
      const injected = Math.max(goertzelPower(caller!, 2_000), goertzelPower(caller!, 2_500));
      console.info(
        `RTP bleed recording: 1 kHz power ${peerTone.toExponential(2)}, attackers' tones ${injected.toExponential(2)}`,
      );
      expect(peerTone).toBeGreaterThan(1e-3);
      expect(injected).toBeLessThan(peerTone / 1_000);
    } finally {
      foreign.close();
      sameHost.close();
      await media.close();
    }
  });
  /**
   * The latch's former opening (bridge-vm/src/media/latch.ts): until it locked, any port on the SDP's IP may
   * win probation. Packets from the PBX's IP but another port, sprayed in the window between our 200 OK
   * and the PBX's first RTP, lock the call onto that port; the PBX's real stream from the SDP port is
   * then ignored and our audio goes to the attacker's port for the rest of the call. Over the internet
   * this needs the PBX's address as source (spoofable over UDP) and the RTP port (one of ~5,000 even
   * ports), and a spoofer does not receive the audio, so it is a denial of service on one call rather
   * than a capture, unless the attacker shares the PBX's host or NAT.
   * sip-interop.md §3.3 asks to learn only "within a window after (re)negotiation". Fixed in latch.ts: the
   * exact SDP ip:port is preferred (another port may lock only after it has been silent for 1 s since the
   * answer, and `probation` sequential packets from it move the latch back), and the learning window
   * closes 5 s after the answer.
   */
  it("RTP sprayed from the PBX's own IP before its stream starts does not take the call's audio", async () => {
    const media = await RtpPeer.start({ port: (await freePortPair(PBX)).rtp, host: PBX });
    const sameHost = await UdpAttacker.bind(PBX);
    try {
      const call = runSipp({
        scenario: "uac-record",
        remote: `${BRIDGE_HOST}:${bridge.port}`,
        localIp: PBX,
        service: bridge.token!,
        keys: { rtp_port: String(media.port) },
        pauseMs: 3_000,
        timeoutMs: 25_000,
      });
      await media.waitForPackets(3);
      const bridgeRtp = media.remoteAddress!;
      const attack = spray(sameHost, bridgeRtp.address, bridgeRtp.port, SPRAY_PACKETS / 2, 2_000);
      await sleep(300);
      const receivedBefore = media.received.length;
      await media.sendAudio(tone(1_000, 1_500), { paced: true });
      await attack;
      const receivedWhileStreaming = media.received.length - receivedBefore;
      const result = await call;
      expect(result.exitCode, describeSippResult(result)).toBe(0);
      console.info(
        `RTP latch window: the attacker got ${sameHost.received.length} packets; the peer ${receivedWhileStreaming} ` +
          "while streaming",
      );
      expect(sameHost.received).toHaveLength(0);
      expect(receivedWhileStreaming).toBeGreaterThan(25);
    } finally {
      sameHost.close();
      await media.close();
    }
  });
});
