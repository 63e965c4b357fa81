/**
 * The Conversation core with a manual clock and the in-process fakes: turn-taking paths (provider
 * end-of-turn, our own VAD + finalize, eager end-of-turn), barge-in exactly at minSpeechMs, and
 * clean-up. Provider latencies are 0 (next macrotask); `settle()` lets them run.
 */
import { BYTES_PER_FRAME } from "@patchbay/shared/audio";
import type { WorkerMessage } from "@patchbay/shared/protocol";
import { beforeEach, describe, expect, it } from "vitest";
import { type AgentDefinitionInput, agentDefinition } from "../../src/agents/schema";
import { ManualClock } from "../../src/pipeline/clock";
import {
  Conversation,
  type ConversationHost,
  type HistoryEntry,
  type TurnRecord,
} from "../../src/pipeline/conversation";
import { FakeHub, FakeLlm, FakeStt, FakeTts } from "../fakes/providers";

const speech = new Uint8Array(BYTES_PER_FRAME).map((_, i) => (i % 8 < 4 ? 0x80 : 0x00));
const silence = new Uint8Array(BYTES_PER_FRAME).fill(0xff);

const settle = async (rounds = 10) => {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setTimeout(resolve, 0));
};

interface Harness {
  conversation: Conversation;
  clock: ManualClock;
  hub: FakeHub;
  stt: FakeStt;
  llm: FakeLlm;
  out: (WorkerMessage | { type: "audio"; bytes: number })[];
  turns: Map<number, TurnRecord>;
  stored: Map<number, HistoryEntry>;
  ended: { cause: string; reason?: string }[];
  /** Sends frames, advancing the clock 20 ms each. */
  frames(count: number, kind: "speech" | "silence"): void;
  ackMarks(): void;
  messages<T extends WorkerMessage["type"]>(type: T): Extract<WorkerMessage, { type: T }>[];
}

function harness(
  overrides: Partial<AgentDefinitionInput> = {},
  sttOptions: ConstructorParameters<typeof FakeStt>[1] = {},
): Harness {
  const agent = agentDefinition.parse({
    id: "unit",
    systemPrompt: "You are a unit test.",
    voice: "v",
    stt: { provider: "fake" },
    llm: { provider: "fake", model: "m" },
    tts: { provider: "fake" },
    bargeIn: { enabled: true, minSpeechMs: 100 },
    turn: { silenceMs: 300, minSpeechFrames: 3, dtmfDebounceMs: 100 },
    tools: [{ type: "builtin", name: "end_call" }],
    ...overrides,
  });
  const clock = new ManualClock(1_000);
  const hub = new FakeHub();
  const stt = new FakeStt(hub, sttOptions);
  const llm = new FakeLlm(hub);
  const tts = new FakeTts(hub, 0);
  const out: Harness["out"] = [];
  const turns = new Map<number, TurnRecord>();
  const stored = new Map<number, HistoryEntry>();
  const ended: Harness["ended"] = [];
  let acked = 0;
  const host: ConversationHost = {
    output: {
      sendAudio: (audio) => out.push({ type: "audio", bytes: audio.length }),
      send: (message) => out.push(message),
    },
    store: {
      appendMessage: (entry) => stored.set(entry.id, structuredClone(entry)),
      updateMessage: (entry) => stored.set(entry.id, structuredClone(entry)),
      saveTurn: (turn) => turns.set(turn.turn, structuredClone(turn)),
    },
    clock,
    webhook: { fetch, clock, unixSeconds: () => 0, secret: () => undefined },
    log: () => {},
    onCallEnd: (cause, reason) => ended.push({ cause, ...(reason ? { reason } : {}) }),
  };
  const conversation = new Conversation(
    {
      callId: "unit-call-1",
      agent,
      format: { codec: "PCMU", sampleRate: 8000 },
      providers: { stt, llm, tts },
      greet: true,
    },
    host,
  );
  const messages = <T extends WorkerMessage["type"]>(type: T) =>
    out.filter((item): item is Extract<WorkerMessage, { type: T }> => item.type === type);
  return {
    conversation,
    clock,
    hub,
    stt,
    llm,
    out,
    turns,
    stored,
    ended,
    frames(count, kind) {
      for (let i = 0; i < count; i++) {
        conversation.pushCallerAudio(kind === "speech" ? speech : silence);
        clock.advance(20);
      }
    },
    ackMarks() {
      const marks = messages("mark");
      for (const mark of marks.slice(acked)) conversation.markPlayed(mark.name);
      acked = marks.length;
    },
    messages,
  };
}

