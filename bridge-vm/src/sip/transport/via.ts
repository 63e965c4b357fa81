/**
 * Via handling at the transport edge (RFC 3261 §18.2.1–18.2.2, RFC 3581): stamp `received`/`rport` on
 * the top Via of each inbound request, and work out where a response to it must go.
 */
import { formatVia, parseVia } from "../message";
import type { SipRequest, Via } from "../message/types";
import type { Endpoint, TransportProtocol } from "./types";

export function topVia(request: { headers: SipRequest["headers"] }): Via | undefined {
  const value = request.headers.getAll("Via")[0];
  if (value === undefined) return undefined;
  return parseVia(value) ?? undefined;
}

/**
 * RFC 3261 §18.2.1: add `received` when sent-by's host differs from the packet source; RFC 3581 §4: fill
 * an empty `rport` with the source port (and then always add `received`).
 */
export function stampReceived(request: SipRequest, source: Endpoint): void {
  const values = request.headers.getAll("Via");
  const first = values[0];
  if (first === undefined) return;
  const via = parseVia(first);
  if (!via) return;
  let changed = false;
  if (via.params.has("rport") && via.params.get("rport") === "") {
    via.params.set("rport", String(source.port));
    via.params.set("received", source.address);
    changed = true;
  } else if (stripBrackets(via.host) !== source.address) {
    via.params.set("received", source.address);
    changed = true;
  }
  if (!changed) return;
  request.headers.delete("Via");
  request.headers.append("Via", formatVia(via));
  for (const rest of values.slice(1)) request.headers.append("Via", rest);
}

/**
 * Where a response to `request` goes (RFC 3261 §18.2.2 with RFC 3581): for UDP, `received`:`rport`
 * when rport was asked for (the packet's source), else `received` (or sent-by host) : sent-by port.
 * Stream transports reuse the inbound connection first; this is the fallback address.
 */
export function responseDestination(request: SipRequest, source: Endpoint): Endpoint {
  const via = topVia(request);
  const protocol: TransportProtocol = source.protocol;
  if (!via) return source;
  const rport = via.params.get("rport");
  if (rport !== undefined && rport !== "") {
    const port = Number(rport);
    return {
      protocol,
      address: via.params.get("received") ?? source.address,
      port: validPort(port) ?? source.port,
    };
  }
  const address = via.params.get("received") ?? stripBrackets(via.host);
  return { protocol, address, port: via.port ?? 5060 };
}

function validPort(port: number): number | undefined {
  return Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined;
}

export function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}
