/**
 * Warm (attended) transfer, the bridge's half of PROTOCOL.md §9: the agent hands the caller to a person
 * after telling that person who is coming.
 *
 *   start():  consultation leg dialled (progress: dialing → ringing) ─ answered → the agent is routed
 *             to the human (consulting) while the caller hears silence
 *   join():   once the summary queued before it has played to the human, the legs are joined:
 *               relay    — the bridge relays RTP between the legs until one hangs up, then ends the other
 *               replaces — REFER the caller to the human with Replaces naming the consultation dialog
 *                          (RFC 3891 / RFC 5589 §7); if the PBX refuses it, fall back to relay
 *   cancel(), no answer, the human hanging up before the join, or no join in time: the consultation
 *             leg ends and the agent is routed back to the caller.
 *
 * `done` settles once with the outcome the Worker is told (`transfer_result`). Afterwards, with relay,
 * this object keeps owning the two joined legs until the call is over. Imports the call layer's leg
 * contract, the media duplex and the router/relay beside it; it never touches the cloud link.
 */
import type { CallEndCause, CallEnded } from "../call/types";
import type { Logger } from "../logging";
import type { CallAudioDuplex } from "../media/types";
import type { DialogId } from "../sip/dialog/dialog";
import type { Clock, Timer } from "../sip/transaction/clock";
import type { DuplexRouter } from "./duplex-router";
import { type MediaRelay, relayMedia } from "./relay";

export type WarmJoinMethod = "relay" | "replaces";

export type WarmTransferOutcome =
  | { ok: true; joinedBy: WarmJoinMethod }
  | { ok: false; reason: string; sipStatus?: number };

/** What the transfer needs of a call leg (SipLeg satisfies it: InboundCall, OutboundLeg). */
export interface TransferLeg {
  readonly logger: Logger;
  readonly media: { readonly duplex: CallAudioDuplex } | undefined;
  readonly dialogId: DialogId | undefined;
  readonly ended: CallEnded | undefined;
  on(event: "ended", listener: (info: CallEnded) => void): void;
  off(event: "ended", listener: (info: CallEnded) => void): void;
  hangup(cause: CallEndCause): Promise<void>;
  transfer(target: string, options: { referTo?: string; timeoutMs?: number }): Promise<void>;
}

/** The consultation leg: an outbound leg with no agent (OutboundLeg satisfies it). */
export interface ConsultLeg extends TransferLeg {
  readonly requestUri: string;
  dial(): Promise<
    | { outcome: "answered"; sipStatus: number }
    | { outcome: "failed"; reason: string; sipStatus?: number; detail?: string }
  >;
  abandon(why?: string): void;
  on(event: "ended", listener: (info: CallEnded) => void): void;
  on(event: "progress", listener: (progress: { state: "trying" | "ringing" }) => void): void;
}

export interface WarmTransferOptions {
  target: string;
  /** The caller's leg, answered, with the agent on `router`. */
  callerLeg: TransferLeg;
  router: DuplexRouter;
  method: WarmJoinMethod;
  /**
   * Builds the consultation leg for `target` after the bridge's transfer policy, or says why not (no
   * SIP is sent then). The leg is not dialled yet.
   */
  createConsultLeg(target: string): ConsultLeg | { refused: string };
  /** PROTOCOL.md §9 progress, for the Worker. */
  reportProgress(state: "dialing" | "ringing" | "consulting"): void;
  /**
   * The outcome, called synchronously as it is decided (before `done` resolves): a successful REFER
   * makes the caller's leg hang up in the next microtask, and the Worker must hear the result first.
   */
  reportOutcome?(outcome: WarmTransferOutcome): void;
  /** Builds `?Replaces=` Refer-To URIs (the call layer's escaping helper). */
  uriWithHeaders(uri: string, headers: Readonly<Record<string, string>>): string;
  clock: Clock;
  logger: Logger;
  /** From consulting to transfer_join (default 120 s): the human is not kept on the line forever. */
  joinTimeoutMs?: number;
  /** After a successful Replaces REFER, how long the PBX gets to end the consultation leg (default 10 s). */
  replacedLegGraceMs?: number;
  /** How long to wait for the REFER's final NOTIFY (default 30 s). */
  referTimeoutMs?: number;
}

