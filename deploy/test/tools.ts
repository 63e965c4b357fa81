/**
 * Small helpers for the offline deploy checks: find an optional binary, run a command and capture it,
 * and a faithful subset of Terraform's templatefile() (plain interpolation and the $${ / %%{ escapes).
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

export function findBinary(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this PATH entry
    }
  }
  return undefined;
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {},
): RunResult {
  const result = spawnSync(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    input: options.input,
    encoding: "utf8",
    timeout: 110_000,
  });
  return { status: result.status, stdout: result.stdout ?? "", stderr: result.stderr ?? "" };
}

/**
 * Renders a template the way Terraform's templatefile() does for templates without directives.
 * Throws on directives (`%{ if }`, `%{ for }`) and on unknown variables, so the template cannot grow
 * features this renderer does not model without the test noticing (the Terraform cross-check then runs).
 */
export function renderTemplate(template: string, vars: Readonly<Record<string, string>>): string {
  let output = "";
  let index = 0;
  while (index < template.length) {
    if (template.startsWith("$${", index) || template.startsWith("%%{", index)) {
      output += template.slice(index + 1, index + 3);
      index += 3;
    } else if (template.startsWith("%{", index)) {
      throw new Error(`template directive at offset ${index} is not supported by this renderer`);
    } else if (template.startsWith("${", index)) {
      const end = template.indexOf("}", index);
      const name = template.slice(index + 2, end).trim();
      const value = vars[name];
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`unsupported interpolation \${${name}}`);
      if (value === undefined) throw new Error(`template variable ${name} is not provided`);
      output += value;
      index = end + 1;
    } else {
      output += template[index];
      index += 1;
    }
  }
  return output;
}

/** Names interpolated by a template (`${name}`), ignoring the escaped `$${…}` form. */
export function templateVariables(template: string): Set<string> {
  const names = new Set<string>();
  for (const match of template.matchAll(/(?<!\$)\$\{\s*([a-z_][a-z0-9_]*)\s*\}/g)) names.add(match[1]!);
  return names;
}
