/**
 * The pure rules of registration (sip-interop.md §1.2 row 7): which expiry the registrar granted,
 * when to refresh, how long to back off. No I/O, no clock: inputs in, numbers out.
 */
import { parseNameAddr } from "../message";
import type { SipResponse } from "../message/types";

/**
 * The granted expiry in seconds: our Contact's `expires` param in the 200, else the Expires header,
 * else what we asked for (RFC 3261 §10.2.4). Our Contact is recognised by its user part (the token),
 * since registrars may rewrite host and port.
 */
export function grantedExpires(response: SipResponse, contactUser: string, requestedS: number): number {
  for (const value of response.headers.getAll("Contact")) {
    const contact = parseNameAddr(value);
    if (!contact || contact.uri.user !== contactUser) continue;
    const expires = parseSeconds(contact.params.get("expires"));
    if (expires !== undefined) return expires;
  }
  const header = parseSeconds(response.headers.get("Expires"));
  if (header !== undefined) return header;
  return requestedS;
}

/**
 * Re-register at about half the granted time (never later than 5 s before expiry, never sooner than
 * 1 s), so one lost refresh still leaves time for a retry.
 */
export function refreshDelayMs(grantedS: number): number {
  const half = (grantedS * 1000) / 2;
  const latest = grantedS * 1000 - 5000;
  return Math.max(1000, Math.min(half, latest > 0 ? latest : half));
}

/**
 * Exponential backoff: base, 2·base, 4·base … capped at max, with ±20 % jitter so many bridges behind
 * one PBX do not retry in lockstep. `attempt` starts at 1.
 */
export function backoffDelayMs(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
) {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const raw = Math.min(maxMs, baseMs * 2 ** exponent);
  const jitter = 0.8 + 0.4 * random();
  return Math.round(Math.min(maxMs, raw * jitter));
}

/** Min-Expires from a 423 (RFC 3261 §10.3 step 7); undefined when absent or malformed. */
export function minExpiresOf(response: SipResponse): number | undefined {
  return parseSeconds(response.headers.get("Min-Expires"));
}

/** Retry-After seconds (503/500), ignoring comments and params. */
export function retryAfterOf(response: SipResponse): number | undefined {
  const value = response.headers.get("Retry-After");
  return parseSeconds(value?.split(/[;(\s]/)[0]);
}

function parseSeconds(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (!/^\d{1,10}$/.test(trimmed)) return undefined;
  const seconds = Number(trimmed);
  return seconds <= 2 ** 31 - 1 ? seconds : undefined;
}
