/**
 * A loopback server speaking the OpenAI HTTP API shapes the receptionist agent uses: POST
 * /v1/audio/transcriptions (multipart → {"text"}), /v1/chat/completions (SSE chunks, then [DONE]) and
 * /v1/audio/speech (raw 24 kHz PCM16 LE, a 440 Hz tone whose length follows the text).
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeOpenAi {
  baseUrl: string;
  chatRequests: { messages: { role: string; content?: string }[] }[];
  speechInputs: string[];
  transcriptions: number;
  transcript: string;
  answer: string;
  close(): Promise<void>;
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => resolve(Buffer.concat(chunks)));
    request.on("error", reject);
  });
}

function tone(ms: number): Buffer {
  const samples = Math.round((24000 * ms) / 1000);
  const pcm = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++)
    pcm.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 24000)), i * 2);
  return pcm;
}

export async function startFakeOpenAi(): Promise<FakeOpenAi> {
  const state: FakeOpenAi = {
    baseUrl: "",
    chatRequests: [],
    speechInputs: [],
    transcriptions: 0,
    transcript: "what are your opening hours",
    answer: "We are open from nine to five, Monday to Friday. Is there anything else?",
    close: async () => {},
  };
  const server: Server = createServer(async (request, response) => {
    const body = await readBody(request);
    if (request.method === "POST" && request.url === "/v1/audio/transcriptions") {
      state.transcriptions++;
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ text: state.transcript }));
      return;
    }
    if (request.method === "POST" && request.url === "/v1/chat/completions") {
      state.chatRequests.push(JSON.parse(body.toString()) as FakeOpenAi["chatRequests"][number]);
      response.writeHead(200, { "content-type": "text/event-stream" });
      for (const word of state.answer.split(/(?<= )/)) {
        const chunk = {
          object: "chat.completion.chunk",
          choices: [{ index: 0, delta: { content: word }, finish_reason: null }],
        };
        response.write(`data: ${JSON.stringify(chunk)}\n\n`);
      }
      response.write(
        `data: ${JSON.stringify({ object: "chat.completion.chunk", choices: [{ index: 0, delta: {}, finish_reason: "stop" }] })}\n\n`,
      );
      response.end("data: [DONE]\n\n");
      return;
    }
    if (request.method === "POST" && request.url === "/v1/audio/speech") {
      const { input } = JSON.parse(body.toString()) as { input: string };
      state.speechInputs.push(input);
      response.writeHead(200, { "content-type": "application/octet-stream" });
      response.end(tone(Math.min(1500, 20 * input.length)));
      return;
    }
    response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  state.close = () => new Promise((resolve) => server.close(() => resolve()));
  return state;
}
