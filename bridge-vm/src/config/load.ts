/**
 * Builds the frozen BridgeConfig from defaults, an optional JSON file and the environment.
 * A bad value produces ConfigError with one line naming the key (by its environment variable when it
 * came from there) and what was expected; `exitOnConfigError` turns that into exit code 2.
 */
import { readFileSync } from "node:fs";
import { type BridgeConfig, configSchema, ENV_KEYS, SECRET_PATHS } from "./schema";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

type Tree = { [key: string]: unknown };

function setPath(tree: Tree, path: string, value: unknown): void {
  const keys = path.split(".");
  let node = tree;
  for (const key of keys.slice(0, -1)) {
    const child = node[key];
    node[key] = typeof child === "object" && child !== null ? child : {};
    node = node[key] as Tree;
  }
  node[keys[keys.length - 1]!] = value;
}

function envNameFor(path: string): string | undefined {
  return Object.entries(ENV_KEYS).find(([, configPath]) => configPath === path)?.[0];
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): BridgeConfig {
  const tree: Tree = { sip: {}, rtp: {}, recording: {}, cloud: {}, http: {}, log: {} };
  const fromEnv = new Set<string>();
  const file = env.PATCHBAY_CONFIG;
  if (file) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, "utf8"));
    } catch (error) {
      throw new ConfigError(`PATCHBAY_CONFIG: cannot read ${file} as JSON (${(error as Error).message})`);
    }
    if (typeof parsed !== "object" || parsed === null)
      throw new ConfigError(`PATCHBAY_CONFIG: ${file} is not an object`);
    for (const [section, value] of Object.entries(parsed)) tree[section] = value;
  }
  for (const [name, path] of Object.entries(ENV_KEYS)) {
    const value = env[name];
    if (value !== undefined && value !== "") {
      setPath(tree, path, value);
      fromEnv.add(path);
    }
  }
  const result = configSchema.safeParse(tree);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const path = issue.path.join(".");
    const key = fromEnv.has(path) || !file ? (envNameFor(path) ?? path) : path;
    const shown = SECRET_PATHS.has(path) ? "" : describeReceived(tree, issue.path);
    throw new ConfigError(`${key}: ${issue.message}${shown}`);
  }
  return deepFreeze(result.data);
}

function describeReceived(tree: Tree, path: PropertyKey[]): string {
  let node: unknown = tree;
  for (const key of path)
    node = typeof node === "object" && node !== null ? (node as Tree)[String(key)] : undefined;
  return node === undefined ? " (missing)" : ` (got ${JSON.stringify(node).slice(0, 80)})`;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** Replace secrets with "***" for logging the effective configuration. */
export function redactConfig(config: BridgeConfig): unknown {
  return JSON.parse(
    JSON.stringify(config, function (this: unknown, key, value) {
      return (key === "password" || key === "secret") && value ? "***" : value;
    }),
  );
}

export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): BridgeConfig {
  try {
    return loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`patchbay: bad config: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}
