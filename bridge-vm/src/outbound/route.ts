/** Next-hop resolution for requests we send outside the proxy's transaction (ACK, in-dialog). */
import { isIP } from "node:net";
import { parseSipUri } from "../sip/message";
import type { Endpoint } from "../sip/transport/types";

/** Where a request to `uri` physically goes: its host:port when it is an IP literal, else the proxy. */
export function endpointFor(uri: string, proxy: Endpoint): Endpoint {
  const parsed = parseSipUri(uri);
  if (!parsed || isIP(parsed.host.replace(/^\[|\]$/g, "")) === 0) return proxy;
  const transport = parsed.params.get("transport")?.toLowerCase();
  return {
    protocol: transport === "tcp" ? "tcp" : transport === "udp" ? "udp" : proxy.protocol,
    address: parsed.host.replace(/^\[|\]$/g, ""),
    port: parsed.port ?? 5060,
  };
}