describe("turn-taking", () => {
  let h: Harness;

  it("with the provider's end of turn: speech, end of turn, answer", async () => {
    h = harness({ greeting: "Hi there, how can I help?" });
    await h.conversation.start();
    await settle();
    h.ackMarks();
    h.hub.utterances.push("what time is it");
    h.hub.replies.push({ text: "It is noon." });
    h.frames(10, "speech");
    h.frames(12, "silence");
    await settle();
    expect(h.llm.requests[0]?.slice(-1)).toEqual([{ role: "user", content: "what time is it" }]);
    expect(h.hub.tts?.spoken).toEqual(["Hi there, how can I help?", "It is noon."]);
    expect(h.stt.sessions[0]?.finalizeCalls).toBe(0);
  });

  it("without it: our VAD's silence hang-over calls finalize(), the final ends the turn", async () => {
    h = harness({}, { capabilities: { endOfTurn: false } });
    await h.conversation.start();
    h.hub.utterances.push("book a table");
    h.hub.replies.push({ text: "For how many people?" });
    h.frames(10, "speech");
    h.frames(14, "silence"); // 280 ms < silenceMs 300
    expect(h.stt.sessions[0]?.finalizeCalls).toBe(0);
    h.frames(2, "silence");
    expect(h.stt.sessions[0]?.finalizeCalls).toBe(1);
    await settle();
    expect(h.llm.requests[0]?.slice(-1)).toEqual([{ role: "user", content: "book a table" }]);
    await settle();
    const timing = h.messages("turn_timing")[0];
    // Speech ended at the end of frame 10; the hang-over is 300 ms.
    expect(timing?.endpointingMs).toBe(300);
    // finalize() at the 15th silent frame, the final two frames (40 ms of manual clock) later.
    expect(timing?.sttMs).toBe(40);
  });

  it("eager end of turn starts the model but holds speech until confirmed", async () => {
    h = harness({}, { capabilities: { eagerEndOfTurn: true } });
    await h.conversation.start();
    h.hub.replies.push({ text: "Sure, the pool opens at seven." });
    h.stt.sessions[0]!.endTurn("when does the pool open", true);
    await settle();
    expect(h.llm.requests).toHaveLength(1);
    expect(h.hub.tts?.spoken ?? []).toEqual([]);
    expect([...h.stored.values()]).toEqual([]);
    h.stt.sessions[0]!.endTurn("when does the pool open", false);
    await settle();
    expect(h.llm.requests).toHaveLength(1);
    expect(h.hub.tts?.spoken).toEqual(["Sure, the pool opens at seven."]);
    expect([...h.stored.values()].map((entry) => entry.message.role)).toEqual(["user", "assistant"]);
  });

  /**
   * Regression: the speculative request was built from the history alone, and a speculative turn
   * writes nothing there before confirmation, so the model was asked to answer without the caller's
   * words (and that answer was spoken once EndOfTurn confirmed). The request now carries them; the
   * history gets them once, at confirmation.
   */
  it("eager end of turn: the speculative request carries the caller's words, the history holds them once", async () => {
    h = harness(
      { tools: [{ type: "builtin", name: "send_dtmf" }] },
      { capabilities: { eagerEndOfTurn: true } },
    );
    await h.conversation.start();
    h.hub.replies.push(
      {
        text: "Let me press one.",
        toolCalls: [{ id: "d1", name: "send_dtmf", arguments: '{"digits":"1"}' }],
      },
      { text: "Done." },
    );
    h.stt.sessions[0]!.endTurn("press one for me", true);
    await settle();
    expect(h.llm.requests[0]).toEqual([
      { role: "system", content: "You are a unit test." },
      { role: "user", content: "press one for me" },
    ]);
    expect(h.conversation.history).toEqual([]);
    expect(h.messages("send_dtmf")).toEqual([]); // tools wait for the confirmation too
    h.stt.sessions[0]!.endTurn("press one for me", false);
    await settle();
    expect(h.messages("send_dtmf")).toEqual([{ type: "send_dtmf", digits: "1" }]);
    expect(h.llm.requests).toHaveLength(2);
    const second = h.llm.requests[1]!;
    expect(second.filter((message) => message.role === "user")).toEqual([
      { role: "user", content: "press one for me" },
    ]);
    expect(second.map((message) => message.role)).toEqual(["system", "user", "assistant", "tool"]);
    const roles = h.conversation.history.map((entry) => entry.message.role);
    expect(roles).toEqual(["user", "assistant", "tool", "assistant"]);
    expect([...h.stored.values()].filter((entry) => entry.message.role === "user")).toHaveLength(1);
  });

  it("eager end of turn followed by TurnResumed cancels the speculative answer", async () => {
    h = harness({}, { capabilities: { eagerEndOfTurn: true } });
    await h.conversation.start();
    h.hub.replies.push({ text: "Sure, the pool opens at seven." }, { text: "The gym opens at six." });
    h.stt.sessions[0]!.endTurn("when does the pool", true);
    expect(h.llm.requests[0]?.slice(-1)).toEqual([{ role: "user", content: "when does the pool" }]);
    h.stt.sessions[0]!.events.onTurnResumed();
    await settle();
    expect(h.hub.tts?.spoken ?? []).toEqual([]);
    expect(h.conversation.history).toEqual([]);
    expect([...h.stored.values()]).toEqual([]);
    expect(h.messages("clear")).toEqual([]);
    h.stt.sessions[0]!.endTurn("when does the pool and the gym open", false);
    await settle();
    expect(h.llm.requests).toHaveLength(2);
    expect(h.llm.requests[1]?.slice(1)).toEqual([
      { role: "user", content: "when does the pool and the gym open" },
    ]);
    expect(h.hub.tts?.spoken).toEqual(["The gym opens at six."]);
    expect(h.conversation.history.map((entry) => entry.message.content)).toEqual([
      "when does the pool and the gym open",
      "The gym opens at six.",
    ]);
  });

  it("with barge-in disabled, an eager end of turn does not skip waiting for the agent to finish", async () => {
    h = harness(
      { greeting: "Welcome to the long greeting of this line.", bargeIn: { enabled: false } },
      { capabilities: { eagerEndOfTurn: true } },
    );
    await h.conversation.start();
    await settle();
    h.hub.replies.push({ text: "Okay." });
    h.stt.sessions[0]!.endTurn("hello?", true);
    await settle();
    expect(h.llm.requests).toHaveLength(0);
    h.stt.sessions[0]!.endTurn("hello?", false);
    await settle();
    expect(h.llm.requests).toHaveLength(0);
    expect(h.messages("clear")).toEqual([]);
    h.ackMarks();
    await settle();
    expect(h.llm.requests).toHaveLength(1);
    expect(h.llm.requests[0]?.slice(-1)).toEqual([{ role: "user", content: "hello?" }]);
    expect(h.hub.tts?.spoken).toEqual(["Welcome to the long greeting of this line.", "Okay."]);
    expect(h.conversation.history.map((entry) => entry.message.role)).toEqual([
      "assistant",
      "user",
      "assistant",
    ]);
  });

  it("with barge-in disabled, a caller turn waits until the agent has finished", async () => {
    h = harness({ greeting: "Welcome to the long greeting of this line.", bargeIn: { enabled: false } });
    await h.conversation.start();
    await settle();
    h.hub.replies.push({ text: "Okay." });
    h.stt.sessions[0]!.endTurn("hello?");
    await settle();
    expect(h.llm.requests).toHaveLength(0);
    expect(h.messages("clear")).toEqual([]);
    h.ackMarks();
    await settle();
    expect(h.llm.requests).toHaveLength(1);
  });

  it("sends the model a bounded window of history that starts at a caller message", async () => {
    h = harness({
      llm: { provider: "fake", model: "m", maxHistoryMessages: 5 },
      tools: [{ type: "builtin", name: "send_dtmf" }],
    });
    await h.conversation.start();
    for (let turn = 0; turn < 4; turn++) {
      h.hub.replies.push(
        { toolCalls: [{ id: `d${turn}`, name: "send_dtmf", arguments: '{"digits":"1"}' }] },
        { text: `Answer ${turn}.` },
      );
      h.stt.sessions[0]!.endTurn(`question ${turn}`);
      await settle();
      h.ackMarks();
      await settle();
    }
    // Each turn stores user, assistant(tool call), tool, assistant = 4 messages.
    expect(h.conversation.history).toHaveLength(16);
    const last = h.llm.requests[h.llm.requests.length - 1]!;
    expect(last[0]?.role).toBe("system");
    expect(last[1]).toEqual({ role: "user", content: "question 3" });
    expect(last.length).toBeLessThanOrEqual(6);
  });

  it("caller DTMF is debounced into one user message", async () => {
    h = harness();
    await h.conversation.start();
    h.hub.replies.push({ text: "Got it." });
    h.conversation.callerDtmf("1");
    h.clock.advance(50);
    h.conversation.callerDtmf("#");
    h.clock.advance(99);
    await settle();
    expect(h.llm.requests).toHaveLength(0);
    h.clock.advance(1);
    await settle();
    expect(h.llm.requests[0]?.slice(-1)).toEqual([{ role: "user", content: "[caller pressed 1 #]" }]);
  });
});

