/**
 * One contract every SIP transport must meet, run against UDP and TCP on real loopback sockets:
 * inbound parsing with Via stamping, responses routed back, 400 for a malformed-but-answerable request,
 * silent drop for garbage, survival of throwing listeners. Stream-only behaviour follows.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect, type Socket as TcpSocket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../../src/logging";
import { createResponse } from "../../../src/sip/message";
import type { SipRequest } from "../../../src/sip/message/types";
import { type TcpLimits, TcpTransport } from "../../../src/sip/transport/tcp";
import type { InboundMessage, Transport, TransportProtocol } from "../../../src/sip/transport/types";
import { UdpTransport } from "../../../src/sip/transport/udp";
import { responseDestination } from "../../../src/sip/transport/via";

interface RawPeer {
  port: number;
  send(text: string | Buffer): void;
  /** Resolves with the next chunk received (or undefined after `timeoutMs`). */
  next(timeoutMs?: number): Promise<string | undefined>;
  close(): void;
}

async function rawPeer(protocol: TransportProtocol, serverPort: number): Promise<RawPeer> {
  const queue: string[] = [];
  const waiters: Array<(text: string) => void> = [];
  const push = (text: string) => {
    const waiter = waiters.shift();
    if (waiter) waiter(text);
    else queue.push(text);
  };
  const next = (timeoutMs = 1000) =>
    new Promise<string | undefined>((resolve) => {
      const queued = queue.shift();
      if (queued !== undefined) return resolve(queued);
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(done), 1);
        resolve(undefined);
      }, timeoutMs);
      const done = (text: string) => {
        clearTimeout(timer);
        resolve(text);
      };
      waiters.push(done);
    });
  if (protocol === "udp") {
    const socket: UdpSocket = createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    socket.on("message", (bytes) => push(bytes.toString("latin1")));
    return {
      port: socket.address().port,
      send: (text) =>
        socket.send(typeof text === "string" ? Buffer.from(text, "latin1") : text, serverPort, "127.0.0.1"),
      next,
      close: () => socket.close(),
    };
  }
  const socket: TcpSocket = connect({ port: serverPort, host: "127.0.0.1" });
  await new Promise<void>((resolve) => socket.once("connect", resolve));
  socket.on("data", (bytes) => push(bytes.toString("latin1")));
  socket.on("error", () => undefined);
  return {
    port: socket.localPort!,
    send: (text) => socket.write(text),
    next,
    close: () => socket.destroy(),
  };
}

