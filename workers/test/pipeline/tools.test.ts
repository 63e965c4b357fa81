import { describe, expect, it } from "vitest";
import { agentDefinition, type WebhookToolDefinition } from "../../src/agents/schema";
import { ManualClock } from "../../src/pipeline/clock";
import {
  parseToolArguments,
  runWebhookTool,
  signWebhookBody,
  toolSpecsFor,
  type WebhookDeps,
} from "../../src/pipeline/tools";

const tool: WebhookToolDefinition = {
  type: "webhook",
  name: "lookup",
  description: "Look up",
  parameters: {
    type: "object",
    properties: { id: { type: "string" }, n: { type: "integer" } },
    required: ["id"],
  },
  url: "https://hooks.example/lookup",
  timeoutMs: 1000,
  signingSecret: "HOOK_SECRET",
};

function deps(fetcher: WebhookDeps["fetch"], clock = new ManualClock()): WebhookDeps {
  return {
    fetch: fetcher,
    clock,
    unixSeconds: () => 1_700_000_000,
    secret: (name) => (name === "HOOK_SECRET" ? "s3cret" : undefined),
  };
}

const context = { callId: "call-12345678", agentId: "a", toolCallId: "tc1" };

describe("webhook tools", () => {
  it("POSTs signed JSON and returns the response text", async () => {
    let seen: { body: string; signature: string | null } | undefined;
    const result = await runWebhookTool(
      tool,
      { id: "A1" },
      context,
      deps(async (_url, init) => {
        const headers = new Headers(init?.headers);
        seen = { body: String(init?.body), signature: headers.get("x-patchbay-signature") };
        return new Response('{"ok":true}');
      }),
    );
    expect(result).toBe('{"ok":true}');
    expect(JSON.parse(seen!.body)).toEqual({
      tool: "lookup",
      arguments: { id: "A1" },
      callId: "call-12345678",
      agent: "a",
      toolCallId: "tc1",
    });
    expect(seen!.signature).toBe(await signWebhookBody("s3cret", seen!.body, 1_700_000_000));
    expect(seen!.signature).toMatch(/^t=1700000000,v1=[0-9a-f]{64}$/);
  });

  it("gives up after timeoutMs and tells the model", async () => {
    const clock = new ManualClock();
    const hanging: WebhookDeps["fetch"] = (_url, init) =>
      new Promise((_resolve, reject) =>
        init?.signal?.addEventListener("abort", () => reject(init.signal?.reason)),
      );
    const pending = runWebhookTool(tool, { id: "A1" }, context, deps(hanging, clock));
    await new Promise((resolve) => setTimeout(resolve, 0));
    clock.advance(1000);
    expect(await pending).toBe("error: the lookup service did not answer within 1000 ms");
  });

  /**
   * Regression: the timeout was cancelled as soon as the headers arrived and the body was read with
   * no limit, so a server that answered 200 and then never finished its body stalled the turn.
   */
  it("the timeout covers the response body: headers then a body that never ends is a timeout", async () => {
    const clock = new ManualClock();
    let cancelled = false;
    const trickle: WebhookDeps["fetch"] = async () =>
      new Response(
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode('{"partial":'));
          },
          cancel() {
            cancelled = true;
          },
        }),
      );
    const pending = runWebhookTool(tool, { id: "A1" }, context, deps(trickle, clock));
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 0));
    clock.advance(1000);
    expect(await pending).toBe("error: the lookup service did not answer within 1000 ms");
    expect(cancelled).toBe(true);
  });

  it("keeps the first 4,000 characters of a long answer", async () => {
    const result = await runWebhookTool(
      tool,
      { id: "A1" },
      context,
      deps(async () => new Response("y".repeat(50_000))),
    );
    expect(result).toBe("y".repeat(4_000));
  });

  it("an unsigned tool (unsigned: true) sends no signature header", async () => {
    let signature: string | null | undefined;
    const { signingSecret: _omit, ...rest } = tool;
    const unsigned: WebhookToolDefinition = { ...rest, unsigned: true };
    await runWebhookTool(
      unsigned,
      { id: "A1" },
      context,
      deps(async (_url, init) => {
        signature = new Headers(init?.headers).get("x-patchbay-signature");
        return new Response("ok");
      }),
    );
    expect(signature).toBeNull();
  });

  it("reports HTTP errors and a missing signing secret as results, not exceptions", async () => {
    expect(
      await runWebhookTool(
        tool,
        {},
        context,
        deps(async () => new Response("nope", { status: 503 })),
      ),
    ).toBe("error: the lookup service answered HTTP 503: nope");
    const noSecret = { ...deps(async () => new Response("")), secret: () => undefined };
    expect(await runWebhookTool(tool, {}, context, noSecret)).toBe(
      "error: the lookup service failed: signing secret HOOK_SECRET is not set",
    );
  });

  it("is cancelled with the turn (barge-in aborts the request)", async () => {
    const controller = new AbortController();
    const hanging: WebhookDeps["fetch"] = (_url, init) =>
      new Promise((_resolve, reject) =>
        init?.signal?.addEventListener("abort", () => reject(new Error("aborted"))),
      );
    const pending = runWebhookTool(tool, { id: "A1" }, context, deps(hanging), controller.signal);
    await new Promise((resolve) => setTimeout(resolve, 0));
    controller.abort(new Error("barge-in"));
    await expect(pending).rejects.toThrow("aborted");
  });
});

describe("tool arguments", () => {
  it("checks JSON, object shape, required keys and primitive types", () => {
    expect(parseToolArguments('{"id":"x","n":2}', tool.parameters)).toEqual({
      ok: true,
      value: { id: "x", n: 2 },
    });
    expect(parseToolArguments("", { type: "object", properties: {} })).toEqual({ ok: true, value: {} });
    expect(parseToolArguments("{", tool.parameters)).toEqual({
      ok: false,
      error: "arguments are not valid JSON",
    });
    expect(parseToolArguments("[1]", tool.parameters)).toEqual({
      ok: false,
      error: "arguments must be a JSON object",
    });
    expect(parseToolArguments("{}", tool.parameters)).toEqual({ ok: false, error: "missing argument id" });
    expect(parseToolArguments('{"id":"x","n":2.5}', tool.parameters)).toEqual({
      ok: false,
      error: "argument n must be of type integer",
    });
  });

  it("describes built-ins to the model, with the allowed transfer targets", () => {
    const agent = agentDefinition.parse({
      id: "t",
      systemPrompt: "p",
      voice: "v",
      stt: { provider: "x" },
      llm: { provider: "x", model: "m" },
      tts: { provider: "x" },
      tools: [{ type: "builtin", name: "transfer_call" }, tool],
      transferTargets: ["2001", "2002"],
    });
    const specs = toolSpecsFor(agent);
    expect(specs.map((spec) => spec.name)).toEqual(["transfer_call", "lookup"]);
    expect(specs[0]?.description).toContain("Allowed targets: 2001, 2002.");
    expect(specs[1]?.parameters).toEqual(tool.parameters);
  });
});
