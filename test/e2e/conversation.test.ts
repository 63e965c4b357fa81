/**
 * End-to-end conversations over the full path: a caller on Kamailio's trunk → Kamailio (the bridge
 * registered with digest auth) → the real bridge process → the Worker and its Durable Object in workerd
 * → the offline providers (espeak-ng, PocketSphinx, scripted agent). What the caller hears is judged by
 * speech energy and its timing (and, for the hours answer, by the tuned recognizer); what the agent
 * understood by the Worker's own transcript (GET /v1/calls/:id). One stack for the file; three calls.
 * Latency is reported (test/reports/out/e2e-latency.*), never asserted.
 */
import { createSocket } from "node:dgram";
import { AGENT_REPLY_PHRASES, PocketSphinxRecognizer } from "@patchbay/offline-providers";
import receptionist from "@patchbay/workers/agents/receptionist.json";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { epochNow, Phone } from "../caller/phone";
import { type TurnLatency, turnLatency, writeLatencyReport } from "../reports/latency";
import { type CallReport, type Stack, startStack } from "../stack/stack";
import { writeWav } from "../support/audio";
import { assertNothingLeft } from "../support/process";

const HOURS_REPLY = "We are open nine to five, Monday to Friday.";
const PRICE_REPLY = "The basic plan costs ten dollars a month.";

let stack: Stack;
const latencies: TurnLatency[] = [];
const notes: string[] = [];

beforeAll(async () => {
  stack = await startStack();
});

afterAll(async () => {
  await stack?.close();
  if (latencies.length > 0) {
    const written = await writeLatencyReport("e2e-latency", "End-to-end suite: per-turn latency", latencies, [
      `pbx: ${stack?.mode ?? "?"}; providers: ${stack?.providers ?? "?"}`,
      ...notes,
    ]);
    console.info(`latency report: ${written.markdown}`);
  }
  assertNothingLeft(); // Kamailio and the bridge are gone with the stack
});

async function dial(): Promise<{ phone: Phone; callId: string }> {
  const phone = await Phone.open({
    proxy: stack.sip.proxy,
    target: stack.sip.target,
    host: stack.sip.callerHost,
  });
  await phone.dial();
  return { phone, callId: await stack.callIdFor(phone.sipCallId) };
}

/** Polls the call report until `predicate` holds (or returns the last report after `timeoutMs`). */
async function reportWhen(
  callId: string,
  predicate: (report: CallReport) => boolean,
  timeoutMs = 8_000,
): Promise<CallReport> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const report = await stack.callReport(callId);
    if (report && (predicate(report) || Date.now() > deadline)) return report;
    if (!report && Date.now() > deadline) throw new Error(`no report for call ${callId}`);
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

const agentSaid = (report: CallReport, text: string) =>
  report.transcript.some((line) => line.role === "agent" && line.text === text);

/** Turn `turn` once its first agent frame has left the Worker. */
const turnDone = (report: CallReport, turn: number) =>
  report.turns.some((t) => t.turn === turn && t.timestamps.firstFrameSentAt !== undefined);

