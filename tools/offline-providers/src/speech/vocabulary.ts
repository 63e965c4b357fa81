/**
 * The restricted vocabulary PocketSphinx decodes against, built from the scripted caller phrases:
 * a JSGF grammar (one or more whole phrases per utterance), a dictionary cut down to the words used,
 * and the acoustic model's feature parameters with a cepstral-mean start tuned for telephony espeak.
 * Pure text builders; the recognizer writes their output to its work directory.
 */

/** Words of a phrase as the grammar and dictionary spell them. */
export function phraseWords(phrase: string): string[] {
  return phrase
    .toLowerCase()
    .replace(/[^a-z' ]+/g, " ")
    .split(/\s+/)
    .filter((word) => word.length > 0);
}

/**
 * One or more whole phrases per utterance. Measured (README): a free loop over the same words inserts
 * short words everywhere (0/9 phrases exact), whole phrases are recognized 9/9 at 140 wpm. Splitting
 * phrases into clauses at commas was tried for the agent's longer replies and made things worse
 * (short clauses such as "hello" or "okay" got inserted everywhere), so phrases stay whole.
 */
export function buildJsgf(phrases: readonly string[]): string {
  const alternatives = [...new Set(phrases.map((phrase) => phraseWords(phrase).join(" ")))].filter(
    (phrase) => phrase !== "",
  );
  return [
    "#JSGF V1.0;",
    "grammar patchbay;",
    `<phrase> = ${alternatives.join(" | ")};`,
    "public <utterance> = <phrase>+;",
    "",
  ].join("\n");
}

/** The CMU dictionary entries (all pronunciation variants, "word(2)") for the given words. */
export function buildDictionary(
  words: Iterable<string>,
  cmudict: string,
): { text: string; missing: string[] } {
  const wanted = new Set(words);
  const found = new Set<string>();
  const lines: string[] = [];
  for (const line of cmudict.split("\n")) {
    const head = line.slice(0, line.indexOf(" "));
    const word = head.replace(/\(\d+\)$/, "");
    if (wanted.has(word)) {
      lines.push(line);
      found.add(word);
    }
  }
  const missing = [...wanted].filter((word) => !found.has(word));
  return { text: `${lines.join("\n")}\n`, missing };
}

/**
 * The initial cepstral mean. The en-us model ships one measured on wideband microphone speech
 * (c0 = 41); espeak audio that went through 8 kHz G.711 sits far from it (c0 ≈ 53, c1 ≈ 28), and
 * live CMN only adapts after the first utterance — which in a one-shot transcription is the only
 * one. Starting from the mean measured on telephony espeak (average of the en-us, en-us+f3 and
 * en-us+m3 voices reading all caller phrases; pocketsphinx's own "cmn_live: Update to" log line)
 * took whole-phrase recognition from 1/9 to 9/9.
 */
export const TELEPHONY_ESPEAK_CMN_INIT = "53.2,27.8,-36.2,42.8,-34.6,0.1,12.4,-36.6,15.0,-14.7,2.5,9.9,-17.3";

/** The model's feat.params with `-cmninit` replaced (the model's file overrides the command line). */
export function tuneFeatureParams(featParams: string, cmnInit: string = TELEPHONY_ESPEAK_CMN_INIT): string {
  const lines = featParams.split("\n").filter((line) => !line.startsWith("-cmninit"));
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return `${lines.join("\n")}\n-cmninit ${cmnInit}\n`;
}
