/**
 * `pnpm --filter @patchbay/workers check:agents`: validates every workers/agents/*.json with the
 * deploy check (src/agents/check.ts) and exits 1 listing each problem as `agents/<file>.json: <key>:
 * <message>`. Runs in Node in about a second, so `test` (CI) and the root `deploy:workers` run it
 * first; the workerd suite runs the same check (test/agents.test.ts).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { bundledAgentSources } from "../src/agents/catalog";
import { checkAgentFiles } from "../src/agents/check";

const directory = join(import.meta.dirname, "..", "agents");
const files: Record<string, unknown> = {};
const errors: string[] = [];
for (const file of readdirSync(directory)
  .filter((entry) => entry.endsWith(".json"))
  .sort()) {
  const name = file.slice(0, -".json".length);
  try {
    files[name] = JSON.parse(readFileSync(join(directory, file), "utf8"));
  } catch (error) {
    errors.push(
      `agents/${file}: (file): not valid JSON: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}
errors.push(...checkAgentFiles(files, bundledAgentSources));
if (errors.length > 0) {
  console.error(`check:agents: ${errors.length} problem(s):\n  ${errors.join("\n  ")}`);
  process.exit(1);
}
console.log(
  `check:agents: ${Object.keys(files).length} agent definitions ok (${Object.keys(files).join(", ")})`,
);