describe("a call answered by the agent", () => {
  let phone: Phone;
  let callId: string;

  beforeAll(async () => {
    ({ phone, callId } = await dial());
  });
  afterAll(async () => {
    await phone?.close();
  });

  it("the caller hears the greeting soon after answer", async () => {
    const greeting = await phone.listen(phone.answeredAt, { startTimeoutMs: 8_000 });
    const afterAnswerMs = greeting.startedAt - phone.answeredAt;
    notes.push(`greeting heard ${Math.round(afterAnswerMs)} ms after the 200 OK`);
    expect(afterAnswerMs).toBeLessThan(5_000);
    expect(phone.speechMsBetween(greeting.startedAt - 1, greeting.stoppedAt)).toBeGreaterThan(1_500);
  });

  it("a spoken question gets the scripted spoken answer", async () => {
    const question = await phone.say("what are your opening hours");
    const reply = await phone.listen(question.lastVoicedAt, { startTimeoutMs: 10_000 });
    const report = await reportWhen(callId, (r) => agentSaid(r, HOURS_REPLY) && turnDone(r, 1));
    const turn = report.turns.find((t) => t.turn === 1);
    expect(turn?.userText).toMatch(/opening|hours/);
    expect(agentSaid(report, HOURS_REPLY)).toBe(true);
    // Where the answer should be, there is about its length of speech (≈ 3 s of espeak at 140 wpm).
    expect(phone.speechMsBetween(reply.startedAt - 1, reply.stoppedAt)).toBeGreaterThan(1_500);
    if (turn)
      latencies.push(
        turnLatency("hours question", turn, {
          lastVoicedAt: question.lastVoicedAt,
          firstHeardAt: reply.startedAt,
        }),
      );

    // What the caller heard is that reply: the tuned recognizer over the received audio.
    const recognizer = await PocketSphinxRecognizer.create({ phrases: AGENT_REPLY_PHRASES });
    try {
      const heard = phone.audioBetween(reply.startedAt - 300, reply.stoppedAt + 300);
      const bytes = writeWav({ sampleRate: 8000, channels: 1, samples: heard });
      const text = await recognizer.transcribe({
        encoding: "pcm16",
        sampleRate: 8000,
        channels: 1,
        data: new Uint8Array(bytes.buffer, bytes.byteOffset + 44, bytes.length - 44),
        durationSeconds: heard.length / 8000,
      });
      notes.push(`caller-side recognition of the hours answer: "${text}"`);
      expect(text).toMatch(/nine to five|open/);
    } finally {
      await recognizer.close();
    }
  });

  it("a DTMF key pressed by the caller (RFC 4733) reaches the agent, which answers it", async () => {
    const pressedAt = epochNow();
    await phone.pressDigit("5");
    const reply = await phone.listen(pressedAt, { startTimeoutMs: 10_000 });
    const report = await reportWhen(callId, (r) => agentSaid(r, "You pressed five."));
    expect(agentSaid(report, "You pressed five.")).toBe(true);
    expect(report.turns.some((t) => t.source === "dtmf")).toBe(true);
    expect(phone.speechMsBetween(reply.startedAt - 1, reply.stoppedAt)).toBeGreaterThan(400);
  });

  it("saying goodbye makes the agent call end_call: the caller gets a BYE", async () => {
    const goodbye = await phone.say("thanks that is all goodbye");
    const reply = await phone.listen(goodbye.lastVoicedAt, { startTimeoutMs: 10_000 });
    const bye = await phone.sip.waitForBye(15_000);
    expect(bye.method).toBe("BYE");
    const report = await reportWhen(callId, (r) => r.status === "ended");
    expect(report.status).toBe("ended");
    expect(agentSaid(report, "Thank you for calling. Goodbye!")).toBe(true);
    const turn = report.turns.find((t) => t.userText?.includes("goodbye"));
    if (turn)
      latencies.push(
        turnLatency("goodbye", turn, { lastVoicedAt: goodbye.lastVoicedAt, firstHeardAt: reply.startedAt }),
      );
  });
});

describe("transfer", () => {
  it("the transfer tool sends a REFER to the caller with the configured target, then BYE", async () => {
    const { phone, callId } = await dial();
    try {
      await phone.listen(phone.answeredAt, { startTimeoutMs: 8_000 });
      const question = await phone.say("please transfer me to a person");
      const refer = await phone.waitUntil(
        "a REFER",
        () => phone.sip.inDialogRequests.find((r) => r.method === "REFER"),
        20_000,
      );
      // The agent's first allowed target (workers/agents/receptionist.json transferTargets[0]).
      notes.push(`transfer: REFER with Refer-To ${refer.request.headers.get("Refer-To")}`);
      expect(refer.request.headers.get("Refer-To")).toMatch(/2001/);
      await phone.sip.waitForBye(10_000);
      const report = await reportWhen(callId, (r) => r.status === "ended");
      expect(report.status).toBe("ended");
      expect(
        report.transcript.some((line) => line.role === "caller" && /transfer|person/.test(line.text)),
      ).toBe(true);
      expect(question.text).toBe("please transfer me to a person");
    } finally {
      await phone.close();
    }
  });
});

