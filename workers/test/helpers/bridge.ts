/**
 * A test stand-in for the bridge: opens the media socket through the Worker (SELF) with a signed call
 * token, speaks the wire protocol with the shared schemas, and records everything the Worker sends.
 */

import { env, SELF } from "cloudflare:test";
import {
  type AudioFrame,
  type BridgeMessage,
  BYTES_PER_FRAME,
  type CallMetadata,
  decodeAudioFrame,
  encodeAudioFrame,
  FrameKind,
  PROTOCOL_VERSION,
  parseWorkerMessage,
  signCallToken,
  type WorkerMessage,
} from "@patchbay/shared";

export const BRIDGE_SECRET = "test-bridge-secret-0123456789abcdef";

let callCounter = 0;
export function newCallId(prefix = "call"): string {
  callCounter++;
  return `${prefix}-${Date.now().toString(36)}-${callCounter}`;
}

export function callMetadata(overrides: Partial<CallMetadata> = {}): CallMetadata {
  return {
    sipCallId: "abc@pbx",
    direction: "inbound",
    from: "sip:+15550001111@pbx",
    to: "sip:7001@pbx",
    headers: {},
    codec: "PCMU",
    sampleRate: 8000,
    frameMs: 20,
    ...overrides,
  };
}

export async function openMedia(
  callId: string,
  init: { token?: string; query?: boolean } = {},
): Promise<Response> {
  const token = init.token ?? (await signCallToken(BRIDGE_SECRET, callId));
  const url = init.query
    ? `http://worker/v1/media/${callId}?token=${encodeURIComponent(token)}`
    : `http://worker/v1/media/${callId}`;
  const headers: Record<string, string> = { Upgrade: "websocket" };
  if (!init.query) headers.Authorization = `Bearer ${token}`;
  return SELF.fetch(url, { headers });
}

export type Received = { kind: "message"; message: WorkerMessage } | { kind: "audio"; frame: AudioFrame };

export class TestBridge {
  readonly received: Received[] = [];
  closed?: { code: number; reason: string };
  #waiters: (() => void)[] = [];
  #seq = 0;

  private constructor(
    readonly callId: string,
    readonly ws: WebSocket,
  ) {
    ws.addEventListener("message", (event) => {
      if (typeof event.data === "string") {
        const parsed = parseWorkerMessage(event.data);
        if (!parsed.ok) throw new Error(`worker sent an invalid message: ${parsed.error}`);
        this.received.push({ kind: "message", message: parsed.message });
      } else {
        const decoded = decodeAudioFrame(event.data as ArrayBuffer);
        if (!decoded.ok) throw new Error(`worker sent an invalid frame: ${decoded.error}`);
        this.received.push({
          kind: "audio",
          frame: { ...decoded.frame, payload: decoded.frame.payload.slice() },
        });
      }
      this.#wake();
    });
    ws.addEventListener("close", (event) => {
      this.closed = { code: event.code, reason: event.reason };
      this.#wake();
    });
  }

  static async connect(callId: string): Promise<TestBridge> {
    const response = await openMedia(callId);
    if (response.status !== 101 || !response.webSocket) {
      throw new Error(`upgrade failed: ${response.status} ${await response.text()}`);
    }
    const ws = response.webSocket;
    ws.binaryType = "arraybuffer";
    ws.accept();
    return new TestBridge(callId, ws);
  }

  /** Connects and completes the handshake; returns the welcome. */
  static async start(
    callId: string,
    options: { call?: Partial<CallMetadata>; resumeToken?: string } = {},
  ): Promise<{ bridge: TestBridge; welcome: Extract<WorkerMessage, { type: "welcome" }> }> {
    const bridge = await TestBridge.connect(callId);
    bridge.send({
      type: "hello",
      protocol: PROTOCOL_VERSION,
      callId,
      call: callMetadata(options.call),
      bridge: { id: "test-bridge", version: "0.0.0" },
      ...(options.resumeToken ? { resumeToken: options.resumeToken } : {}),
    });
    const welcome = await bridge.next("welcome");
    return { bridge, welcome };
  }