describe("barge-in", () => {
  let h: Harness;
  beforeEach(async () => {
    h = harness({
      greeting: "Thanks for calling the test line. We have many options today. Please listen carefully.",
    });
    await h.conversation.start();
    await settle();
  });

  it("sends clear on the frame where caller speech reaches minSpeechMs, not before", () => {
    expect(h.messages("mark")).toHaveLength(3);
    h.conversation.markPlayed("t0.c0");
    // Each frame is 20 ms of audio: the 5th frame completes 100 ms of caller speech.
    for (let frame = 0; frame < 4; frame++) {
      h.frames(1, "speech");
      expect(h.messages("clear"), `frame ${frame}`).toEqual([]);
    }
    h.frames(1, "speech");
    expect(h.messages("clear")).toHaveLength(1);
    expect(h.hub.tts?.clears).toBe(1);
    expect(h.conversation.agentTalking).toBe(false);
  });

  it("keeps only whole clauses whose marks came back", () => {
    h.conversation.markPlayed("t0.c0");
    h.frames(8, "speech");
    const greeting = [...h.stored.values()].find((entry) => entry.message.role === "assistant");
    expect(greeting?.message.content).toBe("Thanks for calling the test line.");
    expect(greeting?.interrupted).toBe(true);
    expect(h.turns.get(0)?.interrupted).toBe(true);
    expect(h.conversation.history[0]?.message.content).toBe("Thanks for calling the test line.");
  });

  it("does nothing once the agent has finished speaking", () => {
    h.ackMarks();
    h.frames(20, "speech");
    expect(h.messages("clear")).toEqual([]);
  });
});

