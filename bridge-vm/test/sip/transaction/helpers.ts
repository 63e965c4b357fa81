/** Test helpers shared by the SIP layer tests: parse message text, build requests and responses. */
import { createResponse, parseSipMessage } from "../../../src/sip/message";
import type { SipMessage, SipRequest, SipResponse } from "../../../src/sip/message/types";

export function parse(text: string): SipMessage {
  const result = parseSipMessage(new TextEncoder().encode(text.replace(/\r?\n/g, "\r\n")));
  if (!result.ok) throw new Error(`test message does not parse: ${result.error.message}`);
  return result.message;
}

export function request(
  method: string,
  options: { branch?: string; cseq?: number; toTag?: string; body?: string; extra?: string } = {},
): SipRequest {
  const body = options.body ?? "";
  const text = [
    `${method} sip:bridge@127.0.0.1:5060 SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:5070;branch=${options.branch ?? "z9hG4bK-test-1"};rport`,
    "Max-Forwards: 70",
    "From: <sip:caller@127.0.0.1>;tag=caller-tag",
    `To: <sip:bridge@127.0.0.1>${options.toTag ? `;tag=${options.toTag}` : ""}`,
    "Call-ID: call-1@test",
    `CSeq: ${options.cseq ?? 1} ${method}`,
    "Contact: <sip:caller@127.0.0.1:5070>",
    ...(options.extra ? options.extra.split("\n") : []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    "",
    body,
  ].join("\r\n");
  const message = parse(text);
  if (message.kind !== "request") throw new Error("not a request");
  return message;
}

export function responseTo(req: SipRequest, status: number, toTag = "remote-tag"): SipResponse {
  return createResponse(req, status, undefined, { toTag });
}
