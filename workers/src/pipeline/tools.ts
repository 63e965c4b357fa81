/**
 * The tools an agent's model may call: the built-ins (end_call, transfer_call, send_dtmf), whose effect
 * the conversation carries out on the call, and HTTP webhook tools declared in the agent definition,
 * which are POSTed (signed, unless the agent says `unsigned: true`) to the operator's server with the
 * result fed back to the model.
 */
import type { AgentDefinition, ToolDefinition, WebhookToolDefinition } from "../agents/schema";
import type { ToolSpec } from "../providers/types";
import type { Clock } from "./clock";

const builtinSpecs: Record<"end_call" | "transfer_call" | "send_dtmf", Omit<ToolSpec, "name">> = {
  end_call: {
    description:
      "End the phone call. Say your goodbye in the same reply before calling this; the call ends once it has been heard.",
    parameters: {
      type: "object",
      properties: { reason: { type: "string", description: "Why the call is ending" } },
    },
  },
  transfer_call: {
    description:
      "Transfer the caller to another extension or number. Tell the caller first. If it fails you will be told, and should tell the caller.",
    parameters: {
      type: "object",
      properties: { target: { type: "string", description: "Extension or phone number to transfer to" } },
      required: ["target"],
    },
  },
  send_dtmf: {
    description: "Press phone keys (DTMF) on the line, e.g. to navigate another phone menu.",
    parameters: {
      type: "object",
      properties: { digits: { type: "string", description: "Digits 0-9, *, #, A-D (max 32)" } },
      required: ["digits"],
    },
  },
};

export function toolSpecsFor(agent: AgentDefinition): ToolSpec[] {
  return agent.tools.map((tool) => toolSpecOf(tool, agent));
}

function toolSpecOf(tool: ToolDefinition, agent: AgentDefinition): ToolSpec {
  if (tool.type === "webhook") {
    return { name: tool.name, description: tool.description, parameters: tool.parameters };
  }
  const spec = builtinSpecs[tool.name];
  let description = tool.description ?? spec.description;
  if (tool.name === "transfer_call" && agent.transferTargets.length > 0) {
    description += ` Allowed targets: ${agent.transferTargets.join(", ")}.`;
  }
  if (tool.name === "transfer_call" && agent.transfer.mode === "warm") {
    // Warm transfers brief the person first: the model writes what they are told.
    description +=
      " The person at the target is called first and hears your summary before the caller is connected; if nobody answers you will be told, and the caller stays with you.";
    return { name: tool.name, description, parameters: warmTransferParameters };
  }
  return { name: tool.name, description, parameters: spec.parameters };
}

const warmTransferParameters: Record<string, unknown> = {
  type: "object",
  properties: {
    target: { type: "string", description: "Extension or phone number to transfer to" },
    summary: {
      type: "string",
      description:
        "One or two sentences for the person taking the call: who is calling and what they need. Spoken to them before the caller is connected.",
    },
  },
  required: ["target"],
};

export type ToolArguments = { ok: true; value: Record<string, unknown> } | { ok: false; error: string };

/**
 * Parses the model's argument JSON and checks it against the outer layer of the tool's JSON Schema
 * (object, required keys, primitive types of declared properties). Deeper validation is the
 * webhook's job; this catches the usual model slips and tells the model what was wrong.
 */
export function parseToolArguments(text: string, parameters: Record<string, unknown>): ToolArguments {
  let value: unknown;
  try {
    value = text.trim() === "" ? {} : JSON.parse(text);
  } catch {
    return { ok: false, error: "arguments are not valid JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, error: "arguments must be a JSON object" };
  }
  const record = value as Record<string, unknown>;
  const required = Array.isArray(parameters.required) ? parameters.required : [];
  for (const key of required) {
    if (typeof key === "string" && !(key in record)) return { ok: false, error: `missing argument ${key}` };
  }
  const properties = isRecord(parameters.properties) ? parameters.properties : {};
  for (const [key, schema] of Object.entries(properties)) {
    if (!(key in record) || !isRecord(schema) || typeof schema.type !== "string") continue;
    if (!matchesType(record[key], schema.type))
      return { ok: false, error: `argument ${key} must be of type ${schema.type}` };
  }
  return { ok: true, value: record };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function matchesType(value: unknown, type: string): boolean {
  switch (type) {
    case "string":
      return typeof value === "string";
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    case "integer":
      return Number.isInteger(value);
    case "boolean":
      return typeof value === "boolean";
    case "object":
      return isRecord(value);
    case "array":
      return Array.isArray(value);
    default:
      return true;
  }
}

// ---- Signing ---------------------------------------------------------------------------------

const encoder = new TextEncoder();

/**
 * X-Patchbay-Signature: "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>". The timestamp
 * is inside the MAC so a receiver can reject replays (e.g. older than 5 minutes).
 */
export async function signWebhookBody(
  secret: string,
  body: string,
  timestampSeconds: number,
): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, encoder.encode(`${timestampSeconds}.${body}`)),
  );
  let hex = "";
  for (const byte of mac) hex += byte.toString(16).padStart(2, "0");
  return `t=${timestampSeconds},v1=${hex}`;
}

