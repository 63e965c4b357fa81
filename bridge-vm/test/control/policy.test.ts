import { describe, expect, it } from "vitest";
import { outboundConfigSchema } from "../../src/control/config";
import { coalesce } from "../../src/control/index";
import { DestinationPolicy, OutboundLimits, TokenBucket, TransferPolicy } from "../../src/control/policy";
import { ManualClock } from "../../src/sip/transaction/clock";

const policy = new DestinationPolicy(
  { allowedDestinations: ["^\\+1\\d{10}$", "^\\d{3,4}$"], allowedHosts: ["pbx2.example.com"] },
  "pbx.example.com",
);

describe("DestinationPolicy (toll-fraud guard)", () => {
  it.each([
    ["+15551234567", "sip:+15551234567@pbx.example.com"],
    ["1234", "sip:1234@pbx.example.com"],
    ["sip:201@pbx.example.com", "sip:201@pbx.example.com"],
    ["sip:201@PBX2.example.com:5080;transport=tcp", "sip:201@PBX2.example.com:5080;transport=tcp"],
  ])("allows %s", (to, requestUri) => {
    expect(policy.check(to)).toEqual({ ok: true, destination: { user: expect.any(String), requestUri } });
  });

  it.each([
    ["+441234567890", "international"],
    ["011441234567890", "international via a prefix"],
    ["+1555123456", "one digit short"],
    ["12", "too short for an extension"],
    ["912345", "a substring would match an unanchored pattern"],
    ["sip:201@evil.example.net", "foreign host"],
    ["sip:+441234567890@pbx.example.com", "allowed host, forbidden user"],
    ["sip:201@pbx.example.com?Route=%3Csip:evil%3E", "URI headers"],
    ["sip:pbx.example.com", "no user part"],
    ["tel:+15551234567", "other scheme"],
    ["", "empty"],
  ])("refuses %s (%s)", (to) => {
    const check = policy.check(to);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.reason).toBe("destination-not-allowed");
  });

  it("allows nothing when no pattern is configured", () => {
    const closed = new DestinationPolicy({ allowedDestinations: [], allowedHosts: [] }, "pbx.example.com");
    expect(closed.check("1234").ok).toBe(false);
  });
});

describe("config", () => {
  it("parses patterns from one env var split on whitespace or ';' (commas belong to regexes)", () => {
    const config = outboundConfigSchema.parse({ allowedDestinations: "^\\+1\\d{10}$ ^\\d{3,4}$;^9\\d{3}$" });
    expect(config.allowedDestinations).toEqual(["^\\+1\\d{10}$", "^\\d{3,4}$", "^9\\d{3}$"]);
    expect(config.enabled).toBe(false);
  });

  it("refuses unanchored or invalid patterns", () => {
    expect(outboundConfigSchema.safeParse({ allowedDestinations: ["\\d{4}"] }).success).toBe(false);
    expect(outboundConfigSchema.safeParse({ allowedDestinations: ["^(\\d$"] }).success).toBe(false);
  });
});

describe("TokenBucket", () => {
  it("gives the burst at once, then one token per 1/rate seconds", () => {
    const bucket = new TokenBucket(2, 2, 0);
    expect(bucket.reserve(0)).toBe(0);
    expect(bucket.reserve(0)).toBe(0);
    expect(bucket.reserve(0)).toBe(500);
    expect(bucket.reserve(0)).toBe(1000);
    expect(bucket.delayFor(1000)).toBe(500);
    expect(bucket.delayFor(10_000)).toBe(0);
  });
});

