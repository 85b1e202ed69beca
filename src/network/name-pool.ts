// The transparent path's address pool: the in-sandbox resolver hands out one loopback address per
// allowed name, and a connection's local address maps back to the name. Pure.
//
// Safety does not depend on the mapping being stable: every connection is decided again by name
// and port, so a recycled address can only lead to another allowed name.

import { type IpPrefix, formatIpv4, parsePrefix } from './ip.js';

export const DEFAULT_POOL = '127.80.0.0/16';

export class NamePool {
  readonly prefix: IpPrefix;
  private readonly base: number;
  private readonly size: number;
  private next = 1;
  // Map iteration order doubles as least-recently-used order.
  private readonly byName = new Map<string, number>();
  private readonly byIndex = new Map<number, string>();

  constructor(cidr: string = DEFAULT_POOL) {
    const prefix = parsePrefix(cidr);
    if (!prefix || prefix.family !== 4 || prefix.bytes[0] !== 127 || prefix.length < 8 || prefix.length > 30) {
      throw new Error(`invalid name pool "${cidr}": use an IPv4 prefix inside 127.0.0.0/8 between /8 and /30, e.g. ${DEFAULT_POOL}`);
    }
    this.prefix = prefix;
    const b = prefix.bytes;
    const mask = prefix.length === 0 ? 0 : (0xffffffff << (32 - prefix.length)) >>> 0;
    this.base = (((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) & mask) >>> 0;
    // Skip the all-zeros and all-ones host parts.
    this.size = 2 ** (32 - prefix.length) - 2;
    if (this.base === 0x7f000000) this.next = 2; // never hand out 127.0.0.1
  }

  /** The address for a name, allocating (or recycling the least recently used) when new. */
  addressFor(name: string): string {
    let index = this.byName.get(name);
    if (index !== undefined) {
      this.byName.delete(name);
      this.byName.set(name, index);
      return this.format(index);
    }
    if (this.next <= this.size) {
      index = this.next++;
    } else {
      const [oldest, oldIndex] = this.byName.entries().next().value as [string, number];
      this.byName.delete(oldest);
      index = oldIndex;
    }
    this.byName.set(name, index);
    this.byIndex.set(index, name);
    return this.format(index);
  }

  /** The name a pool address stands for, or null when the address was never handed out. */
  nameFor(address: string): string | null {
    const parts = address.split('.');
    if (parts.length !== 4) return null;
    const n = parts.reduce((acc, p) => acc * 256 + Number(p), 0);
    if (!Number.isInteger(n)) return null;
    const index = n - this.base;
    if (index < 1 || index > this.size) return null;
    return this.byIndex.get(index) ?? null;
  }

  get allocated(): number {
    return this.byName.size;
  }

  private format(index: number): string {
    const n = this.base + index;
    return formatIpv4(Uint8Array.from([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]));
  }
}
