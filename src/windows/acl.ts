// ACEs, DACLs and security descriptors as plain data, with the SDDL subset cordon prints and parses.
// Shared by the plan (which emits ACEs), the model (which evaluates them) and the enforcer (which
// writes them). Layout and flags: [MS-DTYP] 2.4.4.1 ACE_HEADER; SDDL: [MS-DTYP] 2.5.1.

import { hex } from './rights.js';
import { SDDL_ALIASES, isSidString, sddlAliasOf } from './sids.js';

// ACE flags ([MS-DTYP] 2.4.4.1).
export const OBJECT_INHERIT_ACE = 0x1; // OI
export const CONTAINER_INHERIT_ACE = 0x2; // CI
export const NO_PROPAGATE_INHERIT_ACE = 0x4; // NP
export const INHERIT_ONLY_ACE = 0x8; // IO
export const INHERITED_ACE = 0x10; // ID
export const INHERIT_FLAGS = OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE | NO_PROPAGATE_INHERIT_ACE | INHERIT_ONLY_ACE;
export const OICI = OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE;

export type AceType = 'allow' | 'deny';

export interface Ace {
  type: AceType;
  sid: string;
  mask: number;
  flags: number;
}

export interface SecurityDescriptor {
  owner: string;
  group?: string;
  /** null: a NULL DACL (everyone gets everything); []: an empty DACL (nobody gets anything). */
  dacl: Ace[] | null;
  /** SE_DACL_PROTECTED: inheritable ACEs of the parent do not flow in. */
  daclProtected: boolean;
}

export function ace(type: AceType, sid: string, mask: number, flags = 0): Ace {
  return { type, sid, mask: mask >>> 0, flags };
}

export function isInherited(a: Ace): boolean {
  return (a.flags & INHERITED_ACE) !== 0;
}

export function sameAce(a: Ace, b: Ace): boolean {
  return a.type === b.type && a.sid === b.sid && a.mask >>> 0 === b.mask >>> 0 &&
    (a.flags & ~INHERITED_ACE) === (b.flags & ~INHERITED_ACE);
}

/**
 * [MS] "Order of ACEs in a DACL": explicit ACEs before inherited ones; among the explicit ones,
 * deny before allow. Inherited ACEs keep the order they came in (parent first, then grandparent).
 * This is the order SetEntriesInAcl produces; the enforcer relies on icacls producing it too.
 */
export function canonicalExplicit(aces: readonly Ace[]): Ace[] {
  const explicit = aces.filter((a) => !isInherited(a));
  return [...explicit.filter((a) => a.type === 'deny'), ...explicit.filter((a) => a.type === 'allow')];
}

/** True when the DACL follows the canonical order (explicit deny, explicit allow, inherited). */
export function isCanonical(aces: readonly Ace[]): boolean {
  let phase = 0; // 0 explicit deny, 1 explicit allow, 2 inherited
  for (const a of aces) {
    const p = isInherited(a) ? 2 : a.type === 'deny' ? 0 : 1;
    if (p < phase) return false;
    phase = p;
  }
  return true;
}

// --- SDDL -----------------------------------------------------------------------------------------

const FLAG_CODES: readonly [string, number][] = [
  ['OI', OBJECT_INHERIT_ACE], ['CI', CONTAINER_INHERIT_ACE], ['NP', NO_PROPAGATE_INHERIT_ACE],
  ['IO', INHERIT_ONLY_ACE], ['ID', INHERITED_ACE],
];

/** SDDL right codes ([MS-DTYP] 2.5.1.1 "access_right") that cordon uses. */
const RIGHT_CODES: Readonly<Record<string, number>> = {
  GA: 0x10000000, GR: 0x80000000, GW: 0x40000000, GX: 0x20000000,
  RC: 0x20000, SD: 0x10000, WD: 0x40000, WO: 0x80000,
  FA: 0x1f01ff, FR: 0x120089, FW: 0x120116, FX: 0x1200a0,
  /** ADS_RIGHT_DS_CREATE_CHILD; the firewall's local-user condition grants this right. */
  CC: 0x1,
};

export function sidToSddl(sid: string): string {
  return sddlAliasOf(sid) ?? sid;
}

export function sddlToSid(token: string): string {
  const alias = SDDL_ALIASES[token];
  if (alias) return alias;
  if (isSidString(token)) return token;
  throw new Error(`SDDL: '${token}' is neither a SID nor a known alias`);
}

