/**
 * The waiting half of a `transfer_call`, shared by both conversation modes (PROTOCOL.md §4 `transfer`,
 * §9 warm transfer). Blind: the bridge REFERs and answers `transfer_result`, giving up itself after
 * 30 s; we wait 40 s so its answer always arrives before our own timeout. Warm: the bridge dials the
 * human and reports `transfer_progress`; every report restarts a 60 s wait (its ring timeout always
 * ends the dialling first), after which we give up, send `transfer_cancel` and tell the model.
 */
import type { Clock, TimerHandle } from "./clock";

export const BLIND_TRANSFER_TIMEOUT_MS = 40_000;
export const WARM_TRANSFER_IDLE_TIMEOUT_MS = 60_000;
/** The summary is spoken to a person waiting on the line: a few sentences, not a transcript. */
export const MAX_SUMMARY_CHARS = 600;

export type TransferMode = "blind" | "warm";
export type TransferState = "dialing" | "ringing" | "consulting";

export interface TransferOutcome {
  ok: boolean;
  reason?: string | undefined;
  sipStatus?: number | undefined;
}

export interface TransferTimeouts {
  blindMs?: number | undefined;
  warmIdleMs?: number | undefined;
}

/** One transfer in flight: resolves with the bridge's result, or a failure when the wait runs out. */
export class PendingTransfer {
  readonly promise: Promise<TransferOutcome>;
  /** Warm: the human answered (transfer_progress consulting) and the summary is being spoken. */
  consulting = false;
  #resolve!: (outcome: TransferOutcome) => void;
  #timer?: TimerHandle;
  #done = false;

  constructor(
    readonly target: string,
    readonly mode: TransferMode,
    readonly summary: string | undefined,
    private readonly clock: Clock,
    private readonly timeouts: TransferTimeouts,
    /** Called once when we give up waiting (warm: send transfer_cancel). */
    private readonly onGiveUp: () => void,
  ) {
    this.promise = new Promise((resolve) => {
      this.#resolve = resolve;
    });
    this.#arm();
  }

  get done(): boolean {
    return this.#done;
  }

  /** A transfer_progress: restarts a warm wait; true the first time it says the human answered. */
  progress(state: TransferState): boolean {
    if (this.#done || this.mode !== "warm") return false;
    this.#arm();
    if (state !== "consulting" || this.consulting) return false;
    this.consulting = true;
    return true;
  }

  settle(outcome: TransferOutcome): void {
    if (this.#done) return;
    this.#done = true;
    this.#timer?.cancel();
    this.#resolve(outcome);
  }

  #arm(): void {
    this.#timer?.cancel();
    const warm = this.mode === "warm";
    const ms = warm
      ? (this.timeouts.warmIdleMs ?? WARM_TRANSFER_IDLE_TIMEOUT_MS)
      : (this.timeouts.blindMs ?? BLIND_TRANSFER_TIMEOUT_MS);
    this.#timer = this.clock.setTimer(ms, () => {
      if (this.#done) return;
      this.onGiveUp();
      this.settle({
        ok: false,
        reason: warm
          ? `no news from the phone system for ${Math.round(ms / 1000)} s, so the transfer was cancelled`
          : "no answer from the phone system",
      });
    });
  }
}

/** Why a transfer target is refused (undefined = allowed). */
export function refuseTransferTarget(target: string, allowed: readonly string[]): string | undefined {
  if (!target || target.length > 512) return "error: a transfer target is required";
  if (allowed.length > 0 && !allowed.includes(target)) {
    return `error: ${target} is not an allowed transfer target (allowed: ${allowed.join(", ")})`;
  }
  return undefined;
}

/**
 * What the agent tells the human: the model's summary (whitespace collapsed, cut at a word near
 * MAX_SUMMARY_CHARS), or, when it gave none, a short default naming what the caller last said.
 */
export function transferSummary(modelSummary: unknown, lastCallerWords: string | undefined): string {
  const given = typeof modelSummary === "string" ? oneLine(modelSummary) : "";
  if (given) return cut(given, MAX_SUMMARY_CHARS);
  const said = lastCallerWords ? oneLine(lastCallerWords) : "";
  if (!said) return "Hello, I have a caller on the line for you. I'm connecting you now.";
  return `Hello, I have a caller on the line for you. They said: "${cut(said, 200)}". I'm connecting you now.`;
}

/** The tool result for a failed transfer: why, in words the model can pass on, then what to do. */
export function transferFailure(target: string, outcome: TransferOutcome): string {
  const why = outcome.reason ?? failureFromStatus(outcome.sipStatus) ?? "unknown reason";
  const status = outcome.sipStatus !== undefined ? ` (SIP ${outcome.sipStatus})` : "";
  return `error: the transfer to ${target} failed${status}: ${why}. The caller is still with you: tell them and carry on.`;
}

function failureFromStatus(status: number | undefined): string | undefined {
  if (status === undefined) return undefined;
  if (status === 486 || status === 600) return "the line was busy";
  if (status === 408 || status === 480 || status === 487) return "the person did not answer";
  if (status === 403 || status === 404 || status === 603) return "the destination refused the call";
  return undefined;
}

function oneLine(text: string): string {
  // Control characters would be read out (or break the TTS request); the summary is one utterance.
  return text.replace(/[\p{Cc}\s]+/gu, " ").trim();
}

function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  const head = text.slice(0, max);
  const space = head.lastIndexOf(" ");
  return `${space > max / 2 ? head.slice(0, space) : head}…`;
}
