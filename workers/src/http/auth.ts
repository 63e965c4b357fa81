/**
 * Bearer-token checks shared by every authenticated route (media sockets, REST, control sockets).
 */

export function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? "");
  return match?.[1];
}

/**
 * Constant-time check of the API token: both sides are hashed first, so the comparison is over equal
 * lengths and its time says nothing about how many leading characters matched.
 */
export async function apiAuthorized(
  header: string | undefined,
  expected: string | undefined,
): Promise<boolean> {
  const presented = bearer(header);
  if (!presented || !expected) return false;
  const encoder = new TextEncoder();
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(presented)),
    crypto.subtle.digest("SHA-256", encoder.encode(expected)),
  ]);
  const left = new Uint8Array(a);
  const right = new Uint8Array(b);
  let difference = 0;
  for (let i = 0; i < left.length; i++) difference |= left[i]! ^ right[i]!;
  return difference === 0;
}
