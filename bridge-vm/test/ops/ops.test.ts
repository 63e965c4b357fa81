import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  BridgeMetrics,
  cloudReachabilityProbe,
  type HealthSnapshot,
  type OpsServer,
  startOpsServer,
} from "../../src/ops/index";

const mediaStats = {
  packetsReceived: 1500,
  packetsSent: 1490,
  packetsLost: 3,
  lossPercent: 0.2,
  jitterMs: 4,
  late: 1,
  reordered: 2,
  duplicates: 0,
  concealed: 3,
  droppedNotRtp: 0,
  droppedWrongPayloadType: 0,
  droppedWrongSource: 0,
  playoutQueuedMs: 120,
  playoutUnderruns: 2,
};

describe("ops endpoint", () => {
  let server: OpsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it("serves Prometheus metrics with call outcomes, RTP figures and turn latency", async () => {
    const metrics = new BridgeMetrics({ collectProcessMetrics: true });
    metrics.setRegistrationState("registered");
    metrics.callStarted("inbound");
    metrics.callStarted("inbound");
    metrics.callEnded({ direction: "inbound", outcome: "caller-hangup", sipStatus: 200, media: mediaStats });
    metrics.turnTiming({ sttMs: 120, totalMs: 480 });
    metrics.cloudReconnected();
    metrics.setEdgeStatsSource(() => ({ "source-not-allowed": 7, "rate-limited": 0 }));
    metrics.callNotAnswered({ direction: "inbound", outcome: "cancelled", sipStatus: 487 });
    metrics.setLiveStatsSource(() => [{ media: mediaStats }]);
    server = await startOpsServer({
      host: "127.0.0.1",
      port: 0,
      metrics,
      health: () => ({ registered: true, cloudReachable: true, draining: false, activeCalls: 1 }),
    });
    const response = await fetch(`${server.url}/metrics`);
    const text = await response.text();
    expect(response.headers.get("content-type")).toMatch(/text\/plain/);
    expect(text).toContain('patchbay_registration_state{state="registered"} 1');
    expect(text).toContain('patchbay_registration_state{state="failed"} 0');
    expect(text).toContain('patchbay_calls_active{direction="inbound"} 1');
    expect(text).toContain(
      'patchbay_calls_total{direction="inbound",outcome="caller-hangup",sip_status="200"} 1',
    );
    expect(text).toContain('patchbay_rtp_packets_total{direction="in"} 1500');
    expect(text).toContain("patchbay_rtp_packets_lost_total 3");
    expect(text).toContain('patchbay_turn_latency_ms_count{stage="total"} 1');
    expect(text).toContain("patchbay_cloud_reconnects_total 1");
    expect(text).toContain('patchbay_sip_rejected_total{reason="source-not-allowed"} 7');
    expect(text).not.toContain('reason="rate-limited"');
    expect(text).toContain(
      'patchbay_calls_total{direction="inbound",outcome="cancelled",sip_status="487"} 1',
    );
    expect(text).toContain('patchbay_calls_active{direction="inbound"} 1'); // a call never answered is never active
    expect(text).toContain("patchbay_live_playout_queued_ms 120");
    expect(text).toContain("patchbay_process_cpu_seconds_total");
    expect(text).toContain("patchbay_process_resident_memory_bytes");
  });

  it("reports healthy only when registered, not draining and the Worker answers", async () => {
    let snapshot: HealthSnapshot = {
      registered: true,
      cloudReachable: true,
      draining: false,
      activeCalls: 0,
    };
    server = await startOpsServer({
      host: "127.0.0.1",
      port: 0,
      metrics: new BridgeMetrics({ collectProcessMetrics: false }),
      health: () => snapshot,
    });
    const status = async () => (await fetch(`${server!.url}/healthz`)).status;
    expect(await status()).toBe(200);
    snapshot = { ...snapshot, cloudReachable: undefined }; // no cloud configured: not a failure
    expect(await status()).toBe(200);
    for (const broken of [{ registered: false }, { draining: true }, { cloudReachable: false }]) {
      snapshot = { registered: true, cloudReachable: true, draining: false, activeCalls: 0, ...broken };
      expect(await status()).toBe(503);
    }
    const body = await (await fetch(`${server.url}/healthz`)).json();
    expect(body).toMatchObject({ status: "unhealthy", cloudReachable: false });
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    expect((await fetch(`${server.url}/metrics`, { method: "POST" })).status).toBe(405);
  });

  it("probes the Worker's /healthz and caches the answer", async () => {
    let hits = 0;
    const worker = createServer((request, response) => {
      hits++;
      response.writeHead(request.url === "/healthz" ? 200 : 404).end();
    });
    await new Promise<void>((resolve) => worker.listen(0, "127.0.0.1", resolve));
    const port = (worker.address() as AddressInfo).port;
    const probe = cloudReachabilityProbe(`ws://127.0.0.1:${port}`, { cacheMs: 60_000 });
    expect(await probe()).toBe(true);
    expect(await probe()).toBe(true);
    expect(hits).toBe(1);
    await new Promise<void>((resolve) => worker.close(() => resolve()));
    expect(await cloudReachabilityProbe(`http://127.0.0.1:${port}`, { timeoutMs: 500 })()).toBe(false);
    expect(await cloudReachabilityProbe(undefined)()).toBeUndefined();
  });
});
