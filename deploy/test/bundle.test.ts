/**
 * The deployable bridge: `node scripts/build.mjs --pack` (what `pnpm --filter @patchbay/bridge build`
 * runs, plus the tarball Terraform installs) must give one self-contained .mjs that plain `node` runs
 * from a directory with no node_modules, and that honours the config loader's contract: with an empty
 * environment it exits 2 after one line naming the missing variable.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
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
let started: ChildProcess | undefined;

function udpPortTaken(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    socket.once("error", () => resolve(true));
    socket.bind(port, "127.0.0.1", () => socket.close(() => resolve(false)));
  });
}

/** A UDP port that was free a moment ago on loopback (the bridge binds UDP and TCP on it). */
function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

beforeAll(() => {
  build = run(process.execPath, ["scripts/build.mjs", "--pack"], { cwd: bridgeDir });
});
afterAll(() => {
  if (started && started.exitCode === null) started.kill("SIGKILL");
  rmSync(isolatedDir, { recursive: true, force: true });
});

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

  it("starts with a valid loopback config, binds SIP, logs JSON lines without secrets, exits 0 on SIGTERM", async () => {
    const [sipPort, registrarPort, cloudPort] = [
      await freeUdpPort(),
      await freeUdpPort(),
      await freeUdpPort(),
    ];
    const child = spawn(process.execPath, [join(distDir, "patchbay-bridge.mjs")], {
      cwd: isolatedDir,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        SIP_REGISTRAR: `127.0.0.1:${registrarPort}`, // nothing listens: registration simply keeps retrying
        SIP_USERNAME: "7001",
        SIP_PASSWORD: "test-only-password",
        SIP_LOCAL_ADDRESS: "127.0.0.1",
        SIP_LOCAL_PORT: String(sipPort),
        RTP_PORT_MIN: "47000",
        RTP_PORT_MAX: "47100",
        HTTP_HOST: "127.0.0.1",
        HTTP_PORT: String(await freeUdpPort()),
        CLOUD_URL: `ws://127.0.0.1:${cloudPort}`,
        CLOUD_SECRET: "test-only-secret-0123456789",
        DRAIN_TIMEOUT: "0",
      },
    });
    started = child;
    let output = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    // Listening = our SIP port is taken (independent of log wording).
    const deadline = Date.now() + 60_000;
    while (!(await udpPortTaken(sipPort)) && child.exitCode === null && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await udpPortTaken(sipPort), `the bridge never bound its SIP port\n${output}`).toBe(true);
    child.kill("SIGTERM");
    expect(await exited, output).toBe(0);
    for (const line of output.trim().split("\n")) expect(() => JSON.parse(line), line).not.toThrow();
    expect(output).not.toContain("test-only-password");
    expect(output).not.toContain("test-only-secret");
  });
});
