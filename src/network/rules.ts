// Domain allow/deny rules: parsing, validation and the per-request decision. Pure: no OS access.
//
// Pattern syntax (the same for allow and deny):
//   example.com          that name exactly (case-insensitive, trailing dot ignored)
//   *.example.com        strict subdomains of example.com (not example.com itself)
//   *                    any host (names and IP literals)
//   10.0.0.5, 10.0.0.0/8 an IPv4 address or prefix (inet_aton spellings are canonicalised)
//   [::1], [fd00::/8]    an IPv6 address or prefix, always in brackets
//   any of the above + `:port`   only that port
// Deny wins over allow. Name patterns never match IP literals, and IP patterns never match names;
// an IP pattern in the allow list is also what lets an allowed name resolve to that address when
// the address guard would otherwise refuse it (loopback, private, metadata, …).

import { domainToASCII } from 'node:url';
import {
  type IpAddress,
  type IpPrefix,
  formatPrefix,
  ipv4,
  ipv6,
  isIpv4Mapped,
  parseIpv4Loose,
  parseIpv6,
  parsePrefix,
  prefixContains,
} from './ip.js';

export type HostMatcher =
  | { kind: 'any' }
  | { kind: 'exact'; name: string }
  | { kind: 'subdomains'; parent: string }
  | { kind: 'address'; prefix: IpPrefix };

export interface DomainPattern {
  /** The pattern as the user wrote it. */
  source: string;
  /** The pattern in canonical form (lower case, canonical addresses). */
  canonical: string;
  host: HostMatcher;
  /** null = any port. */
  port: number | null;
}

export interface NetworkRules {
  allow: DomainPattern[];
  deny: DomainPattern[];
}

/** A request's host after canonicalisation. */
export type RequestHost = { kind: 'name'; name: string } | { kind: 'ip'; ip: IpAddress };

export interface Decision {
  allowed: boolean;
  /** The pattern (as written) that decided, or null when nothing matched. */
  rule: string | null;
  /** Short, human- and agent-readable reason. */
  reason: string;
}

const USAGE = 'use a host name (example.com), *.example.com, an IP address (10.0.0.5, 10.0.0.0/8, [::1]) with an optional :port';
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** Printable, bounded form of untrusted text for messages and logs (no terminal escapes). */
export function printable(text: string, max = 260): string {
  let out = '';
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    out += c < 0x20 || c === 0x7f || (c >= 0x80 && c < 0xa0) ? `\\x${c.toString(16).padStart(2, '0')}` : ch;
    if (out.length >= max) return out.slice(0, max) + '…';
  }
  return out;
}

function hasControlCharacters(text: string): boolean {
  return /[\u0000-\u0020\u007f-\u009f]/.test(text);
}

/**
 * A host name in canonical form (lower case ASCII, no trailing dot), or an error saying why not.
 * A last label that is numeric makes the whole host an IPv4 literal, as in URL parsers and libc;
 * such hosts are handled by canonicalHost, and rejected here.
 */
function canonicalName(raw: string, allowUnicode: boolean): { name: string } | { error: string } {
  let name = raw.endsWith('.') ? raw.slice(0, -1) : raw;
  if (name.length === 0) return { error: 'empty host name' };
  if (/[^\x21-\x7e]/.test(name)) {
    if (!allowUnicode || hasControlCharacters(name)) return { error: 'host name contains spaces, control or non-ASCII characters' };
    const ascii = domainToASCII(name);
    if (!ascii) return { error: 'not a valid international domain name' };
    name = ascii;
  }
  name = name.toLowerCase();
  if (name.length > 253) return { error: 'host name longer than 253 characters' };
  const labels = name.split('.');
  for (const label of labels) {
    if (!LABEL.test(label)) return { error: `invalid label "${printable(label, 70)}" in host name` };
  }
  return { name };
}

/** Does the last label look like a number (so the host is meant as an IPv4 literal)? */
function endsInNumber(host: string): boolean {
  const trimmed = host.endsWith('.') ? host.slice(0, -1) : host;
  const last = trimmed.slice(trimmed.lastIndexOf('.') + 1);
  return /^[0-9]+$/.test(last) || /^0x[0-9a-f]*$/i.test(last);
}

/**
 * Canonicalise a host taken from a request (CONNECT authority, URL, SOCKS name, pool lookup).
 * IPv6 may come with or without brackets; IPv4-mapped IPv6 becomes IPv4.
 */
