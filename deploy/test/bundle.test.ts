/**
 * The deployable bridge: `node scripts/build.mjs --pack` (what `pnpm --filter @patchbay/bridge build`
 * runs, plus the tarball Terraform installs) must give one self-contained .mjs that plain `node` runs
 * from a directory with no node_modules, and that honours the config loader's contract: with an empty
 * environment it exits 2 after one line naming the missing variable.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ENV_KEYS } from "../../bridge-vm/src/config/schema";
import { bridgeDir } from "./paths";
import { run } from "./tools";

const distDir = join(bridgeDir, "dist");
const isolatedDir = mkdtempSync(join(tmpdir(), "patchbay-bundle-"));
let build: ReturnType<typeof run>;

beforeAll(() => {
  build = run(process.execPath, ["scripts/build.mjs", "--pack"], { cwd: bridgeDir });
});
afterAll(() => rmSync(isolatedDir, { recursive: true, force: true }));

describe("bridge bundle (bridge-vm/scripts/build.mjs)", () => {
  it("builds one .mjs with a source map, and the release tarball", () => {
    expect(build.status, build.stderr).toBe(0);
    expect(existsSync(join(distDir, "patchbay-bridge.mjs"))).toBe(true);
    expect(existsSync(join(distDir, "patchbay-bridge.mjs.map"))).toBe(true);
    const listing = run("tar", ["-tzf", join(distDir, "patchbay-bridge.tar.gz")]);
    expect(listing.stdout.trim().split("\n").sort()).toEqual([
      "patchbay-bridge.mjs",
      "patchbay-bridge.mjs.map",
    ]);
  });

  it("runs with plain node outside the repo and, with no config, exits 2 naming the missing key", () => {
    copyFileSync(join(distDir, "patchbay-bridge.mjs"), join(isolatedDir, "patchbay-bridge.mjs"));
    const result = run(process.execPath, [join(isolatedDir, "patchbay-bridge.mjs")], {
      cwd: isolatedDir,
      env: {},
    });
    const lines = result.stderr.trimEnd().split("\n");
    expect(result.status, result.stderr).toBe(2);
    expect(lines).toHaveLength(1);
    const named = Object.keys(ENV_KEYS).filter((name) => lines[0]!.includes(`${name}:`));
    expect(named, `stderr names no ENV_KEYS variable: ${lines[0]}`).toHaveLength(1);
  });
});
