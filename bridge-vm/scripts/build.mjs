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
import { existsSync, rmSync } from "node:fs";
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

// Until src/main.ts exists, bundle a stand-in that only loads the config, so the artifact and the
// "bad config exits 2" contract can be built and tested. It is loud about being a stand-in.
const standIn = `
import { loadConfigOrExit } from "./src/config";
loadConfigOrExit();
process.stderr.write("patchbay: this bundle was built without src/main.ts (config check only)\\n");
process.exit(1);
`;

rmSync(distDir, { recursive: true, force: true });
const hasMain = existsSync(entry);
if (!hasMain) process.stderr.write("build: src/main.ts not found; bundling the config-only stand-in\n");

const result = await build({
  ...(hasMain
    ? { entryPoints: [entry] }
    : { stdin: { contents: standIn, resolveDir: packageDir, sourcefile: "stand-in.ts", loader: "ts" } }),
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
