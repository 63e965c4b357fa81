/** Base64 <-> bytes for vendors that wrap audio in JSON (ElevenLabs, Cartesia, OpenAI Realtime). */

/** Encode in slices: String.fromCharCode(...bytes) overflows the call stack on large buffers. */
export function bytesToBase64(bytes: Uint8Array): string {
  let binary = "";
  const slice = 0x8000;
  for (let offset = 0; offset < bytes.length; offset += slice) {
    binary += String.fromCharCode(...bytes.subarray(offset, offset + slice));
  }
  return btoa(binary);
}

/** Decode base64 from an untrusted peer; returns undefined instead of throwing on bad input. */
export function base64ToBytes(text: string): Uint8Array | undefined {
  let binary: string;
  try {
    binary = atob(text);
  } catch {
    return undefined;
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
