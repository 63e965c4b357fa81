/**
 * The agents this Worker knows, and which one answers a given call. Definitions are imported as JSON
 * so they are bundled at build time (no KV, no fetch at call setup); each is validated once, on first
 * use. Adding an agent = a JSON file in workers/agents/ + one import line below (the agents test fails
 * if a file is not listed here).
 */
import type { CallMetadata } from "@patchbay/shared/protocol";
import frontDesk from "../../agents/front-desk.json";
import receptionist from "../../agents/receptionist.json";
import supportWorkersAi from "../../agents/support-workers-ai.json";
import { type AgentDefinition, checkAgentDefinition } from "./schema";

/** Raw bundled definitions, keyed by file name (without .json). */
export const bundledAgentSources: Readonly<Record<string, unknown>> = {
  receptionist,
  "front-desk": frontDesk,
  "support-workers-ai": supportWorkersAi,
};

export class AgentCatalogError extends Error {
  override readonly name = "AgentCatalogError";
}

export class AgentCatalog {
  readonly #agents = new Map<string, AgentDefinition>();

  constructor(sources: Readonly<Record<string, unknown>>) {
    for (const [source, raw] of Object.entries(sources)) this.add(raw, source);
  }

  /** Adds a definition; throws with every problem listed if it is invalid. */
  add(raw: unknown, source = "inline"): AgentDefinition {
    const check = checkAgentDefinition(raw);
    if (!check.ok) {
      throw new AgentCatalogError(`agent definition ${source} is invalid:\n  ${check.errors.join("\n  ")}`);
    }
    this.#agents.set(check.agent.id, Object.freeze(check.agent));
    return check.agent;
  }

  get(id: string): AgentDefinition | undefined {
    return this.#agents.get(id);
  }

  ids(): string[] {
    return [...this.#agents.keys()];
  }

  /**
   * Picks the agent for a call: an explicit choice (hello.call.agent, or the X-Patchbay-Agent header)
   * wins, then the dialed number / extension (the To user part), then the default. An explicit choice
   * naming an unknown agent falls through to routing rather than failing the call.
   */
  select(call: CallMetadata, defaultAgentId: string): AgentDefinition {
    const explicit = call.agent ?? headerValue(call.headers, "x-patchbay-agent");
    const chosen = explicit ? this.#agents.get(explicit) : undefined;
    if (chosen) return chosen;
    const dialed = dialedUser(call.to);
    if (dialed) {
      for (const agent of this.#agents.values()) {
        if (agent.routing.numbers.includes(dialed) || agent.routing.extensions.includes(dialed)) return agent;
      }
    }
    const fallback = this.#agents.get(defaultAgentId);
    if (!fallback) throw new AgentCatalogError(`default agent ${defaultAgentId} is not defined`);
    return fallback;
  }
}

function headerValue(headers: Record<string, string>, name: string): string | undefined {
  for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() === name) return value.trim();
  return undefined;
}

/** "sip:+1555@pbx;user=phone", "<sip:1000@10.0.0.1>", "1000" → "+1555" / "1000". */
export function dialedUser(to: string): string | undefined {
  const sipUser = /sips?:([^@;>]+)@/.exec(to)?.[1];
  const user = (sipUser ?? to).trim();
  return /^\+?[0-9*#]{1,32}$/.test(user) ? user : undefined;
}

let bundled: AgentCatalog | undefined;

/** The catalog of bundled agents (validated on first use; tests may add agents to it). */
export function agentCatalog(): AgentCatalog {
  bundled ??= new AgentCatalog(bundledAgentSources);
  return bundled;
}