describe("reconnect", () => {
  it("interrupts the turn in flight without clear; replayed mark_played still extend what was heard", async () => {
    const h = harness({
      greeting: "Thanks for calling the test line. We have many options today. Please listen carefully.",
    });
    await h.conversation.start();
    await settle();
    h.conversation.markPlayed("t0.c0");
    h.conversation.onReconnected();
    expect(h.messages("clear")).toEqual([]);
    expect(h.conversation.agentTalking).toBe(false);
    expect(h.conversation.history[0]?.message.content).toBe("Thanks for calling the test line.");
    // The bridge replays the acknowledgement it queued while the socket was down.
    h.conversation.markPlayed("t0.c1");
    expect(h.conversation.history[0]?.message.content).toBe(
      "Thanks for calling the test line. We have many options today.",
    );
    expect(h.stored.get(0)?.message.content).toBe(
      "Thanks for calling the test line. We have many options today.",
    );
  });
});

describe("lifecycle", () => {
  it("close() is idempotent, closes both sessions and aborts a turn in flight", async () => {
    const h = harness({ greeting: "Hello and welcome to the line." });
    await h.conversation.start();
    await settle();
    await Promise.all([h.conversation.close(), h.conversation.close()]);
    expect(h.stt.sessions[0]?.closed).toBe(true);
    expect(h.hub.tts?.closed).toBe(true);
    expect(h.turns.get(0)?.interrupted).toBe(true);
    h.frames(5, "speech");
    expect(h.stt.sessions[0]?.bytesReceived).toBe(0);
  });

  it("end_call without a goodbye of the model's own speaks the agent's goodbye, then hangs up", async () => {
    const h = harness({ goodbye: "Bye now." });
    await h.conversation.start();
    h.hub.replies.push({ toolCalls: [{ id: "e", name: "end_call", arguments: "{}" }] });
    h.stt.sessions[0]!.endTurn("bye");
    await settle();
    expect(h.hub.tts?.spoken).toEqual(["Bye now."]);
    expect(h.messages("hangup")).toEqual([]);
    h.ackMarks();
    await settle();
    expect(h.messages("hangup")).toEqual([{ type: "hangup", cause: "normal" }]);
    expect(h.ended).toEqual([{ cause: "normal", reason: "agent ended the call" }]);
  });

  it("end_call hangs up after drainTimeout even if marks never come back", async () => {
    const h = harness();
    await h.conversation.start();
    h.hub.replies.push({
      text: "Goodbye then.",
      toolCalls: [{ id: "e", name: "end_call", arguments: "{}" }],
    });
    h.stt.sessions[0]!.endTurn("bye");
    await settle();
    h.clock.advance(15_000);
    await settle();
    expect(h.messages("hangup")).toHaveLength(1);
  });

  it("an LLM failure is reported to the bridge and the call goes on", async () => {
    const h = harness();
    await h.conversation.start();
    h.llm.stream = async function* () {
      yield { type: "text" as const, delta: "Hmm" };
      throw new Error("upstream 500");
    };
    h.stt.sessions[0]!.endTurn("hello");
    await settle();
    expect(h.messages("error")).toEqual([
      { type: "error", code: "provider-failure", message: "llm: upstream 500" },
    ]);
    expect(h.ended).toEqual([]);
    // The unfinished clause was never spoken; the turn is over and the next one can start.
    expect(h.hub.tts?.spoken ?? []).toEqual([]);
    expect(h.conversation.agentTalking).toBe(false);
  });
});

