/** IPv4/IPv6 CIDR matching for the source allow-list. Pure; unparseable entries never match. */
import { isIP } from "node:net";

export interface CidrBlock {
  family: 4 | 6;
  bits: bigint;
  prefix: number;
}

export function parseCidr(text: string): CidrBlock | undefined {
  const [address, prefixText] = text.trim().split("/");
  if (!address) return undefined;
  const family = isIP(address);
  if (family !== 4 && family !== 6) return undefined;
  const width = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? width : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > width) return undefined;
  const bits = toBits(address, family);
  if (bits === undefined) return undefined;
  return { family, bits, prefix };
}

export function cidrContains(block: CidrBlock, address: string): boolean {
  const plain = address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  const family = isIP(plain);
  if (family !== block.family) return false;
  const bits = toBits(plain, family);
  if (bits === undefined) return false;
  const width = family === 4 ? 32 : 128;
  const shift = BigInt(width - block.prefix);
  return bits >> shift === block.bits >> shift;
}

function toBits(address: string, family: number): bigint | undefined {
  if (family === 4) {
    const parts = address.split(".").map(Number);
    if (parts.length !== 4 || parts.some((part) => !Number.isInteger(part) || part < 0 || part > 255))
      return undefined;
    return parts.reduce((acc, part) => (acc << 8n) | BigInt(part), 0n);
  }
  const [head = "", tail] = address.split("::");
  const headParts = head ? head.split(":") : [];
  const tailParts = tail ? tail.split(":") : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
  const expand = (parts: string[]) =>
    parts.flatMap((part) => {
      if (!part.includes(".")) return [part];
      const v4 = toBits(part, 4);
      if (v4 === undefined) return ["x"];
      return [(v4 >> 16n).toString(16), (v4 & 0xffffn).toString(16)];
    });
  const headHex = expand(headParts);
  const tailHex = expand(tailParts);
  const missing = 8 - headHex.length - tailHex.length;
  if (tail === undefined ? missing !== 0 : missing < 0) return undefined;
  const all = [...headHex, ...Array<string>(Math.max(0, missing)).fill("0"), ...tailHex];
  let bits = 0n;
  for (const hextet of all) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(hextet)) return undefined;
    bits = (bits << 16n) | BigInt(Number.parseInt(hextet, 16));
  }
  return bits;
}

export class SourceAllowList {
  private blocks: CidrBlock[] = [];

  constructor(entries: readonly string[] = []) {
    this.set(entries);
  }

  /** Replace the list (e.g. after re-resolving the registrar). Unparseable entries are skipped. */
  set(entries: readonly string[]): void {
    this.blocks = entries.map(parseCidr).filter((block): block is CidrBlock => block !== undefined);
  }

  allows(address: string): boolean {
    return this.blocks.some((block) => cidrContains(block, address));
  }

  get size(): number {
    return this.blocks.length;
  }
}
