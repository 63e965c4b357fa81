import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ClauseChunker } from "../../src/pipeline/chunker";

function chunkAll(deltas: string[]): string[] {
  const chunker = new ClauseChunker();
  const clauses = deltas.flatMap((delta) => chunker.push(delta));
  const rest = chunker.flush();
  return rest ? [...clauses, rest] : clauses;
}

describe("ClauseChunker", () => {
  it("emits a sentence as soon as the whitespace after its full stop arrives", () => {
    const chunker = new ClauseChunker();
    expect(chunker.push("We are open from nine")).toEqual([]);
    expect(chunker.push(" to five.")).toEqual([]);
    expect(chunker.push(" On weekdays")).toEqual(["We are open from nine to five."]);
    expect(chunker.flush()).toBe("On weekdays");
  });

  it("joins short sentences to the next one instead of sending tiny TTS requests", () => {
    expect(chunkAll(["Yes. Sure. We can do that for you today."])).toEqual([
      "Yes. Sure. We can do that for you today.",
    ]);
  });

  it("does not split decimals, initials or common abbreviations", () => {
    expect(
      chunkAll(["The fee is 3.50 dollars per month. Ask Dr. Smith or J. Doe about it please. Done"]),
    ).toEqual(["The fee is 3.50 dollars per month.", "Ask Dr. Smith or J. Doe about it please.", "Done"]);
  });

  it("breaks at commas only once the clause is long", () => {
    expect(
      chunkAll(["Well, okay, so the thing you need to know about this plan, is that it renews monthly."]),
    ).toEqual(["Well, okay, so the thing you need to know about this plan,", "is that it renews monthly."]);
  });

  it("forces a break at a space when a clause runs on without punctuation", () => {
    const long = `${"word ".repeat(60)}end`;
    const clauses = chunkAll([long]);
    expect(clauses.length).toBeGreaterThan(1);
    for (const clause of clauses) expect(clause.length).toBeLessThanOrEqual(220);
  });

  it("handles ? ! and … and token-sized deltas", () => {
    const text =
      "Can I help you with anything else today? Great! Let me check that for you…  One moment please.";
    const byChar = chunkAll(text.split(""));
    expect(byChar).toEqual(chunkAll([text]));
    expect(byChar).toEqual([
      "Can I help you with anything else today?",
      "Great! Let me check that for you…",
      "One moment please.",
    ]);
  });

  it("never loses or reorders words, however the text is split into deltas", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.constantFrom("Hello", "there.", "Dr.", "3.5", "ok,", "yes!", "why?", "a", "long-word", "\n"),
          {
            maxLength: 60,
          },
        ),
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 20 }),
        (words, cuts) => {
          const text = words.join(" ");
          const deltas: string[] = [];
          let position = 0;
          for (let i = 0; position < text.length; i++) {
            const size = cuts[i % cuts.length]!;
            deltas.push(text.slice(position, position + size));
            position += size;
          }
          const clauses = chunkAll(deltas);
          expect(clauses.join(" ").split(/\s+/).filter(Boolean)).toEqual(text.split(/\s+/).filter(Boolean));
          for (const clause of clauses) expect(clause).toBe(clause.trim());
        },
      ),
    );
  });
});
