/**
 * Bytes → SipMessage (RFC 3261 §7, §25). Strict and bounded: every failure is a coded SipParseError whose
 * message is safe to use as a 400 reason phrase; nothing here throws on untrusted input.
 *
 * Datagram mode (UDP, the default): Content-Length absent = the rest of the datagram; larger than what
 * arrived = error; smaller = the extra bytes are ignored (RFC 3261 §18.3).
 * Stream mode (TCP/TLS, used by SipStreamFramer): Content-Length is required and must match exactly.
 */
import {
  createHeaders,
  isListHeader,
  isWellFormedNameAddr,
  parseCSeq,
  parseNameAddr,
  parseVia,
  splitOutsideQuotes,
} from "./headers";
import {
  SIP_LIMITS,
  type SipHeaders,
  type SipParseError,
  type SipParseErrorCode,
  type SipParseResult,
  type SipRequest,
} from "./types";

export interface ParseOptions {
  /** "datagram" (UDP, default) or "stream" (TCP/TLS: Content-Length required and exact). */
  framing?: "datagram" | "stream";
  /** Override SIP_LIMITS.maxMessageBytes (e.g. 16 KiB for UDP). */
  maxMessageBytes?: number;
  /**
   * Check the syntax only and skip `requestPolicyError` (RFC 3261 rules a syntactically valid request can
   * still break, such as an RFC 2543 Via without branch). Off by default: the transports parse with the
   * policy on, so such a request is answered 400 at the edge, rate-limited and only to allowed sources.
   */
  syntaxOnly?: boolean;
}

