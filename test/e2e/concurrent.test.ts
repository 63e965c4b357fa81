/**
 * Twenty calls at once over the full path (Kamailio → bridge → Worker in workerd → offline providers):
 * each is answered, its caller hears the greeting (speech energy), hangs up cleanly, and afterwards the
 * bridge has no call left and every Durable Object marks its call ended. Lighter checks per call than
 * conversation.test.ts; on a shared 2-core machine twenty espeak greetings at once take seconds, so the
 * bounds are generous and only correctness is asserted.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { Phone } from "../caller/phone";
import { type Stack, startStack } from "../stack/stack";
import { assertNothingLeft } from "../support/process";

const CALLS = 20;

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
    const hangupStatus = await phone.sip.hangup();
    return { callId, greetingAfterAnswerMs: greetingAt - phone.answeredAt, hangupStatus };
  } finally {
    await phone.close();
  }
}

it(`${CALLS} concurrent calls are answered, greeted and released`, { timeout: 120_000 }, async () => {
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
  for (const { callId } of outcomes) {
    let report = await stack.callReport(callId);
    for (let i = 0; i < 30 && report?.status !== "ended"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      report = await stack.callReport(callId);
    }
    expect(report?.status, `call ${callId}`).toBe("ended");
    expect(report?.endCause, `call ${callId}`).toBe("caller-hangup");
  }
});
