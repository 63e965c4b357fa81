/**
 * What the rest of the bridge sees of a call: its events and the causes it can end with. The service
 * attaches the cloud link (src/cloud) on `answered` and forwards the cloud's hangup/transfer/send_dtmf
 * requests to `hangup()`, `transfer()` and `media.duplex.sendDtmf()`.
 */
import type { CallMedia, MediaParams } from "../media/types";

export type CallEndCause =
  /** The far end sent BYE: the caller of an inbound call… */
  | "caller-hangup"
  /** …or the callee of an outbound leg. */
  | "callee-hangup"
  | "agent-hangup"
  | "max-duration"
  | "media-timeout"
  | "cancelled"
  | "no-ack"
  /** RFC 4028: the session was not refreshed in time, or our refresh failed. */
  | "session-expired"
  /** We refused the INVITE (488, 503, 486, 422 …), or the callee refused ours, before a dialog was confirmed. */
  | "rejected"
  /** A blind transfer succeeded and we left the call. */
  | "transferred"
  /** The bridge is shutting down. */
  | "shutdown"
  | "error";

export interface CallEnded {
  cause: CallEndCause;
  /**
   * The SIP status that ended it: our final response (4xx/5xx/487) or, for an outbound leg, the final
   * response to our INVITE; 200 for a BYE-ended call; absent when no SIP status applies.
   */
  status?: number;
  /** Free text for logs (never contains secrets). */
  detail?: string;
  durationMs: number;
}

export interface CallDtmf {
  digit: string;
  durationMs: number;
  /** Where we learned it: SIP INFO (application/dtmf-relay). RFC 4733 events come from the media duplex. */
  source: "sip-info";
}

export interface CallEvents {
  /** ACK received: the call is up and media flows. Attach the cloud link here. */
  answered: (media: CallMedia) => void;
  /** A re-INVITE/UPDATE changed the media (hold, resume, new address). Already applied to media. */
  mediaUpdated: (params: MediaParams) => void;
  dtmf: (event: CallDtmf) => void;
  /** Exactly once. Media is already closed (or closing) when this fires. */
  ended: (info: CallEnded) => void;
}

export interface CallInfo {
  /** Our id (UUID): logs, media socket URL, recordings. */
  id: string;
  sipCallId: string;
  from: string;
  to: string;
  /** Forwarded X- headers (config sip.forwardHeaders) from the INVITE. */
  headers: Record<string, string>;
  remote: string;
}