const CR = 0x0d;
const LF = 0x0a;
const TOKEN = /^[A-Za-z0-9\-.!%*_+`'~]+$/;
const STATUS_LINE = /^SIP\/(\d+\.\d+) (\d{3})(?: (.*))?$/i;
const REQUEST_LINE = /^([^ ]+) ([^ ]+) SIP\/(\d+\.\d+)$/i;
/** Headers that may appear at most once (RFC 3261 §20 plus what would make us ambiguous). */
const SINGLETON_HEADERS = ["From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Type"];
const REQUIRED_HEADERS = ["Via", "From", "To", "Call-ID", "CSeq"];

const utf8 = new TextDecoder("utf-8", { fatal: false });

function fail(code: SipParseErrorCode, message: string, request?: SipRequest): SipParseResult {
  const error: SipParseError = { code, message: sanitizeReason(message) };
  return request ? { ok: false, error, request } : { ok: false, error };
}

/** ASCII printable only, no CR/LF, at most 100 characters: usable verbatim as a reason phrase. */
function sanitizeReason(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, "?");
  return clean.length > 100 ? `${clean.slice(0, 97)}...` : clean;
}

/**
 * A plain Uint8Array copy. Node Buffers' slice() is a view on (pooled) memory, so never hand one of those
 * up the stack as a message body.
 */
function copyBytes(bytes: Uint8Array, start: number, end: number): Uint8Array {
  return new Uint8Array(bytes.subarray(start, end));
}

/** Index just past the blank line ending the header section, and where that header section ends. */
export function findHeaderEnd(
  bytes: Uint8Array,
  from = 0,
): { headersEnd: number; bodyStart: number } | undefined {
  for (let i = from; i < bytes.length; i++) {
    if (bytes[i] !== LF) continue;
    if (bytes[i + 1] === LF) return { headersEnd: i, bodyStart: i + 2 };
    if (bytes[i + 1] === CR && bytes[i + 2] === LF) return { headersEnd: i, bodyStart: i + 3 };
  }
  return undefined;
}

/**
 * A control character other than HT/CR/LF (RFC 3261 forbids them in the header section), except as the
 * escaped character of a quoted-pair inside a quoted string: `quoted-pair = "\\" (%x00-09 / %x0B-0C /
 * %x0E-7F)` (RFC 3261 §25.1; RFC 4475 intmeth has `"BEL:\\<BEL> NUL:\\<NUL> DEL:\\<DEL>"` in To). Quote
 * state is tracked per header line (a folded continuation stays in its line; a new line resets it), so a
 * stray quote cannot carry the exception into the next header, and CR/LF are never escapable.
 */
function findBadControl(bytes: Uint8Array, start: number, end: number): number {
  let inQuotes = false;
  let escaped = false;
  for (let i = start; i < end; i++) {
    const b = bytes[i]!;
    if (b === LF) {
      const next = bytes[i + 1];
      if (next !== 0x20 && next !== 0x09) inQuotes = false; // not a fold: a new header line
      escaped = false;
      continue;
    }
    // A bare CR (not part of CRLF) would hide inside a value and split it differently elsewhere.
    if (b === CR) {
      if (i + 1 < end && bytes[i + 1] !== LF) return i;
      escaped = false;
      continue;
    }
    if (escaped) {
      escaped = false; // any byte but CR/LF may follow the backslash, CTLs included
      continue;
    }
    if ((b < 0x20 && b !== 0x09) || b === 0x7f) return i;
    if (!inQuotes) {
      if (b === 0x22) inQuotes = true;
    } else if (b === 0x5c) {
      escaped = true;
    } else if (b === 0x22) {
      inQuotes = false;
    }
  }
  return -1;
}

/** Split the header section into unfolded logical lines (LWS continuation joined with one space). */
function unfoldLines(text: string): string[] {
  // Parts are joined once per logical line: repeated string concatenation would be quadratic on a
  // message made of thousands of continuation lines.
  const logical: string[][] = [];
  for (const line of text.split(/\r?\n/)) {
    const current = logical[logical.length - 1];
    if ((line.startsWith(" ") || line.startsWith("\t")) && current !== undefined) {
      current[current.length - 1] = current[current.length - 1]!.trimEnd();
      current.push(line.trim());
    } else {
      logical.push([line]);
    }
  }
  return logical.map((parts) => parts.join(" "));
}

/**
 * "METHOD <anything> SIP/2.0" with sloppy whitespace: enough to answer 400. Written without a regex
 * (a lazy pattern here would backtrack quadratically on a long line of spaces).
 */
function looseRequestLine(line: string): { method: string; uri: string } | undefined {
  const trimmed = line.trimEnd();
  if (!trimmed.toUpperCase().endsWith(" SIP/2.0") && !trimmed.toUpperCase().endsWith("\tSIP/2.0"))
    return undefined;
  const firstGap = trimmed.search(/[ \t]/);
  if (firstGap <= 0) return undefined;
  const method = trimmed.slice(0, firstGap);
  if (!TOKEN.test(method)) return undefined;
  return { method, uri: trimmed.slice(firstGap, trimmed.length - "SIP/2.0".length).trim() };
}

export function parseSipMessage(bytes: Uint8Array, options: ParseOptions = {}): SipParseResult {
  try {
    return parseUnsafe(bytes, options);
  } catch {
    // Defensive: a bug in this parser must never take the transport down.
    return fail("bad-header", "Malformed message");
  }
}

function parseUnsafe(bytes: Uint8Array, options: ParseOptions): SipParseResult {
  const maxBytes = options.maxMessageBytes ?? SIP_LIMITS.maxMessageBytes;
  if (bytes.length > maxBytes) return fail("too-large", "Message Too Large");

  // RFC 3261 §7.5: ignore CRLFs before the start line (keepalives, sloppy senders).
  let start = 0;
  while (start < bytes.length && (bytes[start] === CR || bytes[start] === LF)) start++;
  if (start >= bytes.length) return fail("empty", "Empty message");

  const ends = findHeaderEnd(bytes, start);
  // A datagram without the blank line: tolerate it when there is no body (all headers, then EOF).
  let headersEnd = ends ? ends.headersEnd : bytes.length;
  // findHeaderEnd stops at the LF of the last header line: leave its CR out of the header text too.
  if (headersEnd > start && bytes[headersEnd - 1] === CR) headersEnd--;
  const bodyStart = ends ? ends.bodyStart : bytes.length;
  if (!ends && options.framing === "stream") return fail("bad-header", "Missing end of headers");

  const badAt = findBadControl(bytes, start, headersEnd);
  if (badAt >= 0) return fail("bad-character", "Control character in headers");

  const lines = unfoldLines(utf8.decode(bytes.subarray(start, headersEnd)));
  const startLine = lines[0] ?? "";
  if (startLine.length > SIP_LIMITS.maxHeaderLineBytes) return fail("too-large", "Start line too long");

  // --- start line
  let method: string | undefined;
  let requestUri = "";
  let status = 0;
  let reason = "";
  let startLineError: [SipParseErrorCode, string] | undefined;
  const statusMatch = STATUS_LINE.exec(startLine);
  if (statusMatch) {
    if (statusMatch[1] !== "2.0") return fail("bad-version", "Version Not Supported");
    status = Number(statusMatch[2]);
    if (status < 100 || status > 699) return fail("bad-start-line", "Bad status code");
    reason = statusMatch[3] ?? "";
  } else {
    // A request line that is wrong only in its details (extra spaces, bad URI, bad version) still gets a
    // 400 when the headers allow one (RFC 4475 lwsstart, trws, ltgtruri, escruri, badvers): keep the error,
    // read the headers, and return the error with the request attached.
    const requestMatch = REQUEST_LINE.exec(startLine);
    if (requestMatch && TOKEN.test(requestMatch[1]!)) {
      method = requestMatch[1]!;
      requestUri = requestMatch[2]!;
      if (requestMatch[3] !== "2.0") startLineError = ["bad-version", "Version Not Supported"];
      else if (!/^[A-Za-z][A-Za-z0-9+\-.]*:./.test(requestUri))
        startLineError = ["bad-uri", "Bad Request-URI"];
      // RFC 3261 §19.1.5: URI headers ("?Route=…") make no sense in a Request-URI (RFC 4475 escruri).
      // Only after the userinfo: a user part may contain "?" (RFC 4475 intmeth), and it ends at the
      // last "@" (params and headers cannot hold an unescaped "@"), as in parseSipUri.
      else if (
        /^sips?:/i.test(requestUri) &&
        requestUri.slice(requestUri.lastIndexOf("@") + 1).includes("?")
      ) {
        startLineError = ["bad-uri", "Bad Request-URI"];
      }
    } else {
      const loose = looseRequestLine(startLine);
      if (!loose)
        return fail("bad-start-line", /SIP\/\d/i.test(startLine) ? "Bad Request-Line" : "Bad start line");
      method = loose.method;
      requestUri = loose.uri;
      startLineError = ["bad-start-line", "Bad Request-Line"];
    }
  }

  // --- header lines
  const headers = createHeaders();
  let headerCount = 0;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.length === 0) continue;
    if (line.length > SIP_LIMITS.maxHeaderLineBytes) return fail("too-large", "Header line too long");
    headerCount++;
    if (headerCount > SIP_LIMITS.maxHeaders) return fail("too-many-headers", "Too many headers");
    const colon = line.indexOf(":");
    if (colon <= 0) return fail("bad-header", "Malformed header line");
    const name = line.slice(0, colon).trimEnd();
    if (!TOKEN.test(name)) return fail("bad-header", "Malformed header name");
    headers.append(name, line.slice(colon + 1).trim());
  }

  const request: SipRequest | undefined =
    method !== undefined
      ? { kind: "request", method, uri: requestUri, headers, body: new Uint8Array(0) }
      : undefined;
  // The partial request goes back with errors only when a 400 can actually be built from it.
  const answerable = request && REQUIRED_HEADERS.every((h) => headers.has(h)) ? request : undefined;
  if (startLineError) return fail(startLineError[0], startLineError[1], answerable);

  // --- Content-Length and body
  const lengthValues = headers.getAll("Content-Length");
  let contentLength: number | undefined;
  for (const value of lengthValues) {
    if (!/^\d{1,10}$/.test(value)) return fail("bad-content-length", "Bad Content-Length", answerable);
    const parsed = Number(value);
    if (contentLength !== undefined && contentLength !== parsed) {
      return fail("duplicate-header", "Conflicting Content-Length", answerable);
    }
    contentLength = parsed;
  }
  const available = bytes.length - bodyStart;
  let body: Uint8Array;
  if (contentLength === undefined) {
    if (options.framing === "stream")
      return fail("bad-content-length", "Content-Length required", answerable);
    body = copyBytes(bytes, bodyStart, bytes.length);
  } else if (contentLength > available) {
    return fail("bad-content-length", "Content-Length exceeds body", answerable);
  } else if (options.framing === "stream" && contentLength !== available) {
    return fail("bad-content-length", "Content-Length mismatch", answerable);
  } else {
    body = copyBytes(bytes, bodyStart, bodyStart + contentLength);
  }
  if (request) request.body = body;

  // --- structural checks on the headers every layer relies on
  for (const name of SINGLETON_HEADERS) {
    if (countLines(headers, name) > 1) return fail("duplicate-header", `Duplicate ${name}`, answerable);
  }
  for (const name of REQUIRED_HEADERS) {
    if (!headers.has(name)) return fail("missing-header", `Missing ${name}`, answerable);
  }

  const vias = headers.getAll("Via");
  if (vias.length > SIP_LIMITS.maxViaHeaders) return fail("too-many-headers", "Too many Via", answerable);
  if (vias.length === 0) return fail("missing-header", "Missing Via", answerable);
  for (const value of vias) {
    if (!parseVia(value)) return fail("bad-via", "Malformed Via", answerable);
  }

  // From, To and Contact may carry any URI scheme (RFC 3261 §20.10 absoluteURI; RFC 4475 unksm2: isbn:,
  // http:, name:): well formed is enough here, and the layers above read them with parseNameAddr, which
  // yields nothing for a scheme other than sip/sips/tel (a dialog then cannot form: the call layer answers
  // 400). Route and Record-Route are where we would send requests, so they must be sip/sips URIs.
  for (const name of ["From", "To"]) {
    if (!isWellFormedNameAddr(headers.get(name)!)) return fail("bad-header", `Malformed ${name}`, answerable);
  }
  for (const value of headers.getAll("Contact")) {
    if (value !== "*" && !isWellFormedNameAddr(value))
      return fail("bad-header", "Malformed Contact", answerable);
  }
  for (const name of ["Route", "Record-Route"]) {
    for (const value of headers.getAll(name)) {
      if (!parseNameAddr(value)) return fail("bad-header", `Malformed ${name}`, answerable);
    }
  }
  if ((headers.get("Call-ID") ?? "").length === 0 || /\s/.test(headers.get("Call-ID")!)) {
    return fail("bad-header", "Malformed Call-ID", answerable);
  }

  const cseq = parseCSeq(headers.get("CSeq")!);
  if (!cseq) return fail("bad-cseq", "Malformed CSeq", answerable);
  if (request && cseq.method !== request.method) return fail("bad-cseq", "CSeq method mismatch", answerable);

  const maxForwards = headers.get("Max-Forwards");
  if (maxForwards !== undefined && !/^\d{1,10}$/.test(maxForwards)) {
    return fail("bad-header", "Malformed Max-Forwards", answerable);
  }

  if (request) {
    const refusal = options.syntaxOnly ? undefined : requestPolicyError(request);
    if (refusal) return fail(refusal.code, refusal.message, request);
    return { ok: true, message: request };
  }
  return { ok: true, message: { kind: "response", status, reason, headers, body } };
}

/**
 * Policy, not syntax: what a well-formed request must also satisfy before we act on it. RFC 3261 §8.1.1.7:
 * we only talk to RFC 3261 peers, and the top Via's branch is how our transactions match, so an RFC 2543
 * request without one (RFC 4475 §3.4.1 inv2543: valid syntax) is refused with 400. `parseSipMessage`
 * applies this unless `syntaxOnly`; the transaction layer checks the branch again as a second line.
 */
export function requestPolicyError(request: SipRequest): SipParseError | undefined {
  const top = request.headers.getAll("Via")[0];
  const via = top === undefined ? undefined : parseVia(top);
  if (!via?.params.get("branch")) return { code: "bad-via", message: "Missing Via branch" };
  return undefined;
}

function countLines(headers: SipHeaders, canonical: string): number {
  let count = 0;
  for (const [name, value] of headers.entries()) {
    if (name !== canonical) continue;
    count += isListHeader(canonical) ? splitOutsideQuotes(value, ",").length : 1;
  }
  return count;
}

// ---------------------------------------------------------------------------------------------------------
// Stream framing (TCP/TLS)

export type KeepaliveKind = "ping" | "pong";

export interface SipStreamFramerOptions {
  /** Most bytes buffered for one incomplete message; more = fatal (defaults to SIP_LIMITS.maxMessageBytes). */
  maxBufferBytes?: number;
  /**
   * RFC 5626 §3.5.1 keepalives: "ping" = CRLFCRLF (the transport MUST answer with a CRLF "pong"),
   * "pong" = a lone CRLF.
   */
  onKeepalive?: (kind: KeepaliveKind) => void;
}

/**
 * Cuts a TCP/TLS byte stream into SIP messages by Content-Length. Pure: the transport feeds chunks and
 * acts on the results. After a fatal error (`failed`) framing is lost and the connection must be closed;
 * further pushes return nothing.
 */
export class SipStreamFramer {
  /** RFC 5626 pings (CRLFCRLF) seen; each one deserves a CRLF back. */
  keepalives = 0;
  /** Lone-CRLF pongs seen. */
  pongs = 0;
  failed = false;
  /**
   * Received bytes live in storage[start, end). Appends are amortised O(1) (grow by doubling, compact
   * before growing) and the header-end search resumes where it stopped, so a peer dripping one byte per
   * segment costs linear work, not a copy and a rescan of the whole buffer per segment.
   */
  private storage = new Uint8Array(0);
  private start = 0;
  private end = 0;
  /** Where to resume looking for the blank line, relative to `start`. */
  private scanFrom = 0;
  /** Total length of the message at `start` once its headers are complete. */
  private pendingTotal: number | undefined;
  private readonly maxBufferBytes: number;
  private readonly onKeepalive: ((kind: KeepaliveKind) => void) | undefined;

  constructor(options: SipStreamFramerOptions = {}) {
    this.maxBufferBytes = options.maxBufferBytes ?? SIP_LIMITS.maxMessageBytes;
    this.onKeepalive = options.onKeepalive;
  }

  /** Bytes held for an incomplete message. */
  get bufferedBytes(): number {
    return this.end - this.start;
  }

  push(chunk: Uint8Array): SipParseResult[] {
    if (this.failed) return [];
    this.append(chunk);
    const results: SipParseResult[] = [];
    while (!this.failed && this.skipKeepalives()) {
      const buffered = this.view();
      if (this.pendingTotal === undefined) {
        const ends = findHeaderEnd(buffered, this.scanFrom);
        if (!ends) {
          this.scanFrom = Math.max(0, buffered.length - 3);
          if (buffered.length > this.maxBufferBytes)
            results.push(this.fatal("too-large", "Message Too Large"));
          break;
        }
        if (ends.bodyStart > this.maxBufferBytes) {
          results.push(this.fatal("too-large", "Message Too Large"));
          break;
        }
        const contentLength = scanContentLength(buffered.subarray(0, ends.headersEnd));
        if (contentLength === "invalid" || contentLength === undefined) {
          // Without a usable Content-Length the next message's start is unknowable (RFC 3261 §18.3).
          const parsed = parseSipMessage(buffered.subarray(0, ends.bodyStart), { framing: "stream" });
          const request = parsed.ok ? undefined : parsed.request;
          results.push(this.fatal("bad-content-length", "Content-Length required", request));
          break;
        }
        this.pendingTotal = ends.bodyStart + contentLength;
        if (this.pendingTotal > this.maxBufferBytes) {
          results.push(this.fatal("too-large", "Message Too Large"));
          break;
        }
      }
      if (buffered.length < this.pendingTotal) break;
      // parseSipMessage copies what it keeps (strings, body), so a view is enough here.
      results.push(
        parseSipMessage(buffered.subarray(0, this.pendingTotal), {
          framing: "stream",
          maxMessageBytes: this.maxBufferBytes,
        }),
      );
      this.consume(this.pendingTotal);
    }
    if (!this.failed && this.bufferedBytes > this.maxBufferBytes) {
      results.push(this.fatal("too-large", "Message Too Large"));
    }
    return results;
  }

  private view(): Uint8Array {
    return this.storage.subarray(this.start, this.end);
  }

  private append(chunk: Uint8Array): void {
    if (this.end + chunk.length > this.storage.length) {
      const live = this.end - this.start;
      const needed = live + chunk.length;
      if (needed <= this.storage.length && this.start > 0) {
        this.storage.copyWithin(0, this.start, this.end);
      } else {
        const grown = new Uint8Array(
          Math.max(needed, Math.min(this.storage.length * 2, this.maxBufferBytes + 1), 4096),
        );
        grown.set(this.storage.subarray(this.start, this.end), 0);
        this.storage = grown;
      }
      this.start = 0;
      this.end = live;
    }
    this.storage.set(chunk, this.end);
    this.end += chunk.length;
  }

  private consume(count: number): void {
    this.start += count;
    this.scanFrom = 0;
    this.pendingTotal = undefined;
    if (this.start === this.end) {
      this.start = 0;
      this.end = 0;
      // Do not keep a large buffer alive on an idle connection.
      if (this.storage.length > 65536) this.storage = new Uint8Array(0);
    }
  }

  /** Consume leading CRLF keepalives. Returns false when the buffer holds nothing else (yet). */
  private skipKeepalives(): boolean {
    if (this.pendingTotal !== undefined) return true;
    const b = this.view();
    let offset = 0;
    for (;;) {
      if (b[offset] === CR && b[offset + 1] === LF && b[offset + 2] === CR && b[offset + 3] === LF) {
        offset += 4;
        this.keepalives++;
        this.onKeepalive?.("ping");
        continue;
      }
      if (b[offset] === CR && b[offset + 1] === LF) {
        // Could be the first half of a ping split across chunks: decide only once more bytes arrive.
        if (offset + 2 >= b.length) break;
        if (b[offset + 2] === CR && offset + 3 >= b.length) break;
        offset += 2;
        this.pongs++;
        this.onKeepalive?.("pong");
        continue;
      }
      if (b[offset] === LF) {
        offset += 1; // stray bare LF between messages: tolerated, not a keepalive
        continue;
      }
      break;
    }
    if (offset > 0) this.consume(offset);
    const first = this.storage[this.start];
    return this.bufferedBytes > 0 && first !== CR && first !== LF;
  }

  private fatal(code: SipParseErrorCode, message: string, request?: SipRequest): SipParseResult {
    this.failed = true;
    this.storage = new Uint8Array(0);
    this.start = 0;
    this.end = 0;
    this.pendingTotal = undefined;
    return fail(code, message, request);
  }
}

/** Content-Length from a raw header section (long or compact name, folding tolerated), without full parsing. */
function scanContentLength(headerBytes: Uint8Array): number | "invalid" | undefined {
  const lines = unfoldLines(utf8.decode(headerBytes));
  let found: number | undefined;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (name !== "content-length" && name !== "l") continue;
    const value = line.slice(colon + 1).trim();
    if (!/^\d{1,10}$/.test(value)) return "invalid";
    const parsed = Number(value);
    if (found !== undefined && found !== parsed) return "invalid";
    found = parsed;
  }
  return found;
}
