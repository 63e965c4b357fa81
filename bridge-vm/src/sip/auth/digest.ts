/**
 * HTTP Digest for SIP (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760): challenge parsing, choosing the
 * strongest challenge, computing Authorization / Proxy-Authorization values, and a small pure client that
 * decides whether a 401/407 is worth a retry. No I/O; randomness only for the cnonce (injectable).
 * The password never appears in any returned string other than as a hash input.
 */
import { createHash, randomBytes } from "node:crypto";
import { splitOutsideQuotes, unquote } from "../message/headers";
import type { SipRequest, SipResponse } from "../message/types";

export type DigestAlgorithm =
  | "MD5"
  | "MD5-sess"
  | "SHA-256"
  | "SHA-256-sess"
  | "SHA-512-256"
  | "SHA-512-256-sess";

export interface DigestChallenge {
  scheme: "Digest";
  realm: string;
  nonce: string;
  opaque?: string;
  /** Normalised spelling; MD5 when the challenge names none (RFC 2617 default). */
  algorithm: DigestAlgorithm;
  /** Lower-cased qop options offered ("auth", "auth-int"); empty for the legacy RFC 2069 form. */
  qop: string[];
  stale: boolean;
  domain?: string;
}

const ALGORITHMS: Record<string, DigestAlgorithm> = {
  md5: "MD5",
  "md5-sess": "MD5-sess",
  "sha-256": "SHA-256",
  "sha-256-sess": "SHA-256-sess",
  "sha-512-256": "SHA-512-256",
  "sha-512-256-sess": "SHA-512-256-sess",
};

const HASH_OF: Record<DigestAlgorithm, string> = {
  MD5: "md5",
  "MD5-sess": "md5",
  "SHA-256": "sha256",
  "SHA-256-sess": "sha256",
  "SHA-512-256": "sha512-256",
  "SHA-512-256-sess": "sha512-256",
};

/** Higher = stronger (RFC 7616 §3.7: prefer the strongest the server offers). */
const STRENGTH: Record<DigestAlgorithm, number> = {
  MD5: 1,
  "MD5-sess": 1,
  "SHA-256": 2,
  "SHA-256-sess": 2,
  "SHA-512-256": 3,
  "SHA-512-256-sess": 3,
};

/** Parse `a=b, c="d, e"` auth-params into a Map (lower-cased keys, unquoted values). */
function parseAuthParams(text: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const piece of splitOutsideQuotes(text, ",")) {
    const eq = piece.indexOf("=");
    if (eq <= 0) continue;
    params.set(piece.slice(0, eq).trim().toLowerCase(), unquote(piece.slice(eq + 1)));
  }
  return params;
}

/**
 * Parse one WWW-Authenticate / Proxy-Authenticate value. Returns undefined for other schemes, for
 * algorithms we cannot compute (e.g. AKAv1-MD5), and for challenges without realm or nonce.
 */
export function parseChallenge(headerValue: string): DigestChallenge | undefined {
  const match = /^\s*([A-Za-z][A-Za-z0-9-]*)\s+([\s\S]*)$/.exec(headerValue);
  if (!match || match[1]!.toLowerCase() !== "digest") return undefined;
  const params = parseAuthParams(match[2]!);
  const realm = params.get("realm");
  const nonce = params.get("nonce");
  if (realm === undefined || nonce === undefined || nonce.length === 0) return undefined;
  const algorithmText = params.get("algorithm");
  const algorithm = algorithmText === undefined ? "MD5" : ALGORITHMS[algorithmText.toLowerCase()];
  if (algorithm === undefined) return undefined;
  const challenge: DigestChallenge = {
    scheme: "Digest",
    realm,
    nonce,
    algorithm,
    qop: (params.get("qop") ?? "")
      .split(",")
      .map((q) => q.trim().toLowerCase())
      .filter((q) => q.length > 0),
    stale: (params.get("stale") ?? "").toLowerCase() === "true",
  };
  const opaque = params.get("opaque");
  if (opaque !== undefined) challenge.opaque = opaque;
  const domain = params.get("domain");
  if (domain !== undefined) challenge.domain = domain;
  return challenge;
}

/**
 * The strongest challenge we can answer (SHA-512-256 > SHA-256 > MD5). Among equals the first listed wins,
 * and a challenge offering qop=auth beats a legacy one (replay protection via nc/cnonce).
 */
export function chooseChallenge(challenges: readonly DigestChallenge[]): DigestChallenge | undefined {
  let best: DigestChallenge | undefined;
  const score = (c: DigestChallenge): number =>
    STRENGTH[c.algorithm] * 10 + (supportedQop(c) === "auth" ? 1 : 0);
  for (const challenge of challenges) {
    if (best === undefined || score(challenge) > score(best)) best = challenge;
  }
  return best;
}

