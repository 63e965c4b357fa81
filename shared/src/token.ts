/**
 * Short-lived call tokens: how the bridge proves to the Worker that it may open a call's media socket.
 *
 *   token = "v1." + expiresAt (unix seconds) + "." + base64url(HMAC-SHA256(secret, "v1|" + callId + "|" + expiresAt))
 *
 * Bound to one call id, so a leaked token opens nothing else; short-lived, so a leaked log line goes
 * stale. Uses WebCrypto only, which both Node 22 and workerd provide. Verification is constant-time.
 */

const TOKEN_VERSION = "v1";
const encoder = new TextEncoder();

async function hmacKey(secret: string) {
  if (secret.length < 16) throw new RangeError("call token secret must be at least 16 characters");
  return crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
    "verify",
  ]);
}

function toBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(text)) return undefined;
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function signedText(callId: string, expiresAt: number): Uint8Array<ArrayBuffer> {
  // Copy into a plain ArrayBuffer view: WebCrypto's BufferSource excludes SharedArrayBuffer views.
  return new Uint8Array(encoder.encode(`${TOKEN_VERSION}|${callId}|${expiresAt}`));
}

export async function signCallToken(
  secret: string,
  callId: string,
  options: { ttlSeconds?: number; nowMs?: number } = {},
): Promise<string> {
  const expiresAt = Math.floor((options.nowMs ?? Date.now()) / 1000) + (options.ttlSeconds ?? 300);
  const signature = await crypto.subtle.sign("HMAC", await hmacKey(secret), signedText(callId, expiresAt));
  return `${TOKEN_VERSION}.${expiresAt}.${toBase64Url(new Uint8Array(signature))}`;
}

export type TokenCheck =
  | { ok: true; expiresAt: number }
  | { ok: false; reason: "malformed" | "expired" | "bad-signature" };

export async function verifyCallToken(
  secret: string,
  callId: string,
  token: string,
  options: { nowMs?: number } = {},
): Promise<TokenCheck> {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[0] !== TOKEN_VERSION || !/^\d{1,12}$/.test(parts[1] ?? "")) {
    return { ok: false, reason: "malformed" };
  }
  const expiresAt = Number(parts[1]);
  const signature = fromBase64Url(parts[2] ?? "");
  if (signature?.length !== 32) return { ok: false, reason: "malformed" };
  // crypto.subtle.verify compares in constant time.
  const valid = await crypto.subtle.verify(
    "HMAC",
    await hmacKey(secret),
    signature,
    signedText(callId, expiresAt),
  );
  if (!valid) return { ok: false, reason: "bad-signature" };
  if (expiresAt * 1000 < (options.nowMs ?? Date.now())) return { ok: false, reason: "expired" };
  return { ok: true, expiresAt };
}
