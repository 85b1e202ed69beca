// Access tokens: user, groups with their attributes, restricting SIDs, privileges, default owner and
// default DACL. [MS] "Access Tokens", "SID_AND_ATTRIBUTES", "Restricted Tokens",
// "CreateRestrictedToken function".

import type { Ace } from '../acl.js';
import { isLogonSid } from '../sids.js';

export interface TokenGroup {
  sid: string;
  /** SE_GROUP_ENABLED: matches allow and deny ACEs. */
  enabled: boolean;
  /** SE_GROUP_USE_FOR_DENY_ONLY: matches deny ACEs only ([MS] Restricted Tokens). */
  denyOnly: boolean;
  /** SE_GROUP_LOGON_ID. */
  logonId?: boolean;
  /** SE_GROUP_OWNER: may be set as the owner of new objects. */
  owner?: boolean;
}

export const SE_CHANGE_NOTIFY = 'SeChangeNotifyPrivilege';
export const SE_TAKE_OWNERSHIP = 'SeTakeOwnershipPrivilege';
export const SE_RESTORE = 'SeRestorePrivilege';
export const SE_BACKUP = 'SeBackupPrivilege';
export const SE_SECURITY = 'SeSecurityPrivilege';
export const SE_CREATE_SYMBOLIC_LINK = 'SeCreateSymbolicLinkPrivilege';

export interface Token {
  user: string;
  /** The user SID itself can be made deny-only by CreateRestrictedToken. */
  userDenyOnly: boolean;
  groups: TokenGroup[];
  /** Restricting SIDs; empty for an unrestricted token. Always treated as enabled. */
  restrictingSids: string[];
  /** WRITE_RESTRICTED: the restricting SIDs are consulted only for write access. */
  writeRestricted: boolean;
  /** Privileges present in the token, with their enabled state. */
  privileges: Map<string, boolean>;
  /** TokenOwner: the owner of objects this token creates. */
  defaultOwner: string;
  /** TokenDefaultDacl: used for new objects when nothing is inherited. */
  defaultDacl: Ace[] | null;
  /** Informational: who this token stands for in probe reports. */
  label: string;
}

export function privilegeEnabled(token: Token, name: string): boolean {
  return token.privileges.get(name) === true;
}

/** SIDs that match allow ACEs in the normal pass: the user and enabled groups. */
export function enabledSids(token: Token): Set<string> {
  const sids = new Set<string>();
  if (!token.userDenyOnly) sids.add(token.user);
  for (const g of token.groups) if (g.enabled && !g.denyOnly) sids.add(g.sid);
  return sids;
}

/** SIDs that match deny ACEs in the normal pass: enabled and deny-only ones. */
export function denySids(token: Token): Set<string> {
  const sids = new Set<string>([token.user]);
  for (const g of token.groups) if (g.enabled || g.denyOnly) sids.add(g.sid);
  return sids;
}

export interface RestrictOptions {
  /** DISABLE_MAX_PRIVILEGE: delete every privilege except SeChangeNotifyPrivilege. */
  disableMaxPrivilege?: boolean;
  /** WRITE_RESTRICTED. */
  writeRestricted?: boolean;
  /** LUA_TOKEN: recorded only; it does not change access checks in this model. */
  luaToken?: boolean;
  /** SidsToDisable: these become deny-only. */
  sidsToDisable?: string[];
  /** Also make every logon SID deny-only (resolved from the token, since they are per logon). */
  disableLogonSids?: boolean;
  /** PrivilegesToDelete (ignored with disableMaxPrivilege, as documented). */
  privilegesToDelete?: string[];
  /** SidsToRestrict. */
  restrictingSids?: string[];
}

/**
 * CreateRestrictedToken, as documented:
 * - "SidsToDisable ... deny-only SIDs": the matching user or groups get SE_GROUP_USE_FOR_DENY_ONLY;
 *   a SID absent from the token is ignored.
 * - DISABLE_MAX_PRIVILEGE "disables all privileges in the new token except SeChangeNotifyPrivilege";
 *   PrivilegesToDelete is then ignored.
 * - "If ExistingTokenHandle is a restricted token, the list of restricting SIDs in the new token is
 *   the intersection of the existing list and SidsToRestrict"; a token that was write-restricted
 *   stays so.
 */
export function createRestrictedToken(base: Token, options: RestrictOptions, label?: string): Token {
  const disable = new Set(options.sidsToDisable ?? []);
  const groups = base.groups.map((g) => {
    const makeDenyOnly = disable.has(g.sid) || (options.disableLogonSids === true && (g.logonId === true || isLogonSid(g.sid)));
    return makeDenyOnly ? { ...g, enabled: false, denyOnly: true } : { ...g };
  });
  let privileges: Map<string, boolean>;
  if (options.disableMaxPrivilege) {
    privileges = new Map();
    if (base.privileges.has(SE_CHANGE_NOTIFY)) privileges.set(SE_CHANGE_NOTIFY, base.privileges.get(SE_CHANGE_NOTIFY)!);
  } else {
    const remove = new Set(options.privilegesToDelete ?? []);
    privileges = new Map([...base.privileges].filter(([name]) => !remove.has(name)));
  }
  let restricting = [...new Set(options.restrictingSids ?? [])];
  if (base.restrictingSids.length > 0) {
    const existing = new Set(base.restrictingSids);
    restricting = restricting.length > 0 ? restricting.filter((s) => existing.has(s)) : [...base.restrictingSids];
  }
  return {
    user: base.user,
    userDenyOnly: base.userDenyOnly || disable.has(base.user),
    groups,
    restrictingSids: restricting,
    writeRestricted: base.writeRestricted || options.writeRestricted === true,
    privileges,
    defaultOwner: base.defaultOwner,
    defaultDacl: base.defaultDacl ? base.defaultDacl.map((a) => ({ ...a })) : null,
    label: label ?? `${base.label} (restricted)`,
  };
}

/** SetTokenInformation(TokenDefaultDacl). */
export function withDefaultDacl(token: Token, dacl: Ace[]): Token {
  return { ...token, defaultDacl: dacl.map((a) => ({ ...a })) };
}

/** AdjustTokenPrivileges: only privileges present in the token can be enabled. */
export function enablePrivilege(token: Token, name: string): Token {
  if (!token.privileges.has(name)) throw new Error(`ERROR_NOT_ALL_ASSIGNED: ${name} is not in the token`);
  const privileges = new Map(token.privileges);
  privileges.set(name, true);
  return { ...token, privileges };
}
