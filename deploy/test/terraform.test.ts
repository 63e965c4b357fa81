/**
 * Offline checks of the GCP module: what `terraform validate` would catch without provider downloads.
 * HCL syntax via @cdktf/hcl2json (HashiCorp's HCL v2 parser compiled to WASM); variable hygiene by
 * walking the parsed JSON and the raw text; `terraform fmt -check` when a terraform binary exists.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "@cdktf/hcl2json";
import { beforeAll, describe, expect, it } from "vitest";
import { ENV_KEYS } from "../../bridge-vm/src/config/schema";
import { terraformGcpDir } from "./paths";
import { findBinary, run } from "./tools";

type HclJson = Record<string, unknown>;

const tfFiles = readdirSync(terraformGcpDir)
  .filter((file) => file.endsWith(".tf"))
  .sort();
const sources = new Map(tfFiles.map((file) => [file, readFileSync(join(terraformGcpDir, file), "utf8")]));
const parsed = new Map<string, HclJson>();

/** `var.x` references, with comments stripped so prose cannot count as a use. */
function referencedVariables(source: string): Set<string> {
  const code = source.replace(/^\s*#.*$/gm, "").replace(/\s#.*$/gm, "");
  return new Set([...code.matchAll(/\bvar\.([A-Za-z_][A-Za-z0-9_-]*)/g)].map((match) => match[1]!));
}

function declaredVariables(): Map<string, { description?: string }> {
  const declared = new Map<string, { description?: string }>();
  const blocks = (parsed.get("variables.tf")?.variable ?? {}) as Record<
    string,
    Array<{ description?: string }>
  >;
  for (const [name, [body]] of Object.entries(blocks)) declared.set(name, body ?? {});
  return declared;
}

beforeAll(async () => {
  for (const [file, source] of sources) parsed.set(file, (await parse(file, source)) as HclJson);
});

describe("terraform/gcp module", () => {
  it("has the standard module files", () => {
    expect(tfFiles).toEqual(expect.arrayContaining(["main.tf", "outputs.tf", "variables.tf", "versions.tf"]));
    expect(readdirSync(terraformGcpDir)).toContain("README.md");
  });

  it.each(tfFiles)("%s parses as HCL", async (file) => {
    await expect(parse(file, sources.get(file)!)).resolves.toBeTypeOf("object");
  });

  it("rejects broken HCL (the parser is not a no-op)", async () => {
    await expect(parse("broken.tf", 'resource "x" "y" {\n  a = \n}\n')).rejects.toThrow();
  });

  it("declares, with a description, every variable it references", () => {
    const declared = declaredVariables();
    for (const [file, source] of sources)
      for (const name of referencedVariables(source)) {
        expect(declared.has(name), `${file} uses var.${name}, which variables.tf does not declare`).toBe(
          true,
        );
        expect(declared.get(name)?.description, `var.${name} has no description`).toMatch(/\S{3,}/);
      }
  });

  it("uses every variable it declares (outside variables.tf)", () => {
    const used = new Set<string>();
    for (const [file, source] of sources)
      if (file !== "variables.tf") for (const name of referencedVariables(source)) used.add(name);
    const unused = [...declaredVariables().keys()].filter((name) => !used.has(name));
    expect(unused, "declared but never used").toEqual([]);
  });

  it("lists every variable in the README's variable table", () => {
    const readme = readFileSync(join(terraformGcpDir, "README.md"), "utf8");
    const missing = [...declaredVariables().keys()].filter(
      (name) => !new RegExp(`^\\|\\s*\`${name}\`\\s*\\|`, "m").test(readme),
    );
    expect(missing, "variables missing from README.md").toEqual([]);
    const documented = [...readme.matchAll(/^\|\s*`([a-z_0-9]+)`\s*\|/gm)].map((match) => match[1]!);
    const outputs = Object.keys((parsed.get("outputs.tf")?.output ?? {}) as object);
    const stale = documented.filter((name) => !declaredVariables().has(name) && !outputs.includes(name));
    expect(stale, "README documents variables/outputs that do not exist").toEqual([]);
    const undocumentedOutputs = outputs.filter((name) => !documented.includes(name));
    expect(undocumentedOutputs, "outputs missing from README.md").toEqual([]);
  });

  it("passes the bridge only environment variable names from ENV_KEYS, and can reach all of them", () => {
    const main = sources.get("main.tf")!;
    const variables = sources.get("variables.tf")!;
    // Upper-case map keys in main.tf are environment variable names (env_common, bridge_env).
    const setByTerraform = new Set(
      [...main.matchAll(/^\s*([A-Z][A-Z0-9_]+)\s*=/gm), ...main.matchAll(/\{\s*([A-Z][A-Z0-9_]+)\s*=/g)].map(
        (match) => match[1]!,
      ),
    );
    const extraEnvBlock = variables.slice(variables.indexOf('variable "extra_env"'));
    const allowedExtra = new Set(
      [...extraEnvBlock.matchAll(/"([A-Z][A-Z0-9_]+)"/g)].map((match) => match[1]!),
    );
    const fromSecretManager = ["SIP_PASSWORD", "CLOUD_SECRET"];
    const known = new Set(Object.keys(ENV_KEYS));
    for (const name of [...setByTerraform, ...allowedExtra])
      expect(known.has(name), `${name} is not in ENV_KEYS`).toBe(true);
    for (const name of setByTerraform)
      expect(allowedExtra.has(name), `${name} is set by Terraform and must not be in extra_env`).toBe(false);
    for (const name of fromSecretManager) {
      expect(allowedExtra.has(name), `${name} must never be accepted in extra_env (metadata)`).toBe(false);
      expect(readFileSync(join(terraformGcpDir, "startup.sh.tftpl"), "utf8")).toContain(`${name}=`);
    }
    const reachable = new Set([...setByTerraform, ...allowedExtra, ...fromSecretManager]);
    expect([...known].filter((name) => !reachable.has(name))).toEqual([]);
  });

  it("envs/example.tfvars sets only declared variables, and every required one", async () => {
    const text = readFileSync(join(terraformGcpDir, "envs", "example.tfvars"), "utf8");
    const values = (await parse("example.tfvars", text)) as Record<string, unknown>;
    const declared = declaredVariables();
    for (const name of Object.keys(values))
      expect(declared.has(name), `example.tfvars sets undeclared ${name}`).toBe(true);
    const blocks = (parsed.get("variables.tf")?.variable ?? {}) as Record<
      string,
      Array<Record<string, unknown>>
    >;
    const required = Object.entries(blocks)
      .filter(([, [body]]) => body !== undefined && !("default" in body))
      .map(([name]) => name);
    expect(required.filter((name) => !(name in values))).toEqual([]);
  });

  it("opens SIP/RTP only to pbx_cidrs, health only to Google's probers, SSH only to IAP", () => {
    const resources = parsed.get("main.tf")?.resource as Record<string, Record<string, Array<HclJson>>>;
    const rules = resources.google_compute_firewall!;
    expect(rules.sip_rtp_from_pbx![0]!.source_ranges).toBe(`\${var.pbx_cidrs}`);
    expect(rules.health_from_google![0]!.source_ranges).toBe(`\${local.health_check_ranges}`);
    expect(rules.ssh_from_iap![0]!.source_ranges).toBe(`\${local.iap_ranges}`);
    const locals = ((parsed.get("main.tf")?.locals ?? []) as HclJson[])[0]!;
    expect(locals.health_check_ranges).toEqual(["35.191.0.0/16", "130.211.0.0/22"]);
    expect(locals.iap_ranges).toEqual(["35.235.240.0/20"]);
    for (const rule of Object.values(rules)) expect(JSON.stringify(rule)).not.toContain("0.0.0.0/0");
  });

  it("uses the startup-script metadata key, never metadata_startup_script (which recreates the VM)", () => {
    const main = sources.get("main.tf")!.replace(/^\s*#.*$/gm, "");
    expect(main).not.toMatch(/^\s*metadata_startup_script\s*=/m);
    expect(main).toMatch(/^\s*startup-script\s*=\s*templatefile\(/m);
    expect(main).toMatch(/enable-oslogin\s*=\s*"TRUE"/);
  });

  it("is formatted (terraform fmt -check)", (context) => {
    const terraform = findBinary("terraform") ?? findBinary("tofu");
    if (!terraform)
      return context.skip("no terraform/tofu binary on PATH; HCL syntax is still checked above");
    const result = run(terraform, ["fmt", "-check", "-diff", "-recursive", terraformGcpDir], {
      env: { ...process.env, TF_CLI_CONFIG_FILE: "/dev/null", CHECKPOINT_DISABLE: "1" },
    });
    expect(result.stdout + result.stderr.replace(/.*CLI configuration[\s\S]*?╵\n?/g, "")).toBe("");
    expect(result.status).toBe(0);
  });
});
