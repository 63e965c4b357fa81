/**
 * The systemd unit: restart policy, drain-compatible stop, and the hardening keys ops reviews look for.
 * `systemd-analyze verify` runs too when present (it checks key names and values offline).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { configSchema } from "../../bridge-vm/src/config/schema";
import { systemdUnit } from "./paths";
import { findBinary, run } from "./tools";

const unitText = readFileSync(systemdUnit, "utf8");
const workDir = mkdtempSync(join(tmpdir(), "patchbay-unit-"));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

/** Section → key → values (a key may repeat). Comments and blank lines are skipped. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#") || trimmed.startsWith(";")) continue;
    const header = trimmed.match(/^\[(.+)\]$/);
    if (header) {
      current = new Map();
      sections.set(header[1]!, current);
      continue;
    }
    const equals = trimmed.indexOf("=");
    if (!current || equals < 1) throw new Error(`unparseable unit line: ${line}`);
    const key = trimmed.slice(0, equals);
    current.set(key, [...(current.get(key) ?? []), trimmed.slice(equals + 1)]);
  }
  return sections;
}

const service = parseUnit(unitText).get("Service")!;
const value = (key: string): string | undefined => service.get(key)?.at(-1);

describe("deploy/systemd/patchbay-bridge.service", () => {
  it("restarts always, but not on a configuration error (exit 2)", () => {
    expect(value("Restart")).toBe("always");
    expect(Number(value("RestartSec"))).toBeGreaterThanOrEqual(1);
    expect(value("RestartPreventExitStatus")).toBe("2");
  });

  it("runs as a dedicated user from the root-only environment file", () => {
    expect(value("User")).toBe("patchbay");
    expect(value("EnvironmentFile")).toBe("/etc/patchbay/bridge.env");
    expect(value("ExecStart")).toMatch(/^\/usr\/bin\/node .*\/opt\/patchbay\/current\/patchbay-bridge\.mjs$/);
  });

  it("stops with SIGTERM and waits longer than the default drain", () => {
    const defaultDrain = configSchema.shape.drainTimeoutS.parse(undefined);
    expect(value("KillSignal")).toBe("SIGTERM");
    expect(Number(value("TimeoutStopSec"))).toBeGreaterThan(defaultDrain);
  });

  it.each([
    ["NoNewPrivileges", "yes"],
    ["ProtectSystem", "strict"],
    ["ProtectHome", "yes"],
    ["PrivateTmp", "yes"],
    ["PrivateDevices", "yes"],
    ["CapabilityBoundingSet", ""],
    ["AmbientCapabilities", ""],
    ["RestrictSUIDSGID", "yes"],
    ["SystemCallArchitectures", "native"],
  ])("is hardened: %s=%s", (key, expected) => {
    expect(value(key)).toBe(expected);
  });

  it("can write recordings and nothing else, and allows many sockets", () => {
    expect(value("ReadWritePaths")).toMatch(/\/var\/lib\/patchbay\/recordings$/);
    expect(value("StateDirectory")).toBe("patchbay");
    expect(Number(value("LimitNOFILE"))).toBeGreaterThanOrEqual(65536);
  });

  it("does not deny W+X memory (V8's JIT needs it)", () => {
    expect(service.has("MemoryDenyWriteExecute")).toBe(false);
  });

  it("passes systemd-analyze verify", (context) => {
    const analyze = findBinary("systemd-analyze");
    if (!analyze) return context.skip("systemd-analyze not installed; keys checked above");
    // verify insists that ExecStart's binary exists; point it at this machine's node.
    const copy = join(workDir, "patchbay-bridge.service");
    writeFileSync(copy, unitText.replace("/usr/bin/node", process.execPath));
    const result = run(analyze, ["verify", copy]);
    expect(result.stderr.trim()).toBe("");
    expect(result.status).toBe(0);
  });
});