type Phase = "dialing" | "consulting" | "joining" | "joined" | "over";

export class WarmTransfer {
  /** Settles once: what the Worker is told. */
  readonly done: Promise<WarmTransferOutcome>;
  private settle!: (outcome: WarmTransferOutcome) => void;
  private phase: Phase = "dialing";
  private consult: ConsultLeg | undefined;
  private relay: MediaRelay | undefined;
  private joinTimer: Timer | undefined;
  private readonly log: Logger;

  constructor(private readonly options: WarmTransferOptions) {
    this.log = options.logger.child({ component: "warm-transfer", target: options.target });
    this.done = new Promise((resolve) => {
      let settled = false;
      this.settle = (outcome) => {
        if (settled) return;
        settled = true;
        options.reportOutcome?.(outcome);
        resolve(outcome);
      };
    });
  }

  /** Dials the human. Never throws; the outcome arrives on `done`. */
  start(): void {
    const { options } = this;
    const created = options.createConsultLeg(options.target);
    if ("refused" in created) {
      this.fail({ reason: created.refused });
      return;
    }
    const consult = created;
    this.consult = consult;
    options.callerLeg.on("ended", this.onCallerEnded);
    consult.on("progress", (progress) => {
      if (this.phase === "dialing" && progress.state === "ringing") options.reportProgress("ringing");
    });
    consult.on("ended", this.onConsultEnded);
    options.reportProgress("dialing");
    this.log.info({ uri: consult.requestUri }, "warm transfer: calling the human");
    void consult.dial().then((result) => {
      if (this.phase !== "dialing") return;
      if (result.outcome === "failed") {
        this.fail({
          reason: describeDialFailure(result.reason, result.detail),
          ...(result.sipStatus === undefined ? {} : { sipStatus: result.sipStatus }),
        });
        return;
      }
      const duplex = consult.media?.duplex;
      if (!duplex) {
        void consult.hangup("error");
        this.fail({ reason: "the consultation call has no media" });
        return;
      }
      this.phase = "consulting";
      options.router.route(duplex);
      this.joinTimer = options.clock.schedule(options.joinTimeoutMs ?? 120_000, () => {
        if (this.phase !== "consulting") return;
        this.log.warn("warm transfer: no join in time; ending the consultation");
        this.abortConsultation("the agent did not complete the transfer in time");
      });
      options.reportProgress("consulting");
      this.log.info("warm transfer: the human answered; the agent is talking to them");
    });
  }

  /** transfer_join: join once everything queued for the human (the summary) has been played. */
  join(): void {
    if (this.phase !== "consulting") return;
    this.phase = "joining";
    this.joinTimer?.cancel();
    this.options.router.markThen(() => void this.joinLegs());
  }

  /** transfer_cancel: the agent gives up on the human; the caller stays with the agent. */
  cancel(): void {
    if (this.phase === "dialing") {
      this.phase = "over";
      this.consult?.abandon("cancelled by the agent");
      this.finishFailed({ reason: "cancelled by the agent" });
      return;
    }
    if (this.phase === "consulting") this.abortConsultation("cancelled by the agent");
  }

  private async joinLegs(): Promise<void> {
    const consult = this.consult;
    if (this.phase !== "joining" || !consult) return;
    const { callerLeg, router } = this.options;
    if (this.options.method === "replaces" && (await this.joinByReplaces(consult))) return;
    if (this.phase !== "joining") return; // a leg ended while the REFER was out
    const callerDuplex = callerLeg.media?.duplex;
    const humanDuplex = consult.media?.duplex;
    if (!callerDuplex || !humanDuplex) {
      this.abortConsultation("a leg lost its media before the join");
      return;
    }
    router.detachAll();
    this.relay = relayMedia(callerDuplex, humanDuplex);
    this.phase = "joined";
    this.log.info("warm transfer: legs joined through the bridge (relay)");
    this.settle({ ok: true, joinedBy: "relay" });
  }

