/** The shared provider base: pure cores tested directly (no sockets). */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  base64ToBytes,
  bytesToBase64,
  ChatStreamAssembler,
  codeForStatus,
  isRetryableStatus,
  MAX_SSE_LINE,
  MAX_TOOL_ARGUMENTS,
  Pcm16LeReader,
  pcm16ToLeBytes,
  SseLineParser,
  wavDataOffset,
  wavFromPcm16,
  withRetries,
} from "../../../src/providers/common";
import { ProviderError } from "../../../src/providers/types";

describe("SseLineParser", () => {
  it("yields data of complete events, across arbitrary chunking, CRLF and comments", () => {
    const stream =
      ': keep-alive\r\ndata: {"a":1}\r\n\r\nevent: x\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n';
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 6 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const parser = new SseLineParser();
        const events: string[] = [];
        let last = 0;
        for (const point of [...points, stream.length]) {
          events.push(...parser.push(stream.slice(last, point)));
          last = point;
        }
        events.push(...parser.end());
        expect(events).toEqual(['{"a":1}', "line1\nline2", "[DONE]"]);
      }),
    );
  });

  it("refuses an unbounded line instead of buffering forever", () => {
    const parser = new SseLineParser();
    expect(() => parser.push(`data: ${"x".repeat(MAX_SSE_LINE + 1)}`)).toThrow(RangeError);
  });
});

describe("ChatStreamAssembler", () => {
  it("joins OpenAI tool-call fragments by index and emits them whole at finish_reason", () => {
    const assembler = new ChatStreamAssembler();
    const chunk = (delta: object, finish: string | null = null) =>
      JSON.stringify({ choices: [{ index: 0, delta, finish_reason: finish }] });
    const events = [
      ...assembler.pushData(chunk({ content: "Let me check." })),
      ...assembler.pushData(
        chunk({ tool_calls: [{ index: 1, id: "b", function: { name: "two", arguments: "" } }] }),
      ),
      ...assembler.pushData(
        chunk({ tool_calls: [{ index: 0, id: "a", function: { name: "one", arguments: '{"x"' } }] }),
      ),
      ...assembler.pushData(chunk({ tool_calls: [{ index: 0, function: { arguments: ":1}" } }] })),
      ...assembler.pushData(chunk({}, "tool_calls")),
      ...assembler.pushData("[DONE]"),
      ...assembler.finish(),
    ];
    expect(events).toEqual([
      { type: "text", delta: "Let me check." },
      { type: "tool_call", call: { id: "a", name: "one", arguments: '{"x":1}' } },
      { type: "tool_call", call: { id: "b", name: "two", arguments: "{}" } },
      { type: "done", finishReason: "tool_calls" },
    ]);
  });

  it("accepts Workers AI native chunks, object arguments and skips the null sentinel", () => {
    const assembler = new ChatStreamAssembler((index) => `call_${index}`);
    const events = [
      ...assembler.pushChunk({ response: "Hi" }),
      ...assembler.pushChunk({ tool_calls: [{ name: "end_call", arguments: { reason: "bye" } }] }),
      ...assembler.pushChunk({ tool_calls: [{ id: null, function: { name: null, arguments: null } }] }),
      ...assembler.pushData("[DONE]"),
      ...assembler.finish(),
    ];
    expect(events).toEqual([
      { type: "text", delta: "Hi" },
      { type: "tool_call", call: { id: "call_0", name: "end_call", arguments: '{"reason":"bye"}' } },
      { type: "done", finishReason: "tool_calls" },
    ]);
  });

  it("reassembles any fragmentation of tool-call arguments into the same JSON", () => {
    const args = JSON.stringify({
      city: "Paris",
      units: "celsius",
      days: [1, 2, 3],
      note: 'quote " and \\ slash',
    });
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: args.length - 1 }), { maxLength: 12 }), (cuts) => {
        const points = [0, ...[...new Set(cuts)].sort((a, b) => a - b), args.length];
        const assembler = new ChatStreamAssembler();
        const events = [
          ...assembler.pushChunk({
            choices: [
              { delta: { tool_calls: [{ index: 0, id: "c1", function: { name: "f", arguments: "" } }] } },
            ],
          }),
        ];
        for (let i = 0; i + 1 < points.length; i++) {
          const fragment = args.slice(points[i], points[i + 1]);
          events.push(
            ...assembler.pushChunk({
              choices: [{ delta: { tool_calls: [{ index: 0, function: { arguments: fragment } }] } }],
            }),
          );
        }
        events.push(
          ...assembler.pushChunk({ choices: [{ delta: {}, finish_reason: "tool_calls" }] }),
          ...assembler.finish(),
        );
        expect(events).toEqual([
          { type: "tool_call", call: { id: "c1", name: "f", arguments: args } },
          { type: "done", finishReason: "tool_calls" },
        ]);
      }),
    );
  });

  it("a stream that ends without finish_reason or [DONE] finishes with error", () => {
    const assembler = new ChatStreamAssembler();
    assembler.pushChunk({ choices: [{ delta: { content: "cut" } }] });
    expect(assembler.finish()).toEqual([{ type: "done", finishReason: "error" }]);
  });

  it("caps tool-call argument growth and rejects non-JSON chunks", () => {
    const assembler = new ChatStreamAssembler();
    const huge = "x".repeat(MAX_TOOL_ARGUMENTS + 1);
    expect(() =>
      assembler.pushChunk({
        choices: [{ delta: { tool_calls: [{ index: 0, function: { name: "f", arguments: huge } }] } }],
      }),
    ).toThrow(RangeError);
    expect(() => new ChatStreamAssembler().pushData("{nope")).toThrow(SyntaxError);
  });
});