export function aceToSddl(a: Ace): string {
  const flags = FLAG_CODES.filter(([, bit]) => a.flags & bit).map(([code]) => code).join('');
  return `(${a.type === 'allow' ? 'A' : 'D'};${flags};${hex(a.mask)};;;${sidToSddl(a.sid)})`;
}

export function daclToSddl(dacl: readonly Ace[] | null, daclProtected = false): string {
  if (dacl === null) return 'D:NO_ACCESS_CONTROL';
  return `D:${daclProtected ? 'P' : ''}${dacl.map(aceToSddl).join('')}`;
}

export function sdToSddl(sd: SecurityDescriptor): string {
  const group = sd.group ? `G:${sidToSddl(sd.group)}` : '';
  return `O:${sidToSddl(sd.owner)}${group}${daclToSddl(sd.dacl, sd.daclProtected)}`;
}

function parseRights(text: string): number {
  if (/^0x[0-9a-f]+$/i.test(text)) return Number.parseInt(text.slice(2), 16) >>> 0;
  if (text.length % 2 !== 0) throw new Error(`SDDL: bad rights '${text}'`);
  let mask = 0;
  for (let i = 0; i < text.length; i += 2) {
    const code = text.slice(i, i + 2);
    const bit = RIGHT_CODES[code];
    if (bit === undefined) throw new Error(`SDDL: unknown right '${code}'`);
    mask |= bit;
  }
  return mask >>> 0;
}

function parseFlags(text: string): number {
  let flags = 0;
  for (let i = 0; i < text.length; i += 2) {
    const code = text.slice(i, i + 2);
    const found = FLAG_CODES.find(([c]) => c === code);
    if (!found) throw new Error(`SDDL: unknown ACE flag '${code}'`);
    flags |= found[1];
  }
  return flags;
}

export function parseAce(text: string): Ace {
  const m = /^\(([AD]);([A-Z]*);([^;]*);;;([^)]+)\)$/.exec(text);
  if (!m) throw new Error(`SDDL: cannot parse ACE '${text}'`);
  return ace(m[1] === 'A' ? 'allow' : 'deny', sddlToSid(m[4]!), parseRights(m[3]!), parseFlags(m[2]!));
}

/** Splits `(…)(…)` into ACE strings, respecting nested parentheses (conditional ACEs). */
function splitAces(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = -1;
  for (let i = 0; i < text.length; i += 1) {
    if (text[i] === '(') {
      if (depth === 0) start = i;
      depth += 1;
    } else if (text[i] === ')') {
      depth -= 1;
      if (depth === 0) out.push(text.slice(start, i + 1));
      if (depth < 0) throw new Error(`SDDL: unbalanced parentheses in '${text}'`);
    }
  }
  if (depth !== 0) throw new Error(`SDDL: unbalanced parentheses in '${text}'`);
  return out;
}

/**
 * Parses the `D:` part of an SDDL string. Strict by default (only what cordon writes). `lenient`
 * is for DACLs Windows hands back: an ACE cordon cannot interpret (object or conditional ACEs,
 * unknown aliases or rights) is kept verbatim in `raw`, with its inheritance flag read.
 */
export function parseDacl(text: string, options: { lenient?: boolean } = {}): { dacl: (Ace & { raw?: string })[]; daclProtected: boolean } {
  const m = /^D:((?:P|AI|AR)*)(.*)$/.exec(text);
  if (!m) throw new Error(`SDDL: cannot parse DACL '${text}'`);
  const aces = splitAces(m[2]!).map((raw): Ace & { raw?: string } => {
    try {
      return parseAce(raw);
    } catch (e) {
      if (!options.lenient) throw e;
      const fields = raw.slice(1, -1).split(';');
      return { type: fields[0]?.startsWith('D') ? 'deny' : 'allow', sid: fields[5] ?? '', mask: 0, flags: (fields[1] ?? '').includes('ID') ? INHERITED_ACE : 0, raw };
    }
  });
  return { dacl: aces, daclProtected: m[1]!.includes('P') };
}

/** Parses `O:…[G:…]D:…`. */
export function parseSddl(text: string): SecurityDescriptor {
  const m = /^O:(S-1-[\d-]+|[A-Z]{2})(?:G:(S-1-[\d-]+|[A-Z]{2}))?(D:.*)$/.exec(text);
  if (!m) throw new Error(`SDDL: cannot parse security descriptor '${text}'`);
  const { dacl, daclProtected } = parseDacl(m[3]!);
  const sd: SecurityDescriptor = { owner: sddlToSid(m[1]!), dacl, daclProtected };
  if (m[2]) sd.group = sddlToSid(m[2]);
  return sd;
}