describe("barge-in, then the caller hangs up mid-answer", () => {
  let phone: Phone;
  let callId: string;
  let bridgeRtpPort = 0;

  beforeAll(async () => {
    ({ phone, callId } = await dial());
    bridgeRtpPort = phone.answered?.remoteRtp.port ?? 0;
    await phone.listen(phone.answeredAt, { startTimeoutMs: 8_000 });
  });
  afterAll(async () => {
    await phone?.close();
  });

  it("the agent's audio stops when the caller talks over it", async () => {
    const question = await phone.say("what are your opening hours");
    const answerStart = await phone.waitUntil(
      "the answer",
      () => phone.firstSpeechAfter(question.lastVoicedAt),
      10_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 600));
    const { onsetAt, done } = phone.startSaying("hello");
    const onset = await onsetAt;
    await done;
    // The agent's audio after the caller's onset ends at the last voiced frame before a clear gap (the
    // next answer only starts after the caller's "hello" has ended and been endpointed).
    const stoppedAt = await phone.waitUntil(
      "the agent to stop",
      () => phone.speechStoppedAfter(onset, 600),
      10_000,
    );
    const bargeInMs = stoppedAt - onset;
    notes.push(
      `barge-in: agent audio stopped ${Math.round(bargeInMs)} ms after the caller's speech onset (target 200 ms; agent bargeIn.minSpeechMs = ${receptionist.bargeIn.minSpeechMs})`,
    );
    console.info(`barge-in stop latency at the caller: ${Math.round(bargeInMs)} ms`);
    expect(answerStart).toBeLessThan(onset);
    expect(bargeInMs).toBeLessThan(1_500); // generous: correctness, not speed
    const report = await reportWhen(callId, (r) => r.turns.some((t) => t.turn === 1 && t.interrupted));
    expect(report.turns.find((t) => t.turn === 1)?.interrupted).toBe(true);
    // Only what was played is kept: the cut answer is at most a prefix of the full reply (the Worker drops
    // it from the transcript entirely when no mark confirmed any of it played).
    const cut = report.transcript.find((line) => line.turn === 1 && line.role === "agent");
    expect(cut?.text === HOURS_REPLY && !cut.interrupted).toBe(false);
  });

  it("hanging up mid-answer releases the call everywhere", async () => {
    const answer = await phone.waitUntil(
      "the answer to hello",
      () => phone.firstSpeechAfter((phone.utterances.at(-1)?.lastVoicedAt ?? 0) + 1),
      10_000,
    );
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, answer + 300 - epochNow())));
    expect(await phone.sip.hangup()).toBe(200);

    const ended = await phone.waitUntil(
      "the bridge's call ended line",
      () => stack.callLogs(callId).find((line) => line.msg === "call ended"),
      5_000,
    );
    expect(ended?.cause).toBe("caller-hangup");
    let activeCalls = await stack.metric("patchbay_calls_active");
    for (let i = 0; i < 30 && activeCalls !== 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      activeCalls = await stack.metric("patchbay_calls_active");
    }
    expect(activeCalls).toBe(0);
    const report = await reportWhen(callId, (r) => r.status === "ended");
    expect(report.status).toBe("ended");
    expect(report.endCause).toBe("caller-hangup");
    // The bridge's RTP port for this call is free again.
    expect(await udpPortFree("127.0.0.3", bridgeRtpPort)).toBe(true);
  });
});

describe("the bridge↔Worker socket is cut mid-call", () => {
  it("the link reconnects and the next question still gets its answer, with no call dropped", async () => {
    const { phone, callId } = await dial();
    try {
      await phone.listen(phone.answeredAt, { startTimeoutMs: 8_000 });
      const evictedAt = Date.now();
      const harness = stack.harness;
      if (!harness) throw new Error("this test needs the local Worker's harness");
      await harness.getWorker().evictDurableObject("CallSession", { name: callId, webSockets: "close" });
      await phone.waitUntil(
        "the bridge to reconnect",
        () => (stack.callLogs(callId).some((line) => line.msg === "media socket resumed") ? true : undefined),
        15_000,
      );
      expect(phone.sip.hungUp).toBe(false);
      const logTime = (msg: string) =>
        Date.parse(String(stack.callLogs(callId).find((l) => l.msg === msg)?.time));
      notes.push(
        `socket cut: the bridge saw the drop ${logTime("media socket dropped; reconnecting") - evictedAt} ms after the eviction and resumed ${logTime("media socket resumed") - logTime("media socket dropped; reconnecting")} ms later`,
      );
      const question = await phone.say("what is the price");
      const reply = await phone.listen(question.lastVoicedAt, { startTimeoutMs: 10_000 });
      const report = await reportWhen(callId, (r) => agentSaid(r, PRICE_REPLY));
      expect(agentSaid(report, PRICE_REPLY)).toBe(true);
      expect(report.connections).toBeGreaterThanOrEqual(2);
      expect(report.status).toBe("active");
      expect(phone.speechMsBetween(reply.startedAt - 1, reply.stoppedAt)).toBeGreaterThan(1_000);
      const turn = report.turns.find((t) => t.userText?.includes("price"));
      if (turn)
        latencies.push(
          turnLatency("price after reconnect", turn, {
            lastVoicedAt: question.lastVoicedAt,
            firstHeardAt: reply.startedAt,
          }),
        );
    } finally {
      await phone.close();
    }
  });
});

function udpPortFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    socket.once("error", () => resolve(false));
    socket.bind(port, host, () => socket.close(() => resolve(true)));
  });
}
