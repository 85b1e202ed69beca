// Facts setup needs about a machine, gathered through the WindowsSystem and WindowsHost interfaces
// (so the same code gathers them from the model and from a real Windows): the profile's entries,
// the existing secrets, and the "ambient" audit of broad-writable directories.

import path from 'node:path';
import { type Ace, INHERIT_ONLY_ACE } from './acl.js';
import type { WindowsSystem } from './enforcer/system.js';
import type { SetupFacts } from './plan.js';
import { cordonDirs, sshConfigReferences, windowsSecretCandidates, type WindowsHost } from './resolve.js';
import {
  DELETE, FILE_APPEND_DATA, FILE_DELETE_CHILD, FILE_GENERIC_MAPPING, FILE_WRITE_ATTRIBUTES, FILE_WRITE_DATA,
  FILE_WRITE_EA, WRITE_DAC, WRITE_OWNER, mapGenericMask,
} from './rights.js';
import { SID } from './sids.js';

const win = path.win32;

/** SIDs every sandbox token carries in its normal pass. */
export const BROAD_SIDS: readonly string[] = [SID.Everyone, SID.Users, SID.AuthenticatedUsers, SID.Interactive];

const WRITE_LIKE = FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_WRITE_EA | FILE_WRITE_ATTRIBUTES | DELETE | WRITE_DAC | WRITE_OWNER | FILE_DELETE_CHILD;

/** Whether a DACL lets a broad SID change the directory or what will be created in it. */
export function grantsBroadWrite(dacl: readonly Ace[] | null): boolean {
  if (dacl === null) return true;
  return dacl.some((a) => a.type === 'allow' && BROAD_SIDS.includes(a.sid) && (mapGenericMask(a.mask, FILE_GENERIC_MAPPING) & WRITE_LIKE) !== 0 &&
    ((a.flags & INHERIT_ONLY_ACE) === 0 || (a.flags & 0x3) !== 0));
}

const SKIP_AT_ROOT = new Set(['WINDOWS', 'PROGRAM FILES', 'PROGRAM FILES (X86)', 'PROGRAMDATA', 'USERS', '$RECYCLE.BIN', 'SYSTEM VOLUME INFORMATION', 'RECOVERY', '$WINREAGENT', 'CONFIG.MSI']);

/**
 * Broad-writable directories outside the user's profile: children of each drive root and of
 * ProgramData whose DACL lets Everyone/Users/Authenticated Users/INTERACTIVE write or delete.
 * Bounded by `budget` directory reads; reparse points are skipped (never followed).
 */
export async function auditBroadWritable(sys: WindowsSystem, drives: string[], programData: string, budget = 2000): Promise<{ dirs: string[]; truncated: boolean }> {
  const found: string[] = [];
  let reads = 0;
  const visit = async (parent: string, skip: (name: string) => boolean) => {
    let entries: { name: string; kind: 'file' | 'dir'; reparse: boolean }[];
    try {
      entries = await sys.listDirectory(parent);
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.kind !== 'dir' || e.reparse || skip(e.name)) continue;
      if (++reads > budget) return;
      const full = win.join(parent, e.name);
      try {
        if (grantsBroadWrite(await sys.dacl(full))) found.push(full);
      } catch {
        // Unreadable DACL: not ours to judge; the restricted pass still guards writes there.
      }
    }
  };
  for (const drive of drives) await visit(`${drive.replace(/[:\\]+$/, '')}:\\`, (n) => SKIP_AT_ROOT.has(n.toUpperCase()));
  await visit(programData, (n) => n.toUpperCase() === 'CORDON');
  // C:\Users\Public is shared by every interactive user by design.
  for (const drive of drives) await visit(`${drive.replace(/[:\\]+$/, '')}:\\Users`, (n) => n.toUpperCase() !== 'PUBLIC');
  return { dirs: found, truncated: reads > budget };
}

export async function gatherSetupFacts(sys: WindowsSystem, host: WindowsHost, options: { drives: string[] }): Promise<SetupFacts & { auditTruncated: boolean }> {
  const me = await sys.currentUser();
  const home = host.env.USERPROFILE ?? host.env.UserProfile;
  if (!home) throw new Error('USERPROFILE is not set; run cordon setup from the account that will use cordon');
  const programData = host.env.ProgramData ?? host.env.PROGRAMDATA ?? 'C:\\ProgramData';
  const secrets: SetupFacts['secrets'] = [];
  for (const p of [...windowsSecretCandidates(host), ...sshConfigReferences(host)]) {
    const st = host.stat(p);
    if (st && !secrets.some((s) => s.path.toUpperCase() === p.toUpperCase())) secrets.push({ path: host.realPath(p), kind: st.kind });
  }
  const audit = await auditBroadWritable(sys, options.drives, programData);
  return {
    realUserName: me.name,
    realUserSid: me.sid,
    userProfile: home,
    profileChildren: host.list(home),
    secrets,
    broadWritableDirs: audit.dirs.filter((d) => !d.toUpperCase().startsWith(home.toUpperCase() + '\\')),
    programData,
    userStateDir: cordonDirs(host).state,
    auditTruncated: audit.truncated,
  };
}