  send(message: BridgeMessage): void {
    this.ws.send(JSON.stringify(message));
  }

  sendRaw(data: string | Uint8Array): void {
    this.ws.send(data);
  }

  /** Sends `frames` 20 ms frames of caller audio: a loud square wave ("speech") or digital silence. */
  sendAudio(frames: number, kind: "speech" | "silence"): void {
    for (let index = 0; index < frames; index++) {
      const payload = new Uint8Array(BYTES_PER_FRAME);
      // μ-law 0x80 ≈ +32124 and 0x00 ≈ -32124: a full-scale square wave; 0xff is silence.
      if (kind === "speech") for (let i = 0; i < payload.length; i++) payload[i] = i % 8 < 4 ? 0x80 : 0x00;
      else payload.fill(0xff);
      this.ws.send(
        encodeAudioFrame(
          { kind: FrameKind.callerAudio, codec: "PCMU", flags: 0, seq: this.#seq, timeMs: this.#seq * 20 },
          payload,
        ),
      );
      this.#seq++;
    }
  }

  /** Like sendAudio, one frame every 20 ms of real time (the Durable Object reads Date.now()). */
  async sendAudioPaced(
    frames: number,
    kind: "speech" | "silence",
    stopWhen?: () => boolean,
  ): Promise<number> {
    for (let index = 0; index < frames; index++) {
      if (stopWhen?.()) return index;
      this.sendAudio(1, kind);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return frames;
  }

  messages(): WorkerMessage[] {
    return this.received.flatMap((item) => (item.kind === "message" ? [item.message] : []));
  }

  messagesOf<T extends WorkerMessage["type"]>(type: T): Extract<WorkerMessage, { type: T }>[] {
    return this.messages().filter(
      (message): message is Extract<WorkerMessage, { type: T }> => message.type === type,
    );
  }

  audioFrames(): AudioFrame[] {
    return this.received.flatMap((item) => (item.kind === "audio" ? [item.frame] : []));
  }

  /** Resolves with the first message of `type` after index `from` (default: any so far). */
  async next<T extends WorkerMessage["type"]>(
    type: T,
    options: {
      from?: number;
      timeoutMs?: number;
      where?: (message: Extract<WorkerMessage, { type: T }>) => boolean;
    } = {},
  ): Promise<Extract<WorkerMessage, { type: T }>> {
    let found: Extract<WorkerMessage, { type: T }> | undefined;
    await this.until(
      () => {
        for (const item of this.received.slice(options.from ?? 0)) {
          if (item.kind === "message" && item.message.type === type) {
            const message = item.message as Extract<WorkerMessage, { type: T }>;
            if (!options.where || options.where(message)) {
              found = message;
              return true;
            }
          }
        }
        return false;
      },
      options.timeoutMs ?? 5000,
      `a ${type} message`,
    );
    return found!;
  }

  async until(condition: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) {
        const seen = this.messages()
          .map((message) => message.type)
          .join(",");
        throw new Error(
          `timed out waiting for ${what}; messages so far: ${seen}; closed: ${JSON.stringify(this.closed)}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 20);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Acknowledges every mark received so far (the bridge played everything). */
  ackAllMarks(): number {
    const marks = this.messagesOf("mark");
    for (const mark of marks.slice(this.#acked)) this.send({ type: "mark_played", name: mark.name, atMs: 0 });
    const count = marks.length - this.#acked;
    this.#acked = marks.length;
    return count;
  }

  #acked = 0;

  close(code = 1000): void {
    try {
      this.ws.close(code, "test done");
    } catch {
      // already closed
    }
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }
}

export function callStub(callId: string): DurableObjectStub {
  return env.CALL.get(env.CALL.idFromName(callId));
}