export function canonicalHost(raw: string): RequestHost | { error: string } {
  if (raw.length > 300) return { error: 'host longer than 253 characters' };
  if (hasControlCharacters(raw)) return { error: 'host contains spaces or control characters' };
  let text = raw;
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  if (text.includes(':')) {
    const v6 = parseIpv6(text);
    if (!v6) return { error: 'invalid IPv6 address' };
    return { kind: 'ip', ip: isIpv4Mapped(v6) ? ipv4(v6.subarray(12)) : ipv6(v6) };
  }
  if (endsInNumber(text)) {
    const v4 = parseIpv4Loose(text.endsWith('.') ? text.slice(0, -1) : text);
    if (!v4) return { error: 'invalid IPv4 address' };
    return { kind: 'ip', ip: ipv4(v4) };
  }
  const name = canonicalName(text, false);
  if ('error' in name) return name;
  return { kind: 'name', name: name.name };
}

export function formatRequestHost(host: RequestHost): string {
  return host.kind === 'name' ? host.name : host.ip.family === 6 ? `[${host.ip.text}]` : host.ip.text;
}

function parsePort(text: string, pattern: string): number {
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new Error(`invalid domain pattern "${printable(pattern)}": port "${printable(text, 20)}" must be a number from 1 to 65535`);
  }
  return Number(text);
}

/**
 * Parse and validate one allow/deny pattern. Throws an Error with a one-line message that names
 * the pattern and how to write it correctly.
 */
export function parseDomainPattern(pattern: string): DomainPattern {
  const fail = (why: string): never => {
    throw new Error(`invalid domain pattern "${printable(pattern)}": ${why}; ${USAGE}`);
  };
  if (typeof pattern !== 'string') fail('not a string');
  const source = pattern;
  const text = pattern.trim();
  if (text.length === 0) fail('empty pattern');
  if (hasControlCharacters(text)) fail('contains spaces or control characters');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) fail('write the host only, without a scheme such as https://');
  if (/[/?#@]/.test(text.replace(/\/[0-9]+(?=]|:|$)/, ''))) fail('write the host only, without a path, query or user name');

  let hostPart = text;
  let port: number | null = null;

  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) fail('missing "]" after the IPv6 address');
    hostPart = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) fail(`unexpected "${printable(rest, 20)}" after "]"`);
      port = parsePort(rest.slice(1), pattern);
    }
    const prefix = parsePrefix(hostPart);
    if (!prefix || !hostPart.split('/')[0]!.includes(':')) fail('not a valid IPv6 address or prefix inside [ ]');
    return { source, canonical: withPort(`[${formatPrefix(prefix!)}]`, port), host: { kind: 'address', prefix: prefix! }, port };
  }

  const colons = text.split(':').length - 1;
  if (colons > 1) fail('IPv6 addresses must be written in brackets, e.g. [::1] or [::1]:8080');
  if (colons === 1) {
    const at = text.lastIndexOf(':');
    hostPart = text.slice(0, at);
    port = parsePort(text.slice(at + 1), pattern);
  }

  if (hostPart === '*') return { source, canonical: withPort('*', port), host: { kind: 'any' }, port };

  if (hostPart.startsWith('*.')) {
    const parent = hostPart.slice(2);
    if (parent.includes('*')) fail('"*" may only appear once, as the first label');
    if (endsInNumber(parent)) fail('wildcards apply to names, not IP addresses; use a prefix such as 10.0.0.0/8');
    const name = canonicalName(parent, true);
    if ('error' in name) fail(name.error);
    const n = (name as { name: string }).name;
    return { source, canonical: withPort(`*.${n}`, port), host: { kind: 'subdomains', parent: n }, port };
  }
  if (hostPart.includes('*')) fail('"*" is only allowed alone or as the first label ("*.example.com")');

  const slash = hostPart.indexOf('/');
  if (slash >= 0 || endsInNumber(hostPart)) {
    const addrText = slash >= 0 ? hostPart.slice(0, slash) : hostPart;
    const bytes = parseIpv4Loose(addrText.endsWith('.') ? addrText.slice(0, -1) : addrText);
    if (!bytes) fail('not a valid IPv4 address');
    let length = 32;
    if (slash >= 0) {
      const n = hostPart.slice(slash + 1);
      if (!/^[0-9]{1,2}$/.test(n) || Number(n) > 32) fail(`prefix length "/${printable(n, 10)}" must be 0 to 32`);
      length = Number(n);
    }
    const prefix: IpPrefix = { family: 4, bytes: bytes!, length };
    return { source, canonical: withPort(formatPrefix(prefix), port), host: { kind: 'address', prefix }, port };
  }

  const name = canonicalName(hostPart, true);
  if ('error' in name) fail(name.error);
  const n = (name as { name: string }).name;
  return { source, canonical: withPort(n, port), host: { kind: 'exact', name: n }, port };
}

