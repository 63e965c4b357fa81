/**
 * Header names, the ordered header list, and the structured header values every layer reads:
 * SIP URIs, name-addr (From/To/Contact/Route), Via, CSeq, generic ";name=value" parameters.
 * Pure functions; parsers return undefined on malformed input and never throw.
 */
import { randomBytes } from "node:crypto";
import type { CSeq, NameAddr, SipHeaders, SipUri, Via } from "./types";

/** RFC 3261 §7.3.3 compact forms (plus the common extensions RFC 3515/3841/3265/4028). */
const COMPACT_FORMS: Record<string, string> = {
  a: "Accept-Contact",
  b: "Referred-By",
  c: "Content-Type",
  d: "Request-Disposition",
  e: "Content-Encoding",
  f: "From",
  i: "Call-ID",
  j: "Reject-Contact",
  k: "Supported",
  l: "Content-Length",
  m: "Contact",
  o: "Event",
  r: "Refer-To",
  s: "Subject",
  t: "To",
  u: "Allow-Events",
  v: "Via",
  x: "Session-Expires",
  y: "Identity",
};

/** Canonical spelling for names whose capitalisation is not simply "Each-Word-Capitalised". */
const SPECIAL_NAMES: Record<string, string> = {
  "call-id": "Call-ID",
  cseq: "CSeq",
  "www-authenticate": "WWW-Authenticate",
  "min-se": "Min-SE",
  "mime-version": "MIME-Version",
  rack: "RAck",
  rseq: "RSeq",
  "p-asserted-identity": "P-Asserted-Identity",
  "p-preferred-identity": "P-Preferred-Identity",
  "sip-etag": "SIP-ETag",
  "sip-if-match": "SIP-If-Match",
};

/**
 * Headers whose value is a comma-separated list (RFC 3261 §7.3.1) and which getAll() therefore splits.
 * Auth headers (WWW-Authenticate, Authorization, …) contain commas but are NOT lists: one challenge per line.
 */
const LIST_HEADERS = new Set([
  "Via",
  "Contact",
  "Route",
  "Record-Route",
  "Path",
  "Service-Route",
  "Allow",
  "Allow-Events",
  "Supported",
  "Require",
  "Proxy-Require",
  "Unsupported",
  "Accept",
  "Accept-Encoding",
  "Accept-Language",
  "Content-Encoding",
  "Content-Language",
  "Alert-Info",
  "Call-Info",
  "Error-Info",
  "In-Reply-To",
  "Warning",
  "Reason",
  "P-Asserted-Identity",
  "P-Preferred-Identity",
]);

const canonicalCache = new Map<string, string>();

/** "v" → "Via", "call-id" → "Call-ID", "x-custom-thing" → "X-Custom-Thing". */
export function canonicalHeaderName(name: string): string {
  const cached = canonicalCache.get(name);
  if (cached !== undefined) return cached;
  const lower = name.trim().toLowerCase();
  let canonical = COMPACT_FORMS[lower] ?? SPECIAL_NAMES[lower];
  if (canonical === undefined) {
    canonical = lower
      .split("-")
      .map((part) => (part.length === 0 ? part : part[0]!.toUpperCase() + part.slice(1)))
      .join("-");
  }
  if (canonicalCache.size < 512) canonicalCache.set(name, canonical);
  return canonical;
}

export function isListHeader(canonicalName: string): boolean {
  return LIST_HEADERS.has(canonicalName);
}

/**
 * Split on `separator` outside quoted strings and <...> brackets. Quoted strings honour backslash escapes.
 * Pieces are trimmed; empty pieces are dropped.
 */
export function splitOutsideQuotes(text: string, separator: string): string[] {
  const pieces: string[] = [];
  let inQuotes = false;
  let angleDepth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inQuotes) {
      if (ch === "\\") i++;
      else if (ch === '"') inQuotes = false;
      continue;
    }
    if (ch === '"') inQuotes = true;
    else if (ch === "<") angleDepth++;
    else if (ch === ">" && angleDepth > 0) angleDepth--;
    else if (ch === separator && angleDepth === 0) {
      const piece = text.slice(start, i).trim();
      if (piece.length > 0) pieces.push(piece);
      start = i + 1;
    }
  }
  const last = text.slice(start).trim();
  if (last.length > 0) pieces.push(last);
  return pieces;
}

