/**
 * Token buckets keyed by source address, so a scanner never makes us answer (or log) at line rate.
 * Pure: time is passed in. The table is capped; the stalest entry goes first when full.
 */

export interface RateLimitOptions {
  /** Tokens added per second. */
  ratePerSecond: number;
  /** Bucket size (burst). */
  burst: number;
  /** Most sources tracked at once. */
  maxSources?: number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly maxSources: number;

  constructor(private readonly options: RateLimitOptions) {
    this.maxSources = options.maxSources ?? 10_000;
  }

  /** Take one token for `key` at time `nowMs`; false when the bucket is empty. */
  allow(key: string, nowMs: number): boolean {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= this.maxSources) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
      bucket = { tokens: this.options.burst, updatedAt: nowMs };
    } else {
      // Map order = recency: re-insert so the stalest key stays first.
      this.buckets.delete(key);
    }
    const elapsedS = Math.max(0, nowMs - bucket.updatedAt) / 1000;
    bucket.tokens = Math.min(this.options.burst, bucket.tokens + elapsedS * this.options.ratePerSecond);
    bucket.updatedAt = nowMs;
    this.buckets.set(key, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }
}
