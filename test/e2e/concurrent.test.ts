/**
 * Twenty calls at once over the full path (Kamailio → bridge → Worker in workerd → offline providers):
 * each is answered, its caller hears the greeting (speech energy), presses a key of its own (RFC 4733)
 * and hears the agent answer it, and the call's Durable Object recorded exactly that key's answer (no
 * call hears another's agent). Each hangs up cleanly, and afterwards the bridge has no call left and
 * every Durable Object marks its call ended. Keys rather than speech: twenty PocketSphinx runs at once
 * would measure the recognizer on a 2-core machine, not the calls. The bounds are generous and only
 * correctness is asserted.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { epochNow, Phone } from "../caller/phone";
import { type Stack, startStack } from "../stack/stack";
import { assertNothingLeft } from "../support/process";

const CALLS = 20;
const KEYS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"] as const;
/** What the scripted agent answers to each key (tools/offline-providers: keys spoken as words). */
const KEY_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"] as const;

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});

afterAll(async () => {
  await stack?.close();
  assertNothingLeft(); // Kamailio and the bridge are gone with the stack
});

interface CallOutcome {
  callId: string;
  key: number;
  greetingAfterAnswerMs: number;
  hangupStatus: number;
}

async function oneCall(index: number): Promise<CallOutcome> {
  // Staggered by 50 ms so the INVITEs do not all land in the same millisecond (a PBX never does that).
  await new Promise((resolve) => setTimeout(resolve, index * 50));
  const phone = await Phone.open({
    proxy: stack.sip.proxy,
    target: stack.sip.target,
    host: stack.sip.callerHost,
  });
  try {
    await phone.dial({ timeoutMs: 15_000 });
    const callId = await stack.callIdFor(phone.sipCallId);
    const greetingAt = await phone.waitUntil(
      `call ${index}: the greeting`,
      () => phone.firstSpeechAfter(phone.answeredAt),
      30_000,
    );
    // Some real speech, not a click: half a second of voiced frames.
    await phone.waitUntil(
      `call ${index}: 500 ms of greeting`,
      () => (phone.speechMsBetween(greetingAt - 1, Number.POSITIVE_INFINITY) >= 500 ? true : undefined),
      15_000,
    );
    // Wait for the greeting to end, so the key is an answerable turn rather than a barge-in.
    await phone.waitUntil(
      `call ${index}: the end of the greeting`,
      () => phone.speechStoppedAfter(greetingAt, 700),
      30_000,
    );
    const key = index % KEYS.length;
    const pressedAt = epochNow();
    await phone.pressDigit(KEYS[key]!);
    // The whole answer, so its clause's mark comes back and the Worker counts it as heard.
    const answer = await phone.listen(pressedAt, { startTimeoutMs: 30_000, endTimeoutMs: 30_000 });
    expect(phone.speechMsBetween(answer.startedAt - 1, answer.stoppedAt), `call ${index}`).toBeGreaterThan(
      400,
    );
    const hangupStatus = await phone.sip.hangup();
    return { callId, key, greetingAfterAnswerMs: greetingAt - phone.answeredAt, hangupStatus };
  } finally {
    await phone.close();
  }
}

it(`${CALLS} concurrent calls are answered, greeted, answer their own key and are released`, {
  timeout: 180_000,
}, async () => {
  const outcomes = await Promise.all(Array.from({ length: CALLS }, (_, i) => oneCall(i)));
  expect(new Set(outcomes.map((o) => o.callId)).size).toBe(CALLS);
  for (const outcome of outcomes) expect(outcome.hangupStatus).toBe(200);
  const waits = outcomes.map((o) => Math.round(o.greetingAfterAnswerMs)).sort((a, b) => a - b);
  console.info(
    `greeting heard after answer (ms), ${CALLS} calls: min ${waits[0]}, p50 ${waits[CALLS >> 1]}, max ${waits.at(-1)}`,
  );

  let active = await stack.metric("patchbay_calls_active");
  for (let i = 0; i < 50 && active !== 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    active = await stack.metric("patchbay_calls_active");
  }
  expect(active).toBe(0);
  for (const { callId, key } of outcomes) {
    let report = await stack.callReport(callId);
    for (let i = 0; i < 30 && report?.status !== "ended"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      report = await stack.callReport(callId);
    }
    expect(report?.status, `call ${callId}`).toBe("ended");
    expect(report?.endCause, `call ${callId}`).toBe("caller-hangup");
    const agentLines = report?.transcript.filter((line) => line.role === "agent").map((line) => line.text);
    const pressedLines = agentLines?.filter((text) => text.startsWith("You pressed"));
    expect(pressedLines, `call ${callId}`).toEqual([`You pressed ${KEY_WORDS[key]}.`]);
  }
});
