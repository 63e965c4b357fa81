/**
 * The contract between the call layer (src/call, which owns SIP dialogs) and the media engine
 * (src/media, which owns RTP sockets), and between the media engine and the cloud link (src/cloud).
 *
 *   call layer ──open(params)──▶ MediaEngine ──▶ CallMedia (RTP socket pair, jitter buffer, playout)
 *                                                   └─ duplex: CallAudioDuplex ◀──▶ cloud link
 *
 * The call layer never touches RTP; the cloud link never touches SIP or sockets below the duplex.
 */
import type { G711Codec } from "@patchbay/shared/audio";

export type MediaDirection = "sendrecv" | "sendonly" | "recvonly" | "inactive";

/** What SDP negotiation decided, from our point of view (direction is OUR direction). */
export interface MediaParams {
  codec: G711Codec;
  /** RTP payload type of the chosen codec (0 or 8). */
  payloadType: number;
  /** The REMOTE side's telephone-event/8000 payload type, if it offered one. */
  dtmfPayloadType?: number;
  remoteAddress: string;
  remotePort: number;
  direction: MediaDirection;
  ptimeMs: number;
}

export interface DtmfEvent {
  digit: string;
  durationMs: number;
  /** Milliseconds since media start. */
  atMs: number;
}

export interface MediaStats {
  packetsReceived: number;
  packetsSent: number;
  packetsLost: number;
  lossPercent: number;
  jitterMs: number;
  late: number;
  reordered: number;
  duplicates: number;
  concealed: number;
  droppedNotRtp: number;
  droppedWrongPayloadType: number;
  droppedWrongSource: number;
  roundTripMs?: number;
  playoutQueuedMs: number;
  playoutUnderruns: number;
}

export interface CallAudioDuplexEvents {
  /** One 20 ms frame of caller audio (the call's codec) as it leaves the jitter buffer. `frame` is reused. */
  callerFrame: (frame: Uint8Array, seq: number, timeMs: number) => void;
  dtmf: (event: DtmfEvent) => void;
  /** A mark placed with mark() has been sent on the wire. */
  markPlayed: (name: string, atMs: number) => void;
}

/** What the cloud link sees of a call's media: audio both ways plus the control verbs. */
export interface CallAudioDuplex {
  readonly codec: G711Codec;
  on<E extends keyof CallAudioDuplexEvents>(event: E, listener: CallAudioDuplexEvents[E]): void;
  off<E extends keyof CallAudioDuplexEvents>(event: E, listener: CallAudioDuplexEvents[E]): void;
  /** Queue agent audio (any length, the call's codec) for paced 20 ms playout. */
  enqueueAgentAudio(audio: Uint8Array): void;
  /** Barge-in: drop queued agent audio within one frame. Returns how much was thrown away. */
  clearAgentAudio(): { discardedMs: number };
  /** Name the current end of the playout queue; `markPlayed` fires when playout reaches it. */
  mark(name: string): void;
  /** Send RFC 4733 events for these digits (queued behind each other). */
  sendDtmf(digits: string): Promise<void>;
  stats(): MediaStats;
}

export interface CallMediaEvents {
  /** No RTP for rtp.timeoutS while not on hold: the call should hang up with cause "media-timeout". */
  timeout: () => void;
  closed: (reason: string) => void;
}

export interface CallMedia {
  /** The bound RTP port to put in our SDP (RTCP uses localPort + 1). */
  readonly localPort: number;
  readonly duplex: CallAudioDuplex;
  on<E extends keyof CallMediaEvents>(event: E, listener: CallMediaEvents[E]): void;
  /** Begin sending (after the call is answered). Receiving starts at open(). */
  start(): void;
  /** A re-INVITE changed the remote address, codec or direction (hold/resume). */
  update(params: MediaParams): void;
  /** Idempotent; releases the ports. */
  close(reason: string): Promise<void>;
}

export interface MediaEngine {
  /** Binds an RTP/RTCP port pair for a new call. Rejects with MediaUnavailableError when the range is exhausted. */
  open(options: {
    callId: string;
    params: MediaParams;
    recordingPath?: string;
    /** IPs besides params.remoteAddress that may latch (e.g. the PBX's SIP source IP when it is NAT'd). */
    extraMediaAddresses?: readonly string[];
    /** Values for the {from} and {to} tokens of recording.path. */
    from?: string;
    to?: string;
  }): Promise<CallMedia>;
  readonly activeSessions: number;
}

export class MediaUnavailableError extends Error {
  override readonly name = "MediaUnavailableError";
}
