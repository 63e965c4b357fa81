/**
 * The bridge's local operations endpoint, on its own port (config http.host/http.port, loopback by
 * default): GET /healthz for load balancers and systemd checks, GET /metrics for Prometheus. It
 * serves nothing else and never anything about a specific call, so exposing it to a health-check
 * range leaks nothing useful.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { BridgeMetrics } from "./metrics";

export interface HealthSnapshot {
  registered: boolean;
  /** undefined when no cloud URL is configured. */
  cloudReachable: boolean | undefined;
  draining: boolean;
  activeCalls: number;
}

export interface OpsServerOptions {
  host: string;
  port: number;
  metrics: BridgeMetrics;
  health: () => Promise<HealthSnapshot> | HealthSnapshot;
}

export interface OpsServer {
  readonly url: string;
  close(): Promise<void>;
}

/** Healthy = registered on the PBX, not draining, and the Worker answers (when one is configured). */
export function isHealthy(snapshot: HealthSnapshot): boolean {
  return snapshot.registered && !snapshot.draining && snapshot.cloudReachable !== false;
}

export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const server: Server = createServer(async (request, response) => {
    try {
      if (request.method !== "GET") {
        response.writeHead(405, { Allow: "GET" }).end();
        return;
      }
      const path = (request.url ?? "/").split("?")[0];
      if (path === "/healthz") {
        const snapshot = await options.health();
        const healthy = isHealthy(snapshot);
        response
          .writeHead(healthy ? 200 : 503, { "Content-Type": "application/json", "Cache-Control": "no-store" })
          .end(JSON.stringify({ status: healthy ? "ok" : "unhealthy", ...snapshot }));
      } else if (path === "/metrics") {
        const { contentType, body } = await options.metrics.render();
        response.writeHead(200, { "Content-Type": contentType }).end(body);
      } else {
        response.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n");
      }
    } catch (error) {
      response.writeHead(500, { "Content-Type": "text/plain" }).end(`${(error as Error).message}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Asks the Worker's /healthz whether it is up, caching the answer so a health-check storm does not
 * become a Worker request storm.
 */
export function cloudReachabilityProbe(
  cloudUrl: string | undefined,
  options: { cacheMs?: number; timeoutMs?: number } = {},
): () => Promise<boolean | undefined> {
  if (!cloudUrl) return async () => undefined;
  const healthUrl = new URL(cloudUrl);
  healthUrl.protocol =
    healthUrl.protocol === "wss:" ? "https:" : healthUrl.protocol === "ws:" ? "http:" : healthUrl.protocol;
  healthUrl.pathname = `${healthUrl.pathname.replace(/\/+$/, "")}/healthz`;
  let cached: { at: number; value: boolean } | undefined;
  return async () => {
    const now = performance.now();
    if (cached && now - cached.at < (options.cacheMs ?? 10_000)) return cached.value;
    let value = false;
    try {
      const response = await fetch(healthUrl, { signal: AbortSignal.timeout(options.timeoutMs ?? 2000) });
      value = response.ok;
      await response.body?.cancel();
    } catch {
      value = false;
    }
    cached = { at: now, value };
    return value;
  };
}
