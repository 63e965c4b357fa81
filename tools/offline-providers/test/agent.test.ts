import { describe, expect, it } from "vitest";
import { type AgentTool, matchRule, planReply } from "../src/chat/agent";
import { argumentFragments, completionChunks, wordDeltas } from "../src/chat/chunks";
import { CALLER_PHRASES, FALLBACK_REPLY, GREETING } from "../src/chat/rules";

const TOOLS: AgentTool[] = [
  { name: "transfer_call", parameters: { type: "object", properties: { destination: { type: "string" } } } },
  { name: "end_call", parameters: { type: "object", properties: {} } },
];

const user = (content: string) => ({ role: "user", content });

describe("scripted agent rules", () => {
  it.each(CALLER_PHRASES)("the tuned caller phrase '$text' triggers rule $rule", (phrase) => {
    expect(matchRule(phrase.text)?.name).toBe(phrase.rule);
  });

  it("matches loosely: case, punctuation and surrounding words do not matter", () => {
    expect(matchRule("Hi! So, what are your OPENING hours?")?.name).toBe("hours");
    expect(matchRule("Thanks, that's all.")?.name).toBe("goodbye");
    expect(matchRule("how much")?.name).toBe("price");
  });

  it("answers a keypad digit in the pipeline's message format, and loose variants", () => {
    expect(planReply([user("[caller pressed 5]")], TOOLS).text).toBe("You pressed five.");
    expect(planReply([user("The caller pressed #")], TOOLS).text).toBe("You pressed pound.");
    expect(planReply([user("[caller pressed 1 2 3]")], TOOLS).text).toBe("You pressed one two three.");
  });

  it("transfers with the target in the property the tool's schema declares", () => {
    const plan = planReply([user("I want to talk to a human")], TOOLS);
    expect(plan.toolCalls).toEqual([
      { name: "transfer_call", arguments: { destination: "sip:operator@127.0.0.1" } },
    ]);
  });

  it("transfers to the first allowed target the pipeline lists, or to the configured one", () => {
    const tools: AgentTool[] = [
      {
        name: "transfer_call",
        description: "Transfer the caller. Allowed targets: 200, sip:desk@pbx.example.",
        parameters: { type: "object", properties: { target: { type: "string" } } },
      },
    ];
    const human = [user("a human please")];
    expect(planReply(human, tools).toolCalls[0]?.arguments).toEqual({ target: "200" });
    expect(planReply(human, tools, { transferTarget: "300" }).toolCalls[0]?.arguments).toEqual({
      target: "300",
    });
  });

  it("says goodbye then calls end_call, with arguments the tool's schema allows", () => {
    const plan = planReply([user("thanks that is all goodbye")], TOOLS);
    expect(plan.text).toMatch(/goodbye/i);
    expect(plan.toolCalls).toEqual([{ name: "end_call", arguments: {} }]);
    const withReason: AgentTool = {
      name: "end_call",
      parameters: { type: "object", properties: { reason: { type: "string" } } },
    };
    expect(planReply([user("goodbye")], [withReason]).toolCalls[0]?.arguments).toEqual({
      reason: "caller said goodbye",
    });
  });

  it("never calls a tool the request does not declare", () => {
    expect(planReply([user("goodbye")], []).toolCalls).toEqual([]);
    const transfer = planReply([user("transfer me to a person")], []);
    expect(transfer.toolCalls).toEqual([]);
    expect(transfer.text).not.toBe("");
  });

  it("acknowledges tool results briefly", () => {
    const plan = planReply(
      [
        user("human please"),
        { role: "assistant", content: null, tool_calls: [{ function: { name: "transfer_call" } }] },
        { role: "tool", content: "ok" },
      ],
      TOOLS,
    );
    expect(plan).toEqual({ rule: "tool-ack", text: "Connecting you now.", toolCalls: [] });
  });

  it("tells the caller when the transfer failed (the Worker's failure results start with error:)", () => {
    const plan = planReply(
      [
        user("human please"),
        { role: "assistant", content: null, tool_calls: [{ function: { name: "transfer_call" } }] },
        { role: "tool", content: "error: the transfer to 2001 failed (SIP 486): the person is busy." },
      ],
      TOOLS,
    );
    expect(plan.rule).toBe("transfer-failed");
    expect(plan.text).toMatch(/nobody could take your call/);
  });

  it("greets when there is no user turn yet and falls back otherwise", () => {
    expect(planReply([{ role: "system", content: "You are a receptionist." }], TOOLS).text).toBe(GREETING);
    expect(planReply([user("purple elephants")], TOOLS).text).toBe(FALLBACK_REPLY);
  });
});

describe("chunking", () => {
  it("splits text into word deltas that reassemble exactly", () => {
    const text = "We are open nine to five, Monday to Friday.";
    expect(wordDeltas(text)).toEqual([
      "We",
      " are",
      " open",
      " nine",
      " to",
      " five,",
      " Monday",
      " to",
      " Friday.",
    ]);
    expect(wordDeltas(text).join("")).toBe(text);
  });

  it("splits tool arguments into several fragments that reassemble exactly", () => {
    const json = JSON.stringify({ target: "sip:operator@127.0.0.1" });
    expect(argumentFragments(json).length).toBeGreaterThan(1);
    expect(argumentFragments(json).join("")).toBe(json);
  });

  it("streams role, words, tool call opening and fragments, then the finish reason", () => {
    const chunks = completionChunks(
      { rule: "goodbye", text: "Bye now.", toolCalls: [{ name: "end_call", arguments: {} }] },
      { id: "chatcmpl-1", created: 1, model: "m", toolCallIds: ["call_1"] },
      { includeUsage: false, promptTokens: 3 },
    );
    const deltas = chunks.map((chunk) => chunk.choices[0]?.delta);
    expect(deltas[0]).toEqual({ role: "assistant", content: "", refusal: null });
    expect(deltas.slice(1, 3)).toEqual([{ content: "Bye" }, { content: " now." }]);
    expect(deltas[3]).toEqual({
      tool_calls: [
        { index: 0, id: "call_1", type: "function", function: { name: "end_call", arguments: "" } },
      ],
    });
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe("tool_calls");
  });
});
