#!/usr/bin/env node
/**
 * Builds the deployable bridge: one ESM file, dist/patchbay-bridge.mjs (+ .map), run with plain
 * `node dist/patchbay-bridge.mjs`. No node_modules on the VM: everything the bridge imports is bundled.
 *
 *   node scripts/build.mjs          # bundle
 *   node scripts/build.mjs --pack   # bundle, then dist/patchbay-bridge.tar.gz (what deploy/terraform installs)
 *
 * Why esbuild: already a dev dependency, bundles TypeScript without a separate tsc emit, and produces one
 * file in well under a second. Type checking stays with `pnpm typecheck`.
 */
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const packageDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const distDir = join(packageDir, "dist");
const outfile = join(distDir, "patchbay-bridge.mjs");
const tarball = join(distDir, "patchbay-bridge.tar.gz");
const entry = join(packageDir, "src", "main.ts");

// ESM output has no `require`, `__filename` or `__dirname`; CommonJS dependencies bundled into it (pino,
// prom-client, ws) use them. The names are prefixed so they cannot collide with bundled top-level symbols.
const banner = [
  "#!/usr/bin/env node",
  'import { createRequire as __patchbayCreateRequire } from "node:module";',
  'import { fileURLToPath as __patchbayFileURLToPath } from "node:url";',
  'import { dirname as __patchbayDirname } from "node:path";',
  "const require = __patchbayCreateRequire(import.meta.url);",
  "const __filename = __patchbayFileURLToPath(import.meta.url);",
  "const __dirname = __patchbayDirname(__filename);",
].join("\n");

rmSync(distDir, { recursive: true, force: true });

const result = await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: "node",
  target: "node22",
  format: "esm",
  sourcemap: "linked",
  sourcesContent: true,
  banner: { js: banner },
  // ws loads these optional native speed-ups inside try/catch; without them it uses pure JS.
  external: ["bufferutil", "utf-8-validate"],
  metafile: true,
  logLevel: "warning",
});

const bytes = result.metafile.outputs[relative(process.cwd(), outfile)]?.bytes;
process.stdout.write(
  `build: ${relative(packageDir, outfile)}${bytes ? ` (${Math.round(bytes / 1024)} KiB)` : ""}\n`,
);

if (process.argv.includes("--pack")) {
  execFileSync("tar", ["-czf", tarball, "-C", distDir, "patchbay-bridge.mjs", "patchbay-bridge.mjs.map"], {
    stdio: "inherit",
  });
  process.stdout.write(`build: ${relative(packageDir, tarball)}\n`);
}
