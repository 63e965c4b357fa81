/**
 * The deploy check for agent definitions (`pnpm check:agents` runs this file): every JSON file in
 * workers/agents/ must be valid and bundled, and the schema must reject what it should, with messages
 * that name the field.
 */
import { describe, expect, it } from "vitest";
import { AgentCatalog, bundledAgentSources, dialedUser } from "../src/agents/catalog";
import { checkAgentDefinition } from "../src/agents/schema";
import { callMetadata } from "./helpers/bridge";

// Vite's import.meta.glob (resolved at transform time); typed here because vite is not a direct dependency.
declare global {
  interface ImportMeta {
    glob<T>(pattern: string, options: { eager: true; import: "default" }): Record<string, T>;
  }
}

const files = import.meta.glob<unknown>("../agents/*.json", { eager: true, import: "default" });

describe("workers/agents/*.json", () => {
  const entries = Object.entries(files).map(
    ([path, raw]) => [path.replace(/^.*\/(.*)\.json$/, "$1"), raw] as const,
  );

  it("has at least the default agent", () => {
    expect(entries.map(([name]) => name)).toContain("receptionist");
  });

  for (const [name, raw] of entries) {
    it(`${name}.json is a valid agent definition`, () => {
      const check = checkAgentDefinition(raw);
      if (!check.ok) throw new Error(`agents/${name}.json is invalid:\n  ${check.errors.join("\n  ")}`);
      expect(check.agent.id, "the id must equal the file name").toBe(name);
    });

    it(`${name}.json is bundled (imported in src/agents/catalog.ts)`, () => {
      expect(bundledAgentSources[name], `add an import of agents/${name}.json to src/agents/catalog.ts`).toBe(
        raw,
      );
    });
  }

  it("routes are not claimed twice", () => {
    const seen = new Map<string, string>();
    for (const [name, raw] of entries) {
      const check = checkAgentDefinition(raw);
      if (!check.ok) continue;
      for (const route of [...check.agent.routing.numbers, ...check.agent.routing.extensions]) {
        expect(seen.get(route), `${route} is routed to both ${seen.get(route)} and ${name}`).toBeUndefined();
        seen.set(route, name);
      }
    }
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
      { ...valid, callEndedWebhook: { url: "https://x.test", signingSecret: "lower" } },
      "callEndedWebhook.signingSecret:",
    ],
  ])("rejects %j naming the field", (input, fragment) => {
    const check = checkAgentDefinition(input);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.errors.join("\n")).toContain(fragment);
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