describe("status classification and retries", () => {
  it("never retries 4xx except 408 and 429", () => {
    expect([400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503].map(isRetryableStatus)).toEqual([
      false,
      false,
      false,
      false,
      true,
      false,
      false,
      true,
      true,
      true,
      true,
    ]);
    expect([401, 403, 408, 429, 400, 503].map(codeForStatus)).toEqual([
      "auth",
      "auth",
      "timeout",
      "rate-limit",
      "bad-request",
      "unavailable",
    ]);
  });

  it("retries only retryable errors, with backoff through the injected sleep", async () => {
    const slept: number[] = [];
    const sleep = async (ms: number) => {
      slept.push(ms);
    };
    let calls = 0;
    const value = await withRetries(
      "p",
      async () => {
        calls++;
        if (calls < 3) throw new ProviderError("p", "rate-limit", "busy", true, 429);
        return "ok";
      },
      { policy: { attempts: 5, baseDelayMs: 100, maxDelayMs: 150 }, sleep },
    );
    expect(value).toBe("ok");
    expect(slept).toEqual([100, 150]);

    calls = 0;
    await expect(
      withRetries(
        "p",
        async () => {
          calls++;
          throw new ProviderError("p", "auth", "no", false, 401);
        },
        { sleep },
      ),
    ).rejects.toMatchObject({ code: "auth" });
    expect(calls).toBe(1);
  });
});

describe("bytes and audio glue", () => {
  it("base64 round-trips any bytes and rejects garbage without throwing", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 70_000 }), (bytes) => {
        expect(base64ToBytes(bytesToBase64(bytes))).toEqual(bytes);
      }),
      { numRuns: 20 },
    );
    expect(base64ToBytes("not*base64")).toBeUndefined();
  });

  it("reads PCM16 LE split at odd byte boundaries", () => {
    const samples = Int16Array.from([0, 1, -1, 32767, -32768, 1234, -4321]);
    const bytes = pcm16ToLeBytes(samples);
    const reader = new Pcm16LeReader();
    const out = [
      ...reader.read(bytes.subarray(0, 3)),
      ...reader.read(bytes.subarray(3, 8)),
      ...reader.read(bytes.subarray(8)),
    ];
    expect(out).toEqual([...samples]);
  });

  it("writes a WAV that its own header reader understands", () => {
    const wav = wavFromPcm16(Int16Array.from([1, 2, 3]), 8000);
    expect(wav.length).toBe(50);
    expect(wavDataOffset(wav)).toEqual({ offset: 44, sampleRate: 8000 });
    expect(wavDataOffset(new Uint8Array(10))).toBeUndefined();
  });
});
