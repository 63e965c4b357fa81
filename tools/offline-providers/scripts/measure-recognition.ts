/**
 * Measures how well the offline recognizer hears the scripted caller phrases after telephony:
 * espeak-ng → 8 kHz G.711 μ-law (what a test caller sends as RTP) → decoded and upsampled to 16 kHz
 * by the recognizer → PocketSphinx, under several decoder setups, voices and speeds.
 *
 *   pnpm --filter @patchbay/offline-providers exec tsx scripts/measure-recognition.ts [--quick]
 *
 * Prints a Markdown table: exact phrase accuracy, keyword accuracy (each phrase's keywords found in
 * the transcript) and rule accuracy (the scripted agent picks the intended rule from the transcript).
 */
import { matchRule, normalizeUtterance } from "../src/chat/agent";
import { AGENT_REPLY_PHRASES, CALLER_PHRASES } from "../src/chat/rules";
import { FORMAT_SPECS } from "../src/speech/formats";
import { PocketSphinxRecognizer, type RecognizerOptions } from "../src/speech/recognizer";
import { synthesize } from "../src/speech/synthesizer";
import type { WavInfo } from "../src/speech/wav";

interface Setup {
  name: string;
  options: Omit<RecognizerOptions, "phrases">;
}

const SETUPS: Setup[] = [
  { name: "stock LM, stock CMN (baseline)", options: { freeForm: true, cmnInit: null } },
  { name: "stock LM, tuned CMN", options: { freeForm: true } },
  { name: "phrase grammar, stock CMN", options: { cmnInit: null } },
  { name: "phrase grammar, tuned CMN (served)", options: {} },
];

const quick = process.argv.includes("--quick");
const VOICES = quick ? ["en-us"] : ["en-us", "en-us+f3", "en-us+m3", "en-us+f2"];
const SPEEDS = quick ? [140] : [120, 140, 170];
/** Baselines are slow (free-form decoding ~1 s CPU per phrase); run them on the served voice only. */
const BASELINE_VOICE = "en-us";
const BASELINE_SPEED = 140;
/** μ-law codes of the smallest magnitudes (0xFF/0x7F are ±0). */
const FAINT_NOISE = [0xff, 0x7f, 0xfe, 0x7e, 0xfd, 0x7d];

async function telephonyUtterance(
  text: string,
  voice: string,
  wordsPerMinute: number,
  padSeconds: number,
  gainDb = 0,
) {
  // A quieter or louder line: sox applies the gain before μ-law encoding.
  const spec = {
    ...FORMAT_SPECS.mulaw,
    soxOutput: [...FORMAT_SPECS.mulaw.soxOutput, "gain", String(gainDb)],
  };
  const synthesis = synthesize({ text, voice, wordsPerMinute, spec });
  const chunks: Buffer[] = [];
  for await (const chunk of synthesis.audio) chunks.push(chunk as Buffer);
  await synthesis.done;
  const speech = Buffer.concat(chunks);
  // Silence padding with faint line noise (μ-law bytes within ±16 of zero), like a VAD-cut segment.
  const pad = Math.round(padSeconds * 8000);
  const samples = new Uint8Array(speech.length + 2 * pad);
  for (let i = 0; i < samples.length; i++)
    samples[i] = FAINT_NOISE[Math.floor(Math.random() * FAINT_NOISE.length)]!;
  samples.set(speech, pad);
  // Handed over as μ-law; sox decodes it with the standard G.711 table, as the pipeline would.
  const info: WavInfo = {
    encoding: "mulaw",
    sampleRate: 8000,
    channels: 1,
    data: samples,
    durationSeconds: samples.length / 8000,
  };
  return info;
}

interface Score {
  phrases: number;
  exact: number;
  keywords: number;
  keywordsFound: number;
  rulesRight: number;
  decodeMs: number;
  misses: string[];
}

async function score(
  recognizer: PocketSphinxRecognizer,
  voice: string,
  speed: number,
  pad: number,
  gainDb: number,
): Promise<Score> {
  const result: Score = {
    phrases: 0,
    exact: 0,
    keywords: 0,
    keywordsFound: 0,
    rulesRight: 0,
    decodeMs: 0,
    misses: [],
  };
  for (const phrase of CALLER_PHRASES) {
    const audio = await telephonyUtterance(phrase.text, voice, speed, pad, gainDb);
    const started = performance.now();
    const heard = normalizeUtterance(await recognizer.transcribe(audio));
    result.decodeMs += performance.now() - started;
    const words = new Set(heard.split(" "));
    result.phrases++;
    if (heard === phrase.text) result.exact++;
    else result.misses.push(`"${phrase.text}" → "${heard}"`);
    result.keywords += phrase.keywords.length;
    result.keywordsFound += phrase.keywords.filter((keyword) => words.has(keyword)).length;
    if (matchRule(heard)?.name === phrase.rule) result.rulesRight++;
  }
  return result;
}

function percent(part: number, whole: number): string {
  return `${part}/${whole} (${Math.round((100 * part) / whole)}%)`;
}