function options(protocol: string, port: number, branch = "z9hG4bK-contract-1", extra = ""): string {
  return [
    "OPTIONS sip:bridge@127.0.0.1 SIP/2.0",
    `Via: SIP/2.0/${protocol.toUpperCase()} client.invalid:${port};branch=${branch};rport`,
    "Max-Forwards: 70",
    "From: <sip:probe@127.0.0.1>;tag=a1",
    "To: <sip:bridge@127.0.0.1>",
    "Call-ID: contract-1",
    "CSeq: 1 OPTIONS",
    ...(extra ? [extra] : []),
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
}

const transports: Transport[] = [];
const peers: RawPeer[] = [];
afterEach(async () => {
  for (const peer of peers.splice(0)) peer.close();
  await Promise.all(transports.splice(0).map((t) => t.close()));
});

async function start(
  protocol: TransportProtocol,
  answerMalformedFrom?: (source: { address: string }) => boolean,
): Promise<{ transport: Transport; inbound: InboundMessage[] }> {
  const options = {
    address: "127.0.0.1",
    port: 0,
    logger: silentLogger(),
    ...(answerMalformedFrom ? { answerMalformedFrom } : {}),
  };
  const transport = protocol === "udp" ? new UdpTransport(options) : new TcpTransport(options);
  await transport.listen();
  transports.push(transport);
  const inbound: InboundMessage[] = [];
  transport.on("message", (message) => inbound.push(message));
  return { transport, inbound };
}

async function until(condition: () => boolean, timeoutMs = 1000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe.each(["udp", "tcp"] as const)("SIP transport contract: %s", (protocol) => {
  it("delivers a parsed request with its source, stamping received and rport on the top Via", async () => {
    const { transport, inbound } = await start(protocol);
    const peer = await rawPeer(protocol, transport.local.port);
    peers.push(peer);
    peer.send(options(protocol, 5999));
    await until(() => inbound.length === 1);
    const { message, source } = inbound[0]!;
    expect(message.kind).toBe("request");
    expect(source).toEqual({ protocol, address: "127.0.0.1", port: peer.port });
    expect(message.headers.get("Via")).toBe(
      `SIP/2.0/${protocol.toUpperCase()} client.invalid:5999;branch=z9hG4bK-contract-1;rport=${peer.port};received=127.0.0.1`,
    );
  });

  it("routes a response back to the request's source (RFC 3581), not to the Via sent-by port", async () => {
    const { transport, inbound } = await start(protocol);
    const peer = await rawPeer(protocol, transport.local.port);
    peers.push(peer);
    peer.send(options(protocol, 5999));
    await until(() => inbound.length === 1);
    const { message, source, connectionId } = inbound[0]!;
    const request = message as SipRequest;
    await transport.send(createResponse(request, 200), responseDestination(request, source), connectionId);
    const reply = await peer.next();
    expect(reply).toMatch(/^SIP\/2\.0 200 OK\r\n/);
    expect(transport.stats().sent).toBe(1);
  });

  it("answers a malformed but answerable request with 400 and a reason", async () => {
    const { transport, inbound } = await start(protocol);
    const peer = await rawPeer(protocol, transport.local.port);
    peers.push(peer);
    peer.send(options(protocol, peer.port).replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"));
    const reply = await peer.next();
    expect(reply).toMatch(/^SIP\/2\.0 400 \S/);
    expect(inbound).toHaveLength(0);
    expect(transport.stats().rejected).toBe(1);
  });

  it("answers malformed requests only to sources its owner allows, and at most a few per second", async () => {
    const { transport: closed } = await start(protocol, () => false);
    const stranger = await rawPeer(protocol, closed.local.port);
    peers.push(stranger);
    stranger.send(options(protocol, stranger.port).replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"));
    expect(await stranger.next(200)).toBeUndefined();
    expect(closed.stats().dropped).toBe(1);

    const { transport: open } = await start(protocol, () => true);
    const noisy = await rawPeer(protocol, open.local.port);
    peers.push(noisy);
    const bad = options(protocol, noisy.port).replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
    for (let i = 0; i < 30; i++) noisy.send(bad);
    await until(() => open.stats().rejected + open.stats().dropped === 30, 2000);
    expect(open.stats().rejected).toBe(10);
  });

  it("drops garbage without answering, counts it, and keeps working", async () => {
    const { transport, inbound } = await start(protocol);
    const peer = await rawPeer(protocol, transport.local.port);
    peers.push(peer);
    peer.send("\u0000\u0001 this is not SIP at all\r\n\r\n");
    expect(await peer.next(200)).toBeUndefined();
    expect(transport.stats().dropped).toBe(1);
    // A stream's framing is gone after garbage; a datagram transport just carries on.
    const fresh = protocol === "tcp" ? await rawPeer(protocol, transport.local.port) : peer;
    if (fresh !== peer) peers.push(fresh);
    fresh.send(options(protocol, fresh.port));
    await until(() => inbound.length === 1);
  });

  it("survives a listener that throws", async () => {
    const { transport, inbound } = await start(protocol);
    transport.on("message", () => {
      throw new Error("bug upstairs");
    });
    const peer = await rawPeer(protocol, transport.local.port);
    peers.push(peer);
    peer.send(options(protocol, peer.port, "z9hG4bK-a"));
    peer.send(options(protocol, peer.port, "z9hG4bK-b"));
    await until(() => inbound.length === 2);
  });

  it("ignores CRLF keepalives", async () => {
    const { transport, inbound } = await start(protocol);
    const peer = await rawPeer(protocol, transport.local.port);
    peers.push(peer);
    peer.send("\r\n\r\n");
    peer.send(options(protocol, peer.port));
    await until(() => inbound.length === 1);
    expect(transport.stats().dropped).toBe(0);
  });
});

describe("TCP stream behaviour", () => {
  it("frames two messages in one chunk and one message split across chunks", async () => {
    const { transport, inbound } = await start("tcp");
    const peer = await rawPeer("tcp", transport.local.port);
    peers.push(peer);
    peer.send(options("tcp", 1, "z9hG4bK-1") + options("tcp", 1, "z9hG4bK-2"));
    const third = options("tcp", 1, "z9hG4bK-3");
    peer.send(third.slice(0, 40));
    await new Promise((resolve) => setTimeout(resolve, 30));
    peer.send(third.slice(40));
    await until(() => inbound.length === 3);
    expect(inbound.map((m) => /branch=([^;]+)/.exec(m.message.headers.get("Via")!)![1])).toEqual([
      "z9hG4bK-1",
      "z9hG4bK-2",
      "z9hG4bK-3",
    ]);
    expect(new Set(inbound.map((m) => m.connectionId)).size).toBe(1);
  });

  it("answers a CRLFCRLF ping with a CRLF pong (RFC 5626)", async () => {
    const { transport } = await start("tcp");
    const peer = await rawPeer("tcp", transport.local.port);
    peers.push(peer);
    peer.send("\r\n\r\n");
    expect(await peer.next()).toBe("\r\n");
  });

  it("closes the connection when a message exceeds the size cap", async () => {
    const { transport, inbound } = await start("tcp");
    const peer = await rawPeer("tcp", transport.local.port);
    peers.push(peer);
    peer.send(options("tcp", 1, "z9hG4bK-big", `X-Padding: ${"a".repeat(70_000)}`));
    await until(() => transport.stats().dropped + transport.stats().rejected >= 1);
    expect(inbound).toHaveLength(0);
  });

  it("reuses one outbound connection for requests to the same peer", async () => {
    const { transport: server, inbound } = await start("tcp");
    const { transport: client } = await start("tcp");
    const destination = { protocol: "tcp" as const, address: "127.0.0.1", port: server.local.port };
    const { parseSipMessage } = await import("../../../src/sip/message");
    const build = (branch: string) => {
      const parsed = parseSipMessage(new TextEncoder().encode(options("tcp", client.local.port, branch)));
      if (!parsed.ok) throw new Error("bad test message");
      return parsed.message;
    };
    await client.send(build("z9hG4bK-r1"), destination);
    await client.send(build("z9hG4bK-r2"), destination);
    await until(() => inbound.length === 2);
    expect(inbound[0]!.connectionId).toBe(inbound[1]!.connectionId);
  });
});

/**
 * AST-2016-005: accepted TCP connections are a resource a stranger can hold without sending a byte.
 * Mechanism: the listener kept any connection for 15 min under one global cap, checking the allow-list
 * only per message. Fix: refuse at accept, cap per source, reserve outbound slots, deadline the first
 * message. Limits are shrunk here so each case runs in milliseconds.
 */
describe("TCP connection limits (AST-2016-005)", () => {
  async function startTcp(
    limits: Partial<TcpLimits>,
    acceptFrom?: (address: string) => boolean,
  ): Promise<{ transport: TcpTransport; inbound: InboundMessage[] }> {
    const transport = new TcpTransport({
      address: "127.0.0.1",
      port: 0,
      logger: silentLogger(),
      limits,
      ...(acceptFrom ? { acceptFrom } : {}),
    });
    await transport.listen();
    transports.push(transport);
    const inbound: InboundMessage[] = [];
    transport.on("message", (message) => inbound.push(message));
    return { transport, inbound };
  }

  /** Connects a raw socket and resolves once the server has either kept it or closed it. */
  function openRaw(port: number): Promise<{ socket: TcpSocket; closed: Promise<void> }> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: "127.0.0.1" });
      socket.on("error", () => undefined);
      const closed = new Promise<void>((done) => socket.once("close", () => done()));
      socket.resume();
      socket.once("connect", () => resolve({ socket, closed }));
      socket.once("error", reject);
    });
  }

  const opened: TcpSocket[] = [];
  afterEach(() => {
    for (const socket of opened.splice(0)) socket.destroy();
  });

  async function isOpenAfter(closed: Promise<void>, ms: number): Promise<boolean> {
    return Promise.race([
      closed.then(() => false),
      new Promise<boolean>((r) => setTimeout(() => r(true), ms)),
    ]);
  }

  it("closes a connection from a refused source at accept, before it sends anything", async () => {
    const asked: string[] = [];
    const { transport, inbound } = await startTcp({}, (address) => {
      asked.push(address);
      return false;
    });
    const { socket, closed } = await openRaw(transport.local.port);
    opened.push(socket);
    await closed;
    expect(asked).toEqual(["127.0.0.1"]);
    expect(transport.stats().refusedConnections).toBe(1);
    expect(inbound).toHaveLength(0);
  });

  it("keeps connections from an allowed source and delivers their messages", async () => {
    const { transport, inbound } = await startTcp({}, () => true);
    const peer = await rawPeer("tcp", transport.local.port);
    peers.push(peer);
    peer.send(options("tcp", peer.port));
    await until(() => inbound.length === 1);
    expect(transport.stats().refusedConnections ?? 0).toBe(0);
  });

  it("caps accepted connections per source address, and frees a slot when one closes", async () => {
    const { transport } = await startTcp({ maxPerSource: 3 });
    const raws = [];
    for (let i = 0; i < 4; i++) {
      const raw = await openRaw(transport.local.port);
      opened.push(raw.socket);
      raws.push(raw);
    }
    await raws[3]!.closed;
    for (const raw of raws.slice(0, 3)) expect(await isOpenAfter(raw.closed, 50)).toBe(true);
    expect(transport.stats().refusedConnections).toBe(1);

    raws[0]!.socket.destroy();
    await raws[0]!.closed;
    await new Promise((resolve) => setTimeout(resolve, 50));
    const again = await openRaw(transport.local.port);
    opened.push(again.socket);
    expect(await isOpenAfter(again.closed, 50)).toBe(true);
  });

  it("closes an accepted connection that sends no valid SIP message before the deadline", async () => {
    const { transport } = await startTcp({ firstMessageMs: 100 });
    const silent = await openRaw(transport.local.port);
    opened.push(silent.socket);
    // A CRLF keepalive is not a SIP message: it does not buy time.
    silent.socket.write("\r\n\r\n");
    await silent.closed;
    expect(transport.stats().refusedConnections).toBe(1);

    const talker = await rawPeer("tcp", transport.local.port);
    peers.push(talker);
    talker.send(options("tcp", talker.port));
    await new Promise((resolve) => setTimeout(resolve, 300));
    talker.send(options("tcp", talker.port, "z9hG4bK-later"));
    await until(() => transport.stats().received === 2);
    expect(transport.stats().refusedConnections).toBe(1);
  });

  it("keeps reserved slots for outgoing connections when inbound ones fill the cap", async () => {
    const { transport: server, inbound } = await startTcp({});
    const { transport: client } = await startTcp({ maxConnections: 4, reservedOutbound: 1 });
    const raws = [];
    for (let i = 0; i < 4; i++) {
      const raw = await openRaw(client.local.port);
      opened.push(raw.socket);
      raws.push(raw);
    }
    await raws[3]!.closed;
    expect(client.stats().refusedConnections).toBe(1);

    const { parseSipMessage } = await import("../../../src/sip/message");
    const parsed = parseSipMessage(
      new TextEncoder().encode(options("tcp", client.local.port, "z9hG4bK-out")),
    );
    if (!parsed.ok) throw new Error("bad test message");
    await client.send(parsed.message, { protocol: "tcp", address: "127.0.0.1", port: server.local.port });
    await until(() => inbound.length === 1);
  });
});
