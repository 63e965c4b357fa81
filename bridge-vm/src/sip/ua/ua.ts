/**
 * The UA core (RFC 3261 §8, §12): what happens to a request once the transaction layer has it.
 * Source policy first, then: requests inside a dialog go to that dialog's owner (a call), CANCEL finds
 * its INVITE, OPTIONS is answered here, new INVITEs go to the invite handler (the call manager), and
 * everything else outside a dialog gets 481 or 405.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { Logger } from "../../logging";
import { dialogKeyOfIncoming, tagOf } from "../dialog/dialog";
import { createResponse, parseCSeq } from "../message";
import type { SipRequest, SipResponse, SipUri } from "../message/types";
import type { Clock } from "../transaction/clock";
import type { TransactionLayer, TransactionLayerUser } from "../transaction/layer";
import type { InviteServerTransaction, ServerTransaction } from "../transaction/server";
import type { Endpoint, InboundMessage, TransportProtocol } from "../transport/types";
import type { CallPolicy } from "./policy";

/** Methods we answer; the same list goes in every Allow header. */
export const ALLOWED_METHODS = [
  "INVITE",
  "ACK",
  "CANCEL",
  "BYE",
  "OPTIONS",
  "UPDATE",
  "INFO",
  "REFER",
  "NOTIFY",
];
export const ALLOW_HEADER = ALLOWED_METHODS.join(", ");
/** RFC 4028 session timers; no 100rel (we do not implement PRACK). */
export const SUPPORTED_HEADER = "timer";

/** The owner of a dialog (a call): gets every in-dialog request and stray response for it. */
export interface DialogUser {
  handleRequest(
    request: SipRequest,
    transaction: ServerTransaction | undefined,
    inbound: InboundMessage,
  ): void;
  handleStrayResponse(response: SipResponse): void;
}

/** Who takes new INVITEs that passed the policy. */
export interface InviteHandler {
  onInvite(request: SipRequest, transaction: InviteServerTransaction, inbound: InboundMessage): void;
  /** A CANCEL for an INVITE still being answered (the CANCEL itself is already answered 200). */
  onCancel(invite: InviteServerTransaction, cancel: SipRequest): void;
}

export interface UaCoreOptions {
  layer: TransactionLayer;
  policy: CallPolicy;
  clock: Clock;
  logger: Logger;
  /** Our Contact URI for a transport, e.g. sip:<token>@203.0.113.5:5060. */
  contactUri(protocol: TransportProtocol): string;
}

export interface UaCounters {
  requests: number;
  outOfDialog481: number;
  refused: number;
}

export class UaCore implements TransactionLayerUser {
  readonly counters: UaCounters = { requests: 0, outOfDialog481: 0, refused: 0 };
  private readonly dialogs = new Map<string, DialogUser>();
  private inviteHandler: InviteHandler | undefined;

  constructor(private readonly options: UaCoreOptions) {
    options.layer.setUser(this);
  }

  get layer(): TransactionLayer {
    return this.options.layer;
  }

  setInviteHandler(handler: InviteHandler): void {
    this.inviteHandler = handler;
  }

  registerDialog(key: string, user: DialogUser): void {
    this.dialogs.set(key, user);
  }

  unregisterDialog(key: string, user: DialogUser): void {
    if (this.dialogs.get(key) === user) this.dialogs.delete(key);
  }

  get dialogCount(): number {
    return this.dialogs.size;
  }

  contactUri(protocol: TransportProtocol): string {
    return this.options.contactUri(protocol);
  }

  onRequest(request: SipRequest, transaction: ServerTransaction | undefined, inbound: InboundMessage): void {
    this.counters.requests++;
    const now = this.options.clock.now();
    const verdict = this.options.policy.checkSource(inbound.source.address, now);
    if (verdict.action !== "accept") {
      this.refuse(request, transaction, verdict.action === "reject", verdict.reason, inbound);
      return;
    }
    const dialogKey = tagOf(request.headers.get("To")) ? dialogKeyOfIncoming(request) : undefined;
    if (dialogKey !== undefined) {
      const user = this.dialogs.get(dialogKey);
      if (user) {
        user.handleRequest(request, transaction, inbound);
        return;
      }
      if (request.method === "ACK") return; // an ACK for a dialog we no longer know: nothing to say
      this.respond(transaction, request, 481);
      this.counters.outOfDialog481++;
      return;
    }
    switch (request.method) {
      case "ACK":
        return; // ACK for a 2xx of a dialog that never formed, or stray: absorb
      case "INVITE":
        this.onNewInvite(request, transaction as InviteServerTransaction, inbound);
        return;
      case "CANCEL":
        this.onCancel(request, transaction);
        return;
      case "OPTIONS":
        this.respond(transaction, request, 200, [
          ["Allow", ALLOW_HEADER],
          ["Accept", "application/sdp"],
          ["Supported", SUPPORTED_HEADER],
        ]);
        return;
      case "BYE":
      case "UPDATE":
      case "INFO":
      case "PRACK":
      case "REFER":
      case "NOTIFY":
        // Requests that only make sense inside a dialog (§12.2.2).
        this.counters.outOfDialog481++;
        this.respond(transaction, request, 481);
        return;
      default:
        this.respond(transaction, request, 405, [["Allow", ALLOW_HEADER]]);
    }
  }