interface Condition {
  voice: string;
  speed: number;
  /** Row label for the line condition. */
  line: string;
  pad: number;
  gainDb: number;
}
const CLEAN = { line: "clean", pad: 0, gainDb: 0 };
/** Line conditions tried on the served voice and speed only. */
const LINE_VARIANTS: Condition[] = [
  { voice: BASELINE_VOICE, speed: BASELINE_SPEED, line: "0.4 s noise pad", pad: 0.4, gainDb: 0 },
  { voice: BASELINE_VOICE, speed: BASELINE_SPEED, line: "-20 dB", pad: 0, gainDb: -20 },
  { voice: BASELINE_VOICE, speed: BASELINE_SPEED, line: "+4 dB", pad: 0, gainDb: 4 },
];

const rows: string[] = [];
const misses: string[] = [];
for (const setup of SETUPS) {
  const served = setup.name.includes("served");
  const recognizer = await PocketSphinxRecognizer.create({
    phrases: CALLER_PHRASES.map((phrase) => phrase.text),
    maxConcurrent: 1,
    ...setup.options,
  });
  try {
    const conditions: Condition[] = served
      ? VOICES.flatMap((voice) => SPEEDS.map((speed) => ({ voice, speed, ...CLEAN })))
      : [{ voice: BASELINE_VOICE, speed: BASELINE_SPEED, ...CLEAN }];
    if (served) conditions.splice(2, 0, ...LINE_VARIANTS); // after en-us at 140 wpm, clean
    for (const condition of conditions) {
      const { voice, speed } = condition;
      const result = await score(recognizer, voice, speed, condition.pad, condition.gainDb);
      rows.push(
        `| ${setup.name} | ${voice} | ${speed} | ${condition.line} | ${percent(result.exact, result.phrases)} | ${percent(result.keywordsFound, result.keywords)} | ${percent(result.rulesRight, result.phrases)} | ${Math.round(result.decodeMs / result.phrases)} |`,
      );
      for (const miss of result.misses) {
        misses.push(`- ${setup.name}, ${voice} @ ${speed} wpm, ${condition.line}: ${miss}`);
      }
      console.error(`measured: ${setup.name} ${voice} ${speed} ${condition.line}`);
    }
  } finally {
    await recognizer.close();
  }
}

/** Speech outside the grammar: the grammar forces it onto some phrase or nothing; show which. */
const OUT_OF_GRAMMAR = [
  "we are open nine to five monday to friday",
  "i would like to book a table for two",
  "can you repeat that",
];
const outOfGrammar: string[] = [];
{
  const recognizer = await PocketSphinxRecognizer.create({
    phrases: CALLER_PHRASES.map((phrase) => phrase.text),
    maxConcurrent: 1,
  });
  try {
    for (const text of OUT_OF_GRAMMAR) {
      const heard = normalizeUtterance(
        await recognizer.transcribe(await telephonyUtterance(text, "en-us", 140, 0)),
      );
      outOfGrammar.push(`- "${text}" → "${heard}" (agent rule: ${matchRule(heard)?.name ?? "fallback"})`);
    }
  } finally {
    await recognizer.close();
  }
}

/**
 * The other direction: a caller-side recognizer whose grammar is everything the agent can say, hearing
 * the agent's replies through 8 kHz G.711 (what an end-to-end test's caller receives).
 */
const replyRows: string[] = [];
{
  const recognizer = await PocketSphinxRecognizer.create({ phrases: AGENT_REPLY_PHRASES, maxConcurrent: 1 });
  try {
    for (const voice of ["en-us", "en-us+f3"]) {
      let exact = 0;
      let decodeMs = 0;
      const wrong: string[] = [];
      for (const reply of AGENT_REPLY_PHRASES) {
        const expected = normalizeUtterance(reply);
        const started = performance.now();
        const heard = normalizeUtterance(
          await recognizer.transcribe(await telephonyUtterance(reply, voice, 140, 0.4)),
        );
        decodeMs += performance.now() - started;
        if (heard === expected) exact++;
        else wrong.push(`"${expected}" → "${heard}"`);
      }
      replyRows.push(
        `| ${voice} | 140 | ${percent(exact, AGENT_REPLY_PHRASES.length)} | ${Math.round(decodeMs / AGENT_REPLY_PHRASES.length)} | ${wrong.join("; ") || "none"} |`,
      );
      console.error(`measured: agent replies ${voice}`);
    }
  } finally {
    await recognizer.close();
  }
}

console.log(`Recognition of ${CALLER_PHRASES.length} scripted caller phrases through 8 kHz G.711 μ-law\n`);
console.log("| decoder setup | voice | wpm | line | exact phrase | keywords | agent rule | ms/phrase |");
console.log("|---|---|---|---|---|---|---|---|");
for (const row of rows) console.log(row);
if (misses.length > 0) console.log(`\nMisses:\n${misses.join("\n")}`);
console.log(
  `\nAgent replies heard by a caller-side recognizer (grammar: ${AGENT_REPLY_PHRASES.length} replies, 0.4 s noise pad)\n`,
);
console.log("| voice | wpm | exact reply | ms/reply | misses |");
console.log("|---|---|---|---|---|");
for (const row of replyRows) console.log(row);
console.log(`\nOut-of-grammar speech (served setup, en-us @ 140 wpm):\n${outOfGrammar.join("\n")}`);