describe("OutboundLimits", () => {
  const config = { maxCalls: 3, cps: 1, burst: 1, maxQueueDelayMs: 1500 };

  it("paces over-rate requests instead of refusing them, up to the queue delay", () => {
    const limits = new OutboundLimits(config, 0);
    expect(limits.admit(0)).toEqual({ ok: true, startDelayMs: 0 });
    expect(limits.admit(0)).toEqual({ ok: true, startDelayMs: 1000 });
    // A third would have to wait 2000 ms > 1500 ms: refused, and it took no slot.
    expect(limits.admit(0)).toEqual({ ok: false, reason: "rate-limited" });
    expect(limits.activeCalls).toBe(2);
  });

  it("refuses past the concurrency limit until a call ends", () => {
    const limits = new OutboundLimits({ ...config, cps: 100, burst: 10 }, 0);
    for (let i = 0; i < 3; i++) expect(limits.admit(0).ok).toBe(true);
    expect(limits.admit(0)).toEqual({ ok: false, reason: "concurrency-limit" });
    limits.release();
    expect(limits.admit(0).ok).toBe(true);
  });
});

describe("TransferPolicy (REFER targets the agent asks for)", () => {
  const base = { allowedHosts: [] as string[] };

  it("uses TRANSFER_ALLOWED_DESTINATIONS and gives the Refer-To URI", () => {
    const transfers = new TransferPolicy(
      { ...base, transferAllowedDestinations: ["^20\\d\\d$"], allowedDestinations: ["^\\+1\\d{10}$"] },
      "pbx.example.com",
    );
    expect(transfers.check("2001")).toEqual({ ok: true, referTo: "sip:2001@pbx.example.com" });
    expect(transfers.check("<sip:2002@pbx.example.com>")).toEqual({
      ok: true,
      referTo: "sip:2002@pbx.example.com",
    });
    // The transfer list replaces the outbound one: a number outbound calls may dial is not a transfer target.
    expect(transfers.check("+15551234567")).toMatchObject({ ok: false, reason: /not allowed/ });
  });

  it("falls back to OUTBOUND_ALLOWED_DESTINATIONS, and refuses everything when neither is set", () => {
    const outboundOnly = new TransferPolicy(
      { ...base, transferAllowedDestinations: [], allowedDestinations: ["^\\d{4}$"] },
      "pbx.example.com",
    );
    expect(outboundOnly.configured).toBe(true);
    expect(outboundOnly.check("2001").ok).toBe(true);
    const none = new TransferPolicy(
      { ...base, transferAllowedDestinations: [], allowedDestinations: [] },
      "pbx.example.com",
    );
    expect(none.configured).toBe(false);
    expect(none.check("2001")).toEqual({
      ok: false,
      reason: "transfer target not allowed: no destination patterns are configured",
    });
  });

  it.each([
    ["sip:2001@evil.example.net", "foreign host"],
    ["tel:2001", "other scheme"],
    ["sip:2001@pbx.example.com?Replaces=x", "URI headers from the agent"],
    ["2001; drop", "junk"],
  ])("refuses %s (%s)", (target) => {
    const transfers = new TransferPolicy(
      { ...base, transferAllowedDestinations: ["^\\d{4}$"], allowedDestinations: [] },
      "pbx.example.com",
    );
    expect(transfers.check(target).ok).toBe(false);
  });

  it("reads TRANSFER_ALLOWED_DESTINATIONS from the config schema (anchored patterns only)", () => {
    expect(outboundConfigSchema.parse({ transferAllowedDestinations: "^\\d{4}$ ^9\\d{3}$" })).toMatchObject({
      transferAllowedDestinations: ["^\\d{4}$", "^9\\d{3}$"],
    });
    expect(outboundConfigSchema.safeParse({ transferAllowedDestinations: "\\d{4}" }).success).toBe(false);
  });
});

describe("coalesce (capacity reports as inbound calls come and go)", () => {
  it("runs at once, folds a burst into one trailing run, and never loses the last change", () => {
    const clock = new ManualClock(0);
    let runs = 0;
    const report = coalesce(clock, 1000, () => runs++);
    report();
    expect(runs).toBe(1);
    report();
    report();
    report();
    expect(runs).toBe(1);
    clock.advance(999);
    expect(runs).toBe(1);
    clock.advance(1);
    expect(runs).toBe(2);
    clock.advance(5000);
    report();
    expect(runs).toBe(3);
    report();
    report.cancel();
    clock.advance(2000);
    expect(runs).toBe(3);
  });
});
