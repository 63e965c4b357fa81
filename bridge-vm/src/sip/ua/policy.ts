/**
 * Who may call (sip-interop.md §3.3): requests are taken only from allowed source addresses, and an
 * INVITE only when its Request-URI user is our Contact token (or, if enabled, our extension). Refusals
 * are counted and the answers to them rate-limited per source, so a scanner sees silence (or a trickle
 * of 403s) instead of a fingerprintable responder.
 */
import { parseSipUri } from "../message";
import type { SipRequest } from "../message/types";
import { RateLimiter } from "../transport/rate-limit";
import type { SourceAllowList } from "./cidr";

export type RejectMode = "403" | "silent";

export type PolicyVerdict =
  | { action: "accept" }
  /** Answer with 403 (rejectMode 403 and within the rate limit). */
  | { action: "reject"; reason: PolicyReason }
  /** Say nothing at all. */
  | { action: "drop"; reason: PolicyReason | "rate-limited" };

export type PolicyReason = "source-not-allowed" | "wrong-request-uri";

export interface CallPolicyOptions {
  allowList: SourceAllowList;
  rejectMode: RejectMode;
  /** The Contact user token that only the registrar knows. */
  contactToken: string;
  /** Also accept INVITEs addressed to this user (our extension), for direct calls from allowed sources. */
  acceptExtensionUser?: string;
  /** Requests per second an allowed source may send before we stop reading them. */
  allowedRatePerSecond?: number;
  /** 403s per second we send to any one refused source. */
  refusalRatePerSecond?: number;
}

export interface PolicyCounters {
  refusedSource: number;
  refusedRequestUri: number;
  rateLimited: number;
}

export class CallPolicy {
  readonly counters: PolicyCounters = { refusedSource: 0, refusedRequestUri: 0, rateLimited: 0 };
  private readonly allowedLimiter: RateLimiter;
  private readonly refusalLimiter: RateLimiter;

  constructor(private readonly options: CallPolicyOptions) {
    const allowedRate = options.allowedRatePerSecond ?? 500;
    this.allowedLimiter = new RateLimiter({ ratePerSecond: allowedRate, burst: allowedRate * 2 });
    const refusalRate = options.refusalRatePerSecond ?? 2;
    this.refusalLimiter = new RateLimiter({ ratePerSecond: refusalRate, burst: refusalRate * 3 });
  }

  /** Any request: is its source allowed at all, and within its rate? */
  checkSource(sourceAddress: string, nowMs: number): PolicyVerdict {
    if (!this.options.allowList.allows(sourceAddress)) {
      this.counters.refusedSource++;
      return this.refusal("source-not-allowed", sourceAddress, nowMs);
    }
    if (!this.allowedLimiter.allow(sourceAddress, nowMs)) {
      this.counters.rateLimited++;
      return { action: "drop", reason: "rate-limited" };
    }
    return { action: "accept" };
  }

  /** A new INVITE from an allowed source: is it addressed to us? */
  checkInvite(request: SipRequest, sourceAddress: string, nowMs: number): PolicyVerdict {
    const user = parseSipUri(request.uri)?.user;
    const addressedToUs =
      user !== undefined &&
      (user === this.options.contactToken ||
        (this.options.acceptExtensionUser !== undefined && user === this.options.acceptExtensionUser));
    if (addressedToUs) return { action: "accept" };
    this.counters.refusedRequestUri++;
    return this.refusal("wrong-request-uri", sourceAddress, nowMs);
  }

  private refusal(reason: PolicyReason, sourceAddress: string, nowMs: number): PolicyVerdict {
    if (this.options.rejectMode === "silent") return { action: "drop", reason };
    if (!this.refusalLimiter.allow(sourceAddress, nowMs)) {
      this.counters.rateLimited++;
      return { action: "drop", reason: "rate-limited" };
    }
    return { action: "reject", reason };
  }
}
