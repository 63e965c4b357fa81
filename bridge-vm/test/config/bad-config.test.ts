/**
 * The promise in main.ts and the README: a bad configuration exits with code 2 and one line naming the
 * key, and never prints a secret. Each case runs the real entry point (src/main.ts through tsx, as
 * test/support/bridge.ts starts the bridge) with a clean environment, so nothing from the test runner's
 * own environment leaks in, and with both secrets set to recognisable values that must not appear.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config";

const BRIDGE_DIR = join(import.meta.dirname, "../..");
const PASSWORD = "sip-password-must-not-leak";
const SECRET = "cloud-secret-must-not-leak-0123456789";
const dir = mkdtempSync(join(tmpdir(), "patchbay-config-"));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Enough for a valid config; each case removes or spoils one key. */
const GOOD: Record<string, string> = {
  SIP_REGISTRAR: "127.0.0.1:5060",
  SIP_USERNAME: "2001",
  SIP_PASSWORD: PASSWORD,
  CLOUD_URL: "ws://127.0.0.1:9",
  CLOUD_SECRET: SECRET,
};

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  lines: string[];
  output: string;
}

function runBridge(env: Record<string, string | undefined>): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const clean: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
    for (const [name, value] of Object.entries(env)) if (value !== undefined) clean[name] = value;
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      cwd: BRIDGE_DIR,
      env: clean,
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    // A config that is accidentally valid would start the bridge: do not let it run on.
    const guard = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, output, lines: output.split("\n").filter((line) => line.trim() !== "") });
    });
  });
}

function configFile(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const cases: Array<[title: string, env: () => Record<string, string | undefined>, key: string]> = [
  ["SIP_REGISTRAR missing", () => ({ ...GOOD, SIP_REGISTRAR: undefined }), "SIP_REGISTRAR"],
  ["RTP_PORT_MIN odd", () => ({ ...GOOD, RTP_PORT_MIN: "10001" }), "RTP_PORT_MIN"],
  [
    "RTP_PORT_MIN above RTP_PORT_MAX",
    () => ({ ...GOOD, RTP_PORT_MIN: "30000", RTP_PORT_MAX: "20000" }),
    "RTP_PORT_MIN",
  ],
  [
    "a malformed CIDR in SIP_ALLOWED_SOURCES (second entry)",
    () => ({ ...GOOD, SIP_ALLOWED_SOURCES: "192.0.2.10, 10.0.0.0/99" }),
    "SIP_ALLOWED_SOURCES[1]",
  ],
  [
    "a non-address in SIP_ALLOWED_SOURCES",
    () => ({ ...GOOD, SIP_ALLOWED_SOURCES: "pbx.example.com" }),
    "SIP_ALLOWED_SOURCES[0]",
  ],
  [
    "CLOUD_SECRET too short (the value is a secret)",
    () => ({ ...GOOD, CLOUD_SECRET: "short-secret" }),
    "CLOUD_SECRET",
  ],
  [
    "PATCHBAY_CONFIG is not JSON (and quotes a password)",
    () => ({
      ...GOOD,
      PATCHBAY_CONFIG: configFile("broken.json", `{"sip": {"password": "${PASSWORD}", oops}}`),
    }),
    "PATCHBAY_CONFIG",
  ],
  [
    "PATCHBAY_CONFIG names a file that does not exist",
    () => ({ ...GOOD, PATCHBAY_CONFIG: join(dir, "missing.json") }),
    "PATCHBAY_CONFIG",
  ],
  [
    "a bad value inside the PATCHBAY_CONFIG file (named by its path there)",
    () => ({
      ...GOOD,
      PATCHBAY_CONFIG: configFile("bad-value.json", JSON.stringify({ rtp: { portMin: 10001 } })),
    }),
    "rtp.portMin",
  ],
];

describe("bad configuration → exit 2, one line naming the key, no secret", () => {
  it.concurrent.each(cases)("%s", async (_title, env, key) => {
    const { code, signal, lines, output } = await runBridge(env());
    expect(signal, output).toBeNull();
    expect(code, output).toBe(2);
    expect(lines, output).toHaveLength(1);
    expect(lines[0]).toMatch(/^patchbay: bad config: /);
    // The key comes first after the prefix, so an operator sees it without reading the rest.
    expect(lines[0]!.slice("patchbay: bad config: ".length).startsWith(`${key}: `), lines[0]).toBe(true);
    expect(output).not.toContain(PASSWORD);
    expect(output).not.toContain(SECRET);
    expect(output).not.toContain("short-secret");
  });

  it("the environment the cases spoil is itself valid, so each case fails for its own key only", () => {
    expect(() => loadConfig(GOOD)).not.toThrow();
    expect(loadConfig(GOOD).sip.allowedSources).toEqual([]);
    expect(
      loadConfig({ ...GOOD, SIP_ALLOWED_SOURCES: "192.0.2.10, 10.0.0.0/8 2001:db8::/32" }).sip.allowedSources,
    ).toEqual(["192.0.2.10", "10.0.0.0/8", "2001:db8::/32"]);
  });
});
