/**
 * A phone on the far side of the PBX: the SIP caller (signalling) paired with an RtpPeer (media), plus the
 * measurements the demo and the end-to-end tests make at the caller's ear — when its own voice started and
 * stopped, when the agent's speech arrived and stopped. Times are epoch milliseconds with sub-ms precision
 * (performance.timeOrigin + performance.now()) so they line up with the Worker's Date.now() timestamps on
 * the same machine.
 */
import { performance } from "node:perf_hooks";
import { decodeG711 } from "@patchbay/shared/audio";
import { espeak, rmsDbfs } from "../support/audio";
import { freePortPair } from "../support/ports";
import { type RtpPacket, RtpPeer } from "../support/rtp-peer";
import { type AnsweredCall, SipCaller } from "./sip-caller";

const FRAME_SAMPLES = 160;
const FRAME_MS = 20;
/**
 * A 20 ms frame louder than this counts as speech. espeak speech sits around -20 dBFS and idle G.711 decodes
 * to digital zero (-inf); -55 rather than -45 catches soft onsets such as the "th" of "thank" (100 ms later
 * at -45 dBFS), so mouth-to-ear is not inflated by a quiet first phoneme.
 */
export const SPEECH_DBFS = -55;

export const epochNow = (): number => performance.timeOrigin + performance.now();

export interface PhoneOptions {
  /** The proxy (Kamailio) or the bridge, and the Request-URI to call. */
  proxy: { host: string; port: number };
  target: string;
  /** Local address for SIP and RTP (Kamailio's trusted trunk, 127.0.0.2). */
  host: string;
}

export interface Utterance {
  text: string;
  /** Epoch ms of the first and last frame with speech energy that we sent. */
  firstVoicedAt: number;
  lastVoicedAt: number;
  durationMs: number;
}

/** One received 20 ms frame: arrival time and level. */
export interface HeardFrame {
  at: number;
  dbfs: number;
}

const SILENT_FRAME = new Int16Array(FRAME_SAMPLES);
const speechCache = new Map<string, Promise<Int16Array>>();

/** espeak-ng at 140 wpm, the American voice the offline recognizer is tuned for; cached per text. */
export function speech(text: string): Promise<Int16Array> {
  let cached = speechCache.get(text);
  if (!cached) {
    cached = espeak(text, { wpm: 140, voice: "en-us" });
    speechCache.set(text, cached);
  }
  return cached;
}

function voicedFrameIndexes(samples: Int16Array): number[] {
  const indexes: number[] = [];
  for (let i = 0; i * FRAME_SAMPLES < samples.length; i++) {
    if (rmsDbfs(samples.subarray(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES)) > SPEECH_DBFS) indexes.push(i);
  }
  return indexes;
}

export class Phone {
  readonly sip: SipCaller;
  readonly rtp: RtpPeer;
  answered?: AnsweredCall;
  /** Epoch ms of the 200 OK. */
  answeredAt = 0;
  readonly utterances: Utterance[] = [];
  private readonly outgoing: Array<{ frame: Int16Array; sent(at: number): void }> = [];
  private mediaRunning = false;
  private mediaLoop: Promise<void> | undefined;
  private dtmfBusy = false;
  private readonly frameLevels = new WeakMap<RtpPacket, number>();

  private constructor(
    sip: SipCaller,
    rtp: RtpPeer,
    private readonly target: string,
  ) {
    this.sip = sip;
    this.rtp = rtp;
    // A phone stops sending media when the far end hangs up.
    sip.on("bye", () => {
      this.mediaRunning = false;
    });
  }

  static async open(options: PhoneOptions): Promise<Phone> {
    const rtp = await RtpPeer.start({ host: options.host, port: (await freePortPair(options.host)).rtp });
    const sip = new SipCaller({
      localAddress: options.host,
      outboundProxy: options.proxy,
      rtpAddress: options.host,
      rtpPort: rtp.port,
      codecs: ["PCMU"],
    });
    try {
      await sip.open();
    } catch (error) {
      await rtp.close();
      throw error;
    }
    return new Phone(sip, rtp, options.target);
  }