class HeaderList implements SipHeaders {
  /** One entry per header line, canonical names, wire order. */
  private readonly lines: Array<[string, string]> = [];

  constructor(entries?: Iterable<readonly [string, string]>) {
    if (entries) for (const [name, value] of entries) this.append(name, value);
  }

  get(name: string): string | undefined {
    const canonical = canonicalHeaderName(name);
    for (const [lineName, value] of this.lines) {
      if (lineName !== canonical) continue;
      if (!isListHeader(canonical)) return value;
      const first = splitOutsideQuotes(value, ",")[0];
      if (first !== undefined) return first;
    }
    return undefined;
  }

  getAll(name: string): string[] {
    const canonical = canonicalHeaderName(name);
    const split = isListHeader(canonical);
    const values: string[] = [];
    for (const [lineName, value] of this.lines) {
      if (lineName !== canonical) continue;
      if (split) values.push(...splitOutsideQuotes(value, ","));
      else values.push(value);
    }
    return values;
  }

  has(name: string): boolean {
    const canonical = canonicalHeaderName(name);
    return this.lines.some(([lineName]) => lineName === canonical);
  }

  set(name: string, value: string): void {
    const canonical = canonicalHeaderName(name);
    const index = this.lines.findIndex(([lineName]) => lineName === canonical);
    if (index < 0) {
      this.lines.push([canonical, value]);
      return;
    }
    this.lines[index] = [canonical, value];
    for (let i = this.lines.length - 1; i > index; i--) {
      if (this.lines[i]![0] === canonical) this.lines.splice(i, 1);
    }
  }

  append(name: string, value: string): void {
    this.lines.push([canonicalHeaderName(name), value]);
  }

  prepend(name: string, value: string): void {
    const canonical = canonicalHeaderName(name);
    const index = this.lines.findIndex(([lineName]) => lineName === canonical);
    if (index < 0) this.lines.push([canonical, value]);
    else this.lines.splice(index, 0, [canonical, value]);
  }

  delete(name: string): void {
    const canonical = canonicalHeaderName(name);
    for (let i = this.lines.length - 1; i >= 0; i--) {
      if (this.lines[i]![0] === canonical) this.lines.splice(i, 1);
    }
  }

  *entries(): IterableIterator<[string, string]> {
    for (const [name, value] of this.lines) yield [name, value];
  }

  clone(): SipHeaders {
    return new HeaderList(this.lines);
  }
}

export function createHeaders(entries?: Iterable<readonly [string, string]>): SipHeaders {
  return new HeaderList(entries);
}

// ---------------------------------------------------------------------------------------------------------
// Parameters

/**
 * Parse ";a=b;flag;c=\"quoted\"" (leading ";" optional) into a Map with lower-cased keys. A flag maps to "".
 * Values are kept as written (a quoted value keeps its quotes) so formatting round-trips byte-exact.
 */
export function parseParams(text: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const piece of splitOutsideQuotes(text, ";")) {
    const eq = piece.indexOf("=");
    if (eq < 0) {
      params.set(piece.trim().toLowerCase(), "");
    } else {
      const key = piece.slice(0, eq).trim().toLowerCase();
      if (key.length > 0) params.set(key, piece.slice(eq + 1).trim());
    }
  }
  return params;
}

export function formatParams(params: ReadonlyMap<string, string>): string {
  let text = "";
  for (const [key, value] of params) text += value === "" ? `;${key}` : `;${key}=${value}`;
  return text;
}

/** Remove surrounding quotes and backslash escapes from a quoted-string; returns the input if not quoted. */
export function unquote(text: string): string {
  const trimmed = text.trim();
  if (trimmed.length < 2 || !trimmed.startsWith('"') || !trimmed.endsWith('"')) return trimmed;
  return trimmed.slice(1, -1).replace(/\\(.)/g, "$1");
}