/** What qop we will use: auth when offered, else auth-int when only that is offered, else none (legacy). */
function supportedQop(challenge: DigestChallenge): "auth" | "auth-int" | undefined {
  if (challenge.qop.includes("auth")) return "auth";
  if (challenge.qop.includes("auth-int")) return "auth-int";
  return undefined;
}

export interface BuildAuthorizationInput {
  challenge: DigestChallenge;
  method: string;
  /** The digest-uri: the Request-URI of the request being authorised, as written. */
  uri: string;
  username: string;
  password: string;
  /** Nonce count for this nonce, starting at 1. */
  nc: number;
  /** Client nonce; random when omitted. */
  cnonce?: string;
  /** Message body, for qop=auth-int. */
  body?: Uint8Array;
}

function hash(algorithm: DigestAlgorithm, data: string | Uint8Array): string {
  return createHash(HASH_OF[algorithm]).update(data).digest("hex");
}

/** A quoted-string for auth-params: escapes `"` and `\` (RFC 7616 §3.4 quoting rules). */
function q(value: string): string {
  return `"${value.replace(/(["\\])/g, "\\$1")}"`;
}

export function generateCnonce(): string {
  return randomBytes(16).toString("hex");
}

/** Compute the header VALUE (starting with "Digest ") for Authorization / Proxy-Authorization. */
export function buildAuthorization(input: BuildAuthorizationInput): string {
  const { challenge, method, uri, username, password } = input;
  const algorithm = challenge.algorithm;
  const qop = supportedQop(challenge);
  const cnonce = input.cnonce ?? generateCnonce();
  const nc = (input.nc >>> 0).toString(16).padStart(8, "0");

  let ha1 = hash(algorithm, `${username}:${challenge.realm}:${password}`);
  if (algorithm.endsWith("-sess")) ha1 = hash(algorithm, `${ha1}:${challenge.nonce}:${cnonce}`);
  const ha2 =
    qop === "auth-int"
      ? hash(algorithm, `${method}:${uri}:${hash(algorithm, input.body ?? new Uint8Array(0))}`)
      : hash(algorithm, `${method}:${uri}`);
  const response =
    qop === undefined
      ? hash(algorithm, `${ha1}:${challenge.nonce}:${ha2}`)
      : hash(algorithm, `${ha1}:${challenge.nonce}:${nc}:${cnonce}:${qop}:${ha2}`);

  const parts = [
    `username=${q(username)}`,
    `realm=${q(challenge.realm)}`,
    `nonce=${q(challenge.nonce)}`,
    `uri=${q(uri)}`,
    `response=${q(response)}`,
    `algorithm=${algorithm}`,
  ];
  if (qop !== undefined || algorithm.endsWith("-sess")) parts.push(`cnonce=${q(cnonce)}`);
  if (challenge.opaque !== undefined) parts.push(`opaque=${q(challenge.opaque)}`);
  // qop and nc are unquoted tokens (RFC 2617 §3.2.2; many servers reject the quoted form).
  if (qop !== undefined) parts.push(`qop=${qop}`, `nc=${nc}`);
  return `Digest ${parts.join(", ")}`;
}

/** realm + nonce of the Authorization we sent earlier, to detect "same nonce rejected again". */
function parseSentAuthorization(value: string): { realm?: string; nonce?: string } {
  const match = /^\s*digest\s+([\s\S]*)$/i.exec(value);
  if (!match) return {};
  const params = parseAuthParams(match[1]!);
  const sent: { realm?: string; nonce?: string } = {};
  const realm = params.get("realm");
  const nonce = params.get("nonce");
  if (realm !== undefined) sent.realm = realm;
  if (nonce !== undefined) sent.nonce = nonce;
  return sent;
}

// ---------------------------------------------------------------------------------------------------------

export type DigestHeaderName = "Authorization" | "Proxy-Authorization";

export type DigestDecision =
  | {
      action: "retry";
      headerName: DigestHeaderName;
      headerValue: string;
      /** true when the server only said our nonce expired (stale=true): not a credential failure. */
      stale: boolean;
      challenge: DigestChallenge;
    }
  | {
      action: "fail";
      /**
       * credentials-rejected: the server refused the nonce we answered (wrong user/password): stop.
       * no-supported-challenge: nothing we can compute (other scheme/algorithm, or no challenge at all).
       * too-many-attempts: a server keeps issuing fresh nonces without accepting any: stop.
       */
      reason: "credentials-rejected" | "no-supported-challenge" | "too-many-attempts";
    };

export interface DigestCredentials {
  username: string;
  password: string;
}

export interface DigestClientOptions {
  /** cnonce source; inject for deterministic tests. */
  cnonce?: () => string;
  /** Consecutive challenges without success before giving up (default 4). */
  maxConsecutiveChallenges?: number;
}

/**
 * Pure digest client for one set of credentials (one registration or one call leg). It remembers the last
 * challenge per realm and the nonce count per nonce, so the caller can also authorise pre-emptively
 * (REGISTER refresh) with `authorize()`. Call `succeeded()` on any 2xx.
 */
