/**
 * The guides must use the real names: every bridge-looking environment variable in the docs and deploy
 * files is one of ENV_KEYS, every `wrangler secret put NAME` names something the Worker reads, and the
 * guides this package promises exist.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { ENV_KEYS } from "../../bridge-vm/src/config/schema";
import { deployDir, repoRoot } from "./paths";

const docsDir = join(repoRoot, "docs");
const ownedDocs = [
  "docs/deploy.md",
  "docs/troubleshooting.md",
  "docs/security.md",
  "docs/pbx/asterisk-pjsip.md",
  "docs/pbx/freepbx.md",
  "docs/pbx/vicidial.md",
  "docs/pbx/kamailio.md",
];

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (name === "node_modules" || name === "test") return [];
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/** Worker-side names that docs may mention next to the bridge's own. */
const workerNames = new Set([
  "BRIDGE_SECRET",
  "API_TOKEN",
  "DEEPGRAM_API_KEY",
  "OPENAI_API_KEY",
  "OPENAI_BASE_URL",
  "ELEVENLABS_API_KEY",
  "CARTESIA_API_KEY",
]);

describe("docs and deploy files", () => {
  it.each(ownedDocs)("%s exists", (path) => {
    expect(existsSync(join(repoRoot, path))).toBe(true);
  });

  it("name only real bridge environment variables", () => {
    const known = new Set(Object.keys(ENV_KEYS));
    const files = [...ownedDocs.map((path) => join(repoRoot, path)), ...filesUnder(deployDir)].filter(
      (path) => /\.(md|tf|tfvars|tftpl|example|service)$/.test(path),
    );
    const unknown: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, "utf8");
      for (const match of text.matchAll(/\b(?:SIP|RTP|CLOUD|HTTP|RECORDING|LOG|DRAIN|BRIDGE)_[A-Z0-9_]+\b/g))
        if (!known.has(match[0]) && !workerNames.has(match[0]))
          unknown.push(`${relative(repoRoot, file)}: ${match[0]}`);
    }
    expect(unknown).toEqual([]);
  });

  it("set only Worker secrets the Worker reads", () => {
    const guide = readFileSync(join(docsDir, "deploy.md"), "utf8");
    const secrets = [...guide.matchAll(/secret put ([A-Z][A-Z0-9_]+)/g)].map((match) => match[1]!);
    expect(new Set(secrets)).toEqual(workerNames);
    const workerSource = filesUnder(join(repoRoot, "workers", "src"))
      .filter((path) => path.endsWith(".ts"))
      .map((path) => readFileSync(path, "utf8"))
      .join("\n");
    for (const name of secrets) expect(workerSource, `the Worker never mentions ${name}`).toContain(name);
  });
});