export function quote(text: string): string {
  return `"${text.replace(/(["\\])/g, "\\$1")}"`;
}

// ---------------------------------------------------------------------------------------------------------
// URIs

const HOST_PATTERN = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_]+)$/;

function parseHostPort(text: string): { host: string; port?: number } | undefined {
  let host: string;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) return undefined;
    host = text.slice(0, close + 1);
    const rest = text.slice(close + 1);
    if (rest.length > 0) {
      if (!rest.startsWith(":")) return undefined;
      portText = rest.slice(1);
    }
  } else {
    const colon = text.indexOf(":");
    host = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? undefined : text.slice(colon + 1);
  }
  if (!HOST_PATTERN.test(host)) return undefined;
  if (portText === undefined) return { host };
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port > 65535) return undefined;
  return { host, port };
}

/**
 * Parse a sip:, sips: or tel: URI. For tel: URIs the telephone-subscriber number is returned as `host`
 * (there is no host part), parameters as `params`. User and password are kept as written (percent-escapes
 * are not decoded) so formatSipUri round-trips.
 */
export function parseSipUri(text: string): SipUri | undefined {
  const trimmed = text.trim();
  const colon = trimmed.indexOf(":");
  if (colon < 0) return undefined;
  const schemeText = trimmed.slice(0, colon).toLowerCase();
  if (schemeText !== "sip" && schemeText !== "sips" && schemeText !== "tel") return undefined;
  let rest = trimmed.slice(colon + 1);
  if (rest.length === 0 || /[\s<>"]/.test(rest)) return undefined;

  if (schemeText === "tel") {
    const semi = rest.indexOf(";");
    const number = semi < 0 ? rest : rest.slice(0, semi);
    if (number.length === 0) return undefined;
    return {
      scheme: "tel",
      host: number,
      params: semi < 0 ? new Map() : parseParams(rest.slice(semi)),
      headers: new Map(),
    };
  }

  let user: string | undefined;
  let password: string | undefined;
  // The userinfo ends at the LAST "@": user may contain "?", ";" and "/" (RFC 4475 intmeth), while URI
  // params and headers may not contain an unescaped "@" (RFC 3261 §25.1 paramchar, hvalue).
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const pw = userinfo.indexOf(":");
    user = pw < 0 ? userinfo : userinfo.slice(0, pw);
    if (pw >= 0) password = userinfo.slice(pw + 1);
    if (user.length === 0) return undefined;
  }

  const headersStart = rest.indexOf("?");
  const headersText = headersStart < 0 ? "" : rest.slice(headersStart + 1);
  if (headersStart >= 0) rest = rest.slice(0, headersStart);
  const paramsStart = rest.indexOf(";");
  const hostPortText = paramsStart < 0 ? rest : rest.slice(0, paramsStart);
  const hostPort = parseHostPort(hostPortText);
  if (!hostPort) return undefined;

  const headers = new Map<string, string>();
  for (const pair of headersText.split("&")) {
    if (pair.length === 0) continue;
    const eq = pair.indexOf("=");
    headers.set(eq < 0 ? pair : pair.slice(0, eq), eq < 0 ? "" : pair.slice(eq + 1));
  }

  const uri: SipUri = {
    scheme: schemeText,
    host: hostPort.host,
    params: paramsStart < 0 ? new Map() : parseParams(rest.slice(paramsStart)),
    headers,
  };
  if (user !== undefined) uri.user = user;
  if (password !== undefined) uri.password = password;
  if (hostPort.port !== undefined) uri.port = hostPort.port;
  return uri;
}

export function formatSipUri(uri: SipUri): string {
  let text = `${uri.scheme}:`;
  if (uri.scheme !== "tel" && uri.user !== undefined) {
    text += uri.user;
    if (uri.password !== undefined) text += `:${uri.password}`;
    text += "@";
  }
  text += uri.host;
  if (uri.port !== undefined) text += `:${uri.port}`;
  text += formatParams(uri.params);
  if (uri.headers.size > 0) {
    text += `?${[...uri.headers].map(([k, v]) => (v === "" ? k : `${k}=${v}`)).join("&")}`;
  }
  return text;
}

// ---------------------------------------------------------------------------------------------------------
// name-addr / addr-spec (From, To, Contact, Route, Record-Route, Refer-To, …)

/** The parts of a name-addr / addr-spec header value, before its URI is interpreted. */
interface NameAddrParts {
  displayName?: string;
  uriText: string;
  /** Header parameters, ";tag=x;expires=60" (possibly empty). */
  paramsText: string;
}

/**
 * Split `"Display" <uri>;tag=x`, `Display Name <uri>`, `<uri>` or the bare addr-spec form `uri;tag=x`
 * (where, per RFC 3261 §20.10, everything after ";" belongs to the header, not the URI).
 */
function splitNameAddr(value: string): NameAddrParts | undefined {
  const text = value.trim();
  if (text.length === 0) return undefined;
  let displayName: string | undefined;
  let index = 0;

  if (text.startsWith('"')) {
    let end = 1;
    let name = "";
    for (; end < text.length; end++) {
      const ch = text[end]!;
      if (ch === "\\") {
        end++;
        if (end < text.length) name += text[end];
      } else if (ch === '"') break;
      else name += ch;
    }
    if (end >= text.length) return undefined;
    displayName = name;
    index = end + 1;
  }

  const open = text.indexOf("<", index);
  if (open >= 0) {
    const between = text.slice(index, open).trim();
    if (displayName === undefined) {
      // Unquoted display names are tokens (RFC 3261 §25.1); "Bell, Alexander <…>" must be quoted
      // (RFC 4475 baddn). Non-ASCII letters are tolerated: real phones send them unquoted.
      if (/[,;"<>@:\\/[\]?={}()]/.test(between)) return undefined;
      if (between.length > 0) displayName = between.replace(/\s+/g, " ");
    } else if (between.length > 0) {
      return undefined;
    }
    const close = text.indexOf(">", open);
    if (close < 0) return undefined;
    const inside = text.slice(open + 1, close);
    if (inside.trim() !== inside) return undefined; // "< sip:a@b >" is not a name-addr (RFC 4475 badaspec)
    const after = text.slice(close + 1).trim();
    if (after.length > 0 && !after.startsWith(";")) return undefined;
    return displayName === undefined
      ? { uriText: inside, paramsText: after }
      : { displayName, uriText: inside, paramsText: after };
  }

  if (displayName !== undefined) return undefined;
  // The header params start at the first ";" after the host: a user part may itself contain ";".
  const at = text.lastIndexOf("@");
  const semi = text.indexOf(";", Math.max(at, 0));
  const uriText = (semi < 0 ? text : text.slice(0, semi)).trim();
  // A bare addr-spec cannot carry URI headers or params (RFC 3261 §20): those need the <> form.
  if (uriText.includes("?") || /\s/.test(uriText)) return undefined;
  return { uriText, paramsText: semi < 0 ? "" : text.slice(semi) };
}

/**
 * Parse `"Display" <sip:a@b>;tag=x`, `Display Name <sip:a@b>`, `<sip:a@b>` or the bare addr-spec form
 * `sip:a@b;tag=x` (where, per RFC 3261 §20.10, everything after ";" belongs to the header, not the URI).
 * Returns undefined for "*" (Contact wildcard), for a URI scheme other than sip/sips/tel, and for anything
 * malformed.
 */
export function parseNameAddr(value: string): NameAddr | undefined {
  const parts = splitNameAddr(value);
  if (!parts) return undefined;
  const uri = parseSipUri(parts.uriText);
  if (!uri) return undefined;
  const nameAddr: NameAddr = { uri, params: parseParams(parts.paramsText) };
  if (parts.displayName !== undefined) nameAddr.displayName = parts.displayName;
  return nameAddr;
}

/**
 * RFC 3986 scheme ":" then at least one printable ASCII character other than space, '"', "<" and ">"
 * (0x21, 0x23-0x3B, 0x3D, 0x3F-0x7E): an absoluteURI as far as a header needs to know (RFC 3261 §25.1).
 */
const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+\-.]*:[!#-;=?-~]+$/;

/**
 * Whether a From/To/Contact value is a well-formed name-addr or addr-spec with ANY URI scheme: a sip/sips/tel
 * URI that parseNameAddr accepts, or an absoluteURI with another scheme (RFC 4475 §3.3.4 unksm2:
 * `To: isbn:2983792873`, `From: <http://www.example.com>;tag=…`, `Contact: <name:John_Smith>`).
 */
export function isWellFormedNameAddr(value: string): boolean {
  const parts = splitNameAddr(value);
  if (!parts) return false;
  if (/^(sips?|tel):/i.test(parts.uriText)) return parseSipUri(parts.uriText) !== undefined;
  return ABSOLUTE_URI.test(parts.uriText);
}

/** Always writes the <> form (safe for URIs with params). Quotes the display name when needed. */
export function formatNameAddr(nameAddr: NameAddr): string {
  let text = "";
  if (nameAddr.displayName !== undefined && nameAddr.displayName.length > 0) {
    text += /^[A-Za-z0-9\-.!%*_+`'~ ]+$/.test(nameAddr.displayName)
      ? `${nameAddr.displayName} `
      : `${quote(nameAddr.displayName)} `;
  }
  text += `<${formatSipUri(nameAddr.uri)}>`;
  text += formatParams(nameAddr.params);
  return text;
}

// ---------------------------------------------------------------------------------------------------------
// Via, CSeq

const VIA_PATTERN =
  /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+([^;\s]+(?:\s*:\s*\d+)?)\s*(;.*)?$/is;

/** Parse ONE Via value ("SIP/2.0/UDP host:port;branch=z9hG4bK…"); split lists with headers.getAll first. */
export function parseVia(value: string): Via | undefined {
  const match = VIA_PATTERN.exec(value.trim());
  if (!match) return undefined;
  const hostPort = parseHostPort(match[2]!.replace(/\s+/g, ""));
  if (!hostPort) return undefined;
  const via: Via = {
    transport: match[1]!.toUpperCase(),
    host: hostPort.host,
    params: match[3] ? parseParams(match[3]) : new Map(),
  };
  if (hostPort.port !== undefined) via.port = hostPort.port;
  return via;
}

export function formatVia(via: Via): string {
  const port = via.port === undefined ? "" : `:${via.port}`;
  return `SIP/2.0/${via.transport} ${via.host}${port}${formatParams(via.params)}`;
}

/** RFC 3261 §8.1.1.5: the sequence number MUST be less than 2^31. */
export const MAX_CSEQ = 2 ** 31 - 1;

export function parseCSeq(value: string): CSeq | undefined {
  const match = /^(\d{1,10})\s+([A-Za-z0-9\-.!%*_+`'~]+)$/.exec(value.trim());
  if (!match) return undefined;
  const seq = Number(match[1]);
  if (seq > MAX_CSEQ) return undefined;
  return { seq, method: match[2]! };
}

export function formatCSeq(cseq: CSeq): string {
  return `${cseq.seq} ${cseq.method}`;
}

// ---------------------------------------------------------------------------------------------------------
// Identifiers

/** RFC 3261 magic cookie + 96 random bits (RFC requires unique over space and time). */
export function generateBranch(): string {
  return `z9hG4bK${randomBytes(12).toString("base64url")}`;
}

/** 64 random bits (RFC 3261 §19.3 asks for at least 32). */
export function generateTag(): string {
  return randomBytes(8).toString("hex");
}

/** 16 random bytes, hex (no "@host": RFC 3261 allows it and it leaks our address for nothing). */
export function generateCallId(): string {
  return randomBytes(16).toString("hex");
}
