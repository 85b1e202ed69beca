// IP address parsing, formatting and prefix matching. Pure: no OS access.
//
// Hosts reach the proxy in many spellings (`2852039166`, `0x7f.1`, `[::ffff:127.0.0.1]`), and the
// sandboxed program's resolver would accept all of them; so every rule check and every address
// check runs on one canonical byte form.

export type IpFamily = 4 | 6;

export interface IpAddress {
  family: IpFamily;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
  /** Canonical text: dotted quad, or RFC 5952 IPv6 (IPv4-mapped shown as `::ffff:a.b.c.d`). */
  text: string;
}

export interface IpPrefix {
  family: IpFamily;
  bytes: Uint8Array;
  /** Number of leading bits that must match (0..32 or 0..128). */
  length: number;
}

const DECIMAL = /^(?:0|[1-9][0-9]*)$/;
const OCTAL = /^0[0-7]+$/;
const HEX = /^0x[0-9a-f]*$/i;

/** One inet_aton part: decimal, octal (leading 0) or hex (0x). */
function parseAtonPart(part: string): number | null {
  if (HEX.test(part)) return part.length === 2 ? 0 : parseInt(part.slice(2), 16);
  if (OCTAL.test(part)) return parseInt(part.slice(1), 8);
  if (DECIMAL.test(part)) return parseInt(part, 10);
  return null;
}

/**
 * IPv4 in any form the C library's inet_aton accepts (and so curl, ping, getaddrinfo…):
 * `a.b.c.d`, `a.b.c` (c is 16 bits), `a.b` (b is 24 bits), `a` (32 bits), each part decimal,
 * octal or hex. Returns null when the text is not such an address.
 */
export function parseIpv4Loose(text: string): Uint8Array | null {
  if (text.length === 0 || text.length > 64) return null;
  const parts = text.split('.');
  if (parts.length > 4) return null;
  const values: number[] = [];
  for (const part of parts) {
    // Guard the length so parseInt stays exact (2^53) and silly inputs stay cheap.
    if (part.length === 0 || part.length > 34) return null;
    const v = parseAtonPart(part);
    if (v === null || !Number.isFinite(v)) return null;
    values.push(v);
  }
  const last = values.pop()!;
  if (values.some((v) => v > 255)) return null;
  const lastBytes = 4 - values.length;
  if (last >= 2 ** (8 * lastBytes)) return null;
  const out = new Uint8Array(4);
  values.forEach((v, i) => (out[i] = v));
  for (let i = 0; i < lastBytes; i++) out[3 - i] = Math.floor(last / 2 ** (8 * i)) % 256;
  return out;
}

/** Strict dotted-quad decimal (what resolvers return), no leading zeros. */
export function parseIpv4Strict(text: string): Uint8Array | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!DECIMAL.test(p) || p.length > 3) return null;
    const v = parseInt(p, 10);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

/** IPv6 text without brackets; an embedded dotted quad is allowed at the end; zone ids are not. */
export function parseIpv6(text: string): Uint8Array | null {
  if (text.length < 2 || text.length > 45 || text.includes('%')) return null;
  let head = text;
  let tailV4: Uint8Array | null = null;
  const lastColon = text.lastIndexOf(':');
  if (lastColon >= 0 && text.indexOf('.', lastColon) > lastColon) {
    tailV4 = parseIpv4Strict(text.slice(lastColon + 1));
    if (!tailV4) return null;
    // Keep the colon so `::1.2.3.4` still splits into an empty head and tail.
    head = text.slice(0, lastColon + 1) + '0:0';
  }
  const halves = head.split('::');
  if (halves.length > 2) return null;
  const parseGroups = (s: string): number[] | null => {
    if (s === '') return [];
    const groups = s.split(':');
    const out: number[] = [];
    for (const g of groups) {
      if (!/^[0-9a-f]{1,4}$/i.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = parseGroups(halves[0]!);
  const right = halves.length === 2 ? parseGroups(halves[1]!) : [];
  if (!left || !right) return null;
  let groups: number[];
  if (halves.length === 2) {
    const missing = 8 - left.length - right.length;
    if (missing < 1) return null;
    groups = [...left, ...new Array<number>(missing).fill(0), ...right];
  } else {
    groups = left;
  }
  if (groups.length !== 8) return null;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  if (tailV4) out.set(tailV4, 12);
  return out;
}

export function formatIpv4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** RFC 5952: lower case, no leading zeros, the longest run (>= 2) of zero groups as `::`. */
export function formatIpv6(b: Uint8Array): string {
  if (isIpv4Mapped(b)) return `::ffff:${formatIpv4(b.subarray(12))}`;
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((b[2 * i]! << 8) | b[2 * i + 1]!);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

export function isIpv4Mapped(b: Uint8Array): boolean {
  if (b.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

export function ipv4(bytes: Uint8Array): IpAddress {
  const copy = Uint8Array.from(bytes);
  return { family: 4, bytes: copy, text: formatIpv4(copy) };
}

export function ipv6(bytes: Uint8Array): IpAddress {
  const copy = Uint8Array.from(bytes);
  return { family: 6, bytes: copy, text: formatIpv6(copy) };
}

/**
 * An address as dialled: IPv4 (strict dotted quad) or IPv6. IPv4-mapped IPv6 is folded to IPv4,
 * because that is the address the kernel actually connects to.
 */
export function parseIpAddress(text: string): IpAddress | null {
  const v4 = parseIpv4Strict(text);
  if (v4) return ipv4(v4);
  const v6 = parseIpv6(text);
  if (!v6) return null;
  return isIpv4Mapped(v6) ? ipv4(v6.subarray(12)) : ipv6(v6);
}

export function prefixContains(prefix: IpPrefix, addr: IpAddress): boolean {
  if (prefix.family !== addr.family) return false;
  let bits = prefix.length;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((prefix.bytes[i]! & mask) !== (addr.bytes[i]! & mask)) return false;
  }
  return true;
}

/** Parse `a.b.c.d/n` or `x::y/n` (n optional) into a prefix; null when malformed. */
export function parsePrefix(text: string): IpPrefix | null {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const addr = parseIpAddress(addrText);
  if (!addr) return null;
  const max = addr.family === 4 ? 32 : 128;
  let length = max;
  if (slash >= 0) {
    const n = text.slice(slash + 1);
    if (!DECIMAL.test(n)) return null;
    length = parseInt(n, 10);
    if (length > max) return null;
    // `::ffff:10.0.0.0/104` was folded to IPv4, so its length is relative to the IPv4 part.
    if (addr.family === 4 && parseIpv6(addrText)) {
      if (length < 96) return null;
      length -= 96;
    }
  }
  return { family: addr.family, bytes: addr.bytes, length };
}

export function formatPrefix(p: IpPrefix): string {
  const text = p.family === 4 ? formatIpv4(p.bytes) : formatIpv6(p.bytes);
  return p.length === (p.family === 4 ? 32 : 128) ? text : `${text}/${p.length}`;
}
