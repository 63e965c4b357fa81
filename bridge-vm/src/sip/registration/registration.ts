/**
 * The registration client: REGISTER to the registrar with digest auth, refresh at about half the
 * granted expiry, back off exponentially on failure, un-REGISTER on stop.
 *
 * Rules that come from real-world breakage (sip-interop.md §1.2 rows 6–7):
 * - We keep requesting the configured expiry; a registrar that answers `expires-1` (Asterisk) must not
 *   shrink our requests until it rejects them.
 * - stale=true is retried at once and is not a failure; a second non-stale challenge right after we
 *   answered a fresh nonce means wrong credentials: ONE clear error line, then backoff (fail2ban!).
 * - 423 Interval Too Brief: adopt Min-Expires and retry at once.
 */
import type { Logger } from "../../logging";
import { DigestClient } from "../auth";
import { createHeaders, generateCallId, generateTag, parseCSeq } from "../message";
import type { SipRequest, SipResponse } from "../message/types";
import type { ClientFailure } from "../transaction/client";
import type { Clock, Timer } from "../transaction/clock";
import type { TransactionLayer } from "../transaction/layer";
import type { Endpoint } from "../transport/types";
import { topVia } from "../transport/via";
import { backoffDelayMs, grantedExpires, minExpiresOf, refreshDelayMs, retryAfterOf } from "./expiry";

export interface BackoffPolicy {
  /** First retry after a timeout / transport error / 5xx. */
  errorBaseMs: number;
  errorMaxMs: number;
  /** First retry after wrong credentials (403, or a repeated challenge): slow, to stay out of fail2ban. */
  authBaseMs: number;
  authMaxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = {
  errorBaseMs: 2_000,
  errorMaxMs: 300_000,
  authBaseMs: 30_000,
  authMaxMs: 1_800_000,
};

export interface RegistrationOptions {
  layer: TransactionLayer;
  clock: Clock;
  logger: Logger;
  /** Where REGISTERs physically go (the registrar / outbound proxy), already resolved. */
  registrar: Endpoint;
  /** Domain of our address-of-record (the Request-URI is sip:<domain>). */
  domain: string;
  username: string;
  authUsername: string;
  password: string;
  /** The Contact URI's user part: the unguessable token. */
  contactUser: string;
  /** Our current Contact URI (changes when the public address is learned). */
  contactUri(): string;
  requestedExpiresS: number;
  backoff?: BackoffPolicy;
  /**
   * The registrar saw us at a different address than we advertise (Via received/rport). Return true if
   * the Contact changed: we then re-register at once so the registrar stores the reachable address.
   */
  onAddressLearned?(address: string, port: number): boolean;
  random?: () => number;
}

export type RegistrationState = "idle" | "registering" | "registered" | "waiting-retry" | "stopped";

export interface RegistrationEvents {
  registered: (info: { expiresS: number; contact: string }) => void;
  failed: (info: { reason: string; retryInMs: number }) => void;
}

type Outcome = { response: SipResponse } | { failure: ClientFailure; error?: Error };

export class Registration {
  state: RegistrationState = "idle";
  /** Consecutive failed cycles, for backoff; reset by a 2xx. */
  failures = 0;
  grantedS: number | undefined;
  private requestedS: number;
  private readonly callId = generateCallId();
  private readonly fromTag = generateTag();
  private cseq = 0;
  private readonly digest: DigestClient;
  private timer: Timer | undefined;
  private running: Promise<void> | undefined;
  private readonly listeners: { [E in keyof RegistrationEvents]: Set<RegistrationEvents[E]> } = {
    registered: new Set(),
    failed: new Set(),
  };
  private readonly backoff: BackoffPolicy;
  private lastLoggedContact: string | undefined;

  constructor(private readonly options: RegistrationOptions) {
    this.requestedS = options.requestedExpiresS;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.digest = new DigestClient({ username: options.authUsername, password: options.password });
  }

  on<E extends keyof RegistrationEvents>(event: E, listener: RegistrationEvents[E]): void {
    (this.listeners[event] as Set<RegistrationEvents[E]>).add(listener);
  }

