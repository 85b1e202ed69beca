// AccessCheck for a token against a security descriptor.
// Sources: [MS] "How DACLs Control Access to an Object" (How AccessCheck Works); [MS] "Restricted
// Tokens"; [MS] CreateRestrictedToken (WRITE_RESTRICTED); [MS] "Owner of a New Object" (implicit
// WRITE_DAC); OWNER RIGHTS (S-1-3-4) pre-scan: Windows Vista "Owner Rights" behaviour, as specified in
// the KACS spec §5.6.1 (learn.peios.org) and ITPro "Take Control of Windows Object Ownership";
// the two-pass structure: J. Forshaw, Windows Security Internals ch. 7 (Get-PSGrantedAccess).
//
// Not modelled (and not used by cordon): mandatory integrity labels (every object and token here is
// Medium, where the no-write-up check is a no-op), conditional and object ACEs, SACLs, central
// access policies, MAXIMUM_ALLOWED requests.

import type { Ace, SecurityDescriptor } from '../acl.js';
import { INHERIT_ONLY_ACE } from '../acl.js';
import {
  ACCESS_SYSTEM_SECURITY, DELETE, FILE_DELETE_CHILD, FILE_GENERIC_MAPPING, type GenericMapping,
  READ_CONTROL, WRITE_DAC, WRITE_OWNER, mapGenericMask,
} from '../rights.js';
import { SID } from '../sids.js';
import {
  SE_RESTORE, SE_SECURITY, SE_TAKE_OWNERSHIP, type Token, denySids, enabledSids, privilegeEnabled,
} from './token.js';

/**
 * Which requested rights make a write-restricted token go through the restricted (second) pass.
 * The documentation only says the restricting SIDs are "considered only when evaluating write
 * access" ([MS] CreateRestrictedToken). Two readings:
 * - `generic-write`: "write" is the object's generic-write mapping minus the bits it shares with
 *   generic read/execute (for files: WRITE_DATA|APPEND_DATA|WRITE_EA|WRITE_ATTRIBUTES). DELETE,
 *   WRITE_DAC, WRITE_OWNER and FILE_DELETE_CHILD then skip the second pass. (NtCoreLib's HasWrite;
 *   Windows Security Internals, Get-PSGrantedAccess.)
 * - `generic-write-and-standard`: DELETE, WRITE_DAC, WRITE_OWNER and FILE_DELETE_CHILD also count.
 * cordon's plan must hold under both; the conformance tests run every probe under each.
 */
export type WriteRestrictedReading = 'generic-write' | 'generic-write-and-standard';
export const WRITE_RESTRICTED_READINGS: readonly WriteRestrictedReading[] = ['generic-write', 'generic-write-and-standard'];

export interface AccessCheckOptions {
  mapping?: GenericMapping;
  writeRestrictedReading: WriteRestrictedReading;
}

export type AccessDecision =
  | { granted: true; mask: number; trace: string }
  | { granted: false; missing: number; pass: 'normal' | 'restricted' | 'privilege'; reason: string };

function writeCategory(mapping: GenericMapping, reading: WriteRestrictedReading): number {
  let mask = mapping.write & ~mapping.read & ~mapping.execute;
  if (reading === 'generic-write-and-standard') mask |= DELETE | WRITE_DAC | WRITE_OWNER | FILE_DELETE_CHILD;
  return mask >>> 0;
}

/** The mask that makes a write-restricted token run the restricted pass (exported for tests). */
export function writeRestrictedMask(reading: WriteRestrictedReading, mapping: GenericMapping = FILE_GENERIC_MAPPING): number {
  return writeCategory(mapping, reading);
}

interface PassInput {
  allowSids: Set<string>;
  denySids: Set<string>;
  /** Whether the caller counts as the owner for this pass. */
  isOwner: boolean;
}

type PassResult = { ok: true } | { ok: false; missing: number; reason: string };

/**
 * One walk of the DACL ([MS] How AccessCheck Works): ACEs in stored order, inherit-only ACEs
 * skipped; an allow ACE grants its still-undecided bits; a deny ACE that hits any still-undecided
 * requested bit denies; bits never granted are denied.
 */
