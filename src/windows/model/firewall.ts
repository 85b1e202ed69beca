// Windows Firewall rule evaluation for outbound connections.
// Sources: [MS-FASP] 2.2.34 FW_RULE_ACTION ("Allow-bypass rules take precedence over block rules,
// and block rules take precedence over allow rules"); the profile's default outbound action applies
// when no rule matches (allow by default, [MS] "Windows Firewall: default outbound"); the local-user
// condition is a security descriptor whose access check for FWP_ACTRL_MATCH_FILTER (0x1) decides
// whether the connecting token matches ([MS] INetFwRule3::LocalUserAuthorizedList, New-NetFirewallRule
// -LocalUser, WFP "ALE_USER_ID" condition).
//
// Two things the documentation does not settle are switches here:
// - whether rules see loopback traffic at all (Codex relies on it, srt uses WFP filters instead);
// - whether a write-restricted token's restricting SIDs take part in the local-user match.

import { parseSddl } from '../acl.js';
import type { GenericMapping } from '../rights.js';
import { accessCheck } from './access-check.js';
import type { Token } from './token.js';
import type { FirewallRule, Protocol } from '../types.js';

export type { FirewallRule, Protocol } from '../types.js';

export interface Connection {
  token: Token;
  protocol: Protocol;
  remoteAddress: string;
  remotePort: number;
}

export interface FirewallOptions {
  /** Whether firewall rules apply to loopback destinations. */
  filtersLoopback: boolean;
  /** Whether a write-restricted token's restricting SIDs must also grant the match right. */
  restrictingSidsInUserMatch: boolean;
}

export type FirewallVerdict = { allowed: boolean; rule?: string; reason: string };

/** FWP_ACTRL_MATCH_FILTER. */
export const MATCH_FILTER = 0x1;

export function parseIp(text: string): { family: 4 | 6; value: bigint } {
  const s = text.replace(/^\[|\]$/g, '');
  if (/^\d+\.\d+\.\d+\.\d+$/.test(s)) {
    const parts = s.split('.').map(Number);
    if (parts.some((p) => p > 255)) throw new Error(`bad IPv4 address ${text}`);
    return { family: 4, value: parts.reduce((acc, p) => (acc << 8n) | BigInt(p), 0n) };
  }
  if (s.includes(':')) {
    const [head, tail] = s.split('::') as [string, string | undefined];
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const missing = 8 - h.length - t.length;
    if (tail === undefined && h.length !== 8) throw new Error(`bad IPv6 address ${text}`);
    const groups = [...h, ...Array(Math.max(0, missing)).fill('0'), ...t];
    if (groups.length !== 8) throw new Error(`bad IPv6 address ${text}`);
    return { family: 6, value: groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g || '0', 16)), 0n) };
  }
  throw new Error(`bad IP address ${text}`);
}

function addressMatches(entry: string, addr: { family: 4 | 6; value: bigint }): boolean {
  if (entry.includes('/')) {
    const [base, bits] = entry.split('/') as [string, string];
    const b = parseIp(base);
    if (b.family !== addr.family) return false;
    const width = addr.family === 4 ? 32n : 128n;
    const shift = width - BigInt(Number(bits));
    return (b.value >> shift) === (addr.value >> shift);
  }
  if (entry.includes('-')) {
    const [lo, hi] = entry.split('-').map(parseIp) as [ReturnType<typeof parseIp>, ReturnType<typeof parseIp>];
    return lo.family === addr.family && addr.value >= lo.value && addr.value <= hi.value;
  }
  const single = parseIp(entry);
  return single.family === addr.family && single.value === addr.value;
}

function portMatches(entry: string, port: number): boolean {
  if (entry.includes('-')) {
    const [lo, hi] = entry.split('-').map(Number) as [number, number];
    return port >= lo && port <= hi;
  }
  return Number(entry) === port;
}

export function isLoopback(address: string): boolean {
  const a = parseIp(address);
  return a.family === 4 ? (a.value >> 24n) === 127n : a.value === 1n;
}

function userMatches(rule: FirewallRule, token: Token, options: FirewallOptions): boolean {
  if (!rule.localUserSddl) return true;
  const sd = parseSddl(rule.localUserSddl);
  // The match right is the only right requested; whether it counts as "write" for a
  // write-restricted token is the open question, expressed through the mapping.
  const mapping: GenericMapping = { read: 0, write: options.restrictingSidsInUserMatch ? MATCH_FILTER : 0, execute: 0, all: MATCH_FILTER };
  return accessCheck(token, sd, MATCH_FILTER, { mapping, writeRestrictedReading: 'generic-write' }).granted;
}

export function ruleMatches(rule: FirewallRule, c: Connection, options: FirewallOptions): boolean {
  if (!rule.enabled || rule.direction !== 'out') return false;
  if (rule.protocol !== 'any' && rule.protocol !== c.protocol) return false;
  const addr = parseIp(c.remoteAddress);
  if (rule.remoteAddresses !== 'any' && !rule.remoteAddresses.some((e) => addressMatches(e, addr))) return false;
  if (rule.remotePorts !== 'any' && c.protocol !== 'icmp' && !rule.remotePorts.some((e) => portMatches(e, c.remotePort))) return false;
  return userMatches(rule, c.token, options);
}

/** Outbound verdict: block beats allow; no matching rule: the default outbound action (allow). */
export function evaluateOutbound(rules: readonly FirewallRule[], c: Connection, options: FirewallOptions): FirewallVerdict {
  if (isLoopback(c.remoteAddress) && !options.filtersLoopback) return { allowed: true, reason: 'loopback is not filtered' };
  const matching = rules.filter((r) => ruleMatches(r, c, options));
  const block = matching.find((r) => r.action === 'block');
  if (block) return { allowed: false, rule: block.name, reason: `blocked by rule ${block.name}` };
  const allow = matching.find((r) => r.action === 'allow');
  if (allow) return { allowed: true, rule: allow.name, reason: `allowed by rule ${allow.name}` };
  return { allowed: true, reason: 'default outbound action: allow' };
}
