/**
 * The deploy check of agent definitions (`pnpm --filter @patchbay/workers check:agents`, run by the
 * package's `test` and by the root `deploy:workers`): the schema, plus what only a deployment can get
 * wrong: provider ids the Worker does not have, model/voice choices our own provider code would
 * refuse or silently replace, an id that differs from the file name, a file the catalog does not
 * bundle, a route claimed twice. Only rules our code already knows are checked (no vendor catalogs).
 * Every message starts with the file and the key: `agents/x.json: stt.provider: …`.
 */
import { KNOWN_PROVIDER_IDS } from "../providers/registry";
import { WEBHOOK_SECRETS } from "../providers/secrets";
import { WORKERS_AI_FLUX, WORKERS_AI_NOVA_3 } from "../providers/workers-ai/stt";
import { type AgentDefinition, checkAgentDefinition } from "./schema";

type Problem = { key: string; message: string };

/** Problems with one agents/<name>.json file (empty = fine). */
export function checkAgentFile(name: string, raw: unknown): string[] {
  const where = `agents/${name}.json`;
  const check = checkAgentDefinition(raw);
  if (!check.ok) return check.errors.map((error) => `${where}: ${error}`);
  const problems = deployProblems(check.agent);
  if (check.agent.id !== name) {
    problems.unshift({ key: "id", message: `"${check.agent.id}" must equal the file name "${name}"` });
  }
  return problems.map((problem) => `${where}: ${problem.key}: ${problem.message}`);
}

/** Problems across all files: each must be valid and bundled, and no number/extension routed twice. */
export function checkAgentFiles(
  files: Readonly<Record<string, unknown>>,
  bundled: Readonly<Record<string, unknown>>,
): string[] {
  const errors: string[] = [];
  const routes = new Map<string, string>();
  for (const [name, raw] of Object.entries(files)) {
    const fileErrors = checkAgentFile(name, raw);
    errors.push(...fileErrors);
    if (bundled[name] === undefined) {
      errors.push(`agents/${name}.json: (file): not bundled: add an import of it to src/agents/catalog.ts`);
    }
    const check = checkAgentDefinition(raw);
    if (!check.ok) continue;
    for (const route of [...check.agent.routing.numbers, ...check.agent.routing.extensions]) {
      const other = routes.get(route);
      if (other) errors.push(`agents/${name}.json: routing: ${route} is also routed to agents/${other}.json`);
      else routes.set(route, name);
    }
  }
  if (!("receptionist" in files))
    errors.push("agents/receptionist.json: (file): the default agent is missing");
  return errors;
}

function deployProblems(agent: AgentDefinition): Problem[] {
  const problems: Problem[] = [];
  const unknown = (stage: keyof typeof KNOWN_PROVIDER_IDS, key: string, id: string) => {
    const known: readonly string[] = KNOWN_PROVIDER_IDS[stage];
    if (!known.includes(id)) {
      problems.push({ key, message: `unknown ${stage} provider "${id}" (known: ${known.join(", ")})` });
      return true;
    }
    return false;
  };
  const realtimeIds: readonly string[] = KNOWN_PROVIDER_IDS.realtime;

  if (agent.mode === "realtime") {
    // One speech-to-speech session, named by llm; stt/tts are not used.
    unknown("realtime", "llm.provider", agent.llm.provider);
    return problems;
  }
  if (realtimeIds.includes(agent.llm.provider)) {
    problems.push({
      key: "llm.provider",
      message: `"${agent.llm.provider}" is a speech-to-speech provider: set "mode": "realtime"`,
    });
  } else unknown("llm", "llm.provider", agent.llm.provider);
  unknown("stt", "stt.provider", agent.stt.provider);
  unknown("tts", "tts.provider", agent.tts.provider);

  for (const stage of ["stt", "llm", "tts"] as const) {
    const { provider, model } = agent[stage];
    if (model === undefined) continue;
    const workersAiModel = /^@(cf|hf)\//.test(model);
    if (provider === "workers-ai" && !workersAiModel) {
      problems.push({
        key: `${stage}.model`,
        message: `Workers AI model ids start with @cf/ or @hf/, not "${model}"`,
      });
    } else if (provider !== "workers-ai" && workersAiModel) {
      problems.push({
        key: `${stage}.model`,
        message: `"${model}" is a Workers AI model: use "provider": "workers-ai" (not "${provider}")`,
      });
    }
  }

  const sttModel = agent.stt.model;
  if (agent.stt.provider === "workers-ai" && sttModel !== undefined) {
    if (sttModel !== WORKERS_AI_FLUX && sttModel !== WORKERS_AI_NOVA_3 && /^@(cf|hf)\//.test(sttModel)) {
      problems.push({
        key: "stt.model",
        message: `Workers AI speech recognition is ${WORKERS_AI_FLUX} or ${WORKERS_AI_NOVA_3}, not "${sttModel}"`,
      });
    }
  }
  // Flux (turn detection) and Nova (live) are different Deepgram endpoints, hence different ids.
  if (agent.stt.provider === "deepgram-flux" && sttModel !== undefined && !sttModel.startsWith("flux")) {
    problems.push({ key: "stt.model", message: `deepgram-flux takes a flux-… model, not "${sttModel}"` });
  }
  if (agent.stt.provider === "deepgram" && sttModel?.startsWith("flux")) {
    problems.push({
      key: "stt.model",
      message: `"${sttModel}" is a Flux model: use "provider": "deepgram-flux"`,
    });
  }
  // The Env type declares every secret an agent names (src/providers/secrets.ts).
  const declared: readonly string[] = WEBHOOK_SECRETS;
  const secrets: [string, string | undefined][] = [
    ...agent.tools.map((tool, index): [string, string | undefined] => [
      `tools.${index}.signingSecret`,
      tool.type === "webhook" ? tool.signingSecret : undefined,
    ]),
    ["callEndedWebhook.signingSecret", agent.callEndedWebhook?.signingSecret],
  ];
  for (const [key, name] of secrets) {
    if (name !== undefined && !declared.includes(name)) {
      problems.push({
        key,
        message: `${name} is not declared in WEBHOOK_SECRETS (src/providers/secrets.ts)`,
      });
    }
  }
  // Aura's voice is its model name (aura-…); anything else would be silently replaced by the default.
  if (
    agent.tts.provider === "deepgram" &&
    !agent.voice.startsWith("aura") &&
    !agent.tts.model?.startsWith("aura")
  ) {
    problems.push({
      key: "voice",
      message: `Deepgram Aura voices are aura-… model names (e.g. aura-2-thalia-en), not "${agent.voice}"`,
    });
  }
  return problems;
}
