import { describe, expect, it } from "vitest";
import { agentCatalog } from "../src/agents/catalog";
import { agentDefinition } from "../src/agents/schema";
import {
  buildProviders,
  buildRealtimeProvider,
  KNOWN_PROVIDER_IDS,
  ProviderUnavailableError,
  registeredProviders,
  registeredRealtimeProviders,
  registerVendorProviders,
  secretByName,
} from "../src/providers/index";

registerVendorProviders();

const agent = (stt: string, llm: string, tts: string) =>
  agentDefinition.parse({
    id: "r",
    systemPrompt: "p",
    voice: "v",
    stt: { provider: stt },
    llm: { provider: llm, model: "m" },
    tts: { provider: tts },
  });

describe("provider registry", () => {
  it("registers exactly the ids the deploy check knows (KNOWN_PROVIDER_IDS)", () => {
    // Tests add their fakes under their own ids; everything else must be a known vendor id.
    const fakes = new Set(["fake", "fake-realtime"]);
    for (const stage of ["stt", "llm", "tts"] as const) {
      expect(
        registeredProviders(stage)
          .filter((id) => !fakes.has(id))
          .sort(),
        stage,
      ).toEqual([...KNOWN_PROVIDER_IDS[stage]].sort());
    }
    expect(registeredRealtimeProviders().filter((id) => !fakes.has(id))).toEqual([
      ...KNOWN_PROVIDER_IDS.realtime,
    ]);
  });

  it("builds the default receptionist against a local OpenAI-compatible server without a key", () => {
    const providers = buildProviders(agentCatalog().get("receptionist")!, {
      OPENAI_BASE_URL: "http://127.0.0.1:9/v1",
    });
    expect([providers.stt.name, providers.llm.name, providers.tts.name]).toEqual([
      "openai",
      "openai",
      "openai",
    ]);
    expect(providers.stt.capabilities.endOfTurn).toBe(false);
  });

  it("requires OPENAI_API_KEY for api.openai.com", () => {
    expect(() => buildProviders(agentCatalog().get("receptionist")!, {})).toThrow(
      /secret OPENAI_API_KEY is not set/,
    );
  });

  it("says so when the AI binding is missing (the offline env)", () => {
    expect(() => buildProviders(agentCatalog().get("support-workers-ai")!, {})).toThrow(
      ProviderUnavailableError,
    );
    expect(() => buildProviders(agentCatalog().get("support-workers-ai")!, {})).toThrow(
      /AI binding is not configured/,
    );
  });

  it("builds every vendor when its secret is set", () => {
    const env = {
      DEEPGRAM_API_KEY: "k",
      ELEVENLABS_API_KEY: "k",
      CARTESIA_API_KEY: "k",
      OPENAI_API_KEY: "k",
    };
    expect(buildProviders(agent("deepgram", "openai", "deepgram"), env).tts.name).toBe("deepgram-aura");
    expect(
      buildProviders(agent("deepgram-flux", "openai", "elevenlabs"), env).stt.capabilities.eagerEndOfTurn,
    ).toBe(true);
    expect(buildProviders(agent("deepgram", "openai", "cartesia"), env).tts.name).toBe("cartesia");
    expect(() => buildProviders(agent("deepgram", "openai", "cartesia"), {})).toThrow(/DEEPGRAM_API_KEY/);
  });

  it("names the unknown provider and the known ones", () => {
    expect(() => buildProviders(agent("whisper-local", "openai", "openai"), { OPENAI_API_KEY: "k" })).toThrow(
      /stt provider whisper-local not available: not registered \(known: .*deepgram/,
    );
  });

  it("builds the realtime provider for realtime agents", () => {
    const realtime = agentDefinition.parse({
      id: "rt",
      mode: "realtime",
      systemPrompt: "p",
      voice: "marin",
      stt: { provider: "openai-realtime" },
      llm: { provider: "openai-realtime", model: "gpt-realtime" },
      tts: { provider: "openai-realtime" },
    });
    expect(buildRealtimeProvider(realtime, { OPENAI_API_KEY: "k" }).name).toBe("openai-realtime");
    expect(() => buildRealtimeProvider(realtime, {})).toThrow(/OPENAI_API_KEY/);
    expect(() => buildProviders(realtime, { OPENAI_API_KEY: "k" })).toThrow(/speech-to-speech/);
  });
});

describe("secrets named at run time", () => {
  it("finds a non-empty own string only", () => {
    const env = { CRM_WEBHOOK_SECRET: "s3cret", EMPTY: "", NUMBER: 42 };
    expect(secretByName(env, "CRM_WEBHOOK_SECRET")).toBe("s3cret");
    expect(secretByName(env, "EMPTY")).toBeUndefined();
    expect(secretByName(env, "NUMBER")).toBeUndefined();
    expect(secretByName(env, "toString")).toBeUndefined();
    expect(secretByName(env, "MISSING")).toBeUndefined();
  });
});
