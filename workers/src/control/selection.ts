/**
 * Which bridge gets the next outbound call: pure, no I/O, clock passed in. A bridge is in rotation
 * only while it is registered, not draining, and heard from (a message or an auto-answered "ping")
 * within the heartbeat timeout; among those, the one with the most free capacity wins, where free
 * capacity also subtracts originates sent to it and not yet acknowledged (so a burst of requests
 * between two capacity reports does not all land on the same bridge).
 */
import type { BridgeCapacity, BridgeHealth } from "@patchbay/shared/protocol";

export interface BridgeView {
  bridgeId: string;
  registered: boolean;
  health: BridgeHealth;
  capacity: BridgeCapacity;
  /** Originates sent and not yet acknowledged. */
  inflight: number;
  /** Last time (ms) we heard anything from the bridge, pings included. */
  lastSeenAt: number;
  lastDispatchAt: number;
}

export function isLive(bridge: BridgeView, nowMs: number, heartbeatTimeoutMs: number): boolean {
  return bridge.registered && nowMs - bridge.lastSeenAt <= heartbeatTimeoutMs;
}

export function freeCapacity(bridge: BridgeView): number {
  return Math.max(0, bridge.capacity.maxCalls - bridge.capacity.activeCalls - bridge.inflight);
}

export function chooseBridge(
  bridges: readonly BridgeView[],
  nowMs: number,
  heartbeatTimeoutMs: number,
): BridgeView | undefined {
  let best: BridgeView | undefined;
  for (const bridge of bridges) {
    if (!isLive(bridge, nowMs, heartbeatTimeoutMs) || bridge.health === "draining") continue;
    if (freeCapacity(bridge) <= 0) continue;
    if (!best || better(bridge, best)) best = bridge;
  }
  return best;
}

function better(a: BridgeView, b: BridgeView): boolean {
  // A healthy bridge beats a degraded one whatever their capacity; then free capacity; then the one
  // that waited longest since its last call, so equal bridges take turns.
  if (a.health !== b.health) return a.health === "ok";
  const free = freeCapacity(a) - freeCapacity(b);
  if (free !== 0) return free > 0;
  return a.lastDispatchAt < b.lastDispatchAt;
}
