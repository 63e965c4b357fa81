/**
 * A deliberately small SIP caller (UAC) for the demo and the end-to-end tests: it places one call
 * through a proxy (Kamailio) or straight to the bridge, ACKs, answers what the bridge sends inside
 * the dialog (BYE, REFER, re-INVITE, INFO), and hangs up. It reuses the bridge's message layer (the
 * parser is tested to RFC 4475) but has its own tiny transaction and dialog handling over UDP, so
 * it is an independent peer to the bridge's UA rather than the UA talking to itself.
 */
import { randomBytes } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { EventEmitter } from "node:events";
import type { AddressInfo } from "node:net";
import {
  createRequest,
  createResponse,
  formatNameAddr,
  generateBranch,
  generateCallId,
  generateTag,
  parseNameAddr,
  parseSipMessage,
  parseSipUri,
  type SipRequest,
  type SipResponse,
  serializeSipMessage,
} from "@patchbay/bridge/src/sip/message/index";

export interface SipCallerOptions {
  /** Local address to send from (a trusted-trunk address on the proxy, or an allowed source). */
  localAddress: string;
  /** Where every out-of-dialog request goes first: the proxy, or the bridge itself. */
  outboundProxy: { host: string; port: number };
  /** Address we advertise in SDP for RTP. */
  rtpAddress: string;
  rtpPort: number;
  fromUser?: string;
  displayName?: string;
  codecs?: Array<"PCMU" | "PCMA">;
  dtmfPayloadType?: number;
  /** Status reported in the final NOTIFY after a REFER (default 200); null sends no NOTIFY. */
  referOutcome?: number | null;
}

export interface AnsweredCall {
  status: number;
  remoteRtp: { address: string; port: number };
  codec: "PCMU" | "PCMA";
  dtmfPayloadType?: number;
  answeredAt: number;
}

export interface InDialogRequest {
  method: string;
  request: SipRequest;
  at: number;
}

interface CallerEvents {
  provisional: [status: number];
  request: [request: InDialogRequest];
  /** The far end hung up (BYE received). */
  bye: [request: SipRequest];
}

const T1 = 500;

function sdpOffer(
  address: string,
  port: number,
  codecs: Array<"PCMU" | "PCMA">,
  dtmfPayloadType: number,
): string {
  const payloadTypes = codecs.map((codec) => (codec === "PCMU" ? 0 : 8));
  const session = Math.floor(Math.random() * 1e9);
  return [
    "v=0",
    `o=caller ${session} ${session} IN IP4 ${address}`,
    "s=patchbay test caller",
    `c=IN IP4 ${address}`,
    "t=0 0",
    `m=audio ${port} RTP/AVP ${[...payloadTypes, dtmfPayloadType].join(" ")}`,
    ...codecs.map((codec) => `a=rtpmap:${codec === "PCMU" ? 0 : 8} ${codec}/8000`),
    `a=rtpmap:${dtmfPayloadType} telephone-event/8000`,
    `a=fmtp:${dtmfPayloadType} 0-16`,
    "a=ptime:20",
    "a=sendrecv",
    "",
  ].join("\r\n");
}

function parseSdpAnswer(sdp: string): Omit<AnsweredCall, "status" | "answeredAt"> | undefined {
  const address = sdp.match(/^c=IN IP[46] (\S+)/m)?.[1];
  const media = sdp.match(/^m=audio (\d+) RTP\/AVP ([\d ]+)/m);
  if (!address || !media) return undefined;
  const payloadTypes = media[2]!.trim().split(/\s+/).map(Number);
  const codecPayloadType = payloadTypes.find((payloadType) => payloadType === 0 || payloadType === 8);
  if (codecPayloadType === undefined) return undefined;
  const dtmf = sdp.match(/^a=rtpmap:(\d+) telephone-event\/8000/m)?.[1];
  return {
    remoteRtp: { address, port: Number(media[1]) },
    codec: codecPayloadType === 0 ? "PCMU" : "PCMA",
    ...(dtmf === undefined ? {} : { dtmfPayloadType: Number(dtmf) }),
  };
}

