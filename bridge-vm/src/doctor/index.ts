/**
 * Runs every doctor check and prints one table. Exit code 0 only if all pass. The SIP registration
 * check (register once, then un-register) is supplied by the caller so this folder does not depend on
 * the registration client's construction details.
 */
import type { BridgeConfig } from "../config/index";
import {
  type Check,
  type CheckResult,
  checkConfig,
  checkDns,
  checkHttpPort,
  checkRegistrarReachable,
  checkRtpPorts,
  checkWorker,
  formatTable,
} from "./checks";

export type { Check, CheckResult } from "./checks";
export { formatTable } from "./checks";

export async function runDoctor(
  env: NodeJS.ProcessEnv,
  options: { registerOnce?: Check; write?: (text: string) => void } = {},
): Promise<{ ok: boolean; results: CheckResult[] }> {
  const write = options.write ?? ((text: string) => process.stdout.write(`${text}\n`));
  const { result: configResult, config } = await checkConfig(env);
  const results: CheckResult[] = [configResult];
  if (config) {
    const checks: Check[] = [checkDns, checkRegistrarReachable];
    if (options.registerOnce) checks.push(options.registerOnce);
    checks.push(checkWorker, checkRtpPorts, checkHttpPort);
    for (const check of checks) results.push(await runSafely(check, config));
  }
  write(formatTable(results));
  return { ok: results.every((result) => result.ok), results };
}

async function runSafely(check: Check, config: BridgeConfig): Promise<CheckResult> {
  try {
    return await check(config);
  } catch (error) {
    return { name: check.name || "check", ok: false, detail: `crashed: ${(error as Error).message}` };
  }
}
