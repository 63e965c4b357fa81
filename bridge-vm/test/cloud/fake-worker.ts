/**
 * A local stand-in for the Worker's side of the media socket, faithful to shared/PROTOCOL.md: it
 * verifies the bearer token before upgrading, validates every message the bridge sends with the
 * shared schemas, and answers hello with welcome. The real Worker is exercised end to end in test/.
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

export interface ReceivedFrame {
  seq: number;
  timeMs: number;
  flags: number;
  firstByte: number;
  length: number;
}

export class FakeWorker {
  readonly secret = "fake-worker-secret-0123456789";
  readonly frames: ReceivedFrame[] = [];
  readonly controls: BridgeMessage[] = [];
  readonly protocolViolations: string[] = [];
  connections = 0;
  rejectAll = false;
  /** Delay before answering hello (to test the connect timeout). */
  welcomeDelayMs = 0;
  private server!: Server;
  private readonly wss = new WebSocketServer({ noServer: true });
  private current: WebSocket | undefined;
  private agentSeq = 0;

  async start(): Promise<string> {
    this.server = createServer((_request, response) => response.writeHead(404).end());
    this.server.on("upgrade", async (request, socket, head) => {
      const callId = decodeURIComponent(request.url?.match(/^\/v1\/media\/([^/?]+)/)?.[1] ?? "");
      const token = request.headers.authorization?.replace(/^Bearer /, "") ?? "";
      const check = await verifyCallToken(this.secret, callId, token);
      if (this.rejectAll || !check.ok) {
        socket.end("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws));
    });
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private accept(ws: WebSocket): void {
    this.connections++;
    this.current = ws;
    ws.on("message", (data, isBinary) => {
      const bytes = data as Buffer;
      if (isBinary) {
        const decoded = decodeAudioFrame(bytes);
        if (!decoded.ok || decoded.frame.kind !== FrameKind.callerAudio) {
          this.protocolViolations.push(decoded.ok ? "agent audio from bridge" : decoded.error);
          return;
        }
        const { frame } = decoded;
        this.frames.push({
          seq: frame.seq,
          timeMs: frame.timeMs,
          flags: frame.flags,
          firstByte: frame.payload[0]!,
          length: frame.payload.length,
        });
        return;
      }
      const parsed = parseBridgeMessage(bytes.toString());
      if (!parsed.ok) {
        this.protocolViolations.push(parsed.error);
        return;
      }
      this.controls.push(parsed.message);
      if (parsed.message.type === "hello") {
        const hello = parsed.message;
        setTimeout(() => {
          ws.send(
            JSON.stringify({
              type: "welcome",
              protocol: PROTOCOL_VERSION,
              callId: hello.callId,
              resumeToken: `resume-${hello.callId}`,
              resumed: hello.resumeToken !== undefined,
              agent: "receptionist",
            }),
          );
        }, this.welcomeDelayMs);
      }
    });
  }

  send(message: object | string): void {
    this.current?.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  sendRaw(bytes: Uint8Array): void {
    this.current?.send(bytes, { binary: true });
  }

  sendAgentAudio(payload: Uint8Array, codec: "PCMU" | "PCMA" = "PCMU"): void {
    this.sendRaw(
      encodeAudioFrame(
        { kind: FrameKind.agentAudio, codec, flags: 0, seq: this.agentSeq++, timeMs: 0 },
        payload,
      ),
    );
  }

  /** Simulates a network failure or a deploy: the socket vanishes without a close handshake. */
  drop(): void {
    this.current?.terminate();
  }

  closeWith(code: number, reason = ""): void {
    this.current?.close(code, reason);
  }

  controlsOfType<T extends BridgeMessage["type"]>(type: T): Extract<BridgeMessage, { type: T }>[] {
    return this.controls.filter(
      (message): message is Extract<BridgeMessage, { type: T }> => message.type === type,
    );
  }

  async stop(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    this.wss.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
