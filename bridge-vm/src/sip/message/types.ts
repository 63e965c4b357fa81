/**
 * The SIP message model (RFC 3261 §7, §25) shared by every SIP layer. Parsing and serialization live in
 * ./parse.ts and ./serialize.ts; structured header values (Via, name-addr, URI, CSeq, auth) in ./headers.ts.
 * This file is the contract between the message layer and the layers above (transport, transaction,
 * dialog, call): change it only with care.
 */

export interface SipUri {
  scheme: "sip" | "sips" | "tel";
  user?: string;
  password?: string;
  /** Host as written, IPv6 references keep their brackets: "[2001:db8::1]". */
  host: string;
  port?: number;
  /** URI parameters (";transport=tcp;lr"); a flag parameter maps to "" (empty string). Keys lower-cased. */
  params: Map<string, string>;
  /** URI headers ("?subject=x"). */
  headers: Map<string, string>;
}

export interface NameAddr {
  displayName?: string;
  uri: SipUri;
  /** Header parameters after the URI (";tag=abc;expires=60"); keys lower-cased, flags map to "". */
  params: Map<string, string>;
}

export interface Via {
  /** "UDP", "TCP", "TLS", "WS", … (upper-cased). */
  transport: string;
  host: string;
  port?: number;
  /** branch, received, rport ("" when present without value), maddr, ttl…; keys lower-cased. */
  params: Map<string, string>;
}

export interface CSeq {
  seq: number;
  method: string;
}

/**
 * Ordered header list with case-insensitive, compact-form-aware names ("v" = "Via", "i" = "Call-ID", …).
 * Names are stored in their canonical long form. Comma-separated multi-value headers (Via, Contact,
 * Route, Record-Route, Allow, Supported, …) are split by getAll(); single-value headers are not.
 */
export interface SipHeaders {
  /** The first value of the header, or undefined. */
  get(name: string): string | undefined;
  /** Every value, in order, with comma-separated lists split (quoted strings and <...> respected). */
  getAll(name: string): string[];
  has(name: string): boolean;
  /** Replace all values of the header with one value. */
  set(name: string, value: string): void;
  append(name: string, value: string): void;
  /** Insert before any existing values (e.g. our Via on top). */
  prepend(name: string, value: string): void;
  delete(name: string): void;
  /** [canonicalName, rawValue] in wire order, one entry per header line. */
  entries(): IterableIterator<[string, string]>;
  clone(): SipHeaders;
}

export interface SipRequest {
  kind: "request";
  method: string;
  /** Request-URI as written on the start line. */
  uri: string;
  headers: SipHeaders;
  body: Uint8Array;
}

export interface SipResponse {
  kind: "response";
  status: number;
  reason: string;
  headers: SipHeaders;
  body: Uint8Array;
}

export type SipMessage = SipRequest | SipResponse;

/** Stable codes for everything that can be wrong with bytes off the wire. */
export type SipParseErrorCode =
  | "too-large"
  | "empty"
  | "bad-start-line"
  | "bad-version"
  | "bad-header"
  | "missing-header"
  | "duplicate-header"
  | "bad-via"
  | "bad-cseq"
  | "bad-content-length"
  | "bad-uri"
  | "bad-character"
  | "too-many-headers";

export interface SipParseError {
  code: SipParseErrorCode;
  /** Human-readable, safe to use as a 400 reason phrase (ASCII, no CR/LF, <= 100 chars). */
  message: string;
}

export type SipParseResult =
  | { ok: true; message: SipMessage }
  /**
   * `request` is present when the start line and the headers needed to build a response (Via, From, To,
   * Call-ID, CSeq) could be read, so the transport can answer 400 <message>; otherwise drop and count.
   */
  | { ok: false; error: SipParseError; request?: SipRequest };

/** Limits applied to every message (see sip-interop.md §3.3). */
export const SIP_LIMITS = {
  maxMessageBytes: 65536,
  maxHeaders: 128,
  /**
   * Max-Forwards starts at 70 (RFC 3261 §8.1.1.6) and every hop adds one Via, so no request that reached
   * us by the rules carries more than ~70; RFC 4475 longreq (34 Vias) is legal. Was 16, which refused it.
   * Still a cap: 100 Vias is refused, and maxHeaders / maxMessageBytes bound the cost of any header.
   */
  maxViaHeaders: 70,
  maxHeaderLineBytes: 8192,
} as const;
