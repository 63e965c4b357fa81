/**
 * The benchmark's far end, in its own process (forked by bench/media.ts): N simulated phones on
 * loopback. Each sends 50 pps PCMU to its call's bridge port on a drift-free grid and measures what
 * the bridge plays back: inter-arrival interval error against the RTP timestamps, lost and late
 * frames. Talks to the parent over the fork IPC channel. Timings here include this process's own
 * scheduling noise, which is why the parent repeats runs and reports medians.
 */
import { createSocket, type Socket } from "node:dgram";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";

type ParentMessage =
  | { type: "init"; calls: number }
  | { type: "start"; targets: number[]; measureAfterMs: number; measureForMs: number };

interface Phone {
  socket: Socket;
  target: number;
  seq: number;
  ts: number;
  ssrc: number;
  nextDueMs: number;
  // measurement of what the bridge sends us
  lastArrival: number;
  lastTs: number;
  lastSeq: number;
  firstSeq: number;
  highestSeq: number;
  received: number;
  minOffset: number;
  offsets: number[];
}

const SLOTS = 10;
const SLOT_MS = 20 / SLOTS;
const payload = new Uint8Array(160).fill(0xff);
for (let i = 0; i < 160; i++) payload[i] = i % 2 === 0 ? 0x9c : 0x1c; // a quiet buzz, not digital silence

const phones: Phone[] = [];
const buckets: Phone[][] = Array.from({ length: SLOTS }, () => []);
let measuring = false;
let errors: number[] = [];
const sendLag: number[] = [];

function send(parentMessage: unknown): void {
  process.send?.(parentMessage);
}

async function bindPhones(count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const socket = createSocket({ type: "udp4", recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    const phone: Phone = {
      socket,
      target: 0,
      seq: Math.floor(Math.random() * 30000),
      ts: Math.floor(Math.random() * 2 ** 31),
      ssrc: Math.floor(Math.random() * 2 ** 32),
      nextDueMs: 0,
      lastArrival: -1,
      lastTs: 0,
      lastSeq: -1,
      firstSeq: -1,
      highestSeq: -1,
      received: 0,
      minOffset: Number.POSITIVE_INFINITY,
      offsets: [],
    };
    socket.on("message", (message) => onPacket(phone, message));
    phones.push(phone);
    buckets[i % SLOTS]!.push(phone);
  }
}

function onPacket(phone: Phone, message: Buffer): void {
  if (!measuring || message.length < 12) return;
  const now = performance.now();
  const payloadType = message[1]! & 0x7f;
  if (payloadType !== 0) return;
  const seq = message.readUInt16BE(2);
  const ts = message.readUInt32BE(4);
  if (phone.firstSeq < 0) {
    phone.firstSeq = seq;
    phone.highestSeq = seq;
  } else if (((seq - phone.highestSeq) & 0xffff) < 0x8000) {
    phone.highestSeq = phone.firstSeq + (((seq - phone.firstSeq) & 0xffff) >>> 0);
  }
  phone.received++;
  if (phone.lastArrival >= 0 && seq === ((phone.lastSeq + 1) & 0xffff)) {
    const expected = ((ts - phone.lastTs) >>> 0) / 8;
    errors.push(Math.abs(now - phone.lastArrival - expected));
  }
  // Offset of this packet from the sender's media clock; late = more than 60 ms behind the best one.
  const offset = now - ts / 8;
  phone.offsets.push(offset);
  if (offset < phone.minOffset) phone.minOffset = offset;
  phone.lastArrival = now;
  phone.lastTs = ts;
  phone.lastSeq = seq;
}

function startStreaming(targets: number[]): void {
  const start = performance.now() + 20;
  phones.forEach((phone, i) => {
    phone.target = targets[i]!;
    phone.nextDueMs = start + (i % SLOTS) * SLOT_MS;
  });
  let slot = 0;
  const header = new Uint8Array(12);
  const packet = new Uint8Array(172);
  const tick = () => {
    const scheduled = start + slot * SLOT_MS;
    // Early wake-ups (libuv's cached loop time) count as on time, as in the engine's scheduler.
    const now = Math.max(performance.now(), scheduled);
    if (measuring) sendLag.push(now - scheduled);
    for (const phone of buckets[slot % SLOTS]!) {
      while (phone.nextDueMs <= now + 0.5) {
        header[0] = 0x80;
        header[1] = 0;
        header[2] = phone.seq >> 8;
        header[3] = phone.seq & 0xff;
        header[4] = phone.ts >>> 24;
        header[5] = (phone.ts >>> 16) & 0xff;
        header[6] = (phone.ts >>> 8) & 0xff;
        header[7] = phone.ts & 0xff;
        header[8] = phone.ssrc >>> 24;
        header[9] = (phone.ssrc >>> 16) & 0xff;
        header[10] = (phone.ssrc >>> 8) & 0xff;
        header[11] = phone.ssrc & 0xff;
        packet.set(header, 0);
        packet.set(payload, 12);
        phone.socket.send(Buffer.from(packet), phone.target, "127.0.0.1");
        phone.seq = (phone.seq + 1) & 0xffff;
        phone.ts = (phone.ts + 160) >>> 0;
        phone.nextDueMs += 20;
      }
    }
    slot++;
    let next = start + slot * SLOT_MS;
    if (next < performance.now() - 100) {
      // Hopelessly behind (generator saturated): skip slots rather than spin.
      slot += Math.floor((performance.now() - next) / SLOT_MS);
      next = start + slot * SLOT_MS;
    }
    setTimeout(tick, Math.max(0, next - performance.now()));
  };
  setTimeout(tick, 20);
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function report(): void {
  let received = 0;
  let expected = 0;
  let late = 0;
  for (const phone of phones) {
    if (phone.firstSeq < 0) continue;
    received += phone.received;
    expected += phone.highestSeq - phone.firstSeq + 1;
    for (const offset of phone.offsets) if (offset - phone.minOffset > 60) late++;
  }
  send({
    type: "result",
    received,
    lost: Math.max(0, expected - received),
    late,
    intervalErrorP50: percentile(errors, 50),
    intervalErrorP99: percentile(errors, 99),
    generatorSendLagP99: percentile(sendLag, 99),
  });
  errors = [];
}

const loopDelay = monitorEventLoopDelay({ resolution: 5 });
loopDelay.enable();

process.on("message", (message: ParentMessage) => {
  if (message.type === "init") {
    void bindPhones(message.calls).then(() =>
      send({ type: "ready", ports: phones.map((p) => p.socket.address().port) }),
    );
  } else if (message.type === "start") {
    startStreaming(message.targets);
    setTimeout(() => {
      measuring = true;
    }, message.measureAfterMs);
    setTimeout(() => {
      measuring = false;
      report();
      setTimeout(() => process.exit(0), 50);
    }, message.measureAfterMs + message.measureForMs);
  }
});
