/**
 * One whole call from Node: real `ws` client (the bridge's library) → wrangler test harness (the real
 * Worker bundle, offline env) → CallSession → OpenAI-compatible providers served by a loopback fake.
 * The receptionist agent's STT has no end-of-turn, so this also runs our VAD → finalize() path.
 */
import {
  type AudioFrame,
  BYTES_PER_FRAME,
  decodeAudioFrame,
  encodeAudioFrame,
  FrameKind,
  PROTOCOL_VERSION,
  parseWorkerMessage,
  signCallToken,
  type WorkerMessage,
} from "@patchbay/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestHarness } from "wrangler";
import { WebSocket } from "ws";
import { type FakeOpenAi, startFakeOpenAi } from "./fake-openai";

const BRIDGE_SECRET = "integration-bridge-secret-0123456789";
const API_TOKEN = "integration-api-token-0123456789";

let openai: FakeOpenAi;
let harness: ReturnType<typeof createTestHarness>;
let baseUrl: URL;

beforeAll(async () => {
  openai = await startFakeOpenAi();
  harness = createTestHarness({
    root: new URL("../..", import.meta.url).pathname,
    workers: [
      {
        configPath: "../wrangler.toml",
        env: "offline",
        secrets: { BRIDGE_SECRET, API_TOKEN, OPENAI_BASE_URL: openai.baseUrl },
      },
    ],
  });
  baseUrl = (await harness.listen()).url;
});

afterAll(async () => {
  await harness?.close();
  await openai?.close();
});

class Bridge {
  readonly messages: WorkerMessage[] = [];
  readonly frames: AudioFrame[] = [];
  closed?: number;
  #seq = 0;

  constructor(readonly ws: WebSocket) {
    ws.on("message", (data, isBinary) => {
      if (isBinary) {
        const decoded = decodeAudioFrame(new Uint8Array(data as Buffer));
        if (!decoded.ok) throw new Error(decoded.error);
        this.frames.push(decoded.frame);
        return;
      }
      const parsed = parseWorkerMessage(data.toString());
      if (!parsed.ok) throw new Error(parsed.error);
      this.messages.push(parsed.message);
    });
    ws.on("close", (code) => {
      this.closed = code;
    });
  }

  send(message: object): void {
    this.ws.send(JSON.stringify(message));
  }

  async audio(frames: number, loud: boolean): Promise<void> {
    const payload = new Uint8Array(BYTES_PER_FRAME);
    for (let i = 0; i < frames; i++) {
      if (loud) for (let j = 0; j < payload.length; j++) payload[j] = j % 8 < 4 ? 0x80 : 0x00;
      else payload.fill(0xff);
      this.ws.send(
        encodeAudioFrame(
          { kind: FrameKind.callerAudio, codec: "PCMU", flags: 0, seq: this.#seq, timeMs: this.#seq * 20 },
          payload,
        ),
      );
      this.#seq++;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}: got ${this.messages.map((m) => m.type).join(",")}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  marks(): string[] {
    return this.messages.flatMap((message) => (message.type === "mark" ? [message.name] : []));
  }
}

async function connect(callId: string, token?: string): Promise<Bridge | number> {
  const ws = new WebSocket(new URL(`/v1/media/${callId}`, baseUrl).toString().replace(/^http/, "ws"), {
    headers: { Authorization: `Bearer ${token ?? (await signCallToken(BRIDGE_SECRET, callId))}` },
  });
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(new Bridge(ws)));
    ws.once("unexpected-response", (_request, response) => resolve(response.statusCode ?? 0));
    ws.once("error", reject);
  });
}

describe("bridge ↔ Worker over a real WebSocket", () => {
  it("refuses a bad token with 401 before upgrading", async () => {
    expect(await connect("integration-call-401", "v1.1.AAAA")).toBe(401);
  });

  it("greets, hears the caller (VAD → finalize → transcription), answers, and reports the call", async () => {
    const callId = `integration-${Date.now().toString(36)}`;
    const bridge = await connect(callId);
    if (typeof bridge === "number") throw new Error(`upgrade refused: ${bridge}`);
    bridge.send({
      type: "hello",
      protocol: PROTOCOL_VERSION,
      callId,
      call: {
        sipCallId: "it@pbx",
        direction: "inbound",
        from: "sip:alice@pbx",
        to: "sip:1000@pbx",
        headers: {},
        codec: "PCMU",
        sampleRate: 8000,
        frameMs: 20,
      },
      bridge: { id: "integration", version: "0" },
    });
    await bridge.until(() => bridge.messages.some((m) => m.type === "welcome"), "welcome");
    expect(bridge.messages[0]).toMatchObject({ type: "welcome", agent: "receptionist", resumed: false });

    // The greeting is synthesized clause by clause and streamed as agent audio with marks.
    await bridge.until(() => bridge.marks().length >= 2, "greeting marks");
    expect(openai.speechInputs.slice(0, 2)).toEqual([
      "Hello, thanks for calling Example Corp.",
      "How can I help you today?",
    ]);
    expect(bridge.frames.length).toBeGreaterThan(0);
    for (const name of bridge.marks()) bridge.send({ type: "mark_played", name, atMs: 0 });

    // The caller speaks for 0.5 s, then is quiet for longer than the 700 ms hang-over.
    await bridge.audio(25, true);
    await bridge.audio(45, false);
    await bridge.until(() => bridge.marks().some((name) => name.startsWith("t1.")), "answer marks");
    expect(openai.transcriptions).toBe(1);
    const request = openai.chatRequests[0]!;
    expect(request.messages[0]?.role).toBe("system");
    expect(request.messages.slice(1)).toEqual([
      { role: "assistant", content: "Hello, thanks for calling Example Corp. How can I help you today?" },
      { role: "user", content: "what are your opening hours" },
    ]);
    const timing = bridge.messages.find(
      (m): m is Extract<WorkerMessage, { type: "turn_timing" }> => m.type === "turn_timing" && m.turn === 1,
    );
    expect(timing?.endpointingMs).toBeGreaterThanOrEqual(600);

    // The bridge plays the answer, acknowledges its marks, then the caller hangs up.
    await bridge.until(() => bridge.marks().includes("t1.c1"), "the answer's second clause");
    for (const name of bridge.marks().filter((mark) => mark.startsWith("t1.")))
      bridge.send({ type: "mark_played", name, atMs: 0 });
    bridge.send({ type: "hangup", cause: "caller-hangup", by: "caller" });
    await bridge.until(() => bridge.closed !== undefined, "close");
    expect(bridge.closed).toBe(1000);

    const report = await harness.fetch(`/v1/calls/${callId}`, {
      headers: { Authorization: `Bearer ${API_TOKEN}` },
    });
    expect(report.status).toBe(200);
    const body = (await report.json()) as {
      status: string;
      endCause: string;
      transcript: { role: string; text: string }[];
    };
    expect(body).toMatchObject({ status: "ended", endCause: "caller-hangup" });
    expect(body.transcript.map((line) => [line.role, line.text])).toEqual([
      ["agent", "Hello, thanks for calling Example Corp. How can I help you today?"],
      ["caller", "what are your opening hours"],
      ["agent", "We are open from nine to five, Monday to Friday. Is there anything else?"],
    ]);
  });
});