  private emit<E extends keyof RegistrationEvents>(
    event: E,
    ...args: Parameters<RegistrationEvents[E]>
  ): void {
    for (const listener of this.listeners[event] as Set<(...a: Parameters<RegistrationEvents[E]>) => void>) {
      try {
        listener(...args);
      } catch (error) {
        this.options.logger.error({ err: error }, `registration ${event} listener threw`);
      }
    }
  }

  /** Read through a method: `stop()` may change the state while a cycle awaits a response. */
  private isStopped(): boolean {
    return this.state === "stopped";
  }

  get aor(): string {
    return `${this.options.username}@${this.options.domain}`;
  }

  start(): void {
    if (this.state !== "idle") return;
    this.registerNow();
  }

  /** Register (or refresh) right away, e.g. after the transport recovered or our address changed. */
  registerNow(): void {
    if (this.state === "stopped") return;
    this.timer?.cancel();
    if (this.running) return;
    this.running = this.cycle().finally(() => {
      this.running = undefined;
    });
  }

  private async cycle(): Promise<void> {
    this.state = "registering";
    let request = this.build(this.requestedS);
    let answeredFreshChallenge = false;
    let adjustedForMinExpires = false;
    for (let round = 0; round < 6; round++) {
      const outcome = await this.transact(request);
      if (this.isStopped()) return;
      if ("failure" in outcome) {
        this.fail(
          `registration failed: ${outcome.failure === "timeout" ? "no response from" : "cannot reach"} registrar ` +
            `${this.options.registrar.address}:${this.options.registrar.port}` +
            (outcome.error ? ` (${outcome.error.message})` : ""),
          "error",
        );
        return;
      }
      const response = outcome.response;
      const status = response.status;
      if (status >= 200 && status < 300) {
        this.succeeded(response);
        return;
      }
      if (status === 401 || status === 407) {
        const decision = this.digest.respondToChallenge(response, request);
        if (decision.action === "fail") {
          if (decision.reason === "no-supported-challenge") {
            this.fail(
              `registration failed: registrar offers no digest challenge we support (${status})`,
              "auth",
            );
          } else this.failCredentials(status);
          return;
        }
        if (answeredFreshChallenge && !decision.stale) {
          this.failCredentials(status);
          return;
        }
        if (decision.stale) this.options.logger.debug("registration nonce stale; retrying at once");
        answeredFreshChallenge = true;
        request = this.build(this.requestedS, [decision.headerName, decision.headerValue]);
        continue;
      }
      if (status === 423 && !adjustedForMinExpires) {
        const minimum = minExpiresOf(response);
        if (minimum !== undefined && minimum > this.requestedS) {
          this.options.logger.info(
            { requested: this.requestedS, minExpires: minimum },
            "registrar wants a longer expiry (423)",
          );
          this.requestedS = minimum;
          adjustedForMinExpires = true;
          request = this.build(this.requestedS, this.preemptiveAuth());
          continue;
        }
      }
      if (status === 403 || status === 404) {
        this.failCredentials(status);
        return;
      }
      const retryAfter = retryAfterOf(response);
      this.fail(
        `registration failed: ${status} ${response.reason}`,
        "error",
        retryAfter !== undefined ? retryAfter * 1000 : undefined,
      );
      return;
    }
    this.fail("registration failed: too many rounds without a final answer", "error");
  }

  private succeeded(response: SipResponse): void {
    this.digest.succeeded();
    this.failures = 0;
    const granted = grantedExpires(response, this.options.contactUser, this.requestedS);
    this.grantedS = granted;
    if (this.learnAddress(response)) {
      // Our Contact changed: store the reachable one now rather than at the next refresh.
      this.state = "registering";
      this.timer = this.options.clock.schedule(0, () => this.registerNow());
      return;
    }
    this.state = "registered";
    const contact = this.options.contactUri();
    const fields = { aor: this.aor, expiresS: granted, contact };
    if (this.lastLoggedContact !== contact) this.options.logger.info(fields, "registered");
    else this.options.logger.debug(fields, "registration refreshed");
    this.lastLoggedContact = contact;
    this.timer = this.options.clock.schedule(refreshDelayMs(granted), () => this.registerNow());
    this.emit("registered", { expiresS: granted, contact });
  }

  private learnAddress(response: SipResponse): boolean {
    const via = topVia(response);
    const received = via?.params.get("received");
    const rport = Number(via?.params.get("rport"));
    if (!received || !this.options.onAddressLearned) return false;
    const port = Number.isInteger(rport) && rport > 0 ? rport : (via?.port ?? 5060);
    return this.options.onAddressLearned(received, port);
  }

