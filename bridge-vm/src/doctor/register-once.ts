/**
 * Doctor's SIP check: register once with the deployment's credentials through the bridge's own SIP
 * stack, then un-register. Runs on a spare local port so it works next to a running bridge (the
 * registrar briefly sees a second Contact for the extension, removed again by the un-REGISTER).
 */
import { createSocket } from "node:dgram";
import pino from "pino";
import type { BridgeConfig } from "../config/index";
import { BridgeService } from "../service";
import type { CheckResult } from "./checks";

async function spareUdpPort(address: string): Promise<number> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, address === "0.0.0.0" ? undefined : address, resolve));
  const { port } = socket.address();
  socket.close();
  return port;
}

export async function registerOnce(config: BridgeConfig, timeoutMs = 10_000): Promise<CheckResult> {
  const localPort = await spareUdpPort(config.sip.localAddress);
  const probeConfig: BridgeConfig = { ...config, sip: { ...config.sip, localPort } };
  const service = await BridgeService.start({
    config: probeConfig,
    logger: pino({ level: "silent" }),
    // One attempt is the point: never retry into a fail2ban ban from the doctor.
    registrationBackoff: {
      errorBaseMs: 3_600_000,
      errorMaxMs: 3_600_000,
      authBaseMs: 3_600_000,
      authMaxMs: 3_600_000,
    },
  });
  const aor = `${config.sip.username}@${config.sip.domain ?? config.sip.registrar.replace(/:\d+$/, "")}`;
  try {
    const outcome = await new Promise<{ ok: boolean; detail: string }>((resolve) => {
      const timer = setTimeout(
        () => resolve({ ok: false, detail: `no answer to REGISTER in ${timeoutMs} ms` }),
        timeoutMs,
      );
      service.registration?.on("registered", ({ expiresS }) => {
        clearTimeout(timer);
        resolve({ ok: true, detail: `registered ${aor} for ${expiresS} s, then un-registered` });
      });
      service.registration?.on("failed", ({ reason }) => {
        clearTimeout(timer);
        resolve({ ok: false, detail: `registration of ${aor} failed: ${reason}` });
      });
    });
    return outcome.ok
      ? { name: "register", ok: true, detail: outcome.detail }
      : {
          name: "register",
          ok: false,
          detail: outcome.detail,
          hint: /credential|401|403|407/i.test(outcome.detail)
            ? "SIP_USERNAME / SIP_AUTH_USERNAME / SIP_PASSWORD do not match the PBX extension's secret"
            : "check SIP_REGISTRAR and that the PBX allows this VM's IP (firewall, fail2ban, ACLs)",
        };
  } finally {
    await service.stop();
  }
}
