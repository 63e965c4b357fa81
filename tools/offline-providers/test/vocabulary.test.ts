import { describe, expect, it } from "vitest";
import { NORMALIZE_FLOOR, normalizePeak, TARGET_PEAK } from "../src/speech/recognizer";
import { buildDictionary, buildJsgf, tuneFeatureParams } from "../src/speech/vocabulary";

describe("recognizer vocabulary", () => {
  it("builds a grammar of one or more whole phrases, deduplicated and normalized", () => {
    const grammar = buildJsgf(["Hello!", "what is the price", "hello"]);
    expect(grammar).toContain("<phrase> = hello | what is the price;");
    expect(grammar).toContain("public <utterance> = <phrase>+;");
  });

  it("keeps every pronunciation variant and reports missing words", () => {
    const cmudict = "hello HH AH L OW\nhello(2) HH EH L OW\nhelp HH EH L P\n";
    const dictionary = buildDictionary(["hello", "zyzzyva"], cmudict);
    expect(dictionary.text).toBe("hello HH AH L OW\nhello(2) HH EH L OW\n");
    expect(dictionary.missing).toEqual(["zyzzyva"]);
  });

  it("replaces the model's -cmninit and keeps its other parameters", () => {
    const tuned = tuneFeatureParams("-lowerf 130\n-cmninit 41.00,-5.29\n-cmn batch\n", "1,2,3");
    expect(tuned).toBe("-lowerf 130\n-cmn batch\n-cmninit 1,2,3\n");
  });
});

describe("normalizePeak", () => {
  it("scales speech to the target peak", () => {
    const samples = Int16Array.from([0, 1000, -2000, 500]);
    normalizePeak(samples);
    expect(Math.max(...samples.map(Math.abs))).toBe(TARGET_PEAK);
  });

  it("leaves near-silence alone so line noise is not amplified", () => {
    const samples = Int16Array.from([0, NORMALIZE_FLOOR - 1, -3]);
    normalizePeak(samples);
    expect(Array.from(samples)).toEqual([0, NORMALIZE_FLOOR - 1, -3]);
  });
});
