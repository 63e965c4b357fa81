/**
 * deploy/bridge.env.example must list exactly the bridge's environment variables (ENV_KEYS), each with a
 * comment, load cleanly through the real config loader, and show true defaults where it shows one.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ENV_KEYS, loadConfig } from "../../bridge-vm/src/config";
import { bridgeEnvExample } from "./paths";

const lines = readFileSync(bridgeEnvExample, "utf8").split("\n");

interface Entry {
  name: string;
  value: string;
  active: boolean;
  comment: string;
}

const entries: Entry[] = [];
lines.forEach((line, index) => {
  const match = line.match(/^(# )?([A-Z][A-Z0-9_]*)=(.*)$/);
  if (!match) return;
  let comment = "";
  for (let above = index - 1; above >= 0 && lines[above]!.startsWith("#"); above--) {
    if (/^# [A-Z][A-Z0-9_]*=/.test(lines[above]!)) continue; // another example line of the same group
    comment = lines[above]!;
    break;
  }
  entries.push({ name: match[2]!, value: match[3]!, active: match[1] === undefined, comment });
});

const activeEnv = Object.fromEntries(entries.filter((entry) => entry.active).map((e) => [e.name, e.value]));
const valueAt = (tree: unknown, path: string): unknown =>
  path.split(".").reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], tree);

describe("deploy/bridge.env.example", () => {
  it("lists every ENV_KEYS variable exactly once, and nothing else", () => {
    const names = entries.map((entry) => entry.name);
    expect([...names].sort()).toEqual(Object.keys(ENV_KEYS).sort());
    expect(new Set(names).size).toBe(names.length);
  });

  it("explains every variable in a comment", () => {
    for (const entry of entries) expect(entry.comment, `${entry.name} has no comment`).toMatch(/^# \S.{8,}/);
  });

  it("loads with the real config loader as shipped (the uncommented lines)", () => {
    expect(() => loadConfig(activeEnv)).not.toThrow();
  });

  it("every commented example is valid, and equals the default when one exists", () => {
    const base = loadConfig(activeEnv);
    for (const entry of entries.filter((e) => !e.active)) {
      const path = ENV_KEYS[entry.name]!;
      const withExample = loadConfig({ ...activeEnv, [entry.name]: entry.value });
      const defaultValue = valueAt(base, path);
      if (defaultValue !== undefined)
        expect(valueAt(withExample, path), `${entry.name} example differs from the default`).toEqual(
          defaultValue,
        );
    }
  });

  it("holds no real-looking secret", () => {
    expect(activeEnv.SIP_PASSWORD).toMatch(/change-me/);
    expect(activeEnv.CLOUD_SECRET).toMatch(/example/);
  });
});