export class DigestClient {
  private readonly credentials: DigestCredentials;
  private readonly cnonce: () => string;
  private readonly maxConsecutive: number;
  private readonly nonceCounts = new Map<string, number>();
  private lastChallenge: { challenge: DigestChallenge; headerName: DigestHeaderName } | undefined;
  private consecutiveChallenges = 0;
  /** The nonce of the challenge we last answered straight away (not a cached one reused later). */
  private freshNonce: string | undefined;

  constructor(credentials: DigestCredentials, options: DigestClientOptions = {}) {
    this.credentials = credentials;
    this.cnonce = options.cnonce ?? generateCnonce;
    this.maxConsecutive = options.maxConsecutiveChallenges ?? 4;
  }

  /**
   * Decide what to do with a 401/407 received for `previousRequest` (the request as sent, including any
   * Authorization it carried). On "retry", the caller sends a copy of the request with a new branch,
   * CSeq + 1 and `headerName: headerValue` (replacing any earlier one).
   */
  respondToChallenge(response: SipResponse, previousRequest: SipRequest): DigestDecision {
    const headerName: DigestHeaderName = response.status === 407 ? "Proxy-Authorization" : "Authorization";
    const challengeHeader = response.status === 407 ? "Proxy-Authenticate" : "WWW-Authenticate";
    const challenges = response.headers
      .getAll(challengeHeader)
      .map(parseChallenge)
      .filter((c): c is DigestChallenge => c !== undefined);
    const challenge = chooseChallenge(challenges);
    if (!challenge) return { action: "fail", reason: "no-supported-challenge" };

    const sentNonces = previousRequest.headers
      .getAll(headerName)
      .map(parseSentAuthorization)
      .filter((sent) => sent.realm === challenge.realm);
    if (!challenge.stale) {
      // Refused although we answered this very nonce: the credentials are wrong.
      if (sentNonces.some((sent) => sent.nonce === challenge.nonce)) {
        return { action: "fail", reason: "credentials-rejected" };
      }
      // Kamailio-style servers issue a fresh nonce with every challenge: if we had just answered a fresh
      // challenge and the server neither accepted it nor called it stale, the credentials are wrong too.
      // (A cached nonce used pre-emptively may simply have expired on a server that never sets stale.)
      const answeredFresh =
        this.freshNonce !== undefined && sentNonces.some((sent) => sent.nonce === this.freshNonce);
      if (answeredFresh) return { action: "fail", reason: "credentials-rejected" };
    }

    this.consecutiveChallenges++;
    if (this.consecutiveChallenges > this.maxConsecutive)
      return { action: "fail", reason: "too-many-attempts" };

    // stale=true only counts as "not a failure" when we had in fact sent credentials for this realm.
    const stale = challenge.stale && sentNonces.length > 0;
    this.lastChallenge = { challenge, headerName };
    this.freshNonce = challenge.nonce;
    const headerValue = this.authorizeWith(
      challenge,
      previousRequest.method,
      previousRequest.uri,
      previousRequest.body,
    );
    return { action: "retry", headerName, headerValue, stale, challenge };
  }

  /** Pre-emptive credentials from the last challenge (e.g. for a REGISTER refresh), if any. */
  authorize(
    method: string,
    uri: string,
    body?: Uint8Array,
  ): { headerName: DigestHeaderName; headerValue: string } | undefined {
    if (!this.lastChallenge) return undefined;
    const { challenge, headerName } = this.lastChallenge;
    this.freshNonce = undefined;
    return { headerName, headerValue: this.authorizeWith(challenge, method, uri, body) };
  }

  /** A 2xx (or any non-401/407 final) arrived: the credentials work, reset the loop guard. */
  succeeded(): void {
    this.consecutiveChallenges = 0;
  }

  /** Forget cached challenges (e.g. after the registrar changed). */
  reset(): void {
    this.lastChallenge = undefined;
    this.freshNonce = undefined;
    this.nonceCounts.clear();
    this.consecutiveChallenges = 0;
  }

  private authorizeWith(challenge: DigestChallenge, method: string, uri: string, body?: Uint8Array): string {
    const key = `${challenge.realm}\u0000${challenge.nonce}`;
    const nc = (this.nonceCounts.get(key) ?? 0) + 1;
    // Keep the map bounded: only the nonces of live challenges matter.
    if (!this.nonceCounts.has(key) && this.nonceCounts.size >= 16) this.nonceCounts.clear();
    this.nonceCounts.set(key, nc);
    const input: BuildAuthorizationInput = {
      challenge,
      method,
      uri,
      username: this.credentials.username,
      password: this.credentials.password,
      nc,
      cnonce: this.cnonce(),
    };
    if (body !== undefined) input.body = body;
    return buildAuthorization(input);
  }
}
