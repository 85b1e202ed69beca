// Security identifiers: well-known SIDs, SDDL aliases, and cordon's synthetic SIDs.
// Well-known values: [MS] "Well-known SIDs" (learn.microsoft.com/windows/win32/secauthz/well-known-sids)
// and [MS-DTYP] 2.4.2.4 "Well-Known SID Structures"; aliases: [MS-DTYP] 2.5.1.1 "SDDL SID strings".

import { createHash } from 'node:crypto';

export const SID = {
  Everyone: 'S-1-1-0',
  Local: 'S-1-2-0',
  CreatorOwner: 'S-1-3-0',
  CreatorGroup: 'S-1-3-1',
  /** Pre-scanned by AccessCheck: when a DACL names it, the owner's implicit rights are replaced. */
  OwnerRights: 'S-1-3-4',
  Network: 'S-1-5-2',
  Batch: 'S-1-5-3',
  Interactive: 'S-1-5-4',
  Service: 'S-1-5-6',
  AuthenticatedUsers: 'S-1-5-11',
  /** RESTRICTED: meant to be listed as a restricting SID; some system objects grant it. */
  Restricted: 'S-1-5-12',
  LocalSystem: 'S-1-5-18',
  LocalService: 'S-1-5-19',
  NetworkService: 'S-1-5-20',
  Administrators: 'S-1-5-32-544',
  Users: 'S-1-5-32-545',
  TrustedInstaller: 'S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464',
  AllAppPackages: 'S-1-15-2-1',
  MediumIntegrity: 'S-1-16-8192',
} as const;

/** SDDL two-letter aliases ([MS-DTYP] 2.5.1.1) used in plans and model fixtures. */
export const SDDL_ALIASES: Readonly<Record<string, string>> = {
  WD: SID.Everyone,
  CO: SID.CreatorOwner,
  CG: SID.CreatorGroup,
  OW: SID.OwnerRights,
  NU: SID.Network,
  IU: SID.Interactive,
  AU: SID.AuthenticatedUsers,
  RC: SID.Restricted,
  SY: SID.LocalSystem,
  LS: SID.LocalService,
  NS: SID.NetworkService,
  BA: SID.Administrators,
  BU: SID.Users,
  AC: SID.AllAppPackages,
};

const ALIAS_BY_SID: ReadonlyMap<string, string> = new Map(
  Object.entries(SDDL_ALIASES).map(([alias, sid]) => [sid, alias]),
);

export function sddlAliasOf(sid: string): string | undefined {
  return ALIAS_BY_SID.get(sid);
}

const SID_PATTERN = /^S-1-\d+(-\d+)*$/;

export function isSidString(value: string): boolean {
  if (!SID_PATTERN.test(value)) return false;
  // [MS-DTYP] 2.4.2: at most 15 sub-authorities, each a 32-bit unsigned value.
  const parts = value.split('-').slice(3);
  return parts.length <= 15 && parts.every((p) => Number(p) <= 0xffffffff);
}

/** A logon SID, S-1-5-5-X-Y ([MS] Well-known SIDs: "SECURITY_LOGON_IDS_RID"). */
export function isLogonSid(sid: string): boolean {
  return /^S-1-5-5-\d+-\d+$/.test(sid);
}

/**
 * A synthetic SID derived from the installation id and a key. It is shaped like a domain account
 * (S-1-5-21-a-b-c-d) because that shape is accepted everywhere a SID is (ACEs, restricting lists,
 * firewall conditions); no account owns it, so it can only reach a token as a restricting SID.
 * Hash-derived rather than random so that no store (and no lock around one) is needed: the same
 * workspace always gets the same SID under one installation.
 */
export function deriveSyntheticSid(installId: string, purpose: string, key: string): string {
  const digest = createHash('sha256').update(`cordon\0${installId}\0${purpose}\0${key}`).digest();
  const parts = [0, 4, 8, 12].map((offset) => digest.readUInt32LE(offset));
  return `S-1-5-21-${parts.join('-')}`;
}

/**
 * The key under which a path's capability SID is derived: NTFS compares names case-insensitively
 * by default, so every spelling of one directory must map to one key.
 */
export function workspaceKey(canonicalPath: string): string {
  return canonicalPath.replace(/\//g, '\\').replace(/\\+$/, '').toUpperCase();
}
