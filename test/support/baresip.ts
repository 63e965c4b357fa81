/**
 * baresip (apt `baresip`, v1.0.0 here) as a headless second real UA: no sound card, no terminal.
 *
 *  - Config dir written per instance (`-f dir`): `config` + `accounts`, modules g711, aufile (audio source
 *    from a WAV file), aubridge (its player, with nothing reading it, is a null sink), sndfile (an audio
 *    filter that dumps what baresip sends and what it decodes to `dump-<time>-enc.wav` / `-dec.wav`: the
 *    only way this baresip records what it hears: 1.0.0 has no file *player*), ctrl_tcp (commands and
 *    events as JSON netstrings), account + menu (dial, hangup, `sndcode` = RFC 4733 DTMF).
 *  - `net_interface <ip>` pins the SIP and SDP address to a loopback address: with the default it
 *    advertises the VM's eth0 address, and `net_interface lo` fails here (no address found on lo).
 *    The default is 127.0.0.1 on purpose: baresip binds its RTP socket to 0.0.0.0, so from a secondary
 *    loopback address (127.0.0.4) its RTP leaves with source 127.0.0.1 while its SDP says 127.0.0.4, and
 *    the bridge's latch then (rightly, AST-2017-005) waits 1 s for the SDP ip:port before accepting the
 *    other source: the first second of the caller's audio would be missing from the recording.
 *  - One account that registers with digest auth on the given registrar (Kamailio).
 *
 * Things baresip 1.0.0 does on its own that a test must know: when the aufile source reaches the end of
 * its file the menu module hangs the call up ("audio error: end of file"), so give it a file longer than
 * the call; and `sndcode` sends each key as a press + end (~180 ms) without a way to set the duration.
 */
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeWav } from "./audio";
import { freePortBlock, freeTcpPort, freeUdpPort, LOOPBACK } from "./ports";
import { type PeerHandle, spawnPeer } from "./process";

export const BARESIP_BIN = "/usr/bin/baresip";
const MODULE_PATH = "/usr/lib/baresip/modules";

export interface BaresipOptions {
  username: string;
  password: string;
  /** Registrar host:port (Kamailio); the account's AOR is sip:username@domain:port. */
  registrar: { host: string; port: number; domain?: string };
  /** Local address for SIP and SDP (default 127.0.0.1: see the header on RTP source addresses). */
  host?: string;
  /** PCM16 mono 8 kHz audio baresip sends as its microphone (written to a WAV for aufile). */
  source: Int16Array;
  /** REGISTER refresh interval (default 60, Kamailio's test minimum). */
  regintS?: number;
  timeoutMs?: number;
}

/** A ctrl_tcp event, e.g. { type: "CALL_ESTABLISHED", id, peeruri, param }. */
export interface BaresipEvent {
  type: string;
  class?: string;
  id?: string;
  param?: string;
  peeruri?: string;
  [key: string]: unknown;
}

export interface BaresipInstance {
  process: PeerHandle;
  /** Config dir; also where sndfile writes its dumps. */
  dir: string;
  host: string;
  sipPort: number;
  /** Every ctrl_tcp event so far. */
  events: BaresipEvent[];
  /** Run a command (`dial <uri>`, `hangup`, `sndcode 1`, …); resolves with its response data. */
  command(command: string, params?: string, timeoutMs?: number): Promise<string>;
  /** The first event of `type` (past ones included) matching `filter`. */
  waitForEvent(
    type: string,
    timeoutMs?: number,
    filter?: (event: BaresipEvent) => boolean,
  ): Promise<BaresipEvent>;
  /** The sndfile dumps of the last call: `dec` = what baresip heard, `enc` = what it sent. */
  dumps(): Promise<{ dec?: string; enc?: string }>;
  stop(): Promise<void>;
}

/** JSON netstrings ("len:json,") in both directions, as ctrl_tcp speaks them. */
function netstring(json: string): string {
  return `${Buffer.byteLength(json)}:${json},`;
}

