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
    if (this.patterns.length === 0) return refuse("no destination patterns are configured");
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

/**
 * The policy for transfer targets (REFER on the agent's request, inbound and outbound calls alike): the
 * same rules as outbound destinations, with `transferAllowedDestinations` (TRANSFER_ALLOWED_DESTINATIONS)
 * as the patterns, or `allowedDestinations` (OUTBOUND_ALLOWED_DESTINATIONS) when that is empty. With
 * neither, every transfer is refused: a bridge whose Worker is compromised must not become a dialler.
 * The target text may be a number or a plain SIP URI, with or without angle brackets.
 */
export class TransferPolicy {
  private readonly policy: DestinationPolicy;
  readonly configured: boolean;

  constructor(
    config: Pick<OutboundConfig, "transferAllowedDestinations" | "allowedDestinations" | "allowedHosts">,
    sipDomain: string,
  ) {
    const patterns =
      config.transferAllowedDestinations.length > 0
        ? config.transferAllowedDestinations
        : config.allowedDestinations;
    this.configured = patterns.length > 0;
    this.policy = new DestinationPolicy(
      { allowedDestinations: patterns, allowedHosts: config.allowedHosts },
      sipDomain,
    );
  }

  /** ok → the Refer-To URI to use; refused → why (for transfer_result.reason and the log). */
  check(target: string): { ok: true; referTo: string } | { ok: false; reason: string } {
    const check = this.policy.check(target.trim().replace(/^<(.*)>$/, "$1"));
    if (check.ok) return { ok: true, referTo: check.destination.requestUri };
    return { ok: false, reason: `transfer target not allowed: ${check.detail}` };
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
