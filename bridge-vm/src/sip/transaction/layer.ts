/**
 * The transaction layer (RFC 3261 §17): matches inbound messages to transactions (§17.1.3, §17.2.3),
 * creates server transactions for new requests, runs client transactions for the UA core, and hands
 * the UA core what no transaction owns (new requests, ACKs for 2xx, stray 2xx retransmissions).
 */
import type { Logger } from "../../logging";
import { createResponse, generateBranch } from "../message";
import type { SipRequest, SipResponse } from "../message/types";
import type { Endpoint, InboundMessage, Transport, TransportProtocol } from "../transport/types";
import { responseDestination, topVia } from "../transport/via";
import { type ClientTransactionUser, InviteClientTransaction, NonInviteClientTransaction } from "./client";
import type { Clock } from "./clock";
import { InviteServerTransaction, NonInviteServerTransaction, type ServerTransaction } from "./server";
import { type BaseTimers, RFC3261_TIMERS, transactionTimers } from "./timers";

export interface TransactionLayerUser {
  /** A request no server transaction owns yet (the transaction is already created), or an ACK for a 2xx. */
  onRequest(request: SipRequest, transaction: ServerTransaction | undefined, inbound: InboundMessage): void;
  /** A response no client transaction owns (e.g. a 2xx retransmission after the INVITE transaction ended). */
  onStrayResponse(response: SipResponse, inbound: InboundMessage): void;
  /** Timer H fired on an INVITE server transaction. */
  onAckTimeout?(transaction: InviteServerTransaction): void;
}

export interface TransactionLayerOptions {
  transports: Transport[];
  clock: Clock;
  logger: Logger;
  timers?: BaseTimers;
  /** host[:port] we put in Via sent-by for a protocol (public address or learned one). */
  sentBy(protocol: TransportProtocol): string;
}

export type ClientTransaction = InviteClientTransaction | NonInviteClientTransaction;

export interface SendRequestOptions {
  /** Use this branch instead of a fresh one (CANCEL reuses the INVITE's). */
  branch?: string;
}

export class TransactionLayer {
  private readonly servers = new Map<string, ServerTransaction>();
  private readonly clients = new Map<string, ClientTransaction>();
  private readonly transports = new Map<TransportProtocol, Transport>();
  private user: TransactionLayerUser | undefined;
  private readonly base: BaseTimers;
  private readonly onMessage = (inbound: InboundMessage) => this.receive(inbound);

  constructor(private readonly options: TransactionLayerOptions) {
    this.base = options.timers ?? RFC3261_TIMERS;
    for (const transport of options.transports) {
      this.transports.set(transport.protocol, transport);
      transport.on("message", this.onMessage);
    }
  }

  setUser(user: TransactionLayerUser): void {
    this.user = user;
  }

  get timers(): BaseTimers {
    return this.base;
  }

  transport(protocol: TransportProtocol): Transport | undefined {
    return this.transports.get(protocol);
  }

