/**
 * Runs in Node before the workerd test pool starts: launches the fake vendor servers on 127.0.0.1
 * (free ports) and hands their base URLs to the tests through vitest's provide/inject. The workers
 * under test reach them with ordinary fetch (cloudflare.md §5.3). Everything is stopped in teardown.
 */
import type { TestProject } from "vitest/node";
import { FakeDeepgram } from "./fakes/deepgram";
import { FakeOpenAiHttp } from "./fakes/openai-http";
import { FakeOpenAiRealtime } from "./fakes/openai-realtime";
import type { FakeServer } from "./fakes/server";
import { FakeCartesia, FakeElevenLabs } from "./fakes/tts-sockets";

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const fakes: Record<string, FakeServer> = {
    deepgram: new FakeDeepgram(),
    openai: new FakeOpenAiHttp(),
    realtime: new FakeOpenAiRealtime(),
    elevenlabs: new FakeElevenLabs(),
    cartesia: new FakeCartesia(),
  };
  const urls: FakeVendorUrls = { deepgram: "", openai: "", realtime: "", elevenlabs: "", cartesia: "" };
  try {
    for (const name of Object.keys(urls) as (keyof FakeVendorUrls)[]) urls[name] = await fakes[name]!.start();
  } catch (error) {
    await Promise.allSettled(Object.values(fakes).map((fake) => fake.stop()));
    throw error;
  }
  project.provide("fakeVendors", urls);
  return async () => {
    await Promise.allSettled(Object.values(fakes).map((fake) => fake.stop()));
  };
}

export interface FakeVendorUrls {
  deepgram: string;
  openai: string;
  realtime: string;
  elevenlabs: string;
  cartesia: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    fakeVendors: FakeVendorUrls;
  }
}
