/**
 * `wrangler deploy --dry-run` bundles the Worker exactly as `pnpm deploy:workers` would, without a
 * Cloudflare account or network. Wrangler's telemetry, error reports and npm update check are switched
 * off (the update check is answered from a seeded cache) so the test sends nothing off the machine.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { deployDir, repoRoot } from "./paths";
import { run } from "./tools";

const workerEntry = join(repoRoot, "workers", "src", "index.ts");
const wrangler = join(deployDir, "node_modules", ".bin", "wrangler");
const workDir = mkdtempSync(join(tmpdir(), "patchbay-wrangler-"));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

function offlineEnv(): NodeJS.ProcessEnv {
  const version = (
    JSON.parse(readFileSync(join(deployDir, "package.json"), "utf8")) as {
      devDependencies: Record<string, string>;
    }
  ).devDependencies.wrangler!;
  const updateCache = join(workDir, "update-check");
  mkdirSync(updateCache, { recursive: true });
  writeFileSync(
    join(updateCache, "wrangler-latest.json"),
    JSON.stringify({ latest: version, lastUpdate: Date.now() }),
  );
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TMPDIR: workDir,
    WRANGLER_SEND_METRICS: "false",
    WRANGLER_SEND_ERROR_REPORTS: "false",
    WRANGLER_HIDE_BANNER: "true",
    WRANGLER_LOG_PATH: join(workDir, "logs"),
  };
  delete env.CLOUDFLARE_API_TOKEN;
  delete env.CLOUDFLARE_ACCOUNT_ID;
  return env;
}

describe("Worker deploy (wrangler.toml)", () => {
  it("bundles with wrangler deploy --dry-run, offline", (context) => {
    if (!existsSync(workerEntry))
      return context.skip(
        "workers/src/index.ts (the Worker entry named in wrangler.toml) does not exist yet",
      );
    const outdir = join(workDir, "out");
    const result = run(
      wrangler,
      ["deploy", "--dry-run", "--outdir", outdir, "--config", "wrangler.toml", "--env="],
      {
        cwd: repoRoot,
        env: offlineEnv(),
      },
    );
    expect(result.status, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(result.stdout).toContain("--dry-run: exiting now.");
    expect(result.stdout).toMatch(/env\.CALL \(CallSession\)\s+Durable Object/);
    expect(result.stdout).toMatch(/env\.AI\s+AI/);
    expect(existsSync(join(outdir, "index.js"))).toBe(true);
  });

  it("is what the root deploy:workers script runs", () => {
    const scripts = (
      JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
        scripts: Record<string, string>;
      }
    ).scripts;
    expect(scripts["deploy:workers"]).toMatch(/wrangler deploy --config (\.\.\/)?wrangler\.toml/);
  });
});
