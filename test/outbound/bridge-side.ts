/**
 * The bridge's SIP side for outbound tests, without the bridge process: a loopback UDP transport, the
 * real transaction layer and UA core (only loopback may talk to it), and the real RTP engine. `close()`
 * stops the socket; media sessions are the calls' to close.
 */
import { createLogger } from "@patchbay/bridge/src/logging";
import { createMediaEngine } from "@patchbay/bridge/src/media/engine";
import { silentLogger } from "@patchbay/bridge/src/media/logger";
import { systemClock } from "@patchbay/bridge/src/sip/transaction/clock";
import { TransactionLayer } from "@patchbay/bridge/src/sip/transaction/layer";
import { UdpTransport } from "@patchbay/bridge/src/sip/transport/udp";
import { SourceAllowList } from "@patchbay/bridge/src/sip/ua/cidr";
import { CallPolicy } from "@patchbay/bridge/src/sip/ua/policy";
import { UaCore } from "@patchbay/bridge/src/sip/ua/ua";
import { freePortBlock, LOOPBACK } from "../support/ports";

export const testLogger = createLogger({ level: "silent" });

export async function startBridgeSide(options: { mediaTimeoutS?: number } = {}) {
  const transport = new UdpTransport({ address: LOOPBACK, port: 0, logger: testLogger });
  await transport.listen();
  const layer = new TransactionLayer({
    transports: [transport],
    clock: systemClock,
    logger: testLogger,
    sentBy: () => `${LOOPBACK}:${transport.local.port}`,
  });
  const ua = new UaCore({
    layer,
    policy: new CallPolicy({
      allowList: new SourceAllowList([LOOPBACK]),
      rejectMode: "silent",
      contactToken: "outboundtest",
    }),
    clock: systemClock,
    logger: testLogger,
    contactUri: () => `sip:outboundtest@${LOOPBACK}:${transport.local.port}`,
  });
  const rtpBase = await freePortBlock(8);
  const media = createMediaEngine(
    {
      portMin: rtpBase,
      portMax: rtpBase + 7,
      latch: true,
      timeoutS: options.mediaTimeoutS ?? 30,
      idle: "silence",
      recording: { enabled: false, path: "/tmp" },
      bindAddress: LOOPBACK,
    },
    silentLogger,
  );
  return {
    ua,
    layer,
    media,
    async close() {
      layer.close();
      await transport.close();
    },
  };
}

export type BridgeSide = Awaited<ReturnType<typeof startBridgeSide>>;
