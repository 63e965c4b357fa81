import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_REPLY_PHRASES, AGENT_RULES, PocketSphinxRecognizer, synthesizeSpeech } from "../src/index";

/** What an end-to-end test's caller does to check the agent's answer: recognize it against the replies. */
let recognizer: PocketSphinxRecognizer;

beforeAll(async () => {
  recognizer = await PocketSphinxRecognizer.create({ phrases: AGENT_REPLY_PHRASES });
});
afterAll(async () => {
  await recognizer?.close();
});

describe("caller-side recognition of the agent's replies", () => {
  it.each(["hours", "price"])(
    "hears the %s answer spoken with the nova voice through 8 kHz μ-law",
    async (name) => {
      const reply = AGENT_RULES.find((rule) => rule.name === name)!.reply;
      const ulaw = await synthesizeSpeech(reply, { voice: "nova", format: "mulaw" });
      const heard = await recognizer.transcribe({
        encoding: "mulaw",
        sampleRate: 8000,
        channels: 1,
        data: ulaw,
        durationSeconds: ulaw.length / 8000,
      });
      const expected = reply.toLowerCase().replace(/[^a-z ]+/g, "");
      expect(heard).toBe(expected);
    },
  );

  it("synthesizeSpeech returns the requested format", async () => {
    const wav = await synthesizeSpeech("hello", { format: "wav" });
    expect(new TextDecoder().decode(wav.subarray(0, 4))).toBe("RIFF");
    await expect(synthesizeSpeech("hello", { voice: "robot" })).rejects.toThrow(/unknown voice/);
  });
});
