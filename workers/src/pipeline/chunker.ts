/**
 * Cuts streamed LLM text into speakable clauses so TTS can start on the first one instead of waiting
 * for the whole answer. A clause ends at sentence punctuation (. ! ? …) or, once it is long enough, at
 * clause punctuation (, ; : —), each followed by whitespace; decimals like "3.5" and common
 * abbreviations ("Mr.", "e.g.") do not end a sentence. A clause shorter than `minChars` is held and
 * joined to the next, so TTS does not get "Yes." and "Sure," as separate requests. Pure and
 * allocation-light: push(delta) returns the clauses completed by that delta.
 */
export interface ChunkerOptions {
  /** Do not emit a clause shorter than this (except at flush). */
  minChars: number;
  /** Break at , ; : only once the clause is at least this long. */
  minCharsForSoftBreak: number;
  /** Force a break at the last space once a clause grows this long with no punctuation. */
  maxChars: number;
}

export const defaultChunkerOptions: ChunkerOptions = {
  minChars: 12,
  minCharsForSoftBreak: 40,
  maxChars: 220,
};

const ABBREVIATIONS = new Set(["mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "no", "approx"]);

export class ClauseChunker {
  #buffer = "";

  constructor(private readonly options: ChunkerOptions = defaultChunkerOptions) {}

  push(delta: string): string[] {
    this.#buffer += delta;
    const clauses: string[] = [];
    for (;;) {
      const cut = this.#findCut();
      if (cut < 0) break;
      const clause = this.#buffer.slice(0, cut).trim();
      this.#buffer = this.#buffer.slice(cut);
      if (clause) clauses.push(clause);
    }
    return clauses;
  }

  /** The end of the text: whatever is buffered is a clause. */
  flush(): string | undefined {
    const rest = this.#buffer.trim();
    this.#buffer = "";
    return rest || undefined;
  }

  reset(): void {
    this.#buffer = "";
  }

  /** Index just after a clause boundary in the buffer, or -1. */
  #findCut(): number {
    const text = this.#buffer;
    const { minChars, minCharsForSoftBreak, maxChars } = this.options;
    // Leading whitespace does not count toward the clause length.
    let start = 0;
    while (start < text.length && /\s/.test(text[start]!)) start++;
    for (let i = start; i < text.length - 1; i++) {
      const char = text[i]!;
      const next = text[i + 1]!;
      if (!/\s/.test(next)) continue;
      const length = i + 1 - start;
      if (".!?…".includes(char)) {
        if (length < minChars) continue;
        if (char === "." && this.#isAbbreviationOrNumber(text, start, i)) continue;
        return i + 1;
      }
      if (",;:—".includes(char) && length >= minCharsForSoftBreak) return i + 1;
    }
    if (text.length - start >= maxChars) {
      const space = text.lastIndexOf(" ", start + maxChars);
      if (space > start) return space + 1;
    }
    return -1;
  }

  #isAbbreviationOrNumber(text: string, start: number, dot: number): boolean {
    let wordStart = dot;
    while (wordStart > start && !/\s/.test(text[wordStart - 1]!)) wordStart--;
    const word = text.slice(wordStart, dot).toLowerCase();
    if (ABBREVIATIONS.has(word)) return true;
    // A single letter ("J. Smith") is an initial.
    return /^[a-z]$/.test(word);
  }
}