export class SipCaller extends EventEmitter<CallerEvents> {
  readonly inDialogRequests: InDialogRequest[] = [];
  private socket!: Socket;
  private localPort = 0;
  /** The dialog's Call-ID (what the bridge logs as sipCallId). */
  readonly callId = generateCallId();
  private readonly localTag = generateTag();
  private readonly contactUser = `caller-${randomBytes(4).toString("hex")}`;
  private cseq = 1;
  private inviteBranch = "";
  private inviteRequest: SipRequest | undefined;
  private remoteTarget: string | undefined;
  private routeSet: string[] = [];
  private toHeader = "";
  private pending = new Map<string, (response: SipResponse) => void>();
  private ended = false;
  private closed = false;

  constructor(private readonly options: SipCallerOptions) {
    super();
  }

  async open(): Promise<void> {
    this.socket = createSocket("udp4");
    this.socket.on("message", (bytes, remote) => this.onDatagram(bytes, remote));
    await new Promise<void>((resolve) => this.socket.bind(0, this.options.localAddress, resolve));
    this.localPort = (this.socket.address() as AddressInfo).port;
  }

  private get contact(): string {
    return `<sip:${this.contactUser}@${this.options.localAddress}:${this.localPort}>`;
  }

  private via(branch: string): string {
    return `SIP/2.0/UDP ${this.options.localAddress}:${this.localPort};branch=${branch};rport`;
  }

  /** Places the call and resolves on the final response (2xx answered, or the failure status). */
  async call(
    target: string,
    options: { timeoutMs?: number; headers?: Record<string, string> } = {},
  ): Promise<AnsweredCall> {
    const fromUser = this.options.fromUser ?? "15551230000";
    const fromUri = `sip:${fromUser}@${this.options.localAddress}`;
    this.toHeader = `<${target}>`;
    this.inviteBranch = generateBranch();
    const body = sdpOffer(
      this.options.rtpAddress,
      this.options.rtpPort,
      this.options.codecs ?? ["PCMU", "PCMA"],
      this.options.dtmfPayloadType ?? 101,
    );
    const invite = createRequest(
      "INVITE",
      target,
      [
        ["Via", this.via(this.inviteBranch)],
        ["Max-Forwards", "70"],
        [
          "From",
          `${this.options.displayName ? `"${this.options.displayName}" ` : ""}<${fromUri}>;tag=${this.localTag}`,
        ],
        ["To", this.toHeader],
        ["Call-ID", this.callId],
        ["CSeq", `${this.cseq} INVITE`],
        ["Contact", this.contact],
        ["Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, INFO"],
        ["Content-Type", "application/sdp"],
        ...Object.entries(options.headers ?? {}),
      ],
      body,
    );
    this.inviteRequest = invite;
    const final = await this.sendWithRetransmit(
      invite,
      this.options.outboundProxy,
      options.timeoutMs ?? 32 * T1,
      true,
    );
    if (final.status >= 300) {
      this.sendAckForFailure(final);
      throw Object.assign(new Error(`call failed: ${final.status} ${final.reason}`), {
        status: final.status,
      });
    }
    this.establishDialog(final);
    this.sendAck();
    const answer = parseSdpAnswer(new TextDecoder().decode(final.body));
    if (!answer) throw new Error("200 OK without a usable SDP answer");
    return { status: final.status, ...answer, answeredAt: performance.now() };
  }

  /** Cancels a call still ringing. */
  async cancel(): Promise<number> {
    if (!this.inviteRequest) throw new Error("nothing to cancel");
    const cancel = createRequest("CANCEL", this.inviteRequest.uri, [
      ["Via", this.via(this.inviteBranch)],
      ["Max-Forwards", "70"],
      ["From", this.inviteRequest.headers.get("From")!],
      ["To", this.toHeader],
      ["Call-ID", this.callId],
      ["CSeq", `${this.cseq} CANCEL`],
    ]);
    const response = await this.sendWithRetransmit(
      cancel,
      this.options.outboundProxy,
      32 * T1,
      false,
      "CANCEL",
    );
    return response.status;
  }

  /** Hangs up an answered call. */
  async hangup(): Promise<number> {
    if (this.ended) return 0;
    this.ended = true;
    const response = await this.sendInDialog("BYE");
    return response.status;
  }

