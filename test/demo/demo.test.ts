/**
 * `pnpm demo` itself, run as the README tells a newcomer to run it (a child process, exit code and
 * output): without Kamailio (direct mode, which a machine without the package falls back to), and with
 * `--remote` against a Worker that is not the demo's own. The "remote" Worker here is a local workerd
 * with offline providers started by this test: the demo must not care where the Worker runs.
 */
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type OfflineProviders, startOfflineProviders } from "@patchbay/offline-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestHarness, type TestHarness } from "wrangler";
import { runToCompletion } from "../support/process";

const TEST_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const REPO_ROOT = join(TEST_ROOT, "..");
const TSX = join(TEST_ROOT, "node_modules/.bin/tsx");

/** Runs the demo script with these arguments and environment; returns its exit code and output. */
async function runDemo(args: readonly string[], env: Record<string, string> = {}) {
  const result = await runToCompletion("demo", TSX, ["demo/main.ts", ...args], {
    cwd: TEST_ROOT,
    env,
    timeoutMs: 90_000,
  });
  return { code: result.code, output: `${result.stdout}\n${result.stderr}` };
}

/** What every successful demo run prints: the scripted call went through and was measured. */
function expectACompleteCall(output: string): void {
  expect(output).toMatch(/greeting heard \d+ ms after answer/);
  expect(output).toMatch(/mouth-to-ear\)/);
  expect(output).toMatch(/agent: "/);
  expect(output).toMatch(/call ended: /);
  expect(output).toMatch(/recording: .*stereo 8000 Hz/);
  expect(output).toMatch(/latency report: /);
  expect(output).toMatch(/stack stopped/);
}

describe("pnpm demo", () => {
  it("runs a whole call without Kamailio (--direct) and says so", async () => {
    const { code, output } = await runDemo(["--direct"]);
    expect(code, output).toBe(0);
    expect(output).toMatch(/pbx: +none/);
    expect(output).toMatch(/providers: offline demo providers/);
    expectACompleteCall(output);
  });

  it("--remote without the Worker's variables exits 2 with one line naming what is missing", async () => {
    const { code, output } = await runDemo(["--remote"], {
      PATCHBAY_WORKER_URL: "",
      BRIDGE_SECRET: "",
      API_TOKEN: "",
    });
    expect(code).toBe(2);
    const lines = output.split("\n").filter((line) => line.trim() !== "");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/--remote: set PATCHBAY_WORKER_URL/);
  });

  describe("--remote against a Worker it did not start", () => {
    let providers: OfflineProviders;
    let worker: TestHarness;
    let url: string;
    const bridgeSecret = randomBytes(24).toString("hex");
    const apiToken = randomBytes(24).toString("hex");

    beforeAll(async () => {
      providers = await startOfflineProviders({ port: 0 });
      process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
      worker = createTestHarness({
        workers: [
          {
            configPath: join(REPO_ROOT, "wrangler.toml"),
            env: "offline",
            secrets: {
              BRIDGE_SECRET: bridgeSecret,
              API_TOKEN: apiToken,
              OPENAI_BASE_URL: `${providers.url}/v1`,
              OPENAI_API_KEY: "offline-demo",
            },
          },
        ],
      });
      url = (await worker.listen()).url.toString();
    });

    afterAll(async () => {
      await worker?.close();
      await providers?.close();
    });

    it("uses that Worker for the call and reads the transcript from it", async () => {
      const { code, output } = await runDemo(["--remote"], {
        PATCHBAY_WORKER_URL: url,
        BRIDGE_SECRET: bridgeSecret,
        API_TOKEN: apiToken,
      });
      expect(code, output).toBe(0);
      expect(output).toContain(`worker:    ${url.replace(/\/$/, "")} (deployed)`);
      expect(output).not.toMatch(/offline demo providers at/);
      expectACompleteCall(output);
    });
  });
});
