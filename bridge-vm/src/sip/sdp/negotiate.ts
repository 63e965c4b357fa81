/**
 * SDP offer/answer for one G.711 audio stream (RFC 3264, RFC 4566, RFC 4733 telephone-event).
 * Pure: SDP text in, SDP text + MediaParams out. sdp-transform does the line grammar; this file does
 * the validation sdp-transform does not (it accepts PT 4294967296 or port 99999 silently) and the policy.
 */
import type { G711Codec } from "@patchbay/shared/audio";
import * as sdpTransform from "sdp-transform";
import type { MediaDirection, MediaParams } from "../../media/types";

type MediaDescription = sdpTransform.MediaDescription;
type SessionDescription = sdpTransform.SessionDescription;

export interface LocalMediaInfo {
  /** Our RTP address as the peer must see it (IPv4 dotted quad or IPv6 literal without brackets). */
  address: string;
  /** Our bound RTP port (RTCP = port + 1). */
  port: number;
  /** o= sess-id: fixed for the life of the call. */
  sessionId: string;
  /** o= sess-version: the caller increments it whenever our SDP changes (RFC 3264 §8). */
  sessionVersion: number;
}

export interface AnswerLocalMediaInfo extends LocalMediaInfo {
  /** Our codec preference; when omitted the offerer's order decides among PCMU/PCMA. */
  preferredCodecs?: G711Codec[];
}

export type AnswerResult =
  | { ok: true; answer: string; params: MediaParams }
  | { ok: false; status: 488 | 400; reason: string };

export type ParseAnswerResult = { ok: true; params: MediaParams } | { ok: false; reason: string };

/** sip-interop.md §3.3: bound what we accept. */
export const SDP_LIMITS = { maxMediaLines: 8, maxBytes: 16384 } as const;

const DEFAULT_PTIME_MS = 20;
const STATIC_PAYLOAD_TYPES: Record<number, G711Codec> = { 0: "PCMU", 8: "PCMA" };
const CODEC_PAYLOAD_TYPE: Record<G711Codec, number> = { PCMU: 0, PCMA: 8 };
const RTP_PROFILES = new Set(["RTP/AVP", "RTP/AVPF"]);
const SESSION_NAME = "patchbay";

// ---------------------------------------------------------------------------------------------------------
// Strict pre-validation of the lines we rely on (sdp-transform is permissive)

interface ValidatedMediaLine {
  type: string;
  port: number;
  protocol: string;
  /** Format list as written (RTP payload types for RTP profiles). */
  formats: string[];
}

type Validation =
  | { ok: true; mediaLines: ValidatedMediaLine[] }
  | { ok: false; status: 400 | 488; reason: string };

const M_LINE = /^m=([a-z0-9\-_.]+) (\d{1,5})(?:\/(\d{1,2}))? ([A-Za-z0-9/\-_.]+)((?: [^ ]+)+)$/i;
const C_LINE = /^c=IN (IP4|IP6) ([0-9A-Fa-f:.]+|[A-Za-z0-9\-.]+)(?:\/\d{1,3})?(?:\/\d{1,3})?$/;
const O_LINE = /^o=(\S+) (\d{1,20}) (\d{1,20}) IN (IP4|IP6) (\S+)$/;

