/**
 * SipMessage → bytes, and builders for new requests and for responses to received requests.
 * Header order is preserved; Content-Length always reflects the real body length.
 */
import { createHeaders, parseNameAddr } from "./headers";
import type { SipHeaders, SipMessage, SipRequest, SipResponse } from "./types";

const encoder = new TextEncoder();

const LINE_BREAKING = /[\r\n\0]/;

/**
 * A value that reached us from the network (a display name, a Reason) must never be able to end its line
 * and inject headers: CR, LF and NUL become spaces.
 */
function oneLine(text: string): string {
  return LINE_BREAKING.test(text) ? text.replace(/[\r\n\0]/g, " ") : text;
}

/**
 * CRLF line endings, canonical header names, Content-Length set to the body's byte length (in place of
 * the first Content-Length header, else last). Header order is kept.
 */
export function serializeSipMessage(message: SipMessage): Uint8Array {
  let head =
    message.kind === "request"
      ? `${oneLine(message.method)} ${oneLine(message.uri)} SIP/2.0\r\n`
      : `SIP/2.0 ${message.status} ${oneLine(message.reason)}\r\n`;
  let wroteLength = false;
  for (const [name, value] of message.headers.entries()) {
    if (name === "Content-Length") {
      // Keep its position the first time, drop duplicates: the real length is the only truth.
      if (!wroteLength) head += `Content-Length: ${message.body.length}\r\n`;
      wroteLength = true;
      continue;
    }
    head += `${name}: ${oneLine(value)}\r\n`;
  }
  if (!wroteLength) head += `Content-Length: ${message.body.length}\r\n`;
  head += "\r\n";
  const headBytes = encoder.encode(head);
  if (message.body.length === 0) return headBytes;
  const out = new Uint8Array(headBytes.length + message.body.length);
  out.set(headBytes, 0);
  out.set(message.body, headBytes.length);
  return out;
}

function toBody(body: Uint8Array | string | undefined): Uint8Array {
  if (body === undefined) return new Uint8Array(0);
  return typeof body === "string" ? encoder.encode(body) : body;
}

export function createRequest(
  method: string,
  uri: string,
  headers?: Iterable<readonly [string, string]>,
  body?: Uint8Array | string,
): SipRequest {
  return { kind: "request", method, uri, headers: createHeaders(headers), body: toBody(body) };
}

export interface CreateResponseOptions {
  /** Extra headers appended after the copied ones (Contact, Allow, WWW-Authenticate, …). */
  headers?: Iterable<readonly [string, string]>;
  /** Our To tag; added only if the request's To has no tag yet (RFC 3261 §8.2.6.2). */
  toTag?: string;
  body?: Uint8Array | string;
}

function isHeaderIterable(
  value: Iterable<readonly [string, string]> | CreateResponseOptions,
): value is Iterable<readonly [string, string]> {
  return typeof (value as Iterable<unknown>)[Symbol.iterator] === "function";
}

/**
 * A response to `request` per RFC 3261 §8.2.6: copies every Via (in order), From, To, Call-ID and CSeq.
 * Accepts either `(request, status, reason, extraHeaders, options)` or `(request, status, reason, options)`.
 */
export function createResponse(
  request: SipRequest,
  status: number,
  reason?: string,
  extraHeaders?: Iterable<readonly [string, string]> | CreateResponseOptions,
  options: CreateResponseOptions = {},
): SipResponse {
  let extra: Iterable<readonly [string, string]> | undefined;
  let opts = options;
  if (extraHeaders !== undefined) {
    if (isHeaderIterable(extraHeaders)) extra = extraHeaders;
    else opts = { ...extraHeaders, ...options };
  }

  const headers: SipHeaders = createHeaders();
  for (const [name, value] of request.headers.entries()) {
    if (name === "Via") headers.append(name, value);
  }
  const from = request.headers.get("From");
  if (from !== undefined) headers.append("From", from);
  const to = request.headers.get("To");
  if (to !== undefined) {
    const hasTag = parseNameAddr(to)?.params.has("tag") ?? /;\s*tag=/i.test(to);
    headers.append("To", opts.toTag !== undefined && !hasTag ? `${to};tag=${opts.toTag}` : to);
  }
  const callId = request.headers.get("Call-ID");
  if (callId !== undefined) headers.append("Call-ID", callId);
  const cseq = request.headers.get("CSeq");
  if (cseq !== undefined) headers.append("CSeq", cseq);
  for (const source of [extra, opts.headers]) {
    if (source) for (const [name, value] of source) headers.append(name, value);
  }
  return {
    kind: "response",
    status,
    reason: reason ?? reasonPhrase(status),
    headers,
    body: toBody(opts.body),
  };
}

const REASON_PHRASES: Record<number, string> = {
  100: "Trying",
  180: "Ringing",
  181: "Call Is Being Forwarded",
  182: "Queued",
  183: "Session Progress",
  199: "Early Dialog Terminated",
  200: "OK",
  202: "Accepted",
  204: "No Notification",
  300: "Multiple Choices",
  301: "Moved Permanently",
  302: "Moved Temporarily",
  305: "Use Proxy",
  380: "Alternative Service",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  410: "Gone",
  412: "Conditional Request Failed",
  413: "Request Entity Too Large",
  414: "Request-URI Too Long",
  415: "Unsupported Media Type",
  416: "Unsupported URI Scheme",
  417: "Unknown Resource-Priority",
  420: "Bad Extension",
  421: "Extension Required",
  422: "Session Interval Too Small",
  423: "Interval Too Brief",
  428: "Use Identity Header",
  429: "Provide Referrer Identity",
  430: "Flow Failed",
  433: "Anonymity Disallowed",
  436: "Bad Identity-Info",
  437: "Unsupported Certificate",
  438: "Invalid Identity Header",
  439: "First Hop Lacks Outbound Support",
  440: "Max-Breadth Exceeded",
  469: "Bad Info Package",
  470: "Consent Needed",
  480: "Temporarily Unavailable",
  481: "Call/Transaction Does Not Exist",
  482: "Loop Detected",
  483: "Too Many Hops",
  484: "Address Incomplete",
  485: "Ambiguous",
  486: "Busy Here",
  487: "Request Terminated",
  488: "Not Acceptable Here",
  489: "Bad Event",
  491: "Request Pending",
  493: "Undecipherable",
  494: "Security Agreement Required",
  500: "Server Internal Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Server Time-out",
  505: "Version Not Supported",
  513: "Message Too Large",
  555: "Push Notification Service Not Supported",
  580: "Precondition Failure",
  600: "Busy Everywhere",
  603: "Decline",
  604: "Does Not Exist Anywhere",
  606: "Not Acceptable",
  607: "Unwanted",
  608: "Rejected",
};

/** The RFC reason phrase for a status, or a generic one for its class. */
export function reasonPhrase(status: number): string {
  const known = REASON_PHRASES[status];
  if (known !== undefined) return known;
  if (status < 200) return "Progress";
  if (status < 300) return "OK";
  if (status < 400) return "Redirect";
  if (status < 500) return "Client Error";
  if (status < 600) return "Server Error";
  return "Global Failure";
}
