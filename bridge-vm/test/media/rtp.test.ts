import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseRtp, type RtpPacket, serializeRtp, writeRtpHeader } from "../../src/media/rtp/packet";
import {
  ntpMiddle,
  parseRtcp,
  type RtcpPacket,
  roundTripMs,
  serializeRtcp,
  toNtp,
} from "../../src/media/rtp/rtcp";

const hex = (text: string) =>
  Uint8Array.from(
    text
      .replace(/\s+/g, "")
      .match(/../g)!
      .map((b) => Number.parseInt(b, 16)),
  );

describe("RTP packets", () => {
  it("parses a plain PCMU packet and serializes it back byte for byte", () => {
    const bytes = hex("80 80 1234 00010203 deadbeef ffff7f00");
    const result = parseRtp(bytes);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.packet).toMatchObject({
      marker: true,
      payloadType: 0,
      sequenceNumber: 0x1234,
      timestamp: 0x10203,
    });
    expect(result.packet.ssrc).toBe(0xdeadbeef);
    expect([...result.packet.payload]).toEqual([0xff, 0xff, 0x7f, 0x00]);
    expect(serializeRtp(result.packet)).toEqual(bytes);
  });

  it("handles CSRC list, header extension and padding exactly", () => {
    // V=2 P=1 X=1 CC=2, M=0 PT=8, then 2 CSRCs, extension 0xBEDE with 1 word, payload 3 bytes, 5 padding.
    const bytes = hex("b2 08 ffff ffffffff 00000001 0000000a 0000000b bede0001 10aa0000 d5d5d5 0000000005");
    const result = parseRtp(bytes);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const packet = result.packet;
    expect(packet.csrc).toEqual([10, 11]);
    expect(packet.extension?.profile).toBe(0xbede);
    expect([...packet.extension!.data]).toEqual([0x10, 0xaa, 0, 0]);
    expect([...packet.payload]).toEqual([0xd5, 0xd5, 0xd5]);
    expect(packet.paddingBytes).toBe(5);
    expect(serializeRtp(packet)).toEqual(bytes);
  });

  it("returns coded errors for truncated or invalid packets", () => {
    expect(parseRtp(hex("8000"))).toEqual({ ok: false, error: { code: "too-short", got: 2, need: 12 } });
    expect(parseRtp(hex("40 00 0000 00000000 00000000"))).toMatchObject({
      ok: false,
      error: { code: "bad-version" },
    });
    expect(parseRtp(hex("83 00 0000 00000000 00000000 00000001"))).toMatchObject({
      ok: false,
      error: { code: "truncated-csrc", got: 16, need: 24 },
    });
    expect(parseRtp(hex("90 00 0000 00000000 00000000 bede0002 00000000"))).toMatchObject({
      ok: false,
      error: { code: "truncated-extension" },
    });
    expect(parseRtp(hex("a0 00 0000 00000000 00000000 ff 00"))).toMatchObject({
      ok: false,
      error: { code: "bad-padding" },
    });
    expect(parseRtp(hex("a0 00 0000 00000000 00000000 ff 09"))).toMatchObject({
      ok: false,
      error: { code: "bad-padding" },
    });
  });

  it("writeRtpHeader matches serializeRtp for our own packets", () => {
    const payload = new Uint8Array(160).fill(0xff);
    const packet: RtpPacket = {
      marker: true,
      payloadType: 8,
      sequenceNumber: 65535,
      timestamp: 0xfffffff0,
      ssrc: 0x80000001,
      csrc: [],
      payload,
      paddingBytes: 0,
    };
    const fast = new Uint8Array(172);
    writeRtpHeader(fast, true, 8, 65535, 0xfffffff0, 0x80000001);
    fast.set(payload, 12);
    expect(fast).toEqual(serializeRtp(packet));
  });

  it("round-trips any well-formed packet and never throws on arbitrary bytes (property)", () => {
    const packetArb = fc.record({
      marker: fc.boolean(),
      payloadType: fc.integer({ min: 0, max: 127 }),
      sequenceNumber: fc.integer({ min: 0, max: 65535 }),
      timestamp: fc.integer({ min: 0, max: 0xffffffff }),
      ssrc: fc.integer({ min: 0, max: 0xffffffff }),
      csrc: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 15 }),
      extension: fc.option(
        fc.record({
          profile: fc.integer({ min: 0, max: 0xffff }),
          data: fc
            .integer({ min: 0, max: 4 })
            .chain((words) => fc.uint8Array({ minLength: words * 4, maxLength: words * 4 })),
        }),
        { nil: undefined },
      ),
      payload: fc.uint8Array({ maxLength: 200 }),
      paddingBytes: fc.integer({ min: 0, max: 255 }),
    });
    fc.assert(
      fc.property(packetArb, (candidate) => {
        const packet: RtpPacket = { ...candidate };
        if (packet.extension === undefined) delete packet.extension;
        const bytes = serializeRtp(packet);
        const parsed = parseRtp(bytes);
        expect(parsed.ok).toBe(true);
        if (parsed.ok) expect(serializeRtp(parsed.packet)).toEqual(bytes);
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        parseRtp(bytes);
        parseRtcp(bytes);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("RTCP", () => {
  const compound: RtcpPacket[] = [
    {
      type: "sr",
      ssrc: 0x11223344,
      ntpSeconds: 0xe5000000,
      ntpFraction: 0x80000000,
      rtpTimestamp: 123456,
      packetCount: 250,
      octetCount: 40000,
      reports: [
        {
          ssrc: 0xaabbccdd,
          fractionLost: 25,
          cumulativeLost: -3,
          extendedHighestSequence: 0x1_0005,
          jitter: 80,
          lastSenderReport: 0x12345678,
          delaySinceLastSenderReport: 65536,
        },
      ],
    },
    { type: "sdes", chunks: [{ ssrc: 0x11223344, items: [{ type: 1, text: "patchbay@bridge" }] }] },
    { type: "bye", sources: [0x11223344], reason: "bye now" },
  ];

  it("serializes and parses a compound SR+SDES+BYE packet symmetrically", () => {
    const bytes = serializeRtcp(compound);
    expect(bytes.length % 4).toBe(0);
    const parsed = parseRtcp(bytes);
    expect(parsed.error).toBeUndefined();
    expect(parsed.packets).toEqual(compound);
    expect(serializeRtcp(parsed.packets)).toEqual(bytes);
  });

  it("parses an RR built by hand byte for byte", () => {
    const bytes = hex("81c9 0007 00000001 00000002 0a000005 00010064 00000010 00000000 00000000");
    const parsed = parseRtcp(bytes);
    expect(parsed.packets).toEqual([
      {
        type: "rr",
        ssrc: 1,
        reports: [
          {
            ssrc: 2,
            fractionLost: 10,
            cumulativeLost: 5,
            extendedHighestSequence: 0x10064,
            jitter: 16,
            lastSenderReport: 0,
            delaySinceLastSenderReport: 0,
          },
        ],
      },
    ]);
    expect(serializeRtcp(parsed.packets)).toEqual(bytes);
  });

  it("is lenient: keeps what parsed before a broken block and skips unknown types", () => {
    const good = serializeRtcp([{ type: "rr", ssrc: 7, reports: [] }]);
    const unknown = hex("80cd 0001 00000000"); // PT 205 (transport feedback)
    const broken = hex("80c8 0010 0000");
    const bytes = new Uint8Array([...good, ...unknown, ...broken]);
    const parsed = parseRtcp(bytes);
    expect(parsed.packets).toEqual([
      { type: "rr", ssrc: 7, reports: [] },
      { type: "unknown", packetType: 205 },
    ]);
    expect(parsed.error?.code).toBe("truncated");
  });

  it("computes round-trip time from LSR and DLSR (RFC 3550 §6.4.1 example)", () => {
    const sentAt = toNtp(1_700_000_000_000);
    const lsr = ntpMiddle(sentAt.seconds, sentAt.fraction);
    const arrival = toNtp(1_700_000_000_000 + 250 + 100); // 100 ms held by the peer, 250 ms on the wire
    const rtt = roundTripMs(
      {
        ssrc: 1,
        fractionLost: 0,
        cumulativeLost: 0,
        extendedHighestSequence: 0,
        jitter: 0,
        lastSenderReport: lsr,
        delaySinceLastSenderReport: Math.round(0.1 * 65536),
      },
      ntpMiddle(arrival.seconds, arrival.fraction),
    );
    expect(rtt).toBeGreaterThan(249);
    expect(rtt).toBeLessThan(251);
  });
});