function validate(sdp: string): Validation {
  if (sdp.length > SDP_LIMITS.maxBytes) return { ok: false, status: 400, reason: "SDP too large" };
  // Trailing whitespace on a line is common from hardware phones and harmless: tolerate it.
  const lines = sdp
    .split(/\r?\n/)
    .map((line) => line.trimEnd())
    .filter((line) => line.length > 0);
  if (lines[0] !== "v=0") return { ok: false, status: 400, reason: "SDP must start with v=0" };
  const origin = lines.find((line) => line.startsWith("o="));
  if (!origin || !O_LINE.test(origin)) return { ok: false, status: 400, reason: "Bad SDP origin" };

  const mediaLines: ValidatedMediaLine[] = [];
  let sessionConnection = false;
  let currentHasConnection = false;
  for (const line of lines) {
    if (line.startsWith("m=")) {
      if (
        mediaLines.length > 0 &&
        !currentHasConnection &&
        !sessionConnection &&
        mediaLines.at(-1)!.port !== 0
      ) {
        return { ok: false, status: 400, reason: "SDP media without c=" };
      }
      if (mediaLines.length >= SDP_LIMITS.maxMediaLines) {
        return { ok: false, status: 488, reason: "Too many SDP media lines" };
      }
      const match = M_LINE.exec(line);
      if (!match) return { ok: false, status: 400, reason: "Bad SDP m= line" };
      const port = Number(match[2]);
      if (port > 65535) return { ok: false, status: 400, reason: "Bad SDP port" };
      const protocol = match[4]!;
      const formats = match[5]!.trim().split(" ");
      if (/^RTP\//i.test(protocol)) {
        for (const format of formats) {
          if (!/^\d{1,3}$/.test(format) || Number(format) > 127) {
            return { ok: false, status: 400, reason: "Bad SDP payload type" };
          }
        }
      }
      mediaLines.push({ type: match[1]!.toLowerCase(), port, protocol, formats });
      currentHasConnection = false;
    } else if (line.startsWith("c=")) {
      if (!C_LINE.test(line)) return { ok: false, status: 400, reason: "Bad SDP c= line" };
      if (mediaLines.length === 0) sessionConnection = true;
      else currentHasConnection = true;
    } else if (line.startsWith("a=rtpmap:") || line.startsWith("a=fmtp:")) {
      const pt = /^a=(?:rtpmap|fmtp):(\d{1,3})(?: |$)/.exec(line);
      if (!pt || Number(pt[1]) > 127) return { ok: false, status: 400, reason: "Bad SDP payload type" };
    }
  }
  if (mediaLines.length === 0) return { ok: false, status: 400, reason: "SDP without media" };
  if (!currentHasConnection && !sessionConnection && mediaLines.at(-1)!.port !== 0) {
    return { ok: false, status: 400, reason: "SDP media without c=" };
  }
  return { ok: true, mediaLines };
}

