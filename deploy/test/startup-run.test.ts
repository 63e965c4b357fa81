/**
 * Runs the rendered startup script for real, twice, inside a temporary root: system paths are rewritten
 * under it and the commands that would touch the machine or the cloud (systemctl, gcloud, useradd, id,
 * node, install's -o/-g) are small stubs that log their calls. Proves the idempotency contract: the
 * first boot installs and starts, an unchanged second boot restarts nothing, a rotated secret restarts
 * once, and the environment file is 0600 with secrets that read back byte for byte.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startupTemplate, systemdUnit } from "./paths";
import { renderTemplate, run } from "./tools";

const root = mkdtempSync(join(tmpdir(), "patchbay-startup-run-"));
const bin = join(root, "bin");
const callsLog = join(root, "calls.log");
const sipPassword = 'p@ss"wo$rd\\with`tick` and spaces';
const cloudSecret = "shared-secret-0123456789abcdef";

/** Every absolute path the script writes, moved under the temporary root. */
const movedPrefixes = [
  "/etc/patchbay",
  "/etc/systemd/system",
  "/etc/apt",
  "/opt/patchbay",
  "/var/lib/patchbay",
  "/usr/local/sbin/patchbay",
  "/usr/bin/node",
];

const stubs: Record<string, string> = {
  systemctl: `echo "systemctl $*" >> "${callsLog}"
quiet=0; [[ "$*" == *--quiet* ]] && quiet=1
case "$1" in
  is-active) if [[ -f "${root}/state/active" ]]; then ((quiet)) || echo active; exit 0; else ((quiet)) || echo inactive; exit 3; fi ;;
  restart) mkdir -p "${root}/state" && touch "${root}/state/active" ;;
esac
exit 0`,
  gcloud: `echo "gcloud $*" >> "${callsLog}"
if [[ "$1 $2 $3" == "secrets versions access" ]]; then
  for arg in "$@"; do [[ "$arg" == --secret=* ]] && name="\${arg#--secret=}"; done
  cat "${root}/secrets/$name"
elif [[ "$1 $2" == "storage cp" ]]; then
  cp "${root}/release.tar.gz" "\${@: -1}"
else
  exit 1
fi`,
  useradd: `echo "useradd $*" >> "${callsLog}"; mkdir -p "${root}/state"; touch "${root}/state/user"`,
  id: `if [[ "$1" == -u && "$2" == patchbay ]]; then [[ -f "${root}/state/user" ]]; exit; fi; exec /usr/bin/id "$@"`,
  node: `echo v22.99.0`,
  // install -o/-g need real users and root; the test checks modes and content, not ownership.
  install: `args=(); while (($#)); do case "$1" in -o|-g) shift 2 ;; *) args+=("$1"); shift ;; esac; done
exec /usr/bin/install "\${args[@]}"`,
};

function moved(text: string): string {
  return movedPrefixes.reduce((result, prefix) => result.replaceAll(prefix, `${root}${prefix}`), text);
}

function renderForSandbox(): string {
  const script = renderTemplate(readFileSync(startupTemplate, "utf8"), {
    project_id: "acme-voice-test",
    node_major: "22",
    release_url: "",
    release_gcs: "gs://acme-releases/patchbay/patchbay-bridge.tar.gz",
    release_sha256: "",
    sip_password_secret: "bridge-0-sip-password",
    cloud_secret_secret: "bridge-cloud-secret",
    env_file_body: 'CLOUD_URL="wss://patchbay.example.workers.dev"\nSIP_USERNAME="7001"',
    systemd_unit: readFileSync(systemdUnit, "utf8"),
    systemd_dropin: "[Service]\nTimeoutStopSec=330",
  });
  return moved(script);
}

function boot(): { status: number | null; output: string; calls: string[] } {
  writeFileSync(callsLog, "");
  const result = run("bash", [join(root, "startup.sh")], {
    env: { PATH: `${bin}:/usr/bin:/bin`, TMPDIR: root, LANG: "C" },
  });
  const calls = readFileSync(callsLog, "utf8").trim().split("\n").filter(Boolean);
  return { status: result.status, output: result.stdout + result.stderr, calls };
}

const restarts = (calls: string[]) => calls.filter((call) => call.startsWith("systemctl restart")).length;

