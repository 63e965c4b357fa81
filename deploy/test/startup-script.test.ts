/**
 * The VM bootstrap script: rendered with sample values it must be valid bash, interpolate exactly the
 * variables main.tf passes, and quote secrets so systemd (and bash, for `patchbay doctor`) read them back
 * byte for byte. When a terraform binary exists, its own templatefile() must agree with our renderer.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startupTemplate, systemdUnit, terraformGcpDir } from "./paths";
import { findBinary, renderTemplate, run, templateVariables } from "./tools";

const template = readFileSync(startupTemplate, "utf8");
const workDir = mkdtempSync(join(tmpdir(), "patchbay-startup-"));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

const sampleVars: Record<string, string> = {
  project_id: "acme-voice-prod",
  node_major: "22",
  release_url: "",
  release_gcs: "gs://acme-voice-releases/patchbay/0.1.0/patchbay-bridge.tar.gz",
  release_sha256: "0".repeat(64),
  sip_password_secret: "patchbay-bridge-0-sip-password",
  cloud_secret_secret: "patchbay-bridge-cloud-secret",
  env_file_body: 'CLOUD_URL="wss://patchbay.acme.workers.dev"\nSIP_REGISTRAR="pbx.acme.example:5060"',
  systemd_unit: readFileSync(systemdUnit, "utf8"),
  systemd_dropin: "[Service]\nTimeoutStopSec=330",
};

function renderToFile(name: string): string {
  const path = join(workDir, name);
  writeFileSync(path, renderTemplate(template, sampleVars));
  return path;
}

describe("startup.sh.tftpl", () => {
  it("interpolates exactly the variables main.tf passes to templatefile()", () => {
    const main = readFileSync(join(terraformGcpDir, "main.tf"), "utf8");
    const call = main.slice(main.indexOf("templatefile("), main.indexOf("})", main.indexOf("templatefile(")));
    const passed = new Set([...call.matchAll(/^\s*([a-z_][a-z0-9_]*)\s*=/gm)].map((match) => match[1]!));
    expect([...templateVariables(template)].sort()).toEqual([...passed].sort());
    expect([...passed].sort()).toEqual(Object.keys(sampleVars).sort());
  });

  it("renders to a script that passes bash -n", () => {
    const script = renderToFile("startup.sh");
    const result = run("bash", ["-n", script]);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
  });

  it("embeds the unit, the drop-in and the environment verbatim in quoted heredocs", () => {
    const rendered = renderTemplate(template, sampleVars);
    expect(rendered).toContain(`<<'PATCHBAY_UNIT'\n${sampleVars.systemd_unit}\nPATCHBAY_UNIT\n`);
    expect(rendered).toContain(`<<'PATCHBAY_DROPIN'\n${sampleVars.systemd_dropin}\nPATCHBAY_DROPIN\n`);
    expect(rendered).toContain(`<<'PATCHBAY_ENV'\n${sampleVars.env_file_body}\nPATCHBAY_ENV\n`);
  });

  it("writes the environment file 0600 and reads secrets from Secret Manager, not from metadata", () => {
    expect(template).toMatch(/install_if_changed "\$work\/bridge\.env" "\$ENV_FILE" 0600/);
    expect(template).toMatch(/umask 077/);
    expect(template).toContain("gcloud secrets versions access latest");
    expect(template).toContain("ENV_FILE=/etc/patchbay/bridge.env");
  });

  it("quotes secret values so a systemd EnvironmentFile (and bash) reads them back unchanged", () => {
    const quoteFunction = template.match(/^env_quote\(\) \{\n[\s\S]*?\n\}\n/m)?.[0];
    expect(quoteFunction, "env_quote() not found").toBeDefined();
    const nasty = [
      "plain",
      'with "double" quotes',
      "back\\slash\\",
      `dollar $HOME \${PATH}`,
      "tick `id`",
      "it's #1",
    ];
    const script = `${renderTemplate(quoteFunction!, {})}
for value in "$@"; do printf 'V=%s\\n' "$(env_quote "$value")"; done > "${join(workDir, "quoted.env")}"
set -a; . "${join(workDir, "quoted.env")}"; set +a
`;
    for (const value of nasty) {
      const result = run("bash", ["-c", `${script}\nprintf '%s' "$V"`, "quote-test", value]);
      expect(result.stderr).toBe("");
      expect(result.stdout).toBe(value);
    }
  });

  it("matches Terraform's own templatefile() rendering", (context) => {
    const terraform = findBinary("terraform") ?? findBinary("tofu");
    if (!terraform)
      return context.skip("no terraform/tofu binary on PATH; rendered with the test renderer only");
    const varsHcl = Object.entries(sampleVars)
      .map(
        ([name, value]) =>
          `${name} = ${JSON.stringify(value).replaceAll("${", "$${").replaceAll("%{", "%%{")}`,
      )
      .join(", ");
    const expression = `base64encode(templatefile(${JSON.stringify(startupTemplate)}, { ${varsHcl} }))\n`;
    const result = run(terraform, ["console", "-no-color"], {
      cwd: workDir,
      input: expression,
      env: { ...process.env, TF_CLI_CONFIG_FILE: "/dev/null", CHECKPOINT_DISABLE: "1" },
    });
    expect(result.status, result.stderr).toBe(0);
    const rendered = Buffer.from(JSON.parse(result.stdout.trim()) as string, "base64").toString("utf8");
    expect(rendered).toBe(renderTemplate(template, sampleVars));
  });
});
