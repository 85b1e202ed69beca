// The resolved-address guard: after an allowed *name* resolves, decide which of its addresses may
// be dialled. Pure, except localInterfaceAddresses() (the one OS fact: this host's addresses).
//
// An allow rule for `github.com` must not become a way to reach the user's router, a database on
// loopback or the cloud metadata endpoint because someone pointed github.com-lookalike DNS (or a
// rebinding name) there. So special-purpose ranges are refused unless an allow rule names the
// address or its prefix explicitly, and the proxy dials exactly the address checked here.

import { networkInterfaces } from 'node:os';
import { type IpAddress, type IpPrefix, ipv4, parseIpAddress, parsePrefix, prefixContains } from './ip.js';
import { type NetworkRules, deniedAddressRule, explicitAddressRule } from './rules.js';

export type AddressClass =
  | 'cloud metadata'
  | 'loopback'
  | 'unspecified'
  | 'link-local'
  | 'private'
  | 'shared address space (CGNAT)'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'this host';

interface Range {
  prefix: IpPrefix;
  cls: AddressClass;
  name: string;
}

function range(cidr: string, cls: AddressClass, name: string): Range {
  const prefix = parsePrefix(cidr);
  if (!prefix) throw new Error(`bad built-in range ${cidr}`);
  return { prefix, cls, name };
}

// Most specific first: the first match names the class.
const RANGES: readonly Range[] = [
  range('169.254.169.254/32', 'cloud metadata', 'AWS/GCP/Azure/OCI instance metadata'),
  range('169.254.170.2/32', 'cloud metadata', 'AWS ECS task metadata'),
  range('169.254.169.253/32', 'cloud metadata', 'AWS VPC DNS'),
  range('169.254.169.123/32', 'cloud metadata', 'AWS time sync'),
  range('100.100.100.200/32', 'cloud metadata', 'Alibaba Cloud metadata'),
  range('168.63.129.16/32', 'cloud metadata', 'Azure WireServer'),
  range('192.0.0.192/32', 'cloud metadata', 'Oracle Cloud metadata'),
  range('fd00:ec2::/32', 'cloud metadata', 'AWS IPv6 instance metadata'),
  range('0.0.0.0/8', 'unspecified', '"this network" 0.0.0.0/8'),
  range('127.0.0.0/8', 'loopback', 'loopback 127.0.0.0/8'),
  range('10.0.0.0/8', 'private', 'private 10.0.0.0/8'),
  range('172.16.0.0/12', 'private', 'private 172.16.0.0/12'),
  range('192.168.0.0/16', 'private', 'private 192.168.0.0/16'),
  range('100.64.0.0/10', 'shared address space (CGNAT)', 'shared address space 100.64.0.0/10'),
  range('169.254.0.0/16', 'link-local', 'link-local 169.254.0.0/16'),
  range('192.0.0.0/24', 'reserved', 'IETF protocol assignments 192.0.0.0/24'),
  range('192.0.2.0/24', 'reserved', 'documentation 192.0.2.0/24'),
  range('198.51.100.0/24', 'reserved', 'documentation 198.51.100.0/24'),
  range('203.0.113.0/24', 'reserved', 'documentation 203.0.113.0/24'),
  range('198.18.0.0/15', 'reserved', 'benchmarking 198.18.0.0/15'),
  range('224.0.0.0/4', 'multicast', 'multicast 224.0.0.0/4'),
  range('255.255.255.255/32', 'broadcast', 'broadcast 255.255.255.255'),
  range('240.0.0.0/4', 'reserved', 'reserved 240.0.0.0/4'),
  range('::/128', 'unspecified', 'unspecified ::'),
  range('::1/128', 'loopback', 'loopback ::1'),
  range('64:ff9b:1::/48', 'private', 'local-use NAT64 64:ff9b:1::/48'),
  range('100::/64', 'reserved', 'discard-only 100::/64'),
  range('2001:db8::/32', 'reserved', 'documentation 2001:db8::/32'),
  range('fc00::/7', 'private', 'unique local fc00::/7'),
  range('fe80::/10', 'link-local', 'link-local fe80::/10'),
  range('fec0::/10', 'private', 'site-local fec0::/10'),
  range('ff00::/8', 'multicast', 'multicast ff00::/8'),
];

// IPv6 forms that carry an IPv4 address the packet ends up at; they are judged by that address.
const IPV4_COMPATIBLE = parsePrefix('::/96')!;
const NAT64 = parsePrefix('64:ff9b::/96')!;
const SIX_TO_FOUR = parsePrefix('2002::/16')!;
const TEREDO = parsePrefix('2001::/32')!;

/** The IPv4 address an IPv6 address tunnels or translates to, if any. */
export function embeddedIpv4(ip: IpAddress): IpAddress | null {
  if (ip.family !== 6) return null;
  const b = ip.bytes;
  // (:: and ::1 are classified as themselves before this is consulted.)
  if (prefixContains(IPV4_COMPATIBLE, ip)) return ipv4(b.subarray(12));
  if (prefixContains(NAT64, ip)) return ipv4(b.subarray(12));
  if (prefixContains(SIX_TO_FOUR, ip)) return ipv4(b.subarray(2, 6));
  // Teredo: the client's IPv4 is stored inverted in the last 32 bits.
  if (prefixContains(TEREDO, ip)) return ipv4(Uint8Array.from(b.subarray(12), (x) => x ^ 0xff));
  return null;
}

