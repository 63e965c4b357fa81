import { describe, expect, it } from "vitest";
import { Dialog, dialogKeyOfIncoming } from "../../../src/sip/dialog/dialog";
import { request } from "../transaction/helpers";

describe("Dialog (UAS side, RFC 3261 §12)", () => {
  it("takes identifiers, remote target and route set from the INVITE", () => {
    const invite = request("INVITE", {
      cseq: 7,
      extra: "Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>",
    });
    const dialog = Dialog.fromInvite(invite, "our-tag")!;
    expect(dialog.id).toEqual({ callId: "call-1@test", localTag: "our-tag", remoteTag: "caller-tag" });
    expect(dialog.remoteTarget).toBe("sip:caller@127.0.0.1:5070");
    expect(dialog.routeSet).toEqual(["<sip:p1.example;lr>", "<sip:p2.example;lr>"]);
    expect(dialogKeyOfIncoming(request("BYE", { toTag: "our-tag", cseq: 8 }))).toBe(dialog.key);
  });

  it("builds loose-routed requests: Request-URI = remote target, Route = route set, From/To swapped", () => {
    const dialog = Dialog.fromInvite(request("INVITE", { extra: "Record-Route: <sip:p1.example;lr>" }), "t")!;
    const bye = dialog.createRequest("BYE");
    expect(bye.uri).toBe("sip:caller@127.0.0.1:5070");
    expect(bye.headers.getAll("Route")).toEqual(["<sip:p1.example;lr>"]);
    expect(bye.headers.get("From")).toBe("<sip:bridge@127.0.0.1>;tag=t");
    expect(bye.headers.get("To")).toBe("<sip:caller@127.0.0.1>;tag=caller-tag");
    expect(dialog.nextHopUri()?.host).toBe("p1.example");
    const next = dialog.createRequest("UPDATE");
    const seq = (r: typeof bye) => Number(r.headers.get("CSeq")!.split(" ")[0]);
    expect(seq(next)).toBe(seq(bye) + 1);
  });

  it("builds strict-routed requests when the first route has no ;lr", () => {
    const dialog = Dialog.fromInvite(
      request("INVITE", { extra: "Record-Route: <sip:old-proxy.example>" }),
      "t",
    )!;
    const bye = dialog.createRequest("BYE");
    expect(bye.uri).toBe("sip:old-proxy.example");
    expect(bye.headers.getAll("Route")).toEqual(["<sip:caller@127.0.0.1:5070>"]);
  });

  it("refuses out-of-order CSeq and follows target refreshes", () => {
    const dialog = Dialog.fromInvite(request("INVITE", { cseq: 5 }), "t")!;
    expect(dialog.checkRemoteCSeq(request("BYE", { cseq: 4 }))).toBe("out-of-order");
    expect(dialog.checkRemoteCSeq(request("UPDATE", { cseq: 6 }))).toBe("ok");
    expect(dialog.checkRemoteCSeq(request("ACK", { cseq: 5 }))).toBe("ok");
    const reinvite = request("INVITE", { cseq: 7 });
    reinvite.headers.set("Contact", "<sip:caller@10.1.1.1:5099>");
    dialog.refreshTarget(reinvite);
    expect(dialog.remoteTarget).toBe("sip:caller@10.1.1.1:5099");
  });

  it("cannot form without a From tag or Contact", () => {
    const noContact = request("INVITE");
    noContact.headers.delete("Contact");
    expect(Dialog.fromInvite(noContact, "t")).toBeUndefined();
  });
});