  /** True when the PBX took the REFER: it connects the caller and the human, we leave both legs. */
  private async joinByReplaces(consult: ConsultLeg): Promise<boolean> {
    const id = consult.dialogId;
    if (!id) return false;
    // RFC 3891 from the human's point of view: to-tag is their tag, from-tag ours (RFC 5589 §7.1).
    const referTo = this.options.uriWithHeaders(consult.requestUri, {
      Replaces: `${id.callId};to-tag=${id.remoteTag};from-tag=${id.localTag}`,
    });
    this.log.info({ referTo }, "warm transfer: REFER with Replaces");
    try {
      await this.options.callerLeg.transfer(this.options.target, {
        referTo,
        timeoutMs: this.options.referTimeoutMs ?? 30_000,
      });
    } catch (error) {
      if (this.phase !== "joining") return true; // a leg ended meanwhile: that path has settled
      this.log.warn(
        { err: (error as Error).message },
        "warm transfer: the PBX did not take REFER with Replaces; joining through the bridge instead",
      );
      return false;
    }
    this.phase = "over";
    this.options.router.detachAll();
    this.settle({ ok: true, joinedBy: "replaces" });
    // The PBX replaces our consultation dialog and normally ends it; if it does not, we do.
    const grace = this.options.clock.schedule(this.options.replacedLegGraceMs ?? 10_000, () => {
      if (!consult.ended) void consult.hangup("transferred");
    });
    consult.on("ended", () => grace.cancel());
    return true;
  }

  private readonly onCallerEnded = (info: CallEnded): void => {
    const consult = this.consult;
    // The REFER with Replaces succeeded: the leg leaves on its own, and joinByReplaces settles.
    if (this.phase === "joining" && info.cause === "transferred") return;
    switch (this.phase) {
      case "dialing":
        this.phase = "over";
        consult?.abandon("the caller hung up");
        this.finishFailed({ reason: "the caller hung up" });
        return;
      case "consulting":
      case "joining":
        this.phase = "over";
        void consult?.hangup("caller-hangup");
        this.finishFailed({ reason: "the caller hung up" });
        return;
      case "joined":
        this.phase = "over";
        this.relay?.stop();
        void consult?.hangup("caller-hangup");
        return;
      case "over":
        return;
    }
  };

  private readonly onConsultEnded = (info: CallEnded): void => {
    switch (this.phase) {
      case "dialing":
        return; // dial() settles it
      case "consulting":
      case "joining":
        this.phase = "over";
        this.options.router.routeHome();
        this.finishFailed({ reason: "the person hung up before the transfer completed" });
        return;
      case "joined":
        this.phase = "over";
        this.relay?.stop();
        this.log.info({ cause: info.cause }, "warm transfer: the human hung up; ending the caller's leg");
        void this.options.callerLeg.hangup("transferred");
        return;
      case "over":
        return;
    }
  };

  /** Ends the consultation leg and hands the caller back to the agent. */
  private abortConsultation(reason: string): void {
    this.phase = "over";
    this.joinTimer?.cancel();
    this.options.router.routeHome();
    void this.consult?.hangup("agent-hangup");
    this.finishFailed({ reason });
  }

  private fail(outcome: { reason: string; sipStatus?: number }): void {
    this.phase = "over";
    this.finishFailed(outcome);
  }

  private finishFailed(outcome: { reason: string; sipStatus?: number }): void {
    this.joinTimer?.cancel();
    this.options.callerLeg.off("ended", this.onCallerEnded);
    this.log.info({ reason: outcome.reason, sipStatus: outcome.sipStatus }, "warm transfer failed");
    this.settle({ ok: false, ...outcome });
  }
}

/** The words the agent will relay to the caller. */
function describeDialFailure(reason: string, detail: string | undefined): string {
  switch (reason) {
    case "busy":
      return "the person is busy";
    case "no-answer":
      return "the person did not answer";
    case "rejected":
      return "the call to the person was refused";
    case "destination-not-allowed":
      return "that number is not allowed for transfers";
    default:
      return detail
        ? `the call to the person failed (${reason}: ${detail})`
        : `the call to the person failed (${reason})`;
  }
}
