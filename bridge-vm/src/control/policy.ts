/**
 * Outbound call policy, decided BEFORE any SIP is sent. Pure: no I/O, the clock is passed in.
 *
 * - Destinations (toll-fraud guard): a number must match one of the anchored allow patterns; a SIP URI
 *   must name an allowed host (the SIP domain, or one listed) and its user part must match a pattern.
 *   URIs carrying headers (`?`) or odd characters are refused outright: they could smuggle headers
 *   or route around the PBX's dial plan.
 * - Concurrency: calls placed + calls waiting for a token ≤ maxCalls.
 * - Calls per second: a token bucket. A request over the rate is not refused at once: it is given a
 *   start delay (so a campaign is paced, not dropped), and refused as rate-limited only when that
 *   delay would exceed maxQueueDelayMs.
 */
import type { OutboundFailure } from "@patchbay/shared/protocol";
import type { OutboundConfig } from "./config";

export interface Destination {
  /** What is dialled: the number, or the URI's user part. */
  user: string;
  /** The Request-URI to send the INVITE to. */
  requestUri: string;
}

export type DestinationCheck =
  | { ok: true; destination: Destination }
  | { ok: false; reason: Extract<OutboundFailure, "destination-not-allowed">; detail: string };

const NUMBER = /^\+?[0-9*#]{1,32}$/;
const SIP_URI =
  /^(sips?):([A-Za-z0-9+*#._~-]{1,64})@([A-Za-z0-9.-]{1,253})(?::(\d{1,5}))?((?:;[A-Za-z0-9=._-]{1,64}){0,4})$/;

export class DestinationPolicy {
  private readonly patterns: readonly RegExp[];
  private readonly hosts: ReadonlySet<string>;

  constructor(
    config: Pick<OutboundConfig, "allowedDestinations" | "allowedHosts">,
    private readonly sipDomain: string,
  ) {
    this.patterns = config.allowedDestinations.map((pattern) => new RegExp(pattern));
    this.hosts = new Set([sipDomain.toLowerCase(), ...config.allowedHosts.map((host) => host.toLowerCase())]);
  }

  check(to: string): DestinationCheck {
    const refuse = (detail: string): DestinationCheck => ({
      ok: false,
      reason: "destination-not-allowed",
      detail,
    });
    if (NUMBER.test(to)) {
      if (!this.allowedUser(to)) return refuse("number matches no allowed pattern");
      return { ok: true, destination: { user: to, requestUri: `sip:${to}@${this.sipDomain}` } };
    }
    const uri = SIP_URI.exec(to);
    if (!uri) return refuse("not a number or a plain sip:user@host URI");
    const [, scheme, user = "", host = "", port, params = ""] = uri;
    if (!this.hosts.has(host.toLowerCase())) return refuse(`host ${host} is not allowed`);
    if (!this.allowedUser(user)) return refuse("user part matches no allowed pattern");
    return {
      ok: true,
      destination: { user, requestUri: `${scheme}:${user}@${host}${port ? `:${port}` : ""}${params}` },
    };
  }

  private allowedUser(user: string): boolean {
    return this.patterns.some((pattern) => pattern.test(user));
  }
}

/** Classic token bucket; `reserve` may go into debt so callers learn how long to wait. */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    nowMs: number,
  ) {
    this.tokens = burst;
    this.updatedAt = nowMs;
  }

  /** Delay (ms) after which a token reserved now may be used; 0 = now. Does not reserve. */
  delayFor(nowMs: number): number {
    this.refill(nowMs);
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.ratePerSecond) * 1000);
  }

  reserve(nowMs: number): number {
    const delay = this.delayFor(nowMs);
    this.tokens -= 1;
    return delay;
  }

  private refill(nowMs: number): void {
    const elapsed = Math.max(0, nowMs - this.updatedAt) / 1000;
    this.tokens = Math.min(this.burst, this.tokens + elapsed * this.ratePerSecond);
    this.updatedAt = nowMs;
  }
}

export type Admission =
  | { ok: true; startDelayMs: number }
  | { ok: false; reason: Extract<OutboundFailure, "concurrency-limit" | "rate-limited"> };

/** Concurrency + CPS for one bridge. `admit` takes a slot; `release` gives it back when the call ends. */
export class OutboundLimits {
  private active = 0;
  private readonly bucket: TokenBucket;

  constructor(
    private readonly config: Pick<OutboundConfig, "maxCalls" | "cps" | "burst" | "maxQueueDelayMs">,
    nowMs: number,
  ) {
    this.bucket = new TokenBucket(config.cps, config.burst, nowMs);
  }

  get activeCalls(): number {
    return this.active;
  }

  admit(nowMs: number): Admission {
    if (this.active >= this.config.maxCalls) return { ok: false, reason: "concurrency-limit" };
    if (this.bucket.delayFor(nowMs) > this.config.maxQueueDelayMs)
      return { ok: false, reason: "rate-limited" };
    this.active++;
    return { ok: true, startDelayMs: this.bucket.reserve(nowMs) };
  }

  release(): void {
    this.active = Math.max(0, this.active - 1);
  }
}
