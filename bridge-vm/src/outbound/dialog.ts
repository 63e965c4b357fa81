/**
 * OutboundDialog: the dialog an answered outbound INVITE created, seen from the UAC (RFC 3261 §12.1.2),
 * as OutboundInvite needs it before any call layer exists: the shared Dialog (`Dialog.fromSuccess`:
 * reversed Record-Route, Contact target, CSeq continuing from the INVITE's) plus where its requests go
 * (`nextHop`: IP literals direct, names through the proxy), the 2xx ACK with the INVITE's credentials,
 * and a BYE with digest retry for dialogs nobody takes over (CANCEL/200 glare, a second fork's 2xx).
 * An answered call hands `dialog` to OutboundLeg, which runs it like any other (../call/leg.ts).
 *
 * As a DialogUser (tests without a call layer) it answers the callee's BYE and emits `ended`.
 */
import { EventEmitter } from "node:events";
import type { Logger } from "../logging";
import { DigestClient, type DigestCredentials } from "../sip/auth";
import { Dialog } from "../sip/dialog/dialog";
import { createResponse, parseCSeq } from "../sip/message";
import type { SipRequest, SipResponse } from "../sip/message/types";
import type { TransactionLayer } from "../sip/transaction/layer";
import type { ServerTransaction } from "../sip/transaction/server";
import type { Endpoint } from "../sip/transport/types";
import { endpointForUri } from "./route";

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
  private constructor(
    readonly dialog: Dialog,
    private readonly deps: OutboundDialogDeps,
  ) {
    super();
  }

  static fromSuccess(
    invite: SipRequest,
    response: SipResponse,
    deps: OutboundDialogDeps,
  ): OutboundDialog | undefined {
    const dialog = Dialog.fromSuccess(invite, response);
    return dialog ? new OutboundDialog(dialog, deps) : undefined;
  }

  get key(): string {
    return this.dialog.key;
  }
  get callId(): string {
    return this.dialog.id.callId;
  }
  get localTag(): string {
    return this.dialog.id.localTag;
  }
  get remoteTag(): string {
    return this.dialog.id.remoteTag;
  }
  get routeSet(): readonly string[] {
    return this.dialog.routeSet;
  }
  get remoteTarget(): string {
    return this.dialog.remoteTarget;
  }
  get state(): "early" | "confirmed" | "terminated" {
    return this.dialog.state;
  }

  /** Where our in-dialog requests physically go: the first Route's host, else the remote target's. */
  nextHop(): Endpoint {
    const uri = this.dialog.nextHopUri();
    return uri ? endpointForUri(uri, this.deps.proxy) : this.deps.proxy;
  }

  /** §13.2.2.4: the 2xx ACK, in the dialog, with the INVITE's CSeq number and its credentials. */
  buildAck(invite: SipRequest): SipRequest {
    const cseq = parseCSeq(invite.headers.get("CSeq") ?? "")?.seq;
    const request = this.dialog.createRequest("ACK", cseq === undefined ? {} : { cseq });
    for (const name of ["Authorization", "Proxy-Authorization"]) {
      const value = invite.headers.get(name);
      if (value) request.headers.set(name, value);
    }
    return request;
  }

  /** Ends a dialog nobody took over. Resolves with the BYE's final status (undefined: no answer). Idempotent. */
  async bye(): Promise<number | undefined> {
    if (this.dialog.state === "terminated") return undefined;
    this.dialog.state = "terminated";
    const digest = this.deps.credentials ? new DigestClient(this.deps.credentials) : undefined;
    let request = this.dialog.createRequest("BYE");
    for (let round = 0; round < 3; round++) {
      const response = await this.transact(request);
      if (!response) return undefined;
      if ((response.status !== 401 && response.status !== 407) || !digest) return response.status;
      const decision = digest.respondToChallenge(response, request);
      if (decision.action === "fail") return response.status;
      request = this.dialog.createRequest("BYE");
      request.headers.set(decision.headerName, decision.headerValue);
    }
    return undefined;
  }

  /** DialogUser (only while no call layer has taken the dialog over): the callee's BYE. */
  handleRequest(request: SipRequest, transaction: ServerTransaction | undefined): void {
    if (request.method === "ACK") return;
    if (request.method === "BYE") {
      transaction?.respond(createResponse(request, 200));
      if (this.dialog.state !== "terminated") {
        this.dialog.state = "terminated";
        this.emit("ended", "remote");
      }
      return;
    }
    transaction?.respond(createResponse(request, 501));
  }

  handleStrayResponse(_response: SipResponse): void {}

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