  get serverCount(): number {
    return this.servers.size;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  receive(inbound: InboundMessage): void {
    const message = inbound.message;
    if (message.kind === "request") this.receiveRequest(message, inbound);
    else this.receiveResponse(message, inbound);
  }

  private receiveRequest(request: SipRequest, inbound: InboundMessage): void {
    const key = serverKey(request);
    if (key === undefined) {
      // The parser rejects Via without branch; this is the belt to its braces.
      void this.replyStateless(request, inbound, 400, "Missing Via branch");
      return;
    }
    const existing = this.servers.get(key);
    if (existing) {
      if (request.method === "ACK" && existing instanceof InviteServerTransaction) existing.receiveAck();
      else existing.receiveRetransmission();
      return;
    }
    if (request.method === "ACK") {
      this.user?.onRequest(request, undefined, inbound);
      return;
    }
    const transaction = this.createServer(request, inbound, key);
    this.user?.onRequest(request, transaction, inbound);
  }

  private createServer(request: SipRequest, inbound: InboundMessage, key: string): ServerTransaction {
    const transport = this.transports.get(inbound.source.protocol);
    const reliable = transport?.reliable ?? false;
    const destination = responseDestination(request, inbound.source);
    const context = {
      clock: this.options.clock,
      timers: transactionTimers(this.base, reliable),
      reliable,
      send: (response: SipResponse) => {
        if (!transport) return Promise.reject(new Error(`no ${inbound.source.protocol} transport`));
        return transport.send(response, destination, inbound.connectionId);
      },
      onTerminated: () => {
        if (this.servers.get(key) === transaction) this.servers.delete(key);
      },
      onAckTimeout: () => {
        if (transaction instanceof InviteServerTransaction) this.user?.onAckTimeout?.(transaction);
      },
      onTransportError: (error: Error) =>
        this.options.logger.warn({ err: error, method: request.method }, "could not send response"),
    };
    const transaction: ServerTransaction =
      request.method === "INVITE"
        ? new InviteServerTransaction(request, context)
        : new NonInviteServerTransaction(request, context);
    this.servers.set(key, transaction);
    return transaction;
  }

  /** The INVITE server transaction a CANCEL refers to (§9.2: same branch, method INVITE). */
  findInviteFor(cancel: SipRequest): InviteServerTransaction | undefined {
    const key = serverKey(cancel, "INVITE");
    const found = key === undefined ? undefined : this.servers.get(key);
    return found instanceof InviteServerTransaction ? found : undefined;
  }

  private receiveResponse(response: SipResponse, inbound: InboundMessage): void {
    const key = clientKey(response);
    const transaction = key === undefined ? undefined : this.clients.get(key);
    if (transaction) transaction.receiveResponse(response);
    else this.user?.onStrayResponse(response, inbound);
  }

  /**
   * Start a client transaction. Our Via (with rport and a fresh branch) is put on top here, so
   * requests are built without one.
   */
  sendRequest(
    request: SipRequest,
    destination: Endpoint,
    user: ClientTransactionUser,
    options: SendRequestOptions = {},
  ): ClientTransaction {
    const transport = this.transports.get(destination.protocol);
    const branch = options.branch ?? generateBranch();
    request.headers.prepend("Via", this.viaValue(destination.protocol, branch));
    const reliable = transport?.reliable ?? false;
    const key = `${branch}|${request.method === "ACK" ? "INVITE" : request.method}`;
    const context = {
      clock: this.options.clock,
      timers: transactionTimers(this.base, reliable),
      reliable,
      send: (message: SipRequest) => {
        if (!transport) return Promise.reject(new Error(`no ${destination.protocol} transport`));
        return transport.send(message, destination);
      },
      onTerminated: () => {
        if (this.clients.get(key) === transaction) this.clients.delete(key);
      },
    };
    const transaction: ClientTransaction =
      request.method === "INVITE"
        ? new InviteClientTransaction(request, user, context)
        : new NonInviteClientTransaction(request, user, context);
    this.clients.set(key, transaction);
    transaction.start();
    return transaction;
  }

  /** Send a request outside any transaction: the ACK for a 2xx (§13.2.2.4) or a keepalive. */
  async sendStateless(request: SipRequest, destination: Endpoint, branch = generateBranch()): Promise<void> {
    const transport = this.transports.get(destination.protocol);
    if (!transport) throw new Error(`no ${destination.protocol} transport`);
    if (!request.headers.has("Via"))
      request.headers.prepend("Via", this.viaValue(destination.protocol, branch));
    await transport.send(request, destination);
  }

  /** A response outside any transaction (requests we refuse before creating state). */
  async replyStateless(
    request: SipRequest,
    inbound: InboundMessage,
    status: number,
    reason?: string,
  ): Promise<void> {
    const transport = this.transports.get(inbound.source.protocol);
    if (!transport) return;
    try {
      await transport.send(
        createResponse(request, status, reason),
        responseDestination(request, inbound.source),
        inbound.connectionId,
      );
    } catch (error) {
      this.options.logger.debug({ err: error }, "stateless response failed");
    }
  }

  viaValue(protocol: TransportProtocol, branch: string): string {
    return `SIP/2.0/${protocol.toUpperCase()} ${this.options.sentBy(protocol)};rport;branch=${branch}`;
  }

  /** Terminate every transaction and stop listening (transports are closed by their owner). */
  close(): void {
    for (const transaction of [...this.servers.values()]) transaction.terminate();
    for (const transaction of [...this.clients.values()]) transaction.terminate();
    for (const transport of this.transports.values()) transport.off("message", this.onMessage);
  }
}

function serverKey(request: SipRequest, method?: string): string | undefined {
  const via = topVia(request);
  const branch = via?.params.get("branch");
  if (!via || !branch) return undefined;
  const sentBy = `${via.host.toLowerCase()}:${via.port ?? ""}`;
  const keyMethod = method ?? (request.method === "ACK" ? "INVITE" : request.method);
  return `${branch}|${sentBy}|${keyMethod}`;
}

function clientKey(response: SipResponse): string | undefined {
  const via = topVia(response);
  const branch = via?.params.get("branch");
  const method = (response.headers.get("CSeq") ?? "").trim().split(/\s+/)[1];
  if (!branch || !method) return undefined;
  return `${branch}|${method.toUpperCase()}`;
}
