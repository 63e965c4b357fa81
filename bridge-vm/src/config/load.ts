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

/**
 * The name an operator knows a failing key by. The issue path may point inside a value (the third entry of
 * a list: "sip.allowedSources.2"), so the longest prefix that is a config key names it, with the item
 * index kept: "SIP_ALLOWED_SOURCES[2]" when the value came from the environment, else the config path.
 */
function keyName(issuePath: readonly PropertyKey[], fromEnv: ReadonlySet<string>, hasFile: boolean): string {
  const parts = issuePath.map(String);
  for (let length = parts.length; length > 0; length--) {
    const path = parts.slice(0, length).join(".");
    const rest = parts
      .slice(length)
      .map((part) => `[${part}]`)
      .join("");
    const env = envNameFor(path);
    if (env !== undefined && (fromEnv.has(path) || !hasFile)) return `${env}${rest}`;
  }
  return parts.join(".");
}

/**
 * Why the config file could not be used. JSON.parse's message quotes the start of the text it failed on
 * (V8: `Unexpected token 'x', "{"sip": {"pa"... is not valid JSON`), and that text can be a password, so
 * only the position is kept.
 */
function describeFileError(file: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code) return `cannot read ${file} (${code})`;
  const message = error instanceof Error ? error.message : "";
  const where = /position \d+(?: \(line \d+ column \d+\))?/.exec(message)?.[0];
  return `${file} is not valid JSON${where ? ` (at ${where})` : ""}`;
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
      throw new ConfigError(`PATCHBAY_CONFIG: ${describeFileError(file, error)}`);
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
    const key = keyName(issue.path, fromEnv, Boolean(file));
    const secret = [...SECRET_PATHS].some(
      (secretPath) => path === secretPath || path.startsWith(`${secretPath}.`),
    );
    const shown = secret ? "" : describeReceived(tree, issue.path);
    throw new ConfigError(`${key}: ${issue.message}${shown}`);
  }
  return deepFreeze(result.data);
}

function describeReceived(tree: Tree, path: PropertyKey[]): string {
  let node: unknown = tree;
  for (const key of path) {
    if (typeof node === "string" && /^\d+$/.test(String(key))) {
      // A list given as one environment variable is still a string here (the schema splits it).
      node = node.split(/[\s,]+/).filter(Boolean)[Number(key)];
      continue;
    }
    node = typeof node === "object" && node !== null ? (node as Tree)[String(key)] : undefined;
  }
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
