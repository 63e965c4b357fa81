/** Next-hop resolution for requests we send outside the proxy's transaction (ACK, in-dialog). */
import { isIP } from "node:net";
import { parseSipUri } from "../sip/message";
import type { SipUri } from "../sip/message/types";
import type { Endpoint } from "../sip/transport/types";

/** Where a request to `uri` physically goes: its host:port when it is an IP literal, else the proxy. */
export function endpointFor(uri: string, proxy: Endpoint): Endpoint {
  const parsed = parseSipUri(uri);
  return parsed ? endpointForUri(parsed, proxy) : proxy;
}

export function endpointForUri(uri: SipUri, proxy: Endpoint): Endpoint {
  const host = uri.host.replace(/^\[|\]$/g, "");
  if (isIP(host) === 0) return proxy;
  const transport = uri.params.get("transport")?.toLowerCase();
  return {
    protocol: transport === "tcp" ? "tcp" : transport === "udp" ? "udp" : proxy.protocol,
    address: host,
    port: uri.port ?? 5060,
  };
}
