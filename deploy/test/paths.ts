/** Absolute paths of what the deploy checks read, so every test agrees on them. */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const deployDir = join(dirname(fileURLToPath(import.meta.url)), "..");
export const repoRoot = join(deployDir, "..");
export const terraformGcpDir = join(deployDir, "terraform", "gcp");
export const startupTemplate = join(terraformGcpDir, "startup.sh.tftpl");
export const systemdUnit = join(deployDir, "systemd", "patchbay-bridge.service");
export const bridgeEnvExample = join(deployDir, "bridge.env.example");
export const bridgeDir = join(repoRoot, "bridge-vm");