export interface AddressClassification {
  cls: AddressClass;
  /** e.g. `loopback 127.0.0.0/8`, or `6to4 of 10.0.0.1 (private 10.0.0.0/8)`. */
  detail: string;
}

// The IPv4 ranges as integer (base, mask) pairs: every dialled address is checked, so this stays cheap.
const V4_RANGES = RANGES.filter((r) => r.prefix.family === 4).map((r) => {
  const mask = r.prefix.length === 0 ? 0 : (0xffffffff << (32 - r.prefix.length)) >>> 0;
  return { base: (ipv4Number(r.prefix.bytes) & mask) >>> 0, mask, range: r };
});
const V6_RANGES = RANGES.filter((r) => r.prefix.family === 6);

function ipv4Number(b: Uint8Array): number {
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

/** Why an address is special-purpose, or null when it is an ordinary public address. */
export function classifyAddress(ip: IpAddress, hostAddresses: readonly IpAddress[] = []): AddressClassification | null {
  if (ip.family === 4) {
    const n = ipv4Number(ip.bytes);
    for (const v of V4_RANGES) if (((n & v.mask) >>> 0) === v.base) return { cls: v.range.cls, detail: v.range.name };
  } else {
    for (const r of V6_RANGES) if (prefixContains(r.prefix, ip)) return { cls: r.cls, detail: r.name };
  }
  const inner = embeddedIpv4(ip);
  if (inner) {
    const c = classifyAddress(inner, hostAddresses);
    if (c) return { cls: c.cls, detail: `${ip.text} embeds ${inner.text} (${c.detail})` };
  }
  if (hostAddresses.some((h) => h.family === ip.family && h.text === ip.text)) {
    return { cls: 'this host', detail: `an address of this host's own network interfaces` };
  }
  return null;
}

/** This host's interface addresses (the OS fact the guard needs). */
export function localInterfaceAddresses(): IpAddress[] {
  const out: IpAddress[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      const ip = parseIpAddress(a.address.split('%')[0]!);
      if (ip) out.push(ip);
    }
  }
  return out;
}

export type AddressVerdict =
  | { ok: true; address: IpAddress; /** The explicit allow rule that admitted a special address. */ rule: string | null }
  | {
      ok: false;
      address: IpAddress | null;
      /** e.g. `127.0.0.1 is a loopback address (loopback 127.0.0.0/8), refused unless allowed explicitly`. */
      reason: string;
      /** The same without the address, e.g. `a loopback address (…), refused unless allowed explicitly`. */
      why: string;
      rule: string | null;
    };

/**
 * May this resolved address be dialled for a request to port `port`? Deny rules on addresses
 * win; special-purpose addresses need an explicit address allow rule.
 */
export function checkAddress(rules: NetworkRules, address: string, port: number, hostAddresses: readonly IpAddress[]): AddressVerdict {
  const ip = parseIpAddress(address);
  if (!ip) return { ok: false, address: null, reason: `${address} is not an IP address`, why: 'not an IP address', rule: null };
  // Judge an IPv6 that embeds an IPv4 by the IPv4 for the rules too, so `deny 10.0.0.0/8` holds.
  const inner = embeddedIpv4(ip);
  for (const f of inner ? [ip, inner] : [ip]) {
    const denied = deniedAddressRule(rules, f, port);
    if (denied) {
      const why = `matched by the network deny rule "${denied.source}"`;
      return { ok: false, address: ip, reason: `${ip.text} is ${why}`, why, rule: denied.source };
    }
  }
  const special = classifyAddress(ip, hostAddresses);
  if (!special) return { ok: true, address: ip, rule: null };
  const explicit = explicitAddressRule(rules, ip, port);
  if (explicit) return { ok: true, address: ip, rule: explicit.source };
  const what = special.cls === 'this host' ? special.detail : `a ${special.cls} address (${special.detail})`;
  const why = `${what}, refused unless allowed explicitly`;
  return { ok: false, address: ip, reason: `${ip.text} is ${why}`, why, rule: null };
}

export type DialChoice =
  | { ok: true; addresses: IpAddress[]; rules: (string | null)[] }
  | { ok: false; reason: string; rule: string | null; address: IpAddress | null };

/**
 * Filter the addresses a name resolved to, keeping the resolver's order. Refused when none are
 * left; the reason is the first refusal's (the most informative one for a user).
 */
export function chooseDialAddresses(
  rules: NetworkRules,
  host: string,
  addresses: readonly string[],
  port: number,
  hostAddresses: readonly IpAddress[],
): DialChoice {
  if (addresses.length === 0) return { ok: false, reason: `${host} did not resolve to any address`, rule: null, address: null };
  const keep: IpAddress[] = [];
  const keepRules: (string | null)[] = [];
  let firstRefusal: Extract<AddressVerdict, { ok: false }> | null = null;
  for (const a of addresses) {
    const v = checkAddress(rules, a, port, hostAddresses);
    if (v.ok) {
      if (!keep.some((k) => k.text === v.address.text)) {
        keep.push(v.address);
        keepRules.push(v.rule);
      }
    } else {
      firstRefusal ??= v;
    }
  }
  if (keep.length > 0) return { ok: true, addresses: keep, rules: keepRules };
  const r = firstRefusal!;
  const literal = r.address !== null && (host === r.address.text || host === `[${r.address.text}]`);
  const reason = literal ? r.reason : `${host} resolves to ${r.address?.text ?? 'an invalid address'}, ${r.why}`;
  return { ok: false, reason, rule: r.rule, address: r.address };
}
