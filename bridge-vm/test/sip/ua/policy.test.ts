import { describe, expect, it } from "vitest";
import { RateLimiter } from "../../../src/sip/transport/rate-limit";
import { cidrContains, parseCidr, SourceAllowList } from "../../../src/sip/ua/cidr";
import { CallPolicy } from "../../../src/sip/ua/policy";
import { request } from "../transaction/helpers";

describe("CIDR allow-list", () => {
  it("matches IPv4 and IPv6 blocks and single addresses", () => {
    const list = new SourceAllowList(["10.0.0.0/8", "192.0.2.10", "2001:db8::/32", "not-an-ip"]);
    expect(list.size).toBe(3);
    expect(list.allows("10.200.3.4")).toBe(true);
    expect(list.allows("11.0.0.1")).toBe(false);
    expect(list.allows("192.0.2.10")).toBe(true);
    expect(list.allows("192.0.2.11")).toBe(false);
    expect(list.allows("2001:db8:1::5")).toBe(true);
    expect(list.allows("2001:db9::5")).toBe(false);
    expect(list.allows("::ffff:10.1.2.3")).toBe(true);
    expect(list.allows("garbage")).toBe(false);
  });

  it("rejects malformed CIDRs", () => {
    expect(parseCidr("10.0.0.0/33")).toBeUndefined();
    expect(parseCidr("300.1.1.1")).toBeUndefined();
    expect(cidrContains(parseCidr("0.0.0.0/0")!, "8.8.8.8")).toBe(true);
  });
});

describe("token bucket", () => {
  it("allows the burst, then the rate", () => {
    const limiter = new RateLimiter({ ratePerSecond: 2, burst: 3 });
    expect([0, 0, 0, 0].map(() => limiter.allow("a", 0))).toEqual([true, true, true, false]);
    expect(limiter.allow("a", 499)).toBe(false);
    expect(limiter.allow("a", 500)).toBe(true);
    expect(limiter.allow("b", 500)).toBe(true);
  });

  it("caps the number of tracked sources", () => {
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1, maxSources: 2 });
    limiter.allow("a", 0);
    limiter.allow("b", 0);
    limiter.allow("c", 0);
    expect(limiter.size).toBe(2);
  });
});

describe("who may call", () => {
  const base = { allowList: new SourceAllowList(["192.0.2.1"]), contactToken: "bridge" };

  it("accepts INVITEs from allowed sources to our token (or, if enabled, our extension)", () => {
    const policy = new CallPolicy({ ...base, rejectMode: "403", acceptExtensionUser: "1001" });
    expect(policy.checkSource("192.0.2.1", 0).action).toBe("accept");
    expect(policy.checkInvite(request("INVITE"), "192.0.2.1", 0).action).toBe("accept");
    const toExtension = request("INVITE");
    toExtension.uri = "sip:1001@192.0.2.5";
    expect(policy.checkInvite(toExtension, "192.0.2.1", 0).action).toBe("accept");
    const toOther = request("INVITE");
    toOther.uri = "sip:100@192.0.2.5";
    expect(policy.checkInvite(toOther, "192.0.2.1", 0)).toEqual({
      action: "reject",
      reason: "wrong-request-uri",
    });
  });

  it("silent mode never answers a stranger", () => {
    const policy = new CallPolicy({ ...base, rejectMode: "silent" });
    expect(policy.checkSource("203.0.113.9", 0)).toEqual({ action: "drop", reason: "source-not-allowed" });
    expect(policy.counters.refusedSource).toBe(1);
  });

  it("403 mode answers a scanner only a few times a second", () => {
    const policy = new CallPolicy({ ...base, rejectMode: "403", refusalRatePerSecond: 2 });
    const verdicts = Array.from({ length: 100 }, () => policy.checkSource("203.0.113.9", 0).action);
    expect(verdicts.filter((v) => v === "reject")).toHaveLength(6);
    expect(verdicts.filter((v) => v === "drop")).toHaveLength(94);
    expect(policy.counters.rateLimited).toBe(94);
  });
});
