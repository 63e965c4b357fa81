/**
 * The deploy check for agent definitions (src/agents/check.ts; `pnpm check:agents` runs the same check
 * from Node): every JSON file in workers/agents/ must be valid and bundled, provider ids and model
 * choices must be ones the Worker has, and the schema must reject what it should, with messages that
 * name the file and the field.
 */
import { describe, expect, it } from "vitest";
import { AgentCatalog, bundledAgentSources, dialedUser } from "../src/agents/catalog";
import { checkAgentFile, checkAgentFiles } from "../src/agents/check";
import { checkAgentDefinition } from "../src/agents/schema";
import { callMetadata } from "./helpers/bridge";

// Vite's import.meta.glob (resolved at transform time); typed here because vite is not a direct dependency.
declare global {
  interface ImportMeta {
    glob<T>(pattern: string, options: { eager: true; import: "default" }): Record<string, T>;
  }
}

const files = import.meta.glob<unknown>("../agents/*.json", { eager: true, import: "default" });

describe("workers/agents/*.json (the deploy check, as pnpm check:agents runs it)", () => {
  const named = Object.fromEntries(
    Object.entries(files).map(([path, raw]) => [path.replace(/^.*\/(.*)\.json$/, "$1"), raw] as const),
  );

  it("every file is valid, bundled, routed once, and the default agent exists", () => {
    expect(Object.keys(named)).toContain("receptionist");
    expect(checkAgentFiles(named, bundledAgentSources)).toEqual([]);
  });

  it("an invalid definition fails with a message naming the file and the key", () => {
    const receptionist = named.receptionist as Record<string, unknown>;
    const errors = checkAgentFiles(
      {
        ...named,
        broken: { ...receptionist, id: "broken", routing: {}, stt: { provider: "whisper-local" }, voice: "" },
      },
      bundledAgentSources,
    );
    expect(errors).toEqual([
      "agents/broken.json: voice: Too small: expected string to have >=1 characters",
      "agents/broken.json: (file): not bundled: add an import of it to src/agents/catalog.ts",
    ]);
  });

  it.each([
    [
      { stt: { provider: "whisper-local" } },
      'stt.provider: unknown stt provider "whisper-local" (known: deepgram,',
    ],
    [{ tts: { provider: "polly" } }, 'tts.provider: unknown tts provider "polly"'],
    [
      { llm: { provider: "openai-realtime", model: "gpt-realtime" } },
      'llm.provider: "openai-realtime" is a speech-to-speech provider: set "mode": "realtime"',
    ],
    [
      { mode: "realtime", llm: { provider: "openai", model: "gpt-4o" } },
      'llm.provider: unknown realtime provider "openai" (known: openai-realtime)',
    ],
    [
      { llm: { provider: "openai", model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast" } },
      'llm.model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast" is a Workers AI model: use "provider": "workers-ai"',
    ],
    [
      { llm: { provider: "workers-ai", model: "gpt-4o-mini" } },
      "llm.model: Workers AI model ids start with @cf/ or @hf/",
    ],
    [
      { stt: { provider: "workers-ai", model: "@cf/openai/whisper" } },
      "stt.model: Workers AI speech recognition is @cf/deepgram/flux or @cf/deepgram/nova-3",
    ],
    [
      { stt: { provider: "deepgram", model: "flux-general-en" } },
      'stt.model: "flux-general-en" is a Flux model: use "provider": "deepgram-flux"',
    ],
    [
      { stt: { provider: "deepgram-flux", model: "nova-3" } },
      'stt.model: deepgram-flux takes a flux-… model, not "nova-3"',
    ],
    [{ tts: { provider: "deepgram" }, voice: "alloy" }, "voice: Deepgram Aura voices are aura-… model names"],
    [{ id: "someone-else" }, 'id: "someone-else" must equal the file name "receptionist"'],
    [
      { callEndedWebhook: { url: "https://x.test/h", signingSecret: "UNDECLARED_SECRET" } },
      "callEndedWebhook.signingSecret: UNDECLARED_SECRET is not declared in WEBHOOK_SECRETS",
    ],
  ])("rejects %j with the file and the key", (change, fragment) => {
    const errors = checkAgentFile("receptionist", { ...(named.receptionist as object), ...change });
    expect(errors.join("\n")).toContain(`agents/receptionist.json: ${fragment}`);
  });
});

describe("agent schema", () => {
  const valid = {
    id: "x",
    systemPrompt: "p",
    voice: "v",
    stt: { provider: "deepgram" },
    llm: { provider: "openai", model: "m" },
    tts: { provider: "cartesia" },
  };

  it("fills defaults in one place", () => {
    const check = checkAgentDefinition(valid);
    if (!check.ok) throw new Error(check.errors.join());
    expect(check.agent).toMatchObject({
      mode: "pipeline",
      language: "en",
      bargeIn: { enabled: true, minSpeechMs: 300 },
      turn: { silenceMs: 700 },
      tools: [],
      limits: { maxDurationSeconds: 1800, noAudioTimeoutSeconds: 30 },
    });
  });

  it.each([
    [{ ...valid, id: "Bad Id" }, "id:"],
    [{ ...valid, systemPrompt: "" }, "systemPrompt:"],
    [{ ...valid, llm: { provider: "openai" } }, "llm.model:"],
    [{ ...valid, bargeIn: { minSpeechMs: -1 } }, "bargeIn.minSpeechMs:"],
    [{ ...valid, tools: [{ type: "builtin", name: "launch" }] }, "tools.0.name:"],
    [
      {
        ...valid,
        tools: [
          { type: "webhook", name: "w", description: "d", parameters: { type: "object" }, url: "ftp://x" },
        ],
      },
      "tools.0.url:",
    ],
    [
      {
        ...valid,
        tools: [
          { type: "builtin", name: "end_call" },
          { type: "builtin", name: "end_call" },
        ],
      },
      "duplicate tool end_call",
    ],
    [{ ...valid, routing: { extensions: ["12a"] } }, "routing.extensions.0:"],
    [
      {
        ...valid,
        tools: [
          {
            type: "webhook",
            name: "w",
            description: "d",
            parameters: { type: "object" },
            url: "https://x.test",
          },
        ],
      },
      'tools.0.signingSecret: set signingSecret (the secret that signs each request) or "unsigned": true',
    ],
    [
      {
        ...valid,
        tools: [
          {
            type: "webhook",
            name: "w",
            description: "d",
            parameters: { type: "object" },
            url: "https://x.test",
            signingSecret: "S",
            unsigned: true,
          },
        ],
      },
      'tools.0.signingSecret: signingSecret and "unsigned": true contradict each other',
    ],
    [
      { ...valid, callEndedWebhook: { url: "https://x.test" } },
      "callEndedWebhook.signingSecret: set signingSecret",
    ],
    [
      { ...valid, callEndedWebhook: { url: "https://x.test", signingSecret: "lower" } },
      "callEndedWebhook.signingSecret:",
    ],
  ])("rejects %j naming the field", (input, fragment) => {
    const check = checkAgentDefinition(input);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.errors.join("\n")).toContain(fragment);
  });

  it("accepts an explicitly unsigned webhook", () => {
    const check = checkAgentDefinition({
      ...valid,
      tools: [
        {
          type: "webhook",
          name: "w",
          description: "d",
          parameters: { type: "object" },
          url: "https://x.test",
          unsigned: true,
        },
      ],
      callEndedWebhook: { url: "https://x.test/ended", unsigned: true },
    });
    expect(check.ok).toBe(true);
  });

  it("a catalog refuses an invalid definition with every problem listed", () => {
    expect(() => new AgentCatalog({ broken: { id: "broken" } })).toThrow(
      /agent definition broken is invalid:\n {2}systemPrompt/,
    );
  });
});

describe("agent selection", () => {
  const catalog = new AgentCatalog(bundledAgentSources);

  it("explicit agent, then X-Patchbay-Agent header, then number/extension, then default", () => {
    expect(
      catalog.select(callMetadata({ agent: "support-workers-ai", to: "sip:1000@pbx" }), "receptionist").id,
    ).toBe("support-workers-ai");
    expect(
      catalog.select(callMetadata({ headers: { "X-Patchbay-Agent": "support-workers-ai" } }), "receptionist")
        .id,
    ).toBe("support-workers-ai");
    expect(
      catalog.select(callMetadata({ to: "<sip:+15550100200@carrier;user=phone>" }), "receptionist").id,
    ).toBe("support-workers-ai");
    expect(catalog.select(callMetadata({ to: "sip:1002@pbx" }), "receptionist").id).toBe(
      "support-workers-ai",
    );
    expect(catalog.select(callMetadata({ to: "sip:5555@pbx" }), "receptionist").id).toBe("receptionist");
    expect(catalog.select(callMetadata({ agent: "nope", to: "sip:5555@pbx" }), "receptionist").id).toBe(
      "receptionist",
    );
  });

  it("fails loudly when the default agent does not exist", () => {
    expect(() => catalog.select(callMetadata({ to: "sip:5555@pbx" }), "missing")).toThrow(
      "default agent missing is not defined",
    );
  });

  it("extracts the dialed user part", () => {
    expect(dialedUser("sip:1000@10.0.0.1:5060")).toBe("1000");
    expect(dialedUser('"Sales" <sips:+4930123@pbx>;tag=1')).toBe("+4930123");
    expect(dialedUser("2001")).toBe("2001");
    expect(dialedUser("sip:alice@pbx")).toBeUndefined();
  });
});
