/**
 * The scripted agent's rules and the caller phrases the offline recognizer is tuned for.
 *
 * Both live here so the three things that must agree (what the agent answers, what the test callers
 * say, what PocketSphinx is allowed to hear) cannot drift apart: the recognizer's grammar and the
 * README's phrase table are derived from `CALLER_PHRASES`, and a test checks that every phrase
 * triggers the rule it names.
 */

/** What a rule does besides (or instead of) speaking. */
export type RuleAction =
  | { kind: "reply" }
  /**
   * Hand the call to a human: a transfer tool call (only if the request declares the tool). The target
   * is the server's configured one, else the first "Allowed targets: …" in the tool's description (how
   * the pipeline lists an agent's targets), else this rule's `target`.
   */
  | { kind: "transfer"; target: string }
  /** Say goodbye, then an end-call tool call (only if the request declares the tool). */
  | { kind: "end_call" };

export interface AgentRule {
  readonly name: string;
  /** Matched case-insensitively against the last user message with punctuation removed. */
  readonly pattern: RegExp;
  readonly reply: string;
  readonly action: RuleAction;
}

/** Tool names the agent looks for in the request's `tools`, first match wins. */
export const TRANSFER_TOOL_NAMES = ["transfer_call", "transfer"] as const;
export const END_CALL_TOOL_NAMES = ["end_call", "hang_up", "hangup"] as const;

/** The transfer target used when a rule does not name one (an extension on the demo PBX). */
export const DEFAULT_TRANSFER_TARGET = "sip:operator@127.0.0.1";

/**
 * Caller keypad digits as the pipeline reports them ("[caller pressed 5]", "[caller pressed 1 2 3]"),
 * matched loosely: "pressed" then digits, optionally space separated.
 */
export const DTMF_PATTERN = /pressed\s+([0-9*#A-D](?:\s*[0-9*#A-D])*)/i;

/**
 * Keys are spoken as words ("You pressed five."): espeak reads "#" unpredictably, and words keep every
 * reply inside the dictionary, so a caller-side recognizer can hear them (AGENT_REPLY_PHRASES).
 */
export const KEY_WORDS: Readonly<Record<string, string>> = {
  "0": "zero",
  "1": "one",
  "2": "two",
  "3": "three",
  "4": "four",
  "5": "five",
  "6": "six",
  "7": "seven",
  "8": "eight",
  "9": "nine",
  "*": "star",
  "#": "pound",
  A: "a",
  B: "b",
  C: "c",
  D: "d",
};

/** Every word is in the CMU dictionary (no brand names), so the replies can form a recognizer grammar. */
export const GREETING = "Hello, thanks for calling. How can I help you?";
export const FALLBACK_REPLY = "Sorry, could you say that again?";
export const TRANSFER_UNAVAILABLE_REPLY = "I cannot transfer calls right now, but I can tell you our hours.";
export const TRANSFER_ACK = "Connecting you now.";
/** After a transfer tool result that reports a failure (the Worker's results start with "error:"). */
export const TRANSFER_FAILED_REPLY =
  "I am sorry, nobody could take your call right now. Can I help you with something else?";
export const TOOL_ACK = "Okay, done.";

/** Evaluated in order; the first match answers. Goodbye comes first so "thanks, that's all" ends the call. */
export const AGENT_RULES: readonly AgentRule[] = [
  {
    name: "goodbye",
    pattern: /\b(bye|goodbye|good bye|that'?s all|that is all)\b/,
    reply: "Thank you for calling. Goodbye!",
    action: { kind: "end_call" },
  },
  {
    name: "transfer",
    pattern: /\b(human|person|agent|operator|transfer|someone)\b/,
    reply: "Sure, I will transfer you to a colleague now.",
    action: { kind: "transfer", target: DEFAULT_TRANSFER_TARGET },
  },
  {
    name: "hours",
    pattern: /\b(hours?|opening|open|close|closing)\b/,
    reply: "We are open nine to five, Monday to Friday.",
    action: { kind: "reply" },
  },
  {
    name: "price",
    pattern: /\b(price|prices|cost|costs|how much)\b/,
    reply: "The basic plan costs ten dollars a month.",
    action: { kind: "reply" },
  },
  {
    name: "greeting",
    pattern: /^(hello|hi|hey)\b/,
    reply: "Hello! How can I help you today?",
    action: { kind: "reply" },
  },
];

export interface CallerPhrase {
  readonly text: string;
  /** The rule this phrase must trigger. */
  readonly rule: string;
  /** Words whose recognition counts as "the keyword was heard" in the accuracy measurement. */
  readonly keywords: readonly string[];
}

/**
 * What the test callers and the demo caller say, and all the offline recognizer can hear. Short,
 * distinct phrases: PocketSphinx's wideband model on 8 kHz espeak audio only copes with a closed set.
 */
export const CALLER_PHRASES: readonly CallerPhrase[] = [
  { text: "what are your opening hours", rule: "hours", keywords: ["opening", "hours"] },
  { text: "when are you open", rule: "hours", keywords: ["open"] },
  { text: "how much does it cost", rule: "price", keywords: ["cost"] },
  { text: "what is the price", rule: "price", keywords: ["price"] },
  { text: "i want to talk to a human", rule: "transfer", keywords: ["human"] },
  { text: "please transfer me to a person", rule: "transfer", keywords: ["transfer", "person"] },
  { text: "thanks that is all goodbye", rule: "goodbye", keywords: ["goodbye"] },
  { text: "goodbye", rule: "goodbye", keywords: ["goodbye"] },
  { text: "hello", rule: "greeting", keywords: ["hello"] },
];

/**
 * Everything the scripted agent can say, for a caller-side recognizer that checks the agent's answer
 * (a grammar of these phrases; the single-key DTMF answers included).
 */
export const AGENT_REPLY_PHRASES: readonly string[] = [
  ...AGENT_RULES.map((rule) => rule.reply),
  GREETING,
  FALLBACK_REPLY,
  TRANSFER_UNAVAILABLE_REPLY,
  TRANSFER_ACK,
  TRANSFER_FAILED_REPLY,
  TOOL_ACK,
  ...Object.keys(KEY_WORDS)
    .filter((key) => /^[0-9*#]$/.test(key))
    .map((key) => `You pressed ${KEY_WORDS[key]}.`),
];
