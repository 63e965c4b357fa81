/**
 * Opening a call's link at answer time, with the deployment's fallback when the Worker cannot be
 * reached: "reject" answers the INVITE 503 so the PBX fails over (ring group, queue, voicemail);
 * "transfer" answers and hands the caller to a human extension. The call layer owns the SIP side;
 * this only decides.
 */
import type { BridgeConfig } from "../config/index";
import { CloudLink, CloudLinkError, type CloudLinkOptions } from "./link";

export type FallbackAction = { action: "reject"; sipStatus: 503 } | { action: "transfer"; target: string };

export type LinkOutcome =
  | { ok: true; link: CloudLink }
  | { ok: false; error: CloudLinkError; fallback: FallbackAction };

export function fallbackFor(cloud: BridgeConfig["cloud"]): FallbackAction {
  return cloud.fallback === "transfer" && cloud.fallbackTarget
    ? { action: "transfer", target: cloud.fallbackTarget }
    : { action: "reject", sipStatus: 503 };
}

export async function openCloudLink(
  options: Omit<CloudLinkOptions, "url" | "secret" | "connectTimeoutMs" | "bridgeId"> & {
    cloud: BridgeConfig["cloud"];
    bridgeId: string;
  },
): Promise<LinkOutcome> {
  const { cloud, ...rest } = options;
  if (!cloud.url || !cloud.secret) {
    return {
      ok: false,
      error: new CloudLinkError("unreachable", "cloud.url and cloud.secret are not configured"),
      fallback: fallbackFor(cloud),
    };
  }
  const link = new CloudLink({
    ...rest,
    url: cloud.url,
    secret: cloud.secret,
    connectTimeoutMs: cloud.connectTimeoutMs,
    bridgeId: cloud.bridgeId ?? options.bridgeId,
  });
  try {
    await link.start();
    return { ok: true, link };
  } catch (error) {
    const linkError =
      error instanceof CloudLinkError ? error : new CloudLinkError("unreachable", (error as Error).message);
    return { ok: false, error: linkError, fallback: fallbackFor(cloud) };
  }
}