  /** Dials and resolves once answered (RTP then flows to the bridge's SDP address). */
  async dial(options: { timeoutMs?: number; headers?: Record<string, string> } = {}): Promise<AnsweredCall> {
    const answered = await this.sip.call(this.target, options);
    this.answered = answered;
    this.answeredAt = epochNow();
    this.rtp.setRemote(answered.remoteRtp.address, answered.remoteRtp.port);
    this.startMedia();
    return answered;
  }

  get sipCallId(): string {
    return this.sip.callId;
  }

  /**
   * Starts the caller's outgoing media: one 20 ms frame every 20 ms for the whole call, like a real
   * phone — queued speech when there is some, digital silence otherwise (a bridge sees a silent caller,
   * not a dead one: its RTP timeout and its VAD's end-of-speech both need frames to keep coming).
   */
  private startMedia(): void {
    if (this.mediaLoop) return;
    this.mediaRunning = true;
    this.mediaLoop = (async () => {
      const start = performance.now();
      for (let n = 0; this.mediaRunning; n++) {
        const wait = start + n * FRAME_MS - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        if (!this.mediaRunning) break;
        if (this.dtmfBusy) continue; // RtpPeer.sendDtmf owns the stream (and its timestamps) meanwhile
        const queued = this.outgoing.shift();
        await this.rtp.sendAudio(queued?.frame ?? SILENT_FRAME, { paced: false }).catch(() => undefined);
        queued?.sent(epochNow());
      }
    })();
  }

  /** Speaks `text` in real time (20 ms paced RTP); resolves when its last frame has been sent. */
  async say(text: string, onFirstVoiced?: (at: number) => void): Promise<Utterance> {
    const samples = await speech(text);
    const voiced = new Set(voicedFrameIndexes(samples));
    const voicedTimes: number[] = [];
    await this.queue(samples, (index, at) => {
      if (!voiced.has(index)) return;
      if (voicedTimes.length === 0) onFirstVoiced?.(at);
      voicedTimes.push(at);
    });
    const utterance: Utterance = {
      text,
      firstVoicedAt: voicedTimes[0] ?? epochNow(),
      lastVoicedAt: voicedTimes.at(-1) ?? epochNow(),
      durationMs: (samples.length / 8000) * 1000,
    };
    this.utterances.push(utterance);
    return utterance;
  }

  /** Sends any 8 kHz audio (a test tone) in real time; resolves with when its first and last frames went out. */
  async play(samples: Int16Array): Promise<{ firstSentAt: number; lastSentAt: number }> {
    let firstSentAt = 0;
    const lastSentAt = await this.queue(samples, (index, at) => {
      if (index === 0) firstSentAt = at;
    });
    return { firstSentAt, lastSentAt };
  }

  /**
   * Queues `samples` as 20 ms frames on the media loop; `onSent` sees each frame's index and send time.
   * Resolves with the last frame's send time.
   */
  private queue(samples: Int16Array, onSent: (index: number, at: number) => void): Promise<number> {
    const frameCount = Math.ceil(samples.length / FRAME_SAMPLES);
    return new Promise((resolve) => {
      for (let i = 0; i < frameCount; i++) {
        const frame = new Int16Array(FRAME_SAMPLES);
        frame.set(samples.subarray(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES));
        this.outgoing.push({
          frame,
          sent: (at) => {
            onSent(i, at);
            if (i === frameCount - 1) resolve(at);
          },
        });
      }
    });
  }

  /** Starts speaking without waiting: `onsetAt` resolves when the first voiced frame has been sent. */
  startSaying(text: string): { onsetAt: Promise<number>; done: Promise<Utterance> } {
    let onset!: (at: number) => void;
    const onsetAt = new Promise<number>((resolve) => {
      onset = resolve;
    });
    const done = this.say(text, onset);
    return { onsetAt, done };
  }

  /** Presses a key: RFC 4733 events (the silence stream pauses meanwhile). */
  async pressDigit(digit: string, durationMs = 160): Promise<void> {
    this.dtmfBusy = true;
    try {
      await this.rtp.sendDtmf(digit, { durationMs });
    } finally {
      this.dtmfBusy = false;
    }
  }

