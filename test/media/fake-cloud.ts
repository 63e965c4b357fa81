/**
 * The cloud side of the media socket, reduced to what media tests need: it verifies the call token,
 * welcomes the bridge, keeps every caller frame (in sequence order) and control message, and can
 * play agent audio and send DTMF. Speaks shared/PROTOCOL.md through the shared schemas; the real
 * Worker is exercised by test/e2e.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  type BridgeMessage,
  decodeAudioFrame,
  encodeAudioFrame,
  FrameKind,
  PROTOCOL_VERSION,
  parseBridgeMessage,
} from "@patchbay/shared/protocol";
import { verifyCallToken } from "@patchbay/shared/token";
import { type WebSocket, WebSocketServer } from "ws";

export class FakeCloud {
  readonly secret = "media-test-secret-0123456789";
  /** Caller audio per call id: G.711 frames keyed by sequence number. */
  readonly callerFrames = new Map<string, Map<number, Uint8Array>>();
  readonly controls: Array<BridgeMessage & { callId: string }> = [];
  readonly violations: string[] = [];
  private readonly sockets = new Map<string, WebSocket>();
  private readonly wss = new WebSocketServer({ noServer: true });
  private server!: Server;
  private agentSeq = 0;

  async start(): Promise<string> {
    this.server = createServer((_request, response) => response.writeHead(200).end("ok"));
    this.server.on("upgrade", async (request, socket, head) => {
      const callId = decodeURIComponent(/^\/v1\/media\/([^/?]+)/.exec(request.url ?? "")?.[1] ?? "");
      const token = request.headers.authorization?.replace(/^Bearer /, "") ?? "";
      if (!(await verifyCallToken(this.secret, callId, token)).ok) {
        socket.end("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(callId, ws));
    });
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private accept(callId: string, ws: WebSocket): void {
    this.sockets.set(callId, ws);
    const frames = this.callerFrames.get(callId) ?? new Map<number, Uint8Array>();
    this.callerFrames.set(callId, frames);
    ws.on("message", (data, isBinary) => {
      const bytes = data as Buffer;
      if (isBinary) {
        const decoded = decodeAudioFrame(bytes);
        if (!decoded.ok || decoded.frame.kind !== FrameKind.callerAudio) {
          this.violations.push(decoded.ok ? "wrong frame kind" : decoded.error);
          return;
        }
        const { payload, seq } = decoded.frame;
        for (let offset = 0; offset < payload.length; offset += 160) {
          frames.set(seq + offset / 160, payload.slice(offset, offset + 160));
        }
        return;
      }
      const parsed = parseBridgeMessage(bytes.toString());
      if (!parsed.ok) {
        this.violations.push(parsed.error);
        return;
      }
      this.controls.push({ ...parsed.message, callId });
      if (parsed.message.type === "hello") {
        ws.send(
          JSON.stringify({
            type: "welcome",
            protocol: PROTOCOL_VERSION,
            callId,
            resumeToken: `resume-${callId}`,
            resumed: parsed.message.resumeToken !== undefined,
            agent: "media-test",
          }),
        );
      }
    });
  }

  get callIds(): string[] {
    return [...this.sockets.keys()];
  }

  /** Caller audio received so far for a call, frames in sequence order (gaps left out). */
  callerAudio(callId: string): Uint8Array {
    const frames = [...(this.callerFrames.get(callId)?.entries() ?? [])].sort(([a], [b]) => a - b);
    const out = new Uint8Array(frames.length * 160);
    frames.forEach(([, frame], index) => {
      out.set(frame, index * 160);
    });
    return out;
  }

  /** Send agent audio in bursts, as TTS does (faster than real time), then a mark. */
  playAgentAudio(callId: string, audio: Uint8Array, markName: string): void {
    const ws = this.sockets.get(callId);
    if (!ws) throw new Error(`no socket for ${callId}`);
    for (let offset = 0; offset < audio.length; offset += 1600) {
      const chunk = audio.subarray(offset, offset + 1600);
      ws.send(
        encodeAudioFrame(
          { kind: FrameKind.agentAudio, codec: "PCMU", flags: 0, seq: this.agentSeq++, timeMs: 0 },
          chunk,
        ),
      );
    }
    ws.send(JSON.stringify({ type: "mark", name: markName }));
  }

  sendDtmf(callId: string, digits: string): void {
    this.sockets.get(callId)?.send(JSON.stringify({ type: "send_dtmf", digits }));
  }

  controlsOfType<T extends BridgeMessage["type"]>(
    type: T,
  ): Array<Extract<BridgeMessage, { type: T }> & { callId: string }> {
    return this.controls.filter(
      (message): message is Extract<BridgeMessage, { type: T }> & { callId: string } => message.type === type,
    );
  }

  async stop(): Promise<void> {
    for (const ws of this.sockets.values()) ws.terminate();
    this.wss.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