function parseSdp(sdp: string): SessionDescription | undefined {
  try {
    return sdpTransform.parse(sdp);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Helpers over one media description

function payloadTypes(line: ValidatedMediaLine): number[] {
  return line.formats.map(Number);
}

function rtpmapOf(media: MediaDescription, pt: number): { codec: string; rate?: number } | undefined {
  return media.rtp.find((entry) => entry.payload === pt);
}

/** The G.711 codec a payload type carries: static 0/8 (with or without rtpmap) or a dynamic PCMU/PCMA rtpmap. */
function g711CodecOf(media: MediaDescription, pt: number): G711Codec | undefined {
  const map = rtpmapOf(media, pt);
  if (map) {
    const name = map.codec.toUpperCase();
    if ((name === "PCMU" || name === "PCMA") && (map.rate === undefined || map.rate === 8000)) return name;
    return undefined;
  }
  return STATIC_PAYLOAD_TYPES[pt];
}

/** The telephone-event/8000 payload type (never the /48000 one Asterisk also offers). */
function telephoneEventOf(media: MediaDescription, pts: number[]): number | undefined {
  return pts.find((pt) => {
    const map = rtpmapOf(media, pt);
    return map !== undefined && map.codec.toLowerCase() === "telephone-event" && map.rate === 8000;
  });
}

function directionOf(media: MediaDescription, session: SessionDescription): MediaDirection {
  return media.direction ?? session.direction ?? "sendrecv";
}

function connectionOf(media: MediaDescription, session: SessionDescription): string | undefined {
  return media.connection?.ip ?? session.connection?.ip;
}

function isNullAddress(address: string): boolean {
  return address === "0.0.0.0" || address === "::";
}

/** The direction the other side implies for us: their sendonly is our recvonly, and so on. */
function mirror(direction: MediaDirection): MediaDirection {
  if (direction === "sendonly") return "recvonly";
  if (direction === "recvonly") return "sendonly";
  return direction;
}

/** RFC 2543 hold (c=0.0.0.0): the peer does not want to receive, whatever the attribute says. */
function withoutSend(direction: MediaDirection): MediaDirection {
  if (direction === "sendrecv") return "recvonly";
  if (direction === "sendonly") return "inactive";
  return direction;
}

function intersect(a: MediaDirection, b: MediaDirection): MediaDirection {
  const send = (a === "sendrecv" || a === "sendonly") && (b === "sendrecv" || b === "sendonly");
  const recv = (a === "sendrecv" || a === "recvonly") && (b === "sendrecv" || b === "recvonly");
  if (send && recv) return "sendrecv";
  if (send) return "sendonly";
  if (recv) return "recvonly";
  return "inactive";
}

/** ptime is a hint (RFC 4566 §6): accept sane G.711 framings, otherwise use 20 ms. */
function ptimeOf(media: MediaDescription): number {
  const ptime = media.ptime;
  if (ptime === undefined || !Number.isInteger(ptime) || ptime < 10 || ptime > 120 || ptime % 10 !== 0) {
    return DEFAULT_PTIME_MS;
  }
  return ptime;
}

function ipVersion(address: string): 4 | 6 {
  return address.includes(":") ? 6 : 4;
}

function sessionSkeleton(local: LocalMediaInfo): Omit<SessionDescription, "media"> {
  const ipVer = ipVersion(local.address);
  return {
    version: 0,
    origin: {
      username: "-",
      sessionId: local.sessionId,
      sessionVersion: local.sessionVersion,
      netType: "IN",
      ipVer,
      address: local.address,
    },
    name: SESSION_NAME,
    connection: { version: ipVer, ip: local.address },
    timing: { start: 0, stop: 0 },
  };
}

function audioMedia(
  local: LocalMediaInfo,
  protocol: string,
  codecs: Array<{ pt: number; codec: G711Codec }>,
  dtmf: { pt: number; fmtp: string } | undefined,
  direction: MediaDirection,
): MediaDescription {
  const rtp: MediaDescription["rtp"] = codecs.map(({ pt, codec }) => ({ payload: pt, codec, rate: 8000 }));
  const fmtp: MediaDescription["fmtp"] = [];
  const pts = codecs.map(({ pt }) => pt);
  if (dtmf) {
    rtp.push({ payload: dtmf.pt, codec: "telephone-event", rate: 8000 });
    fmtp.push({ payload: dtmf.pt, config: dtmf.fmtp });
    pts.push(dtmf.pt);
  }
  return {
    type: "audio",
    port: local.port,
    protocol,
    payloads: pts.join(" "),
    rtp,
    fmtp,
    ptime: DEFAULT_PTIME_MS,
    direction,
  };
}

function write(session: SessionDescription): string {
  // sdp-transform writes LF-free CRLF lines; it emits a trailing CRLF already.
  return sdpTransform.write(session);
}

// ---------------------------------------------------------------------------------------------------------
// Public API

/**
 * Answer a remote offer (inbound INVITE or re-INVITE). We accept the first RTP audio stream with a G.711
 * codec and answer every other m-line with port 0, keeping the number and order of m-lines (RFC 3264 §6).
 */
export function answerOffer(offerSdp: string, local: AnswerLocalMediaInfo): AnswerResult {
  const validation = validate(offerSdp);
  if (!validation.ok) return validation;
  const offer = parseSdp(offerSdp);
  if (!offer || offer.media.length !== validation.mediaLines.length) {
    return { ok: false, status: 400, reason: "Malformed SDP" };
  }

  let chosen: { index: number; params: MediaParams; media: MediaDescription } | undefined;
  for (let index = 0; index < offer.media.length && !chosen; index++) {
    const line = validation.mediaLines[index]!;
    const media = offer.media[index]!;
    if (line.type !== "audio" || line.port === 0 || !RTP_PROFILES.has(line.protocol.toUpperCase())) continue;
    const pts = payloadTypes(line);
    const offered = pts
      .map((pt) => ({ pt, codec: g711CodecOf(media, pt) }))
      .filter((entry): entry is { pt: number; codec: G711Codec } => entry.codec !== undefined);
    if (offered.length === 0) continue;
    const preference = local.preferredCodecs;
    const pick =
      preference && preference.length > 0
        ? (preference.map((codec) => offered.find((entry) => entry.codec === codec)).find((e) => e) ??
          offered[0]!)
        : offered[0]!;
    const remoteAddress = connectionOf(media, offer);
    if (remoteAddress === undefined) return { ok: false, status: 400, reason: "SDP media without c=" };
    let direction = mirror(directionOf(media, offer));
    if (isNullAddress(remoteAddress)) direction = withoutSend(direction);
    const params: MediaParams = {
      codec: pick.codec,
      payloadType: pick.pt,
      remoteAddress,
      remotePort: line.port,
      direction,
      ptimeMs: ptimeOf(media),
    };
    const dtmf = telephoneEventOf(media, pts);
    if (dtmf !== undefined) params.dtmfPayloadType = dtmf;
    chosen = { index, params, media };
  }
  if (!chosen) return { ok: false, status: 488, reason: "No common codec (PCMU/PCMA over RTP/AVP)" };

  const answerMedia: MediaDescription[] = validation.mediaLines.map((line, index) => {
    if (index !== chosen.index) {
      return {
        type: line.type,
        port: 0,
        protocol: line.protocol,
        payloads: line.formats.join(" "),
        rtp: [],
        fmtp: [],
      };
    }
    const { params, media } = chosen;
    const dtmf =
      params.dtmfPayloadType === undefined
        ? undefined
        : {
            pt: params.dtmfPayloadType,
            fmtp: media.fmtp.find((f) => f.payload === params.dtmfPayloadType)?.config ?? "0-16",
          };
    return audioMedia(
      local,
      line.protocol,
      [{ pt: params.payloadType, codec: params.codec }],
      dtmf,
      params.direction,
    );
  });

  return {
    ok: true,
    answer: write({ ...sessionSkeleton(local), media: answerMedia }),
    params: chosen.params,
  };
}

/** Our offer for an outbound INVITE or a re-INVITE we send (hold = direction "sendonly"). */
export function createOffer(
  local: LocalMediaInfo,
  codecs: readonly G711Codec[] = ["PCMU", "PCMA"],
  dtmfPayloadType = 101,
  direction: MediaDirection = "sendrecv",
): string {
  const media = audioMedia(
    local,
    "RTP/AVP",
    codecs.map((codec) => ({ pt: CODEC_PAYLOAD_TYPE[codec], codec })),
    { pt: dtmfPayloadType, fmtp: "0-16" },
    direction,
  );
  return write({ ...sessionSkeleton(local), media: [media] });
}

/** Read the peer's answer to `ourOffer` (from createOffer) into MediaParams. */
export function parseAnswer(answerSdp: string, ourOffer: string): ParseAnswerResult {
  const validation = validate(answerSdp);
  if (!validation.ok) return { ok: false, reason: validation.reason };
  const answer = parseSdp(answerSdp);
  const offer = parseSdp(ourOffer);
  if (!answer || !offer || answer.media.length !== validation.mediaLines.length) {
    return { ok: false, reason: "Malformed SDP" };
  }
  const offerAudioIndex = offer.media.findIndex((m) => m.type === "audio");
  const offerAudio = offer.media[offerAudioIndex];
  if (!offerAudio) return { ok: false, reason: "Our offer has no audio" };
  if (answer.media.length !== offer.media.length)
    return { ok: false, reason: "Answer m-line count differs from offer" };
  const line = validation.mediaLines[offerAudioIndex]!;
  const media = answer.media[offerAudioIndex]!;
  if (line.type !== "audio" || line.port === 0) return { ok: false, reason: "Audio stream rejected" };

  const offeredCodecs = new Set(
    String(offerAudio.payloads ?? "")
      .split(" ")
      .map((pt) => g711CodecOf(offerAudio, Number(pt)))
      .filter((c): c is G711Codec => c !== undefined),
  );
  const pts = payloadTypes(line);
  const pick = pts
    .map((pt) => ({ pt, codec: g711CodecOf(media, pt) }))
    .find(
      (entry): entry is { pt: number; codec: G711Codec } =>
        entry.codec !== undefined && offeredCodecs.has(entry.codec),
    );
  if (!pick) return { ok: false, reason: "Answer has no codec we offered" };
  const remoteAddress = connectionOf(media, answer);
  if (remoteAddress === undefined) return { ok: false, reason: "SDP media without c=" };

  let direction = intersect(mirror(directionOf(media, answer)), directionOf(offerAudio, offer));
  if (isNullAddress(remoteAddress)) direction = withoutSend(direction);
  const params: MediaParams = {
    codec: pick.codec,
    payloadType: pick.pt,
    remoteAddress,
    remotePort: line.port,
    direction,
    ptimeMs: ptimeOf(media),
  };
  const dtmf = telephoneEventOf(media, pts);
  if (dtmf !== undefined) params.dtmfPayloadType = dtmf;
  return { ok: true, params };
}

function originOf(
  sdp: string,
): { username: string; sessionId: string; version: string; address: string } | undefined {
  for (const line of sdp.split(/\r?\n/)) {
    if (!line.startsWith("o=")) continue;
    const match = O_LINE.exec(line.trimEnd());
    if (!match) return undefined;
    return { username: match[1]!, sessionId: match[2]!, version: match[3]!, address: match[5]! };
  }
  return undefined;
}

/**
 * RFC 3264 §8: an o= line with the same session id and version means the SDP did not change (session-timer
 * refreshes, connected-line re-INVITEs): answer with our previous answer unchanged. Compared as strings so
 * 20-digit session ids do not lose precision.
 */
export function isSameSession(oldSdp: string, newSdp: string): boolean {
  const before = originOf(oldSdp);
  const after = originOf(newSdp);
  if (!before || !after) return false;
  return (
    before.username === after.username &&
    before.sessionId === after.sessionId &&
    before.version === after.version &&
    before.address === after.address
  );
}
