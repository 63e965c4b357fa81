/**
 * Test wiring for the Durable Object tests: registers the fake providers under the id "fake" and the
 * test agents in the bundled catalog. Module state is shared between test files' code and the Durable
 * Object in the same workerd isolate, so the tests script and observe the fakes through `hub`.
 */
import { agentCatalog } from "../../src/agents/catalog";
import type { AgentDefinitionInput } from "../../src/agents/schema";
import { registerProvider, registerRealtimeProvider } from "../../src/providers/registry";
import { FakeHub, FakeLlm, FakeRealtime, FakeStt, FakeTts } from "./providers";

export const hub = new FakeHub();

registerProvider("stt", "fake", (choice) => {
  const endOfTurn = choice.options.endOfTurn !== false;
  return new FakeStt(hub, { capabilities: { endOfTurn }, endOfTurnSilenceMs: 200 });
});
registerProvider("llm", "fake", () => new FakeLlm(hub));
registerProvider("tts", "fake", () => new FakeTts(hub, 1));
registerRealtimeProvider("fake-realtime", () => new FakeRealtime(hub));

const base = {
  systemPrompt: "You are a test agent.",
  voice: "test-voice",
  stt: { provider: "fake" },
  llm: { provider: "fake", model: "fake-model" },
  tts: { provider: "fake" },
  bargeIn: { enabled: true, minSpeechMs: 100 },
  turn: { dtmfDebounceMs: 50 },
} satisfies Partial<AgentDefinitionInput>;

export const testAgents: AgentDefinitionInput[] = [
  {
    ...base,
    id: "test-basic",
    greeting: "Hello, this is the test line. How can I help?",
    tools: [
      { type: "builtin", name: "end_call" },
      { type: "builtin", name: "transfer_call" },
      { type: "builtin", name: "send_dtmf" },
      {
        type: "webhook",
        name: "lookup_order",
        description: "Look up an order",
        parameters: {
          type: "object",
          properties: { orderNumber: { type: "string" } },
          required: ["orderNumber"],
        },
        url: "https://hooks.test/lookup",
        timeoutMs: 2000,
        signingSecret: "TEST_WEBHOOK_SECRET",
      },
    ],
    routing: { extensions: ["7001"] },
    callEndedWebhook: { url: "https://hooks.test/call-ended", signingSecret: "TEST_WEBHOOK_SECRET" },
  },
  { ...base, id: "test-silent", description: "no greeting" },
  {
    ...base,
    id: "test-limits",
    greeting: "Hi.",
    limits: { maxDurationSeconds: 1, noAudioTimeoutSeconds: 0.3 },
  },
  {
    ...base,
    id: "test-hold",
    greeting: "Hi.",
    limits: { maxDurationSeconds: 600, noAudioTimeoutSeconds: 0.3 },
  },
  {
    ...base,
    id: "test-warm",
    greeting: "Hello, warm transfer line.",
    tools: [{ type: "builtin", name: "transfer_call" }],
    transferTargets: ["2002"],
    transfer: { mode: "warm" },
  },
  {
    ...base,
    id: "test-vars",
    systemPrompt: "You are calling {{customerName}} about their appointment.",
    greeting: "Hi {{customerName}}, this is the clinic.",
    variables: { customerName: "there" },
  },
  { ...base, id: "test-broken", stt: { provider: "no-such-vendor" } },
  {
    ...base,
    id: "test-realtime",
    mode: "realtime",
    greeting: "Hello from the realtime model.",
    llm: { provider: "fake-realtime", model: "fake-realtime-model" },
    tools: [{ type: "builtin", name: "end_call" }],
  },
  {
    ...base,
    id: "test-realtime-warm",
    mode: "realtime",
    greeting: "Hello from the realtime model.",
    llm: { provider: "fake-realtime", model: "fake-realtime-model" },
    tools: [{ type: "builtin", name: "transfer_call" }],
    transfer: { mode: "warm" },
  },
];

for (const agent of testAgents) agentCatalog().add(agent, `test agent ${agent.id}`);
