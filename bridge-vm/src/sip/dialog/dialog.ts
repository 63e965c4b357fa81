/**
 * A SIP dialog (RFC 3261 §12), from either side: identifiers, CSeq spaces, remote target and route set.
 * `fromInvite` is the UAS of an INVITE (§12.1.1), `fromSuccess` the UAC that got a 2xx (§12.1.2).
 * Builds in-dialog requests (§12.2.1.1, loose and strict routing) and checks in-dialog CSeq (§12.2.2).
 * Pure data + rules: no sockets, no timers.
 */
import { createHeaders, parseCSeq, parseNameAddr, parseSipUri } from "../message";
import type { SipRequest, SipResponse, SipUri } from "../message/types";

export interface DialogId {
  callId: string;
  localTag: string;
  remoteTag: string;
}

export function dialogKey(id: DialogId): string {
  return `${id.callId}|${id.localTag}|${id.remoteTag}`;
}

/** The key a request inside a dialog we are UAS of would map to (To tag = ours, From tag = theirs). */
export function dialogKeyOfIncoming(request: SipRequest): string | undefined {
  const callId = request.headers.get("Call-ID");
  const localTag = tagOf(request.headers.get("To"));
  const remoteTag = tagOf(request.headers.get("From"));
  if (!callId || !localTag) return undefined;
  return dialogKey({ callId, localTag, remoteTag: remoteTag ?? "" });
}

export function tagOf(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  return parseNameAddr(value)?.params.get("tag") || undefined;
}

export type CSeqCheck = "ok" | "out-of-order";

export class Dialog {
  readonly id: DialogId;
  readonly key: string;
  /** Our URI as the peer knows it (the INVITE's To) with our tag: the From of our requests. */
  readonly localParty: string;
  /** The peer's From with its tag: the To of our requests. */
  readonly remoteParty: string;
  remoteTarget: string;
  /** Route set, in the order our requests must carry it (§12.1.1: the Record-Route order for a UAS). */
  readonly routeSet: readonly string[];
  private localSeq: number;
  private remoteSeq: number | undefined;
  state: "early" | "confirmed" | "terminated" = "early";

  private constructor(init: {
    id: DialogId;
    localParty: string;
    remoteParty: string;
    remoteTarget: string;
    routeSet: string[];
    remoteSeq: number | undefined;
    localSeq: number;
  }) {
    this.id = init.id;
    this.key = dialogKey(init.id);
    this.localParty = init.localParty;
    this.remoteParty = init.remoteParty;
    this.remoteTarget = init.remoteTarget;
    this.routeSet = init.routeSet;
    this.remoteSeq = init.remoteSeq;
    this.localSeq = init.localSeq;
  }

  /**
   * The UAS side of a dialog created by an INVITE (§12.1.1). Returns undefined when the INVITE lacks
   * what a dialog needs (Contact, From tag, Call-ID): the caller should answer 400.
   */
  static fromInvite(invite: SipRequest, localTag: string): Dialog | undefined {
    const callId = invite.headers.get("Call-ID");
    const from = invite.headers.get("From");
    const to = invite.headers.get("To");
    const contact = parseNameAddr(invite.headers.getAll("Contact")[0] ?? "");
    const cseq = parseCSeq(invite.headers.get("CSeq") ?? "");
    const remoteTag = tagOf(from);
    if (!callId || !from || !to || !contact || !cseq || !remoteTag) return undefined;
    const localParty = tagOf(to) ? to : `${to};tag=${localTag}`;
    return new Dialog({
      id: { callId, localTag, remoteTag },
      localParty,
      remoteParty: from,
      remoteTarget: uriText(invite.headers.getAll("Contact")[0] ?? ""),
      routeSet: invite.headers.getAll("Record-Route"),
      remoteSeq: cseq.seq,
      // §8.1.1.5: any value below 2^31; starting low leaves room for a long call's refreshes.
      localSeq: 1 + Math.floor(Math.random() * 10_000),
    });
  }