  private onNewInvite(
    request: SipRequest,
    transaction: InviteServerTransaction,
    inbound: InboundMessage,
  ): void {
    const verdict = this.options.policy.checkInvite(
      request,
      inbound.source.address,
      this.options.clock.now(),
    );
    if (verdict.action !== "accept") {
      this.refuse(request, transaction, verdict.action === "reject", verdict.reason, inbound);
      return;
    }
    if (!this.inviteHandler) {
      this.respond(transaction, request, 503);
      return;
    }
    this.inviteHandler.onInvite(request, transaction, inbound);
  }

  private onCancel(cancel: SipRequest, transaction: ServerTransaction | undefined): void {
    const invite = this.options.layer.findInviteFor(cancel);
    if (!invite) {
      // §9.2: no matching transaction → 481.
      this.respond(transaction, cancel, 481);
      return;
    }
    // §9.2: the CANCEL itself is always answered 200; it only matters while no final response went out.
    this.respond(transaction, cancel, 200);
    if (invite.state === "proceeding") this.inviteHandler?.onCancel(invite, cancel);
  }

  onStrayResponse(response: SipResponse): void {
    const callId = response.headers.get("Call-ID");
    const localTag = tagOf(response.headers.get("From"));
    const remoteTag = tagOf(response.headers.get("To"));
    if (!callId || !localTag) return;
    const user = this.dialogs.get(`${callId}|${localTag}|${remoteTag ?? ""}`);
    const cseq = parseCSeq(response.headers.get("CSeq") ?? "");
    if (user && cseq?.method === "INVITE") user.handleStrayResponse(response);
  }

  private refuse(
    request: SipRequest,
    transaction: ServerTransaction | undefined,
    answer403: boolean,
    reason: string,
    inbound: InboundMessage,
  ): void {
    this.counters.refused++;
    this.options.logger.debug(
      { method: request.method, remote: `${inbound.source.address}:${inbound.source.port}`, reason },
      "request refused",
    );
    if (request.method === "ACK") return;
    if (answer403) {
      this.respond(transaction, request, 403);
    } else {
      // Silence: end the transaction without a response so nothing lingers.
      transaction?.terminate();
    }
  }

  /** Answer through the transaction (absorbs retransmissions) or statelessly when there is none. */
  respond(
    transaction: ServerTransaction | undefined,
    request: SipRequest,
    status: number,
    headers: Array<[string, string]> = [],
    body?: { type: string; content: Uint8Array | string },
  ): void {
    const extra: Array<[string, string]> = [...headers];
    if (body) extra.push(["Content-Type", body.type]);
    const response = createResponse(request, status, undefined, extra, {
      toTag: status > 100 ? localTagFor(request) : undefined,
      ...(body ? { body: body.content } : {}),
    });
    if (transaction) transaction.respond(response);
  }

  /** Where a URI physically points: transport param, port default, DNS A lookup for names. */
  async resolve(uri: SipUri, defaultProtocol: TransportProtocol): Promise<Endpoint> {
    const transportParam = uri.params.get("transport")?.toLowerCase();
    const protocol: TransportProtocol =
      transportParam === "tcp" ? "tcp" : transportParam === "udp" ? "udp" : defaultProtocol;
    const host = uri.host.startsWith("[") ? uri.host.slice(1, -1) : uri.host;
    const address = isIP(host) ? host : (await lookup(host, { family: 4 })).address;
    return { protocol, address, port: uri.port ?? 5060 };
  }
}

/**
 * To tag for responses sent before a dialog exists (errors, OPTIONS). Stable per request so a
 * retransmitted request gets the same tag: derived from the top Via branch.
 */
function localTagFor(request: SipRequest): string {
  const branch = /branch=([^;,\s]+)/i.exec(request.headers.get("Via") ?? "")?.[1] ?? "";
  let hash = 2166136261;
  for (let i = 0; i < branch.length; i++) hash = Math.imul(hash ^ branch.charCodeAt(i), 16777619);
  return `u${(hash >>> 0).toString(16)}`;
}