  private failCredentials(status: number): void {
    this.fail(
      `registration rejected: wrong credentials for ${this.aor} (${status}${status === 403 ? "" : " after fresh nonce"})`,
      "auth",
    );
  }

  private fail(reason: string, kind: "error" | "auth", retryInMs?: number): void {
    this.failures++;
    this.state = "waiting-retry";
    this.lastLoggedContact = undefined;
    const { errorBaseMs, errorMaxMs, authBaseMs, authMaxMs } = this.backoff;
    const delay =
      retryInMs ??
      (kind === "auth"
        ? backoffDelayMs(this.failures, authBaseMs, authMaxMs, this.options.random)
        : backoffDelayMs(this.failures, errorBaseMs, errorMaxMs, this.options.random));
    // One line per failed cycle, saying what happens next.
    this.options.logger.error(
      { aor: this.aor, attempt: this.failures, retryInMs: delay },
      `${reason}; retrying in ${Math.round(delay / 1000)}s`,
    );
    this.timer = this.options.clock.schedule(delay, () => this.registerNow());
    this.emit("failed", { reason, retryInMs: delay });
  }

  private preemptiveAuth(): [string, string] | undefined {
    const uri = this.requestUri();
    const auth = this.digest.authorize("REGISTER", uri);
    return auth ? [auth.headerName, auth.headerValue] : undefined;
  }

  private requestUri(): string {
    return `sip:${this.options.domain}`;
  }

  /** A REGISTER: same Call-ID for every registration of this instance, CSeq always increasing. */
  build(expiresS: number, auth: [string, string] | undefined = this.preemptiveAuth()): SipRequest {
    const headers = createHeaders();
    const aor = `sip:${this.options.username}@${this.options.domain}`;
    headers.set("Max-Forwards", "70");
    headers.set("From", `<${aor}>;tag=${this.fromTag}`);
    headers.set("To", `<${aor}>`);
    headers.set("Call-ID", this.callId);
    this.cseq += 1;
    headers.set("CSeq", `${this.cseq} REGISTER`);
    headers.set("Contact", `<${this.options.contactUri()}>`);
    headers.set("Expires", String(expiresS));
    headers.set("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER, NOTIFY");
    if (auth) headers.set(auth[0], auth[1]);
    return { kind: "request", method: "REGISTER", uri: this.requestUri(), headers, body: new Uint8Array() };
  }

  private transact(request: SipRequest): Promise<Outcome> {
    return new Promise((resolve) => {
      this.options.layer.sendRequest(request, this.options.registrar, {
        onResponse: (response) => {
          if (response.status >= 200) resolve({ response });
        },
        onFailure: (failure, error) => resolve(error ? { failure, error } : { failure }),
      });
    });
  }

  /**
   * Stop refreshing and un-REGISTER (Expires: 0) if we were registered. Resolves within `timeoutMs`
   * whatever the registrar does. Idempotent.
   */
  async stop(timeoutMs = 3_000): Promise<void> {
    if (this.state === "stopped") return;
    const wasRegistered = this.state === "registered" || this.grantedS !== undefined;
    this.state = "stopped";
    this.timer?.cancel();
    if (!wasRegistered) return;
    const unregister = async () => {
      let request = this.build(0);
      for (let round = 0; round < 3; round++) {
        const outcome = await this.transact(request);
        if ("failure" in outcome) return;
        const { status } = outcome.response;
        if (status !== 401 && status !== 407) {
          this.options.logger.info({ aor: this.aor, status }, "unregistered");
          return;
        }
        const decision = this.digest.respondToChallenge(outcome.response, request);
        if (decision.action === "fail") return;
        request = this.build(0, [decision.headerName, decision.headerValue]);
      }
    };
    let timer: Timer | undefined;
    await Promise.race([
      unregister(),
      new Promise<void>((resolve) => {
        timer = this.options.clock.schedule(timeoutMs, resolve);
      }),
    ]);
    timer?.cancel();
  }
}

/** CSeq number of a request (tests and logs). */
export function cseqOf(request: SipRequest): number | undefined {
  return parseCSeq(request.headers.get("CSeq") ?? "")?.seq;
}
