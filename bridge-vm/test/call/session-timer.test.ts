import { describe, expect, it } from "vitest";
import {
  negotiateAsUac,
  negotiateAsUas,
  parseSessionExpires,
  sessionTimerPlan,
  uasResponseHeaders,
} from "../../src/call/session-timer";
import { createHeaders } from "../../src/sip/message";

const CONFIG = { sessionExpiresS: 1800, minSessionExpiresS: 90 };

function headers(lines: Record<string, string>) {
  return createHeaders(Object.entries(lines));
}

describe("RFC 4028 negotiation as UAS", () => {
  it("Asterisk default: Session-Expires 1800, Supported timer, no refresher → the caller refreshes", () => {
    const decision = negotiateAsUas(
      headers({ Supported: "replaces, timer", "Session-Expires": "1800", "Min-SE": "90" }),
      CONFIG,
    );
    expect(decision).toEqual({ kind: "on", intervalS: 1800, refresher: "peer", peerSupportsTimer: true });
    expect(uasResponseHeaders(decision)).toEqual([
      ["Session-Expires", "1800;refresher=uac"],
      ["Require", "timer"],
    ]);
  });

  it("refresher=uas makes us the refresher", () => {
    const decision = negotiateAsUas(
      headers({ Supported: "timer", "Session-Expires": "600;refresher=uas" }),
      CONFIG,
    );
    expect(decision).toMatchObject({ kind: "on", intervalS: 600, refresher: "us" });
  });

  it("below our Min-SE → 422 with our Min-SE", () => {
    expect(negotiateAsUas(headers({ Supported: "timer", "Session-Expires": "60" }), CONFIG)).toEqual({
      kind: "too-small",
      minSE: 90,
    });
  });

  it("lowers a long interval to ours, but never below the request's Min-SE", () => {
    expect(negotiateAsUas(headers({ Supported: "timer", "Session-Expires": "7200" }), CONFIG)).toMatchObject({
      intervalS: 1800,
    });
    expect(
      negotiateAsUas(headers({ Supported: "timer", "Session-Expires": "7200", "Min-SE": "3600" }), CONFIG),
    ).toMatchObject({ intervalS: 3600 });
  });

  it("a proxy-inserted Session-Expires for a UAC without timer support: we refresh, no Require", () => {
    const decision = negotiateAsUas(headers({ "Session-Expires": "1800" }), CONFIG);
    expect(decision).toMatchObject({ kind: "on", refresher: "us", peerSupportsTimer: false });
    expect(uasResponseHeaders(decision)).toEqual([["Session-Expires", "1800;refresher=uas"]]);
  });

  it("peer supports timer but asked for none (chan_sip): we start one, the peer refreshes", () => {
    expect(negotiateAsUas(headers({ Supported: "timer" }), CONFIG)).toMatchObject({
      kind: "on",
      intervalS: 1800,
      refresher: "peer",
    });
  });

  it("neither asked nor supported → off", () => {
    expect(negotiateAsUas(headers({}), CONFIG)).toEqual({ kind: "off" });
    expect(uasResponseHeaders({ kind: "off" })).toEqual([]);
  });

  it("parses Session-Expires values", () => {
    expect(parseSessionExpires("90;refresher=UAC")).toEqual({ deltaS: 90, refresher: "uac" });
    expect(parseSessionExpires("90 ; refresher=uas ; x=1")).toEqual({ deltaS: 90, refresher: "uas" });
    expect(parseSessionExpires("abc")).toBeUndefined();
  });
});

describe("RFC 4028 timing", () => {
  it("the refresher refreshes at SE/2", () => {
    expect(sessionTimerPlan(1800, "us")).toEqual({ action: "refresh", afterMs: 900_000 });
  });

  it("the refreshee gives up at SE - min(32, SE/3)", () => {
    expect(sessionTimerPlan(1800, "peer")).toEqual({ action: "expire", afterMs: 1_768_000 });
    expect(sessionTimerPlan(90, "peer")).toEqual({ action: "expire", afterMs: 60_000 });
  });
});

describe("negotiateAsUac (the 2xx to our INVITE or refresh, RFC 4028 §7.2)", () => {
  it("refresher=uac is us, refresher=uas the peer", () => {
    expect(negotiateAsUac(headers({ "Session-Expires": "90;refresher=uac", Require: "timer" }))).toEqual({
      intervalS: 90,
      refresher: "us",
    });
    expect(negotiateAsUac(headers({ "Session-Expires": "1800;refresher=uas", Require: "timer" }))).toEqual({
      intervalS: 1800,
      refresher: "peer",
    });
  });

  it("no Require: timer means a proxy put Session-Expires there: we refresh", () => {
    expect(negotiateAsUac(headers({ "Session-Expires": "600;refresher=uas" }))).toEqual({
      intervalS: 600,
      refresher: "us",
    });
  });

  it("no Session-Expires: no session timer", () => {
    expect(negotiateAsUac(headers({ Supported: "timer" }))).toBeUndefined();
  });
});
