/**
 * Free loopback ports for test peers.
 *
 * Several test files (and several agents' test runs) may probe ports at the same moment, so a port that
 * is merely "free now" can be taken a millisecond later. Two measures keep collisions rare:
 *  1. Bind-probe: ask the kernel for an ephemeral port (bind to 0), or bind the exact candidate, and release
 *     it just before handing it out, so the port was verifiably free.
 *  2. A per-process reservation set: a port handed out once is never handed out again by this process,
 *     even after the peer using it exits (TIME_WAIT, a slow child still binding).
 * Peers that can bind port 0 themselves (our own Node sockets) should do that instead of calling here.
 */
import { createSocket } from "node:dgram";
import { createServer } from "node:net";

export const LOOPBACK = "127.0.0.1";

const handedOut = new Set<number>();

/** Lowest and highest port we hand out for explicit pairs: above the ephemeral range Linux uses (32768+). */
const PAIR_RANGE_LOW = 20_000;
const PAIR_RANGE_HIGH = 32_000;

function probeUdp(port: number, host: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    socket.once("error", () => {
      socket.close();
      resolve(undefined);
    });
    socket.bind(port, host, () => {
      const bound = socket.address().port;
      socket.close(() => resolve(bound));
    });
  });
}

function probeTcp(port: number, host: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(undefined));
    server.listen({ port, host, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === "object" && address !== null ? address.port : undefined;
      server.close(() => resolve(bound));
    });
  });
}

/** Binds both UDP and TCP on `port` so a peer listening on either transport finds it free. */
async function probeBoth(port: number, host: string): Promise<boolean> {
  const udp = await probeUdp(port, host);
  if (udp === undefined) return false;
  const tcp = await probeTcp(port, host);
  return tcp !== undefined;
}

async function ephemeral(probe: (port: number, host: string) => Promise<number | undefined>, host: string) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await probe(0, host);
    if (port !== undefined && !handedOut.has(port) && (await probeBoth(port, host))) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`ports: no free port found on ${host} after 50 attempts`);
}

/** A UDP port on `host` (default 127.0.0.1) that was free a moment ago and is also free for TCP. */
export function freeUdpPort(host: string = LOOPBACK): Promise<number> {
  return ephemeral(probeUdp, host);
}

/** A TCP port on `host` (default 127.0.0.1) that was free a moment ago and is also free for UDP. */
export function freeTcpPort(host: string = LOOPBACK): Promise<number> {
  return ephemeral(probeTcp, host);
}

/**
 * An even UDP port and the next odd one, both free (RTP on `rtp`, RTCP on `rtcp`).
 * Chosen at random in 20000–32000, below Linux's ephemeral range, so kernel-assigned ports rarely collide.
 */
export async function freePortPair(host: string = LOOPBACK): Promise<{ rtp: number; rtcp: number }> {
  const rtp = await freePortBlock(2, host);
  return { rtp, rtcp: rtp + 1 };
}

/**
 * The first of `count` consecutive free UDP ports, starting on an even port. SIPp needs 4: it binds its
 * media port (-mp) for audio and -mp+2 for video, each with an RTCP neighbour.
 */
export async function freePortBlock(count: number, host: string = LOOPBACK): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const span = (PAIR_RANGE_HIGH - PAIR_RANGE_LOW - count) / 2;
    const base = PAIR_RANGE_LOW + 2 * Math.floor(Math.random() * span);
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if (ports.some((port) => handedOut.has(port))) continue;
    let free = true;
    for (const port of ports) {
      if ((await probeUdp(port, host)) === undefined) {
        free = false;
        break;
      }
    }
    if (!free) continue;
    for (const port of ports) handedOut.add(port);
    return base;
  }
  throw new Error(`ports: no ${count} consecutive free UDP ports found on ${host} after 200 attempts`);
}