function withPort(host: string, port: number | null): string {
  return port === null ? host : `${host}:${port}`;
}

/**
 * Validate and compile both lists. Errors name the field and the entry, e.g.
 * `network.allow[2]: invalid domain pattern "…": …`.
 */
export function compileRules(allow: readonly string[], deny: readonly string[]): NetworkRules {
  const compile = (list: readonly string[], field: string) =>
    list.map((p, i) => {
      try {
        return parseDomainPattern(p);
      } catch (e) {
        throw new Error(`${field}[${i}]: ${(e as Error).message}`);
      }
    });
  return { allow: compile(allow, 'network.allow'), deny: compile(deny, 'network.deny') };
}

function hostMatches(m: HostMatcher, host: RequestHost): boolean {
  switch (m.kind) {
    case 'any':
      return true;
    case 'exact':
      return host.kind === 'name' && host.name === m.name;
    case 'subdomains':
      return host.kind === 'name' && host.name.endsWith('.' + m.parent);
    case 'address':
      return host.kind === 'ip' && prefixContains(m.prefix, host.ip);
  }
}

export function patternMatches(p: DomainPattern, host: RequestHost, port: number): boolean {
  return (p.port === null || p.port === port) && hostMatches(p.host, host);
}

/** The allow/deny decision for a request to host:port (deny wins). */
export function decide(rules: NetworkRules, host: RequestHost, port: number): Decision {
  const target = `${formatRequestHost(host)}:${port}`;
  const denied = rules.deny.find((p) => patternMatches(p, host, port));
  if (denied) return { allowed: false, rule: denied.source, reason: `${target} matches the network deny rule "${denied.source}"` };
  const allowed = rules.allow.find((p) => patternMatches(p, host, port));
  if (allowed) return { allowed: true, rule: allowed.source, reason: `${target} matches the network allow rule "${allowed.source}"` };
  return { allowed: false, rule: null, reason: `${target} is not in the network allow list` };
}

/**
 * Could the name be allowed on some port? Used by the in-sandbox resolver, which sees names but
 * not ports: a name passes unless a port-less deny rule matches it or no allow rule names it.
 */
export function decideName(rules: NetworkRules, name: string): Decision {
  const host: RequestHost = { kind: 'name', name };
  const denied = rules.deny.find((p) => p.port === null && hostMatches(p.host, host));
  if (denied) return { allowed: false, rule: denied.source, reason: `${name} matches the network deny rule "${denied.source}"` };
  const allowed = rules.allow.find((p) => hostMatches(p.host, host));
  if (allowed) return { allowed: true, rule: allowed.source, reason: `${name} matches the network allow rule "${allowed.source}"` };
  return { allowed: false, rule: null, reason: `${name} is not in the network allow list` };
}

/** The allow rule that names this address (or a prefix holding it) explicitly, for this port. */
export function explicitAddressRule(rules: NetworkRules, ip: IpAddress, port: number): DomainPattern | null {
  return rules.allow.find((p) => p.host.kind === 'address' && patternMatches(p, { kind: 'ip', ip }, port)) ?? null;
}

/** The deny rule naming this address (or a prefix holding it), applied to resolved addresses too. */
export function deniedAddressRule(rules: NetworkRules, ip: IpAddress, port: number): DomainPattern | null {
  return rules.deny.find((p) => p.host.kind === 'address' && patternMatches(p, { kind: 'ip', ip }, port)) ?? null;
}

/**
 * Ports the transparent path must listen on inside the sandbox: every port an allow rule names,
 * plus 80 and 443. Sorted, unique.
 */
export function transparentPorts(rules: NetworkRules): number[] {
  const ports = new Set<number>([80, 443]);
  for (const p of rules.allow) if (p.port !== null) ports.add(p.port);
  return [...ports].sort((a, b) => a - b);
}

/** The flag/field a user adds to allow this host (for refusal messages). */
export function allowHint(host: RequestHost): string {
  const h = formatRequestHost(host);
  return `add --allow-domain ${h} or network.allow in the policy`;
}