export async function startBaresip(options: BaresipOptions): Promise<BaresipInstance> {
  const host = options.host ?? LOOPBACK;
  const dir = await mkdtemp(join(tmpdir(), "patchbay-baresip-"));
  const sipPort = await freeUdpPort(host);
  const ctrlPort = await freeTcpPort(LOOPBACK);
  const rtpBase = await freePortBlock(8, host);
  const sourcePath = join(dir, "source.wav");
  await writeFile(sourcePath, writeWav({ sampleRate: 8000, channels: 1, samples: options.source }));
  await writeFile(
    join(dir, "config"),
    [
      "poll_method epoll",
      `net_interface ${host}`,
      `sip_listen ${host}:${sipPort}`,
      "call_max_calls 1",
      `audio_source aufile,${sourcePath}`,
      "audio_player aubridge,patchbay-sink",
      "audio_alert aubridge,patchbay-alert",
      "ausrc_srate 8000",
      "auplay_srate 8000",
      "ausrc_channels 1",
      "auplay_channels 1",
      `rtp_ports ${rtpBase}-${rtpBase + 7}`,
      "rtp_timeout 0",
      `module_path ${MODULE_PATH}`,
      "module g711.so",
      "module aufile.so",
      "module aubridge.so",
      "module sndfile.so",
      "module ctrl_tcp.so",
      "module_tmp account.so",
      "module_app menu.so",
      `ctrl_tcp_listen ${LOOPBACK}:${ctrlPort}`,
      `snd_path ${dir}`,
      "",
    ].join("\n"),
  );
  const { host: regHost, port: regPort, domain = regHost } = options.registrar;
  await writeFile(
    join(dir, "accounts"),
    `<sip:${options.username}@${domain}:${regPort}>;auth_pass=${options.password};regint=${options.regintS ?? 60};audio_codecs=pcmu;answermode=manual\n`,
  );

  const timeoutMs = options.timeoutMs ?? 15_000;
  const proc = await spawnPeer(`baresip:${sipPort}`, BARESIP_BIN, ["-f", dir, "-v"], {
    cwd: dir,
    readyPattern: "baresip is ready.",
    timeoutMs,
  });
  await proc.waitFor(new RegExp(`${options.username}@[^:]+: \\{0/UDP/v4\\} 200 OK`), {
    timeoutMs,
    includePast: true,
  });

  const socket: Socket = connect(ctrlPort, LOOPBACK);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const events: BaresipEvent[] = [];
  const pending = new Map<string, (response: { ok: boolean; data: string }) => void>();
  let buffer = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      const colon = buffer.indexOf(0x3a);
      if (colon < 0) break;
      const length = Number(buffer.subarray(0, colon).toString());
      if (buffer.length < colon + 1 + length + 1) break;
      const json = buffer.subarray(colon + 1, colon + 1 + length).toString();
      buffer = buffer.subarray(colon + 1 + length + 1);
      const message = JSON.parse(json) as {
        event?: boolean;
        response?: boolean;
        token?: string;
      } & BaresipEvent;
      if (message.event) events.push(message);
      else if (message.response && message.token) {
        pending.get(message.token)?.(message as unknown as { ok: boolean; data: string });
        pending.delete(message.token);
      }
    }
  });
  socket.on("error", () => undefined); // baresip exiting closes it; commands then time out

  let tokens = 0;
  const command = (name: string, params = "", commandTimeoutMs = 5000) =>
    new Promise<string>((resolve, reject) => {
      const token = `t${++tokens}`;
      const timer = setTimeout(() => {
        pending.delete(token);
        reject(new Error(`baresip: no response to ${name} ${params}\n${proc.tail(20)}`));
      }, commandTimeoutMs);
      pending.set(token, (response) => {
        clearTimeout(timer);
        if (response.ok) resolve(response.data);
        else reject(new Error(`baresip: ${name} ${params} failed: ${response.data}`));
      });
      socket.write(netstring(JSON.stringify({ command: name, params, token })));
    });

  const waitForEvent = async (
    type: string,
    eventTimeoutMs = 15_000,
    filter?: (event: BaresipEvent) => boolean,
  ) => {
    const deadline = Date.now() + eventTimeoutMs;
    for (;;) {
      const found = events.find((event) => event.type === type && (filter?.(event) ?? true));
      if (found) return found;
      if (!proc.running) throw new Error(`baresip exited while waiting for ${type}\n${proc.tail(30)}`);
      if (Date.now() > deadline) {
        throw new Error(
          `baresip: no ${type} event in ${eventTimeoutMs} ms (events: ${events.map((e) => e.type).join(", ")})\n${proc.tail(30)}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };

  let stopped: Promise<void> | undefined;
  return {
    process: proc,
    dir,
    host,
    sipPort,
    events,
    command,
    waitForEvent,
    async dumps() {
      const files = (await readdir(dir)).filter((file) => file.startsWith("dump-")).sort();
      const pick = (suffix: string) => {
        const file = files.filter((name) => name.endsWith(suffix)).at(-1);
        return file === undefined ? undefined : join(dir, file);
      };
      const found: { dec?: string; enc?: string } = {};
      const dec = pick("-dec.wav");
      const enc = pick("-enc.wav");
      if (dec) found.dec = dec;
      if (enc) found.enc = enc;
      return found;
    },
    stop() {
      stopped ??= (async () => {
        socket.destroy();
        await proc.stop(3000);
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
