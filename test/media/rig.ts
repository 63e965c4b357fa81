/**
 * What the media tests share: Kamailio with the bridge's extension (and any phones'), the real bridge
 * process registered on it with recording on and its cloud link pointed at a FakeCloud, a temporary
 * recordings folder, and a poll helper. Each file gets its own RTP port range so files never collide.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BridgeInstance, startBridge } from "../support/bridge";
import { type KamailioInstance, startKamailio } from "../support/kamailio";
import { FakeCloud } from "./fake-cloud";

export interface MediaRig {
  kamailio: KamailioInstance;
  bridge: BridgeInstance;
  cloud: FakeCloud;
  /** Folder the bridge writes `{callId}.wav` into. */
  recordings: string;
  close(): Promise<void>;
}

export async function startMediaRig(options: {
  bridgeUser: { username: string; password: string };
  /** Further Kamailio users (phones that register). */
  otherUsers?: ReadonlyArray<{ username: string; password: string }>;
  /** First and last RTP port of the bridge (even start). */
  rtpPorts: readonly [number, number];
  /** mkdtemp prefix for the recordings folder. */
  name: string;
}): Promise<MediaRig> {
  const cloud = new FakeCloud();
  const cloudUrl = await cloud.start();
  const recordings = await mkdtemp(join(tmpdir(), `patchbay-${options.name}-`));
  // Kamailio and the bridge are child processes: the per-file peer sweep stops them if a start fails.
  const kamailio = await startKamailio({ users: [options.bridgeUser, ...(options.otherUsers ?? [])] }).catch(
    async (error: unknown) => {
      await cloud.stop();
      await rm(recordings, { recursive: true, force: true });
      throw error;
    },
  );
  const bridge = await startBridge({
    registrar: `${kamailio.host}:${kamailio.port}`,
    host: "127.0.0.3",
    ...options.bridgeUser,
    env: {
      CLOUD_URL: cloudUrl,
      CLOUD_SECRET: cloud.secret,
      RECORDING_ENABLED: "true",
      RECORDING_PATH: join(recordings, "{callId}.wav"),
      RTP_PORT_MIN: String(options.rtpPorts[0]),
      RTP_PORT_MAX: String(options.rtpPorts[1]),
      LOG_LEVEL: "info",
    },
  });
  return {
    kamailio,
    bridge,
    cloud,
    recordings,
    async close() {
      await bridge.stop();
      await kamailio.stop();
      await cloud.stop();
      await rm(recordings, { recursive: true, force: true });
    },
  };
}

/** Polls `probe` until it returns something truthy; throws naming `what` after `timeoutMs`. */
export async function until<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