describe("transfers", () => {
  const warm = (overrides: Partial<AgentDefinitionInput> = {}) =>
    harness({
      tools: [{ type: "builtin", name: "transfer_call" }],
      transferTargets: ["2002"],
      transfer: { mode: "warm" },
      ...overrides,
    });

  /** The caller asks for a person; the model says so and calls transfer_call; the words are heard. */
  async function askForTransfer(h: Harness, args: Record<string, string>): Promise<void> {
    await h.conversation.start();
    h.hub.replies.push({
      text: "One moment, I'll put you through.",
      toolCalls: [{ id: "t1", name: "transfer_call", arguments: JSON.stringify(args) }],
    });
    h.stt.sessions[0]!.endTurn("I'd like to talk to a person about my refund");
    await settle();
    expect(h.messages("transfer")).toEqual([]); // not before the caller heard it
    h.ackMarks();
    await settle();
  }

  it("warm: the summary is spoken after consulting, then transfer_join; ok ends the call as transferred", async () => {
    const h = warm();
    await askForTransfer(h, { target: "2002", summary: "Alice wants a refund for order A17." });
    expect(h.messages("transfer")).toEqual([
      { type: "transfer", target: "2002", mode: "warm", summary: "Alice wants a refund for order A17." },
    ]);
    h.conversation.transferProgress({ target: "2002", state: "dialing" });
    h.conversation.transferProgress({ target: "2002", state: "ringing" });
    await settle();
    const spokenBefore = h.hub.tts?.spoken.length ?? 0;
    const before = h.out.length;
    h.conversation.transferProgress({ target: "2002", state: "consulting" });
    await settle();
    expect(h.hub.tts?.spoken.slice(spokenBefore)).toEqual(["Alice wants a refund for order A17."]);
    const after = h.out.slice(before).map((item) => item.type);
    // Audio and its mark first, then the join: the bridge joins once that audio has played.
    expect(after[0]).toBe("audio");
    expect(after.slice(-2)).toEqual(["mark", "transfer_join"]);
    h.conversation.transferResult({ ok: true, target: "2002" });
    await settle();
    expect(h.ended).toEqual([{ cause: "transferred", reason: "transferred to 2002 (warm)" }]);
    expect(h.llm.requests).toHaveLength(1); // no model round after the call ended
    const tool = h.conversation.history.find((entry) => entry.message.role === "tool");
    expect(tool?.message.content).toBe("transferred to 2002");
    // The summary was for the human: it is not part of the caller's conversation.
    expect(h.conversation.history.map((entry) => entry.message.content)).not.toContain(
      "Alice wants a refund for order A17.",
    );
  });

  it("warm: caller speech, keys and barge-in start nothing while the transfer is under way", async () => {
    const h = warm();
    await askForTransfer(h, { target: "2002" });
    const frames = h.out.length;
    h.stt.sessions[0]!.endTurn("hello? is anyone there?");
    h.conversation.callerDtmf("5");
    h.clock.advance(500);
    h.frames(20, "speech");
    await settle();
    expect(h.llm.requests).toHaveLength(1);
    expect(h.out.slice(frames).filter((item) => item.type === "clear")).toEqual([]);
    // Without a summary from the model the default names what the caller last said.
    expect(h.messages("transfer")[0]?.summary).toBe(
      `Hello, I have a caller on the line for you. They said: "I'd like to talk to a person about my refund". I'm connecting you now.`,
    );
  });

  it("warm: the person does not answer: the model is told why and the agent carries on with the caller", async () => {
    const h = warm();
    await askForTransfer(h, { target: "2002", summary: "A refund question." });
    h.conversation.transferProgress({ target: "2002", state: "ringing" });
    h.hub.replies.push({ text: "Sorry, nobody picked up. Can I help you myself?" });
    h.conversation.transferResult({ ok: false, target: "2002", sipStatus: 480 });
    await settle();
    const tool = h.llm.requests[1]?.find((message) => message.role === "tool");
    expect(tool?.content).toContain("the person did not answer");
    expect(h.hub.tts?.spoken.slice(-2)).toEqual(["Sorry, nobody picked up.", "Can I help you myself?"]);
    expect(h.ended).toEqual([]);
    // The caller can talk to the agent again.
    h.ackMarks();
    await settle();
    h.hub.replies.push({ text: "Sure." });
    h.stt.sessions[0]!.endTurn("yes please");
    await settle();
    expect(h.llm.requests[2]?.slice(-1)).toEqual([{ role: "user", content: "yes please" }]);
  });

  it("warm: the wait restarts at every transfer_progress and gives up 60 s after the last one", async () => {
    const h = warm();
    await askForTransfer(h, { target: "2002" });
    h.clock.advance(59_000);
    h.conversation.transferProgress({ target: "2002", state: "dialing" });
    h.clock.advance(59_000);
    h.conversation.transferProgress({ target: "2002", state: "ringing" });
    h.clock.advance(59_999);
    await settle();
    expect(h.messages("transfer_cancel")).toEqual([]);
    h.hub.replies.push({ text: "I'm sorry, I couldn't reach anyone." });
    h.clock.advance(1);
    await settle();
    expect(h.messages("transfer_cancel")).toEqual([{ type: "transfer_cancel" }]);
    const tool = h.llm.requests[1]?.find((message) => message.role === "tool");
    expect(tool?.content).toContain("the transfer was cancelled");
    expect(h.hub.tts?.spoken.slice(-1)).toEqual(["I'm sorry, I couldn't reach anyone."]);
    // A late result from the bridge changes nothing.
    h.conversation.transferResult({ ok: true, target: "2002" });
    await settle();
    expect(h.ended).toEqual([]);
  });

  it("warm: a failure while the summary plays clears it, and the turn does not wait for its marks", async () => {
    const h = warm();
    await askForTransfer(h, { target: "2002", summary: "A refund question. From a long-time customer." });
    h.conversation.transferProgress({ target: "2002", state: "consulting" });
    await settle();
    expect(h.messages("transfer_join")).toHaveLength(1);
    h.hub.replies.push({ text: "They hung up, sorry." });
    h.conversation.transferResult({ ok: false, target: "2002", reason: "the person hung up" });
    await settle();
    expect(h.messages("clear")).toHaveLength(1);
    h.ackMarks(); // marks of the apology only count; the summary's never come back
    await settle();
    expect(h.conversation.agentTalking).toBe(false);
  });

  it("blind: waits 40 s for transfer_result (the bridge gives up at 30 s) before telling the model", async () => {
    const h = harness({ tools: [{ type: "builtin", name: "transfer_call" }] });
    await askForTransfer(h, { target: "2001" });
    expect(h.messages("transfer")).toEqual([{ type: "transfer", target: "2001", mode: "blind" }]);
    h.clock.advance(39_999);
    await settle();
    expect(h.llm.requests).toHaveLength(1);
    h.clock.advance(1);
    await settle();
    expect(h.llm.requests[1]?.find((message) => message.role === "tool")?.content).toContain(
      "no answer from the phone system",
    );
    expect(h.messages("transfer_cancel")).toEqual([]);
  });
});