  /**
   * The UAC side of a dialog created by the 2xx to our INVITE (§12.1.2): route set = the 2xx's
   * Record-Route reversed, remote target = its Contact, our CSeq space continues from the INVITE's, the
   * peer's is empty until its first request. Undefined when the 2xx lacks a To tag or Contact.
   */
  static fromSuccess(invite: SipRequest, response: SipResponse): Dialog | undefined {
    const callId = invite.headers.get("Call-ID");
    const from = invite.headers.get("From");
    const to = response.headers.get("To");
    const contact = response.headers.getAll("Contact")[0];
    const cseq = parseCSeq(invite.headers.get("CSeq") ?? "");
    const localTag = tagOf(from);
    const remoteTag = tagOf(to);
    if (!callId || !from || !to || !contact || !parseNameAddr(contact) || !cseq || !localTag || !remoteTag)
      return undefined;
    const dialog = new Dialog({
      id: { callId, localTag, remoteTag },
      localParty: from,
      remoteParty: to,
      remoteTarget: uriText(contact),
      routeSet: [...response.headers.getAll("Record-Route")].reverse(),
      remoteSeq: undefined,
      localSeq: cseq.seq,
    });
    dialog.state = "confirmed";
    return dialog;
  }

  /** §12.2.2: requests with a lower CSeq than the last one are out of order (answer 500). */
  checkRemoteCSeq(request: SipRequest): CSeqCheck {
    const cseq = parseCSeq(request.headers.get("CSeq") ?? "");
    if (!cseq) return "out-of-order";
    if (request.method === "ACK" || request.method === "CANCEL") return "ok";
    if (this.remoteSeq !== undefined && cseq.seq < this.remoteSeq) return "out-of-order";
    // Equal CSeq with another method would be a new transaction with a reused number: also refuse.
    if (this.remoteSeq !== undefined && cseq.seq === this.remoteSeq && request.method !== "INVITE")
      return "out-of-order";
    this.remoteSeq = cseq.seq;
    return "ok";
  }

  /** A target refresh (re-INVITE, UPDATE) may carry a new Contact (§12.2.2). */
  refreshTarget(request: SipRequest): void {
    const contact = request.headers.getAll("Contact")[0];
    if (contact && parseNameAddr(contact)) this.remoteTarget = uriText(contact);
  }

  /**
   * Build a request inside the dialog (§12.2.1.1). The caller adds method-specific headers and body;
   * the transaction layer adds Via.
   */
  createRequest(method: string, options: { cseq?: number } = {}): SipRequest {
    const headers = createHeaders();
    let requestUri = this.remoteTarget;
    const routes = [...this.routeSet];
    const first = routes[0];
    if (first !== undefined && !isLooseRoute(first)) {
      // Strict routing (RFC 2543 next hop): the first route becomes the Request-URI, the target goes last.
      requestUri = uriText(first);
      routes.shift();
      routes.push(`<${this.remoteTarget}>`);
    }
    for (const route of routes) headers.append("Route", route);
    headers.set("Max-Forwards", "70");
    headers.set("From", this.localParty);
    headers.set("To", this.remoteParty);
    headers.set("Call-ID", this.id.callId);
    const seq = options.cseq ?? this.nextLocalSeq();
    headers.set("CSeq", `${seq} ${method}`);
    return { kind: "request", method, uri: requestUri, headers, body: new Uint8Array() };
  }

  nextLocalSeq(): number {
    this.localSeq += 1;
    return this.localSeq;
  }

  /** Where the next in-dialog request physically goes: the first Route, else the remote target. */
  nextHopUri(): SipUri | undefined {
    const first = this.routeSet[0];
    return parseSipUri(first !== undefined ? uriText(first) : this.remoteTarget);
  }
}

function isLooseRoute(route: string): boolean {
  return parseNameAddr(route)?.uri.params.has("lr") ?? false;
}

/** The URI inside a name-addr ("<sip:x>;p" → "sip:x"), or the text itself for a bare URI. */
export function uriText(nameAddrOrUri: string): string {
  const open = nameAddrOrUri.indexOf("<");
  const close = nameAddrOrUri.indexOf(">", open + 1);
  if (open >= 0 && close > open) return nameAddrOrUri.slice(open + 1, close).trim();
  const semi = nameAddrOrUri.indexOf(";");
  return (semi < 0 ? nameAddrOrUri : nameAddrOrUri.slice(0, semi)).trim();
}
