// ACE inheritance for new and existing objects.
// Sources: [MS] "ACE Inheritance Rules" (the OI/CI/NP/IO table, CREATOR OWNER and generic-right
// splitting), [MS] "DACL for a New Object" (creator SD, inheritable ACEs, else the token's default
// DACL), [MS] "Automatic Propagation of Inheritable ACEs" (SetNamedSecurityInfo re-applies inherited
// ACEs to existing children unless their DACL is protected), [MS] "Order of ACEs in a DACL".

import {
  type Ace, CONTAINER_INHERIT_ACE, INHERITED_ACE, INHERIT_ONLY_ACE, NO_PROPAGATE_INHERIT_ACE,
  OBJECT_INHERIT_ACE, isInherited,
} from '../acl.js';
import { FILE_GENERIC_MAPPING, GENERIC_ALL, GENERIC_EXECUTE, GENERIC_READ, GENERIC_WRITE, mapGenericMask } from '../rights.js';
import { SID } from '../sids.js';

const GENERIC_BITS = GENERIC_ALL | GENERIC_EXECUTE | GENERIC_READ | GENERIC_WRITE;

function substitute(sid: string, owner: string, group: string | undefined): string {
  if (sid === SID.CreatorOwner) return owner;
  if (sid === SID.CreatorGroup && group) return group;
  return sid;
}

/**
 * The ACEs a new or re-propagated child receives from its parent's DACL, in the parent's order.
 * - file (leaf): ACEs with OI become effective (mapped, CREATOR OWNER substituted).
 * - directory: ACEs with CI become effective and stay inheritable unless NP; ACEs with OI but not CI
 *   become inherit-only (unless NP) so that files further down still get them. When an ACE must be
 *   both effective and inheritable and carries generic rights or CREATOR OWNER/GROUP, it is split
 *   into an effective mapped copy and an inherit-only original.
 */
export function inheritedAces(parentDacl: readonly Ace[] | null, childIsContainer: boolean, owner: string, group?: string): Ace[] {
  if (!parentDacl) return [];
  const out: Ace[] = [];
  for (const a of parentDacl) {
    const oi = (a.flags & OBJECT_INHERIT_ACE) !== 0;
    const ci = (a.flags & CONTAINER_INHERIT_ACE) !== 0;
    const np = (a.flags & NO_PROPAGATE_INHERIT_ACE) !== 0;
    if (!childIsContainer) {
      if (!oi) continue;
      out.push({ type: a.type, sid: substitute(a.sid, owner, group), mask: mapGenericMask(a.mask, FILE_GENERIC_MAPPING), flags: INHERITED_ACE });
      continue;
    }
    if (ci) {
      const effective: Ace = { type: a.type, sid: substitute(a.sid, owner, group), mask: mapGenericMask(a.mask, FILE_GENERIC_MAPPING), flags: INHERITED_ACE };
      if (np) {
        out.push(effective);
        continue;
      }
      const needsSplit = (a.mask & GENERIC_BITS) !== 0 || a.sid === SID.CreatorOwner || a.sid === SID.CreatorGroup;
      const inheritFlags = (a.flags & (OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE)) | INHERITED_ACE;
      if (needsSplit) {
        out.push(effective);
        out.push({ type: a.type, sid: a.sid, mask: a.mask, flags: inheritFlags | INHERIT_ONLY_ACE });
      } else {
        out.push({ ...effective, flags: inheritFlags });
      }
    } else if (oi && !np) {
      out.push({ type: a.type, sid: a.sid, mask: a.mask, flags: OBJECT_INHERIT_ACE | INHERIT_ONLY_ACE | INHERITED_ACE });
    }
  }
  return out;
}

/** True when the DACL holds at least one ACE a child of the given kind would inherit. */
export function hasInheritable(dacl: readonly Ace[] | null, childIsContainer: boolean): boolean {
  return inheritedAces(dacl, childIsContainer, 'S-1-0-0').length > 0;
}

/**
 * The DACL of a new object ([MS] DACL for a New Object): the creator's explicit ACEs (if any) plus
 * the inherited ones unless the creator's DACL is protected; with neither, the token's default DACL.
 */
export function daclForNewObject(
  parentDacl: readonly Ace[] | null,
  isContainer: boolean,
  owner: string,
  tokenDefaultDacl: readonly Ace[] | null,
  creatorDacl?: { aces: Ace[]; protected: boolean },
): Ace[] | null {
  const inherited = inheritedAces(parentDacl, isContainer, owner);
  if (creatorDacl) {
    const explicit = creatorDacl.aces.map((a) => ({ ...a, flags: a.flags & ~INHERITED_ACE }));
    return creatorDacl.protected ? explicit : [...explicit, ...inherited];
  }
  if (inherited.length > 0) return inherited;
  return tokenDefaultDacl ? tokenDefaultDacl.map((a) => ({ ...a, flags: a.flags & ~(INHERITED_ACE | INHERIT_ONLY_ACE) })) : null;
}

/** Re-propagation of one child: keep its explicit ACEs, replace the inherited part. */
export function repropagate(childDacl: readonly Ace[] | null, parentDacl: readonly Ace[] | null, isContainer: boolean, owner: string): Ace[] {
  const explicit = (childDacl ?? []).filter((a) => !isInherited(a));
  return [...explicit, ...inheritedAces(parentDacl, isContainer, owner)];
}
