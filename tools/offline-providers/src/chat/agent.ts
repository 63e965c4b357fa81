/**
 * The scripted agent: decides a reply from the conversation so far. Pure (no I/O, no clock, no ids),
 * so tests drive it with plain objects; the HTTP layer turns its plan into chunks.
 */
import {
  AGENT_RULES,
  type AgentRule,
  DTMF_PATTERN,
  END_CALL_TOOL_NAMES,
  FALLBACK_REPLY,
  GREETING,
  KEY_WORDS,
  TOOL_ACK,
  TRANSFER_ACK,
  TRANSFER_FAILED_REPLY,
  TRANSFER_TOOL_NAMES,
  TRANSFER_UNAVAILABLE_REPLY,
} from "./rules";

/** The parts of an OpenAI chat request the agent reads (already validated by the HTTP layer). */
export interface AgentMessage {
  role: string;
  /** Text content: a string, an array of content parts, or null (assistant turns with tool calls). */
  content?: unknown;
  tool_calls?: ReadonlyArray<{ function?: { name?: string } }> | undefined;
}

export interface AgentTool {
  name: string;
  description?: string | undefined;
  /** JSON Schema of the arguments, used to name the transfer target's property. */
  parameters?: Record<string, unknown> | undefined;
}

export interface PlannedToolCall {
  name: string;
  arguments: Record<string, unknown>;
}

export interface AgentPlan {
  /** Which rule produced the plan ("fallback", "dtmf", "tool-ack", "greeting-opening" or a rule name). */
  rule: string;
  text: string;
  toolCalls: PlannedToolCall[];
}

/** Flattens OpenAI message content (string or content parts) into plain text. */
export function messageText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .map((part: unknown) =>
      typeof part === "object" && part !== null && "text" in part && typeof part.text === "string"
        ? part.text
        : "",
    )
    .join(" ");
}

/** Lower case, apostrophes kept (that's), other punctuation to spaces, spaces collapsed. */
export function normalizeUtterance(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9'*# ]+/g, " ")
    .replace(/\s+/g, " ")
    .trim();
}

export function matchRule(
  utterance: string,
  rules: readonly AgentRule[] = AGENT_RULES,
): AgentRule | undefined {
  const normalized = normalizeUtterance(utterance);
  return rules.find((rule) => rule.pattern.test(normalized));
}

function findTool(tools: readonly AgentTool[], names: readonly string[]): AgentTool | undefined {
  for (const name of names) {
    const tool = tools.find((candidate) => candidate.name === name);
    if (tool) return tool;
  }
  return undefined;
}

const TARGET_PROPERTY_NAMES = ["target", "destination", "to", "number", "extension", "uri"];

/** The transfer tool's target property: a well-known name if the schema has one, else its first string property. */
function transferTargetProperty(tool: AgentTool): string {
  const properties = tool.parameters?.properties;
  if (typeof properties !== "object" || properties === null) return "target";
  const names = Object.keys(properties);
  const known = TARGET_PROPERTY_NAMES.find((name) => names.includes(name));
  if (known) return known;
  const firstString = names.find((name) => {
    const schema: unknown = (properties as Record<string, unknown>)[name];
    return typeof schema === "object" && schema !== null && "type" in schema && schema.type === "string";
  });
  return firstString ?? "target";
}

function declaresProperty(tool: AgentTool | undefined, name: string): boolean {
  const properties = tool?.parameters?.properties;
  return typeof properties === "object" && properties !== null && name in properties;
}

/** The name of the tool the latest assistant turn called, if the conversation ends in tool results. */
function pendingToolName(messages: readonly AgentMessage[]): string | undefined {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i]!;
    if (message.role === "tool") continue;
    if (message.role === "assistant") return message.tool_calls?.[0]?.function?.name ?? "";
    return undefined;
  }
  return undefined;
}

export interface AgentOptions {
  /** Overrides every transfer target (the demo's PBX extension). */
  transferTarget?: string | undefined;
}

/** "… Allowed targets: 200, sip:desk@pbx." → "200" */
function firstAllowedTarget(tool: AgentTool): string | undefined {
  const listed = /allowed targets:\s*([^,\s]+)/i.exec(tool.description ?? "")?.[1];
  return listed?.replace(/\.$/, "");
}

export function planReply(
  messages: readonly AgentMessage[],
  tools: readonly AgentTool[],
  options: AgentOptions = {},
): AgentPlan {
  const last = messages[messages.length - 1];
  if (last?.role === "tool") {
    const toolName = pendingToolName(messages) ?? "";
    const isTransfer = TRANSFER_TOOL_NAMES.some((name) => name === toolName);
    if (isTransfer && /^\s*error\b/i.test(messageText(last.content)))
      return { rule: "transfer-failed", text: TRANSFER_FAILED_REPLY, toolCalls: [] };
    return { rule: "tool-ack", text: isTransfer ? TRANSFER_ACK : TOOL_ACK, toolCalls: [] };
  }

  const lastUser = [...messages].reverse().find((message) => message.role === "user");
  if (!lastUser) return { rule: "greeting-opening", text: GREETING, toolCalls: [] };

  const utterance = messageText(lastUser.content);
  const digits = DTMF_PATTERN.exec(utterance)?.[1];
  if (digits !== undefined) {
    const keys = digits.replace(/\s+/g, "").toUpperCase().split("");
    const spoken = keys.map((key) => KEY_WORDS[key] ?? key).join(" ");
    return { rule: "dtmf", text: `You pressed ${spoken}.`, toolCalls: [] };
  }

  const rule = matchRule(utterance);
  if (!rule) return { rule: "fallback", text: FALLBACK_REPLY, toolCalls: [] };

  switch (rule.action.kind) {
    case "reply":
      return { rule: rule.name, text: rule.reply, toolCalls: [] };
    case "transfer": {
      const tool = findTool(tools, TRANSFER_TOOL_NAMES);
      if (!tool) return { rule: rule.name, text: TRANSFER_UNAVAILABLE_REPLY, toolCalls: [] };
      const target = options.transferTarget ?? firstAllowedTarget(tool) ?? rule.action.target;
      const args = { [transferTargetProperty(tool)]: target };
      return { rule: rule.name, text: rule.reply, toolCalls: [{ name: tool.name, arguments: args }] };
    }
    case "end_call": {
      const tool = findTool(tools, END_CALL_TOOL_NAMES);
      const args: Record<string, unknown> = declaresProperty(tool, "reason")
        ? { reason: "caller said goodbye" }
        : {};
      const toolCalls = tool ? [{ name: tool.name, arguments: args }] : [];
      return { rule: rule.name, text: rule.reply, toolCalls };
    }
  }
}
