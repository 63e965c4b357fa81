/**
 * OutboundDialog: the dialog an answered outbound INVITE created, seen from the UAC (RFC 3261 §12.1.2):
 * route set = the 2xx's Record-Route REVERSED, remote target = the 2xx's Contact, our CSeq continues
 * from the INVITE's. It builds the 2xx ACK and sends BYE (answering 401/407 once), and as a DialogUser
 * it takes the callee's in-dialog requests from the UA core (BYE → 200 and `ended`). It exists because
 * the shared Dialog class (src/sip/dialog) only has a UAS constructor; when it grows a UAC one, this
 * should become a thin wrapper around it.
 *
 * Incoming in-dialog requests map to the same key as the UAS case (To tag = ours, From tag = theirs),
 * so `ua.registerDialog(dialog.key, dialog)` routes them here.
 */
import { EventEmitter } from "node:events";
import type { Logger } from "../logging";
import { DigestClient, type DigestCredentials } from "../sip/auth";
import { dialogKey, tagOf, uriText } from "../sip/dialog/dialog";
import { createHeaders, createResponse, parseCSeq, parseNameAddr } from "../sip/message";
import type { SipRequest, SipResponse } from "../sip/message/types";
import type { TransactionLayer } from "../sip/transaction/layer";
import type { ServerTransaction } from "../sip/transaction/server";
import type { Endpoint } from "../sip/transport/types";
import { endpointFor } from "./route";

export interface OutboundDialogDeps {
  layer: TransactionLayer;
  proxy: Endpoint;
  logger: Logger;
  credentials?: DigestCredentials;
}

export interface OutboundDialogEvents {
  /** The callee hung up (BYE received and answered). */
  ended: [by: "remote"];
}

export class OutboundDialog extends EventEmitter<OutboundDialogEvents> {
  readonly key: string;
  state: "confirmed" | "terminated" = "confirmed";
  private localSeq: number;

  private constructor(
    readonly callId: string,
    readonly localTag: string,
    readonly remoteTag: string,
    /** Our From (with tag): the From of our requests. */
    readonly localParty: string,
    /** The 2xx's To (with tag): the To of our requests. */
    readonly remoteParty: string,
    readonly remoteTarget: string,
    readonly routeSet: readonly string[],
    inviteSeq: number,
    private readonly deps: OutboundDialogDeps,
  ) {
    super();
    this.key = dialogKey({ callId, localTag, remoteTag });
    this.localSeq = inviteSeq;
  }

  static fromSuccess(
    invite: SipRequest,
    response: SipResponse,
    deps: OutboundDialogDeps,
  ): OutboundDialog | undefined {
    const callId = invite.headers.get("Call-ID");
    const from = invite.headers.get("From");
    const to = response.headers.get("To");
    const contact = response.headers.getAll("Contact")[0];
    const cseq = parseCSeq(invite.headers.get("CSeq") ?? "");
    const localTag = tagOf(from);
    const remoteTag = tagOf(to);
    if (!callId || !from || !to || !contact || !cseq || !localTag || !remoteTag) return undefined;
    return new OutboundDialog(
      callId,
      localTag,
      remoteTag,
      from,
      to,
      uriText(contact),
      [...response.headers.getAll("Record-Route")].reverse(),
      cseq.seq,
      deps,
    );
  }

  /** Where our in-dialog requests physically go: the first Route's host, else the remote target's. */
  nextHop(): Endpoint {
    const first = this.routeSet[0];
    return endpointFor(first !== undefined ? uriText(first) : this.remoteTarget, this.deps.proxy);
  }

  /** §13.2.2.4: the 2xx ACK, in the dialog, with the INVITE's CSeq number and its credentials. */
  buildAck(invite: SipRequest): SipRequest {
    const cseq = parseCSeq(invite.headers.get("CSeq") ?? "")?.seq ?? this.localSeq;
    const request = this.createRequest("ACK", cseq);
    for (const name of ["Authorization", "Proxy-Authorization"]) {
      const value = invite.headers.get(name);
      if (value) request.headers.set(name, value);
    }
    return request;
  }

  /** Ends the call from our side. Resolves with the BYE's final status (undefined: no answer). Idempotent. */
  async bye(): Promise<number | undefined> {
    if (this.state === "terminated") return undefined;
    this.state = "terminated";
    const digest = this.deps.credentials ? new DigestClient(this.deps.credentials) : undefined;
    let request = this.createRequest("BYE", ++this.localSeq);
    for (let round = 0; round < 3; round++) {
      const response = await this.transact(request);
      if (!response) return undefined;
      if ((response.status !== 401 && response.status !== 407) || !digest) return response.status;
      const decision = digest.respondToChallenge(response, request);
      if (decision.action === "fail") return response.status;
      request = this.createRequest("BYE", ++this.localSeq);
      request.headers.set(decision.headerName, decision.headerValue);
    }
    return undefined;
  }

  /** DialogUser: requests from the callee inside this dialog. */
  handleRequest(request: SipRequest, transaction: ServerTransaction | undefined): void {
    if (request.method === "ACK") return;
    if (request.method === "BYE") {
      transaction?.respond(createResponse(request, 200));
      if (this.state !== "terminated") {
        this.state = "terminated";
        this.emit("ended", "remote");
      }
      return;
    }
    // Re-INVITE/UPDATE/INFO belong to the call layer that takes the answered call over.
    transaction?.respond(createResponse(request, 501));
  }

  handleStrayResponse(_response: SipResponse): void {}

  private createRequest(method: string, seq: number): SipRequest {
    const headers = createHeaders();
    let requestUri = this.remoteTarget;
    const routes = [...this.routeSet];
    const first = routes[0];
    if (first !== undefined && !parseNameAddr(first)?.uri.params.has("lr")) {
      // Strict routing (RFC 2543 next hop): the first route becomes the Request-URI, the target goes last.
      requestUri = uriText(first);
      routes.shift();
      routes.push(`<${this.remoteTarget}>`);
    }
    for (const route of routes) headers.append("Route", route);
    headers.set("Max-Forwards", "70");
    headers.set("From", this.localParty);
    headers.set("To", this.remoteParty);
    headers.set("Call-ID", this.callId);
    headers.set("CSeq", `${seq} ${method}`);
    return { kind: "request", method, uri: requestUri, headers, body: new Uint8Array() };
  }

  private transact(request: SipRequest): Promise<SipResponse | undefined> {
    return new Promise((resolve) => {
      this.deps.layer.sendRequest(request, this.nextHop(), {
        onResponse: (response) => {
          if (response.status >= 200) resolve(response);
        },
        onFailure: (failure) => {
          this.deps.logger.warn({ failure, method: request.method }, "in-dialog request got no answer");
          resolve(undefined);
        },
      });
    });
  }
}