  async sendInfoDtmf(digit: string, durationMs = 160): Promise<number> {
    const response = await this.sendInDialog("INFO", {
      contentType: "application/dtmf-relay",
      body: `Signal=${digit}\r\nDuration=${durationMs}\r\n`,
    });
    return response.status;
  }

  /** Final NOTIFY for an accepted REFER: the transfer target's status as a sipfrag. */
  private async notifyReferOutcome(status: number): Promise<void> {
    const reason = status >= 200 && status < 300 ? "OK" : "Failed";
    await this.sendInDialog(
      "NOTIFY",
      { contentType: "message/sipfrag;version=2.0", body: `SIP/2.0 ${status} ${reason}\r\n` },
      [
        ["Event", "refer"],
        ["Subscription-State", "terminated;reason=noresource"],
      ],
    ).catch(() => undefined);
  }

  /** Whether the dialog is over (we sent or received a BYE). */
  get hungUp(): boolean {
    return this.ended;
  }

  /** Resolves with the far end's BYE (at once if it already came); rejects after `timeoutMs`. */
  waitForBye(timeoutMs: number): Promise<InDialogRequest> {
    const seen = this.inDialogRequests.find((request) => request.method === "BYE");
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off("request", onRequest);
        reject(new Error(`no BYE from the far end within ${timeoutMs} ms`));
      }, timeoutMs);
      const onRequest = (request: InDialogRequest) => {
        if (request.method !== "BYE") return;
        clearTimeout(timer);
        this.off("request", onRequest);
        resolve(request);
      };
      this.on("request", onRequest);
    });
  }

  /** Releases the socket; idempotent. Pending transactions resolve as 408. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const resolve of this.pending.values())
      resolve({ kind: "response", status: 408, reason: "closed" } as SipResponse);
    this.pending.clear();
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  // ---- dialog plumbing ----------------------------------------------------------------------------

  private establishDialog(response: SipResponse): void {
    this.toHeader = response.headers.get("To") ?? this.toHeader;
    const contact = parseNameAddr(response.headers.get("Contact") ?? "");
    this.remoteTarget = contact
      ? `sip:${contact.uri.user ? `${contact.uri.user}@` : ""}${contact.uri.host}${contact.uri.port ? `:${contact.uri.port}` : ""}`
      : undefined;
    // A UAC's route set is the Record-Route list reversed (RFC 3261 §12.1.2).
    this.routeSet = response.headers.getAll("Record-Route").reverse();
  }

  private nextHop(): { host: string; port: number } {
    const firstRoute = this.routeSet[0];
    const uriText = firstRoute
      ? (parseNameAddr(firstRoute)?.uri ?? undefined)
      : parseSipUri(this.remoteTarget ?? "");
    if (!uriText) return this.options.outboundProxy;
    return { host: uriText.host.replace(/^\[|\]$/g, ""), port: uriText.port ?? 5060 };
  }

  private dialogHeaders(method: string, branch: string, cseq: number): Array<[string, string]> {
    return [
      ["Via", this.via(branch)],
      ["Max-Forwards", "70"],
      ...this.routeSet.map((route): [string, string] => ["Route", route]),
      ["From", this.inviteRequest!.headers.get("From")!],
      ["To", this.toHeader],
      ["Call-ID", this.callId],
      ["CSeq", `${cseq} ${method}`],
      ["Contact", this.contact],
    ];
  }

  private sendAck(): void {
    const ack = createRequest(
      "ACK",
      this.remoteTarget ?? this.inviteRequest!.uri,
      this.dialogHeaders("ACK", generateBranch(), 1),
    );
    this.send(ack, this.nextHop());
  }

  private sendAckForFailure(response: SipResponse): void {
    // ACK for a non-2xx final response: same branch as the INVITE, hop by hop (RFC 3261 §17.1.1.3).
    const ack = createRequest("ACK", this.inviteRequest!.uri, [
      ["Via", this.via(this.inviteBranch)],
      ["Max-Forwards", "70"],
      ["From", this.inviteRequest!.headers.get("From")!],
      ["To", response.headers.get("To") ?? this.toHeader],
      ["Call-ID", this.callId],
      ["CSeq", `${this.cseq} ACK`],
    ]);
    this.send(ack, this.options.outboundProxy);
  }

  private async sendInDialog(
    method: string,
    content?: { contentType: string; body: string },
    extraHeaders: Array<[string, string]> = [],
  ): Promise<SipResponse> {
    const cseq = ++this.cseq;
    const headers = [...this.dialogHeaders(method, generateBranch(), cseq), ...extraHeaders];
    if (content) headers.push(["Content-Type", content.contentType]);
    const request = createRequest(
      method,
      this.remoteTarget ?? this.inviteRequest!.uri,
      headers,
      content?.body,
    );
    return this.sendWithRetransmit(request, this.nextHop(), 32 * T1, false);
  }

  private sendWithRetransmit(
    request: SipRequest,
    destination: { host: string; port: number },
    timeoutMs: number,
    isInvite: boolean,
    methodOverride?: string,
  ): Promise<SipResponse> {
    const branch = request.headers.get("Via")!.match(/branch=([^;]+)/)![1]!;
    const key = `${branch}:${methodOverride ?? request.method}`;
    return new Promise((resolve, reject) => {
      let interval = T1;
      let provisional = false;
      let retransmit: NodeJS.Timeout;
      const schedule = () => {
        retransmit = setTimeout(() => {
          if (provisional && isInvite) return; // INVITE retransmissions stop at the first 1xx
          this.send(request, destination);
          interval = Math.min(interval * 2, 4000);
          schedule();
        }, interval);
      };
      const deadline = setTimeout(() => {
        this.pending.delete(key);
        clearTimeout(retransmit);
        reject(new Error(`${request.method} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(key, (response) => {
        if (response.status < 200) {
          provisional = true;
          this.emit("provisional", response.status);
          return;
        }
        this.pending.delete(key);
        clearTimeout(retransmit);
        clearTimeout(deadline);
        resolve(response);
      });
      this.send(request, destination);
      schedule();
    });
  }

  private send(message: SipRequest | SipResponse, destination: { host: string; port: number }): void {
    if (this.closed) return;
    this.socket.send(serializeSipMessage(message), destination.port, destination.host);
  }

  private onDatagram(bytes: Buffer, remote: { address: string; port: number }): void {
    const parsed = parseSipMessage(bytes);
    if (!parsed.ok) return;
    const message = parsed.message;
    if (message.kind === "response") {
      const branch = message.headers.get("Via")?.match(/branch=([^;]+)/)?.[1];
      const method = message.headers.get("CSeq")?.split(/\s+/)[1];
      const handler = this.pending.get(`${branch}:${method}`);
      if (handler) handler(message);
      else if (method === "INVITE" && message.status >= 200 && message.status < 300) this.sendAck(); // retransmitted 2xx
      return;
    }
    const reply = (status: number, extra: Array<[string, string]> = [], body?: string) =>
      this.send(createResponse(message, status, undefined, extra, body === undefined ? {} : { body }), {
        host: remote.address,
        port: remote.port,
      });
    this.inDialogRequests.push({ method: message.method, request: message, at: performance.now() });
    this.emit("request", { method: message.method, request: message, at: performance.now() });
    switch (message.method) {
      case "BYE":
        this.ended = true;
        reply(200);
        this.emit("bye", message);
        break;
      case "REFER":
        // Accept, then report the transfer's outcome like a phone that completed it (RFC 3515 NOTIFY with
        // a message/sipfrag body): the bridge sends its BYE only after this final 2xx.
        reply(202, [["Contact", this.contact]]);
        if (this.options.referOutcome !== null)
          void this.notifyReferOutcome(this.options.referOutcome ?? 200);
        break;
      case "INVITE": {
        const body = sdpOffer(
          this.options.rtpAddress,
          this.options.rtpPort,
          this.options.codecs ?? ["PCMU"],
          101,
        );
        reply(
          200,
          [
            ["Contact", this.contact],
            ["Content-Type", "application/sdp"],
          ],
          body,
        );
        break;
      }
      case "ACK":
        break;
      default:
        reply(200);
    }
  }

  /** The display form of our From, for assertions. */
  get fromHeader(): string | undefined {
    const from = this.inviteRequest?.headers.get("From");
    const parsed = from ? parseNameAddr(from) : undefined;
    return parsed ? formatNameAddr(parsed) : undefined;
  }
}