function daclPass(sd: SecurityDescriptor, requested: number, input: PassInput, mapping: GenericMapping): PassResult {
  if (sd.dacl === null) return { ok: true }; // NULL DACL: full access.
  let remaining = requested >>> 0;
  // Owner implicit rights, unless the DACL names OWNER RIGHTS (pre-scan, effective ACEs only).
  const namesOwnerRights = sd.dacl.some((a) => a.sid === SID.OwnerRights && (a.flags & INHERIT_ONLY_ACE) === 0);
  if (input.isOwner && !namesOwnerRights) remaining &= ~(READ_CONTROL | WRITE_DAC);
  for (const entry of sd.dacl) {
    if (remaining === 0) break;
    if (entry.flags & INHERIT_ONLY_ACE) continue;
    const mask = mapGenericMask(entry.mask, mapping);
    const matchesAllow = input.allowSids.has(entry.sid) || (entry.sid === SID.OwnerRights && input.isOwner);
    const matchesDeny = input.denySids.has(entry.sid) || (entry.sid === SID.OwnerRights && input.isOwner);
    if (entry.type === 'allow' && matchesAllow) {
      remaining &= ~mask;
    } else if (entry.type === 'deny' && matchesDeny && (mask & remaining) !== 0) {
      return { ok: false, missing: (mask & remaining) >>> 0, reason: `denied by ${describeAce(entry)}` };
    }
    remaining >>>= 0;
  }
  if (remaining !== 0) return { ok: false, missing: remaining >>> 0, reason: 'not granted by any ACE' };
  return { ok: true };
}

function describeAce(a: Ace): string {
  return `${a.type} ACE for ${a.sid} (0x${(a.mask >>> 0).toString(16)})`;
}

/**
 * AccessCheck. The normal pass uses the user and enabled groups (allow) and deny-only groups
 * (deny); a restricted token must also pass the same walk with its restricting SIDs ([MS]
 * Restricted Tokens: "Access is granted only if both access checks allow the requested access
 * rights"); for a write-restricted token that second pass runs only when the request contains
 * write access under the chosen reading, and then checks the whole request.
 */
export function accessCheck(token: Token, sd: SecurityDescriptor, desired: number, options: AccessCheckOptions): AccessDecision {
  const mapping = options.mapping ?? FILE_GENERIC_MAPPING;
  let requested = mapGenericMask(desired, mapping);
  if (requested & ACCESS_SYSTEM_SECURITY) {
    if (!privilegeEnabled(token, SE_SECURITY)) {
      return { granted: false, missing: ACCESS_SYSTEM_SECURITY, pass: 'privilege', reason: 'ACCESS_SYSTEM_SECURITY needs SeSecurityPrivilege' };
    }
    requested &= ~ACCESS_SYSTEM_SECURITY;
  }
  let byPrivilege = 0;
  // [MS] Owner of a New Object / SeTakeOwnershipPrivilege: WRITE_OWNER regardless of the DACL.
  if ((requested & WRITE_OWNER) && (privilegeEnabled(token, SE_TAKE_OWNERSHIP) || privilegeEnabled(token, SE_RESTORE))) {
    byPrivilege |= WRITE_OWNER;
  }
  const remaining = (requested & ~byPrivilege) >>> 0;
  if (remaining === 0) return { granted: true, mask: requested, trace: 'privilege' };

  const isOwnerNormal = !token.userDenyOnly && (sd.owner === token.user ||
    token.groups.some((g) => g.sid === sd.owner && g.enabled && !g.denyOnly));
  const normal = daclPass(sd, remaining, { allowSids: enabledSids(token), denySids: denySids(token), isOwner: isOwnerNormal }, mapping);
  if (!normal.ok) return { granted: false, missing: normal.missing, pass: 'normal', reason: normal.reason };

  if (token.restrictingSids.length > 0) {
    const runRestricted = !token.writeRestricted || (remaining & writeCategory(mapping, options.writeRestrictedReading)) !== 0;
    if (runRestricted) {
      const restricting = new Set(token.restrictingSids);
      // Owner rights count in the second pass only if the owner is also a restricting SID.
      const restricted = daclPass(sd, remaining, { allowSids: restricting, denySids: restricting, isOwner: isOwnerNormal && restricting.has(sd.owner) }, mapping);
      if (!restricted.ok) return { granted: false, missing: restricted.missing, pass: 'restricted', reason: restricted.reason };
      return { granted: true, mask: requested, trace: 'normal+restricted' };
    }
  }
  return { granted: true, mask: requested, trace: 'normal' };
}