  /** Every received G.711 frame in arrival order with its level. */
  heard(): HeardFrame[] {
    const frames: HeardFrame[] = [];
    for (const packet of this.rtp.received) {
      if (packet.payloadType !== 0 && packet.payloadType !== 8) continue;
      let level = this.frameLevels.get(packet);
      if (level === undefined) {
        const pcm = decodeFrame(packet);
        level = rmsDbfs(pcm);
        this.frameLevels.set(packet, level);
      }
      frames.push({ at: performance.timeOrigin + packet.arrivedAt, dbfs: level });
    }
    return frames;
  }

  /** Arrival time of the first frame with speech energy after `after` (epoch ms), if any. */
  firstSpeechAfter(after: number): number | undefined {
    return this.heard().find((frame) => frame.at > after && frame.dbfs > SPEECH_DBFS)?.at;
  }

  /**
   * When the agent's speech stopped after `after`: the arrival time of the last voiced frame before a run
   * of at least `quietMs` without speech. Undefined if it has not stopped (yet).
   */
  speechStoppedAfter(after: number, quietMs = 400): number | undefined {
    let lastVoiced: number | undefined;
    for (const frame of this.heard()) {
      if (frame.at <= after) continue;
      if (frame.dbfs > SPEECH_DBFS) {
        lastVoiced = frame.at;
        continue;
      }
      if (frame.at - (lastVoiced ?? after) >= quietMs) return lastVoiced ?? after;
    }
    // No frames at all for quietMs (the far end hung up, or stopped sending) also counts as quiet.
    if (lastVoiced !== undefined && epochNow() - lastVoiced >= quietMs) return lastVoiced;
    return undefined;
  }

  /** The received audio (PCM16, 8 kHz) of the frames that arrived between two epoch times. */
  audioBetween(from: number, to: number): Int16Array {
    const frames = this.rtp.received.filter((packet) => {
      const at = performance.timeOrigin + packet.arrivedAt;
      return (packet.payloadType === 0 || packet.payloadType === 8) && at > from && at <= to;
    });
    const out = new Int16Array(frames.reduce((sum, packet) => sum + packet.payload.length, 0));
    let offset = 0;
    for (const packet of frames) {
      out.set(decodeFrame(packet), offset);
      offset += packet.payload.length;
    }
    return out;
  }

  /** Milliseconds of received speech (voiced frames × 20) between two epoch times. */
  speechMsBetween(from: number, to: number): number {
    return this.heard().filter((f) => f.at > from && f.at <= to && f.dbfs > SPEECH_DBFS).length * FRAME_MS;
  }

  /** Waits until `predicate` holds (polled every 50 ms), or throws after `timeoutMs` with `what`. */
  async waitUntil<T>(what: string, predicate: () => T | undefined, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = predicate();
      if (value !== undefined && value !== false) return value;
      if (Date.now() > deadline)
        throw new Error(`phone: timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Waits for the agent to start speaking after `after` and then to fall quiet; returns both times. */
  async listen(
    after: number,
    options: { startTimeoutMs?: number; endTimeoutMs?: number; quietMs?: number } = {},
  ): Promise<{ startedAt: number; stoppedAt: number }> {
    const startedAt = await this.waitUntil(
      "the agent's speech",
      () => this.firstSpeechAfter(after),
      options.startTimeoutMs ?? 15_000,
    );
    const stoppedAt = await this.waitUntil(
      "the agent to stop speaking",
      () => this.speechStoppedAfter(startedAt - 1, options.quietMs ?? 700),
      options.endTimeoutMs ?? 30_000,
    );
    return { startedAt, stoppedAt };
  }

  /** Hangs up if the call is still up, then releases sockets. Idempotent. */
  async close(): Promise<void> {
    this.mediaRunning = false;
    await this.mediaLoop;
    if (this.answered && !this.sip.hungUp) await this.sip.hangup().catch(() => undefined);
    await this.sip.close();
    await this.rtp.close();
  }
}

function decodeFrame(packet: RtpPacket): Int16Array {
  return decodeG711(packet.payloadType === 0 ? "PCMU" : "PCMA", packet.payload);
}
