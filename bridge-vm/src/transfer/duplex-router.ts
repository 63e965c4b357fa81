/**
 * The cloud link's view of a call's audio during a warm transfer: one CallAudioDuplex that can be
 * pointed at another call leg. The link is built on the router once, at call setup, and never learns
 * that the leg behind it changed: while the agent consults the human, agent audio plays to the human
 * and the human's frames reach the agent; after a failed consultation the router points home again.
 *
 * The router's codec is the home leg's, fixed for the link's life (the Worker was told it in hello):
 * frames from a leg in the other G.711 law are converted on the way through, both ways.
 *
 * Internal marks (`markThen`) let the transfer act when queued audio has actually been played (the
 * summary, before the legs are joined); they are never reported to the link.
 */
import { EventEmitter } from "node:events";
import { type G711Codec, transcodeG711 } from "@patchbay/shared/audio";
import type { CallAudioDuplex, CallAudioDuplexEvents, DtmfEvent, MediaStats } from "../media/types";

const INTERNAL_MARK_PREFIX = "patchbay-internal:";

export class DuplexRouter implements CallAudioDuplex {
  readonly codec: G711Codec;
  private target: CallAudioDuplex;
  private readonly events = new EventEmitter();
  private readonly internalMarks = new Map<string, () => void>();
  private nextInternalMark = 0;
  /** Reused for frames and agent audio that cross G.711 laws (hot path: no allocation per frame). */
  private readonly inboundBuffer = new Uint8Array(160);
  private readonly outboundBuffer = new Uint8Array(1600);

  constructor(private readonly home: CallAudioDuplex) {
    this.codec = home.codec;
    this.target = home;
    this.attach(home);
  }

  /** The leg the agent currently talks to and hears. */
  get current(): CallAudioDuplex {
    return this.target;
  }

  /** Point the agent at another leg (or `home`). Pending internal marks on the old leg are dropped. */
  route(leg: CallAudioDuplex): void {
    if (leg === this.target) return;
    this.detach(this.target);
    this.internalMarks.clear();
    this.target = leg;
    this.attach(leg);
  }

  /** Back to the leg the router was built on. */
  routeHome(): void {
    this.route(this.home);
  }

  /** Stop forwarding in both directions (the agent has left the call). */
  detachAll(): void {
    this.detach(this.target);
    this.internalMarks.clear();
  }

  /** Run `then` once everything queued so far on the current leg has been played. */
  markThen(then: () => void): void {
    const name = `${INTERNAL_MARK_PREFIX}${this.nextInternalMark++}`;
    this.internalMarks.set(name, then);
    this.target.mark(name);
  }

  // ---- CallAudioDuplex ----------------------------------------------------------------------

  on<E extends keyof CallAudioDuplexEvents>(event: E, listener: CallAudioDuplexEvents[E]): void {
    this.events.on(event, listener);
  }

  off<E extends keyof CallAudioDuplexEvents>(event: E, listener: CallAudioDuplexEvents[E]): void {
    this.events.off(event, listener);
  }

  enqueueAgentAudio(audio: Uint8Array): void {
    const to = this.target.codec;
    if (to === this.codec) {
      this.target.enqueueAgentAudio(audio);
      return;
    }
    for (let offset = 0; offset < audio.length; offset += this.outboundBuffer.length) {
      const chunk = audio.subarray(offset, offset + this.outboundBuffer.length);
      this.target.enqueueAgentAudio(transcodeG711(this.codec, to, chunk, this.outboundBuffer));
    }
  }

  clearAgentAudio(): { discardedMs: number } {
    return this.target.clearAgentAudio();
  }

  mark(name: string): void {
    this.target.mark(name);
  }

  sendDtmf(digits: string): Promise<void> {
    return this.target.sendDtmf(digits);
  }

  /** The home leg's figures: the call the Worker knows about. */
  stats(): MediaStats {
    return this.home.stats();
  }

  // ---- forwarding from the current leg --------------------------------------------------------

  private readonly onCallerFrame = (frame: Uint8Array, seq: number, timeMs: number): void => {
    const from = this.target.codec;
    const out =
      from === this.codec
        ? frame
        : transcodeG711(
            from,
            this.codec,
            frame,
            frame.length <= this.inboundBuffer.length ? this.inboundBuffer : undefined,
          );
    this.events.emit("callerFrame", out, seq, timeMs);
  };

  private readonly onDtmf = (event: DtmfEvent): void => {
    this.events.emit("dtmf", event);
  };

  private readonly onMarkPlayed = (name: string, atMs: number): void => {
    const internal = this.internalMarks.get(name);
    if (internal) {
      this.internalMarks.delete(name);
      internal();
      return;
    }
    if (name.startsWith(INTERNAL_MARK_PREFIX)) return; // dropped by a route() while queued
    this.events.emit("markPlayed", name, atMs);
  };

  private attach(leg: CallAudioDuplex): void {
    leg.on("callerFrame", this.onCallerFrame);
    leg.on("dtmf", this.onDtmf);
    leg.on("markPlayed", this.onMarkPlayed);
  }

  private detach(leg: CallAudioDuplex): void {
    leg.off("callerFrame", this.onCallerFrame);
    leg.off("dtmf", this.onDtmf);
    leg.off("markPlayed", this.onMarkPlayed);
  }
}