export interface WebhookDeps {
  fetch: typeof fetch;
  clock: Clock;
  /** Wall-clock seconds for the signature timestamp. */
  unixSeconds(): number;
  /** Looks up a secret by name (the Worker env); undefined when not set. */
  secret(name: string): string | undefined;
}

/** What a webhook tool call returns to the model (always a string; failures are described, not thrown). */
export const MAX_WEBHOOK_RESULT_CHARS = 4_000;

/** A webhook's answer, its body already read (at most `maxResponseChars`). */
export interface WebhookResponse {
  ok: boolean;
  status: number;
  text: string;
}

/**
 * POSTs JSON, signed when a signing secret is named, and reads the answer. The timeout covers the
 * whole exchange, body included: a server that sends its headers and then trickles (or never ends)
 * its body is cut off like one that never answers. Only the first `maxResponseChars` are kept.
 */
export async function postSignedJson(
  url: string,
  payload: unknown,
  options: {
    timeoutMs: number;
    signingSecret?: string | undefined;
    signal?: AbortSignal | undefined;
    maxResponseChars?: number | undefined;
  },
  deps: WebhookDeps,
): Promise<WebhookResponse> {
  const body = JSON.stringify(payload);
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (options.signingSecret) {
    const secret = deps.secret(options.signingSecret);
    if (!secret) throw new Error(`signing secret ${options.signingSecret} is not set`);
    headers["x-patchbay-signature"] = await signWebhookBody(secret, body, deps.unixSeconds());
  }
  const controller = new AbortController();
  const timer = deps.clock.setTimer(options.timeoutMs, () => controller.abort(new Error("timeout")));
  const onOuterAbort = () => controller.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", onOuterAbort, { once: true });
  try {
    const response = await deps.fetch(url, { method: "POST", headers, body, signal: controller.signal });
    const text = await readText(
      response,
      options.maxResponseChars ?? MAX_WEBHOOK_RESULT_CHARS,
      controller.signal,
    );
    return { ok: response.ok, status: response.status, text };
  } finally {
    timer.cancel();
    options.signal?.removeEventListener("abort", onOuterAbort);
  }
}

/** Reads up to `maxChars` of a body, giving up (and cancelling the stream) when `signal` aborts. */
async function readText(response: Response, maxChars: number, signal: AbortSignal): Promise<string> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let onAbort: (() => void) | undefined;
  // Not every runtime errors a body read when the fetch's signal aborts: race the read against it.
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  aborted.catch(() => {}); // handled by the race; no unhandled rejection if it fires later
  let text = "";
  try {
    while (text.length < maxChars) {
      const chunk = await Promise.race([reader.read(), aborted]);
      if (chunk.done) {
        text += decoder.decode();
        break;
      }
      text += decoder.decode(chunk.value, { stream: true });
    }
    return text.slice(0, maxChars);
  } finally {
    if (onAbort) signal.removeEventListener("abort", onAbort);
    reader.cancel().catch(() => {});
  }
}

export async function runWebhookTool(
  tool: WebhookToolDefinition,
  args: Record<string, unknown>,
  context: { callId: string; agentId: string; toolCallId: string },
  deps: WebhookDeps,
  signal?: AbortSignal,
): Promise<string> {
  try {
    const response = await postSignedJson(
      tool.url,
      {
        tool: tool.name,
        arguments: args,
        callId: context.callId,
        agent: context.agentId,
        toolCallId: context.toolCallId,
      },
      { timeoutMs: tool.timeoutMs, signingSecret: tool.signingSecret, signal },
      deps,
    );
    if (!response.ok)
      return `error: the ${tool.name} service answered HTTP ${response.status}: ${response.text}`;
    return response.text || "ok";
  } catch (error) {
    if (signal?.aborted) throw error;
    const message = error instanceof Error ? error.message : String(error);
    return message === "timeout" || (error instanceof Error && error.name === "AbortError")
      ? `error: the ${tool.name} service did not answer within ${tool.timeoutMs} ms`
      : `error: the ${tool.name} service failed: ${message}`;
  }
}
