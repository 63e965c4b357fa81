/**
 * NAT keepalives toward the registrar (sip-interop.md §1.2 row 5): a CRLFCRLF ping (RFC 5626 §4.4.1) or
 * an OPTIONS request every interval, so the NAT binding the registrar reaches us through stays open.
 */
import type { Logger } from "../../logging";
import { createHeaders, generateCallId, generateTag } from "../message";
import type { Clock, Timer } from "../transaction/clock";
import type { TransactionLayer } from "../transaction/layer";
import type { Endpoint } from "../transport/types";

export interface KeepaliveOptions {
  mode: "crlf" | "options" | "off";
  intervalS: number;
  layer: TransactionLayer;
  clock: Clock;
  logger: Logger;
  target: Endpoint;
  /** For OPTIONS: the registrar's domain and our identity. */
  domain: string;
  fromUri: string;
}

const CRLF_PING = new TextEncoder().encode("\r\n\r\n");

export class Keepalive {
  private timer: Timer | undefined;
  private stopped = false;
  private sequence = 0;
  sent = 0;

  constructor(private readonly options: KeepaliveOptions) {}

  start(): void {
    if (this.options.mode === "off" || this.stopped) return;
    this.schedule();
  }

  private schedule(): void {
    this.timer = this.options.clock.schedule(this.options.intervalS * 1000, () => {
      if (this.stopped) return;
      this.sendOne();
      this.schedule();
    });
  }

  sendOne(): void {
    const { mode, layer, target } = this.options;
    this.sent++;
    if (mode === "crlf") {
      const transport = layer.transport(target.protocol);
      transport?.sendRaw(CRLF_PING, target).catch((error: unknown) => {
        this.options.logger.debug({ err: error }, "keepalive send failed");
      });
      return;
    }
    const headers = createHeaders();
    headers.set("Max-Forwards", "70");
    headers.set("From", `<${this.options.fromUri}>;tag=${generateTag()}`);
    headers.set("To", `<sip:${this.options.domain}>`);
    headers.set("Call-ID", generateCallId());
    headers.set("CSeq", `${++this.sequence} OPTIONS`);
    layer.sendRequest(
      {
        kind: "request",
        method: "OPTIONS",
        uri: `sip:${this.options.domain}`,
        headers,
        body: new Uint8Array(),
      },
      target,
      {
        onResponse: () => undefined,
        onFailure: (reason) => this.options.logger.debug({ reason }, "keepalive OPTIONS got no answer"),
      },
    );
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }
}
