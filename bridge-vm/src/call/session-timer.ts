/**
 * RFC 4028 session timers, the pure part: what to answer to an INVITE/UPDATE's Session-Expires, and
 * when to refresh or give up. Asterisk turns session timers on by default (1800 s, Min-SE 90) and
 * drops the call at the interval if nobody refreshes: getting this right is what keeps long calls up.
 *
 * `refresher` here is absolute ("us" | "peer"); the wire's "uac"/"uas" is relative to the transaction
 * that carried it and is translated at the edges.
 */
import type { SipHeaders } from "../sip/message/types";

export interface SessionTimerConfig {
  /** What we ask for / accept at most (config sip.sessionExpiresS). */
  sessionExpiresS: number;
  /** The smallest interval we accept (config sip.minSessionExpiresS); below it we answer 422. */
  minSessionExpiresS: number;
}

export type Refresher = "us" | "peer";

export type SessionTimerDecision =
  /** 422 Session Interval Too Small, with Min-SE: minSE. */
  | { kind: "too-small"; minSE: number }
  /** No session timer on this dialog (the peer neither asked nor supports it). */
  | { kind: "off" }
  | { kind: "on"; intervalS: number; refresher: Refresher; peerSupportsTimer: boolean };

/** Parse "1800;refresher=uac" → {delta, refresher}. */
export function parseSessionExpires(
  value: string | undefined,
): { deltaS: number; refresher?: "uac" | "uas" } | undefined {
  if (value === undefined) return undefined;
  const [deltaText = "", ...params] = value.split(";").map((part) => part.trim());
  if (!/^\d{1,10}$/.test(deltaText)) return undefined;
  const result: { deltaS: number; refresher?: "uac" | "uas" } = { deltaS: Number(deltaText) };
  for (const param of params) {
    const [name, paramValue] = param.split("=").map((part) => part.trim().toLowerCase());
    if (name === "refresher" && (paramValue === "uac" || paramValue === "uas")) result.refresher = paramValue;
  }
  return result;
}

function supportsTimer(headers: SipHeaders): boolean {
  return [...headers.getAll("Supported"), ...headers.getAll("Require")].some(
    (option) => option.trim().toLowerCase() === "timer",
  );
}

/**
 * We are the UAS of an INVITE / re-INVITE / UPDATE carrying (or not) Session-Expires (RFC 4028 §9).
 * - Session-Expires below our minimum → 422 with our Min-SE.
 * - refresher=uac → the peer refreshes; refresher=uas → we do; absent → the peer if it supports timers
 *   (it is the one that asked), else us (a proxy inserted the header; RFC 4028 §9 says UAS refreshes).
 * - No Session-Expires but the peer supports timers → we start one at our interval, peer refreshing.
 */
export function negotiateAsUas(headers: SipHeaders, config: SessionTimerConfig): SessionTimerDecision {
  const peerSupportsTimer = supportsTimer(headers);
  const requested = parseSessionExpires(headers.get("Session-Expires"));
  const peerMinSE = Number(headers.get("Min-SE")?.split(";")[0]?.trim() ?? "0") || 0;
  if (!requested) {
    if (!peerSupportsTimer) return { kind: "off" };
    const intervalS = Math.max(config.sessionExpiresS, peerMinSE, config.minSessionExpiresS);
    return { kind: "on", intervalS, refresher: "peer", peerSupportsTimer };
  }
  if (requested.deltaS < config.minSessionExpiresS)
    return { kind: "too-small", minSE: config.minSessionExpiresS };
  // RFC 4028 §9: a UAS may lower the interval, but not below the request's Min-SE (nor our minimum).
  const intervalS = Math.max(
    Math.min(requested.deltaS, config.sessionExpiresS),
    peerMinSE,
    config.minSessionExpiresS,
  );
  let refresher: Refresher;
  if (!peerSupportsTimer) refresher = "us";
  else if (requested.refresher === "uas") refresher = "us";
  else refresher = "peer";
  return { kind: "on", intervalS, refresher, peerSupportsTimer };
}

/** Headers for our 2xx answering a request we negotiated as UAS. */
export function uasResponseHeaders(decision: SessionTimerDecision): Array<[string, string]> {
  if (decision.kind !== "on") return [];
  const headers: Array<[string, string]> = [
    ["Session-Expires", `${decision.intervalS};refresher=${decision.refresher === "us" ? "uas" : "uac"}`],
  ];
  // RFC 4028 §9: Require: timer only when the peer said it supports it.
  if (decision.peerSupportsTimer) headers.push(["Require", "timer"]);
  return headers;
}

/**
 * We sent the INVITE (or the refresh) and this is its 2xx (RFC 4028 §7.2): the interval and who
 * refreshes. Undefined when the 2xx has no Session-Expires (for an initial INVITE: no session timer).
 * A Session-Expires without `Require: timer` was put there by a proxy, not the UAS: then we refresh.
 * In a response to OUR request, "uac" is us.
 */
export function negotiateAsUac(headers: SipHeaders): { intervalS: number; refresher: Refresher } | undefined {
  const granted = parseSessionExpires(headers.get("Session-Expires"));
  if (!granted) return undefined;
  const uasSupportsTimer = headers
    .getAll("Require")
    .some((option) => option.trim().toLowerCase() === "timer");
  const refresher: Refresher = uasSupportsTimer && granted.refresher === "uas" ? "peer" : "us";
  return { intervalS: granted.deltaS, refresher };
}

/** Headers for a refresh request WE send (we are its UAC and the refresher). */
export function refreshRequestHeaders(intervalS: number, minSE: number): Array<[string, string]> {
  return [
    ["Session-Expires", `${intervalS};refresher=uac`],
    ["Min-SE", String(minSE)],
    ["Supported", "timer"],
  ];
}

/**
 * What to do and when, in ms after the last successful refresh: the refresher refreshes at half the
 * interval; the other side sends BYE at interval − min(32, interval/3) without a refresh (RFC 4028 §10).
 */
export function sessionTimerPlan(
  intervalS: number,
  refresher: Refresher,
): { action: "refresh" | "expire"; afterMs: number } {
  if (refresher === "us") return { action: "refresh", afterMs: (intervalS * 1000) / 2 };
  return { action: "expire", afterMs: (intervalS - Math.min(32, intervalS / 3)) * 1000 };
}