beforeAll(() => {
  mkdirSync(bin, { recursive: true });
  for (const [name, body] of Object.entries(stubs)) {
    writeFileSync(join(bin, name), `#!/bin/bash\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  mkdirSync(join(root, "usr", "bin"), { recursive: true });
  writeFileSync(join(root, "usr", "bin", "node"), "#!/bin/sh\necho v22.99.0\n");
  chmodSync(join(root, "usr", "bin", "node"), 0o755);
  mkdirSync(join(root, "secrets"));
  writeFileSync(join(root, "secrets", "bridge-0-sip-password"), `${sipPassword}\n`);
  writeFileSync(join(root, "secrets", "bridge-cloud-secret"), cloudSecret);
  mkdirSync(join(root, "release"));
  writeFileSync(join(root, "release", "patchbay-bridge.mjs"), "console.log('bridge');\n");
  run("tar", ["-czf", join(root, "release.tar.gz"), "-C", join(root, "release"), "patchbay-bridge.mjs"]);
  writeFileSync(join(root, "startup.sh"), renderForSandbox());
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("startup script, run in a sandbox", () => {
  it("first boot: creates the user, installs release, env file and unit, starts the bridge", () => {
    const first = boot();
    expect(first.status, first.output).toBe(0);
    expect(first.calls.filter((call) => /^useradd --system .* patchbay$/.test(call))).toHaveLength(1);
    expect(first.calls).toContain("systemctl daemon-reload");
    expect(first.calls).toContain("systemctl enable patchbay-bridge.service");
    expect(restarts(first.calls)).toBe(1);
    expect(readFileSync(join(root, "opt/patchbay/current/patchbay-bridge.mjs"), "utf8")).toContain("bridge");
    // The unit lands verbatim (the heredoc adds one newline), paths moved like everything else.
    expect(readFileSync(join(root, "etc/systemd/system/patchbay-bridge.service"), "utf8")).toBe(
      `${moved(readFileSync(systemdUnit, "utf8"))}\n`,
    );
    expect(
      readFileSync(join(root, "etc/systemd/system/patchbay-bridge.service.d/10-terraform.conf"), "utf8"),
    ).toBe("[Service]\nTimeoutStopSec=330\n");
  });

  it("writes the environment file 0600, and its secrets read back byte for byte", () => {
    const envFile = join(root, "etc/patchbay/bridge.env");
    expect(statSync(envFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(root, "etc/patchbay")).mode & 0o777).toBe(0o700);
    const read = run("bash", [
      "-c",
      `set -a; . "${envFile}"; printf '%s\\n%s\\n%s' "$SIP_PASSWORD" "$CLOUD_SECRET" "$CLOUD_URL"`,
    ]);
    expect(read.stdout).toBe(`${sipPassword}\n${cloudSecret}\nwss://patchbay.example.workers.dev`);
  });

  it("second boot with nothing changed: restarts nothing", () => {
    const second = boot();
    expect(second.status, second.output).toBe(0);
    expect(restarts(second.calls)).toBe(0);
    expect(second.calls).not.toContain("systemctl daemon-reload");
    expect(second.calls.some((call) => call.startsWith("useradd"))).toBe(false);
  });

  it("a rotated secret: rewrites the env file and restarts once", () => {
    writeFileSync(join(root, "secrets", "bridge-cloud-secret"), "rotated-secret-0123456789abcdef");
    const third = boot();
    expect(third.status, third.output).toBe(0);
    expect(restarts(third.calls)).toBe(1);
    expect(readFileSync(join(root, "etc/patchbay/bridge.env"), "utf8")).toContain(
      'CLOUD_SECRET="rotated-secret-0123456789abcdef"',
    );
  });

  it("an empty secret stops the script with a message naming the secret and how to add it", () => {
    writeFileSync(join(root, "secrets", "bridge-0-sip-password"), "");
    const broken = boot();
    expect(broken.status).not.toBe(0);
    expect(broken.output).toMatch(/secret bridge-0-sip-password is empty/);
    expect(restarts(broken.calls)).toBe(0);
    writeFileSync(join(root, "secrets", "bridge-0-sip-password"), sipPassword);
  });
});
