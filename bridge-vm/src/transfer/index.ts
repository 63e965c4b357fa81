/**
 * bridge-vm/src/transfer — the agent's transfers of a call to a person, inbound or outbound.
 *
 * Owns: the policy gate every transfer passes before any SIP (toll-fraud allow-list), blind transfer
 * (one REFER, ../call/leg.ts), and warm transfer (./warm.ts: a consultation leg, the agent routed to the
 * human through ./duplex-router.ts, the legs joined by ./relay.ts or REFER with Replaces). Imports the
 * call layer's leg contract, the cloud link's events, the control layer's TransferPolicy and the media
 * duplex; the call bindings (../bridge/call-binding.ts, ../outbound/call.ts) import this.
 *
 *   const router = new DuplexRouter(media.duplex);       // the cloud link is built on the router
 *   desk.bind(link, leg, router, logger);                // then transfers just work
 */
import type { CloudLink } from "../cloud/index";
import type { TransferPolicy } from "../control/policy";
import type { Logger } from "../logging";
import type { Clock } from "../sip/transaction/clock";
import type { DuplexRouter } from "./duplex-router";
import { type ConsultLeg, type TransferLeg, type WarmJoinMethod, WarmTransfer } from "./warm";

export { DuplexRouter } from "./duplex-router";
export { type MediaRelay, relayMedia } from "./relay";
export type { ConsultLeg, TransferLeg, WarmJoinMethod, WarmTransferOutcome } from "./warm";
export { WarmTransfer } from "./warm";

export interface TransferDeskOptions {
  /** Every target must pass it; none configured: every transfer is refused. */
  policy: TransferPolicy | undefined;
  warmMethod: WarmJoinMethod;
  /**
   * Builds the agent-less outbound leg a warm transfer calls the human on (undefined when the bridge
   * has no registrar/proxy to dial through: warm transfers are then refused).
   */
  consultLeg?: (requestUri: string, logger: Logger) => ConsultLeg | { refused: string };
  /** Builds `?Replaces=` URIs with RFC 3261 §19.1.1 escaping (../call/leg.ts uriWithHeaders). */
  uriWithHeaders: (uri: string, headers: Readonly<Record<string, string>>) => string;
  clock: Clock;
}

export class TransferDesk {
  constructor(private readonly options: TransferDeskOptions) {}

  /**
   * Carries out the agent's transfer requests on one call. The link must have been built on `router`
   * (its duplex), so a warm transfer can point the agent at the human.
   */
  bind(link: CloudLink, leg: TransferLeg, router: DuplexRouter, logger: Logger): void {
    let warm: WarmTransfer | undefined;
    link.on("transferRequested", (target, mode, summary) => {
      logger.info({ target, mode, summaryChars: summary?.length }, "agent asked for a transfer");
      const check = this.check(target);
      if (!check.ok) {
        logger.warn({ target: target.slice(0, 64), reason: check.reason }, "transfer refused by policy");
        link.reportTransferResult({ ok: false, target, reason: check.reason.slice(0, 256) });
        return;
      }
      if (mode === "blind") {
        this.blind(link, leg, target, check.referTo);
        return;
      }
      if (warm) {
        link.reportTransferResult({ ok: false, target, reason: "a transfer is already in progress" });
        return;
      }
      warm = this.warm(link, leg, router, target, check.referTo, logger);
      void warm.done.then(() => {
        warm = undefined;
      });
    });
    link.on("transferJoinRequested", () => warm?.join());
    link.on("transferCancelRequested", () => warm?.cancel());
  }

  private check(target: string): { ok: true; referTo: string } | { ok: false; reason: string } {
    return this.options.policy
      ? this.options.policy.check(target)
      : { ok: false, reason: "transfers are not allowed on this bridge" };
  }

  private blind(link: CloudLink, leg: TransferLeg, target: string, referTo: string): void {
    leg
      .transfer(target, { referTo })
      .then(() => link.reportTransferResult({ ok: true, target }))
      .catch((error: Error & { sipStatus?: number }) =>
        link.reportTransferResult({
          ok: false,
          target,
          reason: error.message.slice(0, 256),
          ...(error.sipStatus === undefined ? {} : { sipStatus: error.sipStatus }),
        }),
      );
  }

  private warm(
    link: CloudLink,
    leg: TransferLeg,
    router: DuplexRouter,
    target: string,
    requestUri: string,
    logger: Logger,
  ): WarmTransfer {
    const { consultLeg } = this.options;
    const transfer = new WarmTransfer({
      target,
      callerLeg: leg,
      router,
      method: this.options.warmMethod,
      createConsultLeg: () =>
        consultLeg
          ? consultLeg(requestUri, logger)
          : { refused: "warm transfers need a registrar to call through" },
      reportProgress: (state) => link.reportTransferProgress(target, state),
      reportOutcome: (outcome) => {
        if (!outcome.ok) {
          link.reportTransferResult({
            ok: false,
            target,
            reason: outcome.reason.slice(0, 256),
            ...(outcome.sipStatus === undefined ? {} : { sipStatus: outcome.sipStatus }),
          });
          return;
        }
        link.reportTransferResult({ ok: true, target });
        // The agent's part is over. With relay the caller's leg stays up, now talking to the human:
        // close the link ourselves so nothing the Worker does next can touch the call.
        link.hangup("transferred", "bridge");
      },
      uriWithHeaders: this.options.uriWithHeaders,
      clock: this.options.clock,
      logger,
    });
    transfer.start();
    return transfer;
  }
}
