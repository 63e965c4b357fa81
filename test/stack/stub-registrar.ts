/**
 * The smallest registrar that lets the bridge come up without Kamailio (the demo's "direct" mode): it
 * answers every REGISTER over UDP with 200 OK, echoing the Contact with the granted expiry, and nothing
 * else. The bridge then logs its Contact token, which a caller needs as the Request-URI user to call the
 * bridge directly. Not a SIP server: no auth, no routing, no location service.
 */
import { createSocket, type Socket } from "node:dgram";
import { LOOPBACK } from "../support/ports";

export interface StubRegistrar {
  host: string;
  port: number;
  close(): Promise<void>;
}

const header = (message: string, name: string): string | undefined =>
  message
    .split("\r\n")
    .find((line) => line.toLowerCase().startsWith(`${name.toLowerCase()}:`))
    ?.slice(name.length + 1)
    .trim();

export async function startStubRegistrar(host = LOOPBACK): Promise<StubRegistrar> {
  const socket: Socket = createSocket("udp4");
  socket.on("message", (bytes, remote) => {
    const message = bytes.toString("latin1");
    if (!message.startsWith("REGISTER ")) return;
    const vias = message
      .split("\r\n")
      .filter((line) => /^(via|v):/i.test(line))
      .map((line) => line.replace(/^(via|v):\s*/i, ""));
    const contact = header(message, "Contact");
    const expires = header(message, "Expires") ?? "600";
    const to = header(message, "To") ?? "";
    const response = [
      "SIP/2.0 200 OK",
      ...vias.map((via) => `Via: ${via}`),
      `From: ${header(message, "From") ?? ""}`,
      `To: ${to}${/;tag=/.test(to) ? "" : ";tag=stub"}`,
      `Call-ID: ${header(message, "Call-ID") ?? ""}`,
      `CSeq: ${header(message, "CSeq") ?? ""}`,
      ...(contact && !contact.startsWith("*")
        ? [`Contact: ${contact.replace(/;expires=\d+/, "")};expires=${expires}`]
        : []),
      `Expires: ${expires}`,
      "Content-Length: 0",
      "",
      "",
    ].join("\r\n");
    socket.send(response, remote.port, remote.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  let closed: Promise<void> | undefined;
  return {
    host,
    port: socket.address().port,
    close() {
      closed ??= new Promise<void>((resolve) => socket.close(() => resolve()));
      return closed;
    },
  };
}
