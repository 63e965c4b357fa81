/**
 * The bridge's Prometheus metrics, in one registry with names and labels fixed here. Label values
 * are small closed sets (outcome, SIP status class, direction): never a call id, so cardinality
 * stays flat however many calls pass through. Live per-call figures (RTP, playout) are pulled from
 * the running calls at scrape time through `setLiveStatsSource`, so the media hot path never touches
 * a metric object.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { MediaStats } from "../media/types";

export type RegistrationState = "unregistered" | "registering" | "registered" | "failed";

const REGISTRATION_STATES: readonly RegistrationState[] = [
  "unregistered",
  "registering",
  "registered",
  "failed",
];

/** Cumulative counts of requests refused or dropped before they reach a call, by reason. */
export type EdgeRejections = Partial<
  Record<"source-not-allowed" | "wrong-request-uri" | "rate-limited" | "malformed" | "dropped", number>
>;

export interface LiveCallStats {
  media: MediaStats;
}

export class BridgeMetrics {
  readonly registry = new Registry();

  private readonly registrationState = new Gauge({
    name: "patchbay_registration_state",
    help: "1 for the current SIP registration state, 0 for the others",
    labelNames: ["state"],
    registers: [this.registry],
  });
  private readonly registrationFailures = new Counter({
    name: "patchbay_registration_failures_total",
    help: "Failed REGISTER attempts by reason (stale nonces are not failures)",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  private readonly callsActive = new Gauge({
    name: "patchbay_calls_active",
    help: "Calls currently up, by direction",
    labelNames: ["direction"],
    registers: [this.registry],
  });
  private readonly callsTotal = new Counter({
    name: "patchbay_calls_total",
    help: "Finished calls by direction, outcome (hang-up cause) and final SIP status",
    labelNames: ["direction", "outcome", "sip_status"],
    registers: [this.registry],
  });
  private edgeStats: () => EdgeRejections = () => ({});
  private readonly rtpPackets = new Counter({
    name: "patchbay_rtp_packets_total",
    help: "RTP packets of finished calls, by direction (in = from the PBX, out = to the PBX)",
    labelNames: ["direction"],
    registers: [this.registry],
  });
  private readonly rtpLost = new Counter({
    name: "patchbay_rtp_packets_lost_total",
    help: "Inbound RTP packets never received, finished calls",
    registers: [this.registry],
  });
  private readonly rtpLate = new Counter({
    name: "patchbay_rtp_packets_late_total",
    help: "Inbound RTP packets that arrived after their playout time, finished calls",
    registers: [this.registry],
  });
  private readonly rtpJitter = new Histogram({
    name: "patchbay_rtp_jitter_ms",
    help: "Interarrival jitter (RFC 3550) at the end of each call",
    buckets: [1, 2, 5, 10, 20, 40, 80, 160],
    registers: [this.registry],
  });
  private readonly playoutUnderruns = new Counter({
    name: "patchbay_playout_underruns_total",
    help: "Times the agent playout queue ran dry mid-utterance, finished calls",
    registers: [this.registry],
  });
  private readonly websocketReconnects = new Counter({
    name: "patchbay_cloud_reconnects_total",
    help: "Media socket reconnects to the Worker (each one resumed the call without dropping it)",
    registers: [this.registry],
  });
  private readonly controlReconnects = new Counter({
    name: "patchbay_control_reconnects_total",
    help: "Control channel (outbound calls) registrations after the first: each one is a reconnect to the Worker",
    registers: [this.registry],
  });
  private readonly cloudLinksLost = new Counter({
    name: "patchbay_cloud_links_lost_total",
    help: "Media sockets given up on, by reason",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  private readonly turnLatency = new Histogram({
    name: "patchbay_turn_latency_ms",
    help: "Per-turn latency reported by the Worker, by stage",
    labelNames: ["stage"],
    buckets: [25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2500, 5000],
    registers: [this.registry],
  });

  private liveStats: () => Iterable<LiveCallStats> = () => [];

  constructor(options: { collectProcessMetrics?: boolean } = {}) {
    if (options.collectProcessMetrics ?? true)
      collectDefaultMetrics({ register: this.registry, prefix: "patchbay_" });
    for (const state of REGISTRATION_STATES)
      this.registrationState.set({ state }, state === "unregistered" ? 1 : 0);
    this.callsActive.set({ direction: "inbound" }, 0);
    this.callsActive.set({ direction: "outbound" }, 0);
    const live = this;
    new Counter({
      name: "patchbay_sip_rejected_total",
      help: "SIP requests refused or dropped at the edge, by reason (source-not-allowed, wrong-request-uri, rate-limited, malformed, dropped)",
      labelNames: ["reason"],
      registers: [this.registry],
      collect() {
        // The counts live in the SIP layers (no metric objects on the packet path): copy them at scrape time.
        this.reset();
        for (const [reason, count] of Object.entries(live.edgeStats()))
          if (count) this.inc({ reason }, count);
      },
    });
    new Gauge({
      name: "patchbay_live_rtp_loss_percent",
      help: "Mean inbound loss across calls in progress",
      registers: [this.registry],
      collect() {
        this.set(live.meanOverLiveCalls((stats) => stats.media.lossPercent));
      },
    });
    new Gauge({
      name: "patchbay_live_rtp_jitter_ms",
      help: "Mean interarrival jitter across calls in progress",
      registers: [this.registry],
      collect() {
        this.set(live.meanOverLiveCalls((stats) => stats.media.jitterMs));
      },
    });
    new Gauge({
      name: "patchbay_live_playout_queued_ms",
      help: "Agent audio queued for playout, summed over calls in progress",
      registers: [this.registry],
      collect() {
        let total = 0;
        for (const stats of live.liveStats()) total += stats.media.playoutQueuedMs;
        this.set(total);
      },
    });
  }

  setLiveStatsSource(source: () => Iterable<LiveCallStats>): void {
    this.liveStats = source;
  }

  private meanOverLiveCalls(pick: (stats: LiveCallStats) => number): number {
    let sum = 0;
    let count = 0;
    for (const stats of this.liveStats()) {
      sum += pick(stats);
      count++;
    }
    return count === 0 ? 0 : sum / count;
  }

  setRegistrationState(current: RegistrationState): void {
    for (const state of REGISTRATION_STATES) this.registrationState.set({ state }, state === current ? 1 : 0);
  }

  registrationFailed(reason: string): void {
    this.registrationFailures.inc({ reason });
  }

  setEdgeStatsSource(source: () => EdgeRejections): void {
    this.edgeStats = source;
  }

  /** A call that ended before it was answered (CANCEL, 488, 486 …): an outcome, never an active call. */
  callNotAnswered(details: { direction: "inbound" | "outbound"; outcome: string; sipStatus?: number }): void {
    this.callsTotal.inc({
      direction: details.direction,
      outcome: details.outcome,
      sip_status: details.sipStatus === undefined ? "none" : String(details.sipStatus),
    });
  }

  callStarted(direction: "inbound" | "outbound"): void {
    this.callsActive.inc({ direction });
  }

  callEnded(details: {
    direction: "inbound" | "outbound";
    outcome: string;
    sipStatus?: number;
    media?: MediaStats;
  }) {
    this.callsActive.dec({ direction: details.direction });
    this.callsTotal.inc({
      direction: details.direction,
      outcome: details.outcome,
      sip_status: details.sipStatus === undefined ? "none" : String(details.sipStatus),
    });
    const media = details.media;
    if (media) {
      this.rtpPackets.inc({ direction: "in" }, media.packetsReceived);
      this.rtpPackets.inc({ direction: "out" }, media.packetsSent);
      this.rtpLost.inc(Math.max(0, media.packetsLost));
      this.rtpLate.inc(media.late);
      this.rtpJitter.observe(media.jitterMs);
      this.playoutUnderruns.inc(media.playoutUnderruns);
    }
  }

  cloudReconnected(): void {
    this.websocketReconnects.inc();
  }

  controlReconnected(): void {
    this.controlReconnects.inc();
  }

  cloudLinkLost(reason: string): void {
    this.cloudLinksLost.inc({ reason });
  }

  /** From the Worker's turn_timing messages. */
  turnTiming(timing: {
    endpointingMs?: number;
    sttMs?: number;
    llmFirstTokenMs?: number;
    ttsFirstAudioMs?: number;
    totalMs?: number;
  }): void {
    const stages: Array<[string, number | undefined]> = [
      ["endpointing", timing.endpointingMs],
      ["stt", timing.sttMs],
      ["llm_first_token", timing.llmFirstTokenMs],
      ["tts_first_audio", timing.ttsFirstAudioMs],
      ["total", timing.totalMs],
    ];
    for (const [stage, value] of stages) if (value !== undefined) this.turnLatency.observe({ stage }, value);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
