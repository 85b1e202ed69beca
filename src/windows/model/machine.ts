// A simulated Windows machine: local accounts and groups, logon (which builds tokens), LSA account
// rights, hidden accounts, DPAPI, firewall rules and the NTFS volumes. Administrative operations
// check that the caller is an elevated administrator, as the real APIs do.
// Sources: [MS] NetUserAdd / NetLocalGroupAddMembers (administrators only), [MS] "How User Account
// Control works" (the filtered token: Administrators deny-only), [MS] CreateProcessWithLogonW
// (an interactive logon with a new logon SID; needs BUILTIN\Users membership), [MS] LsaAddAccountRights,
// [MS] CryptProtectData (CRYPTPROTECT_LOCAL_MACHINE: any user of the machine can decrypt).

import type { Ace, SecurityDescriptor } from '../acl.js';
import { SID } from '../sids.js';
import type { FirewallRule } from '../types.js';
import type { WriteRestrictedReading } from './access-check.js';
import { type Connection, type FirewallOptions, type FirewallVerdict, evaluateOutbound } from './firewall.js';
import { FileSystem } from './ntfs.js';
import { SE_CHANGE_NOTIFY, type Token, type TokenGroup } from './token.js';

export interface ModelUser {
  name: string;
  sid: string;
  password: string;
  comment: string;
  hidden: boolean;
  /** Token privileges a logon gives this user (all disabled except SeChangeNotify). */
  privileges: string[];
}

export interface ModelGroup {
  name: string;
  sid: string;
  comment: string;
  members: Set<string>;
  builtin: boolean;
}

export interface MachineOptions {
  writeRestrictedReading: WriteRestrictedReading;
  firewall: FirewallOptions;
}

export class ModelError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

export class Machine {
  readonly fs: FileSystem;
  readonly users = new Map<string, ModelUser>();
  readonly groups = new Map<string, ModelGroup>();
  readonly accountRights = new Map<string, Set<string>>();
  readonly profiles = new Set<string>();
  firewallRules: FirewallRule[] = [];
  firewallOptions: FirewallOptions;
  private nextRid = 1001;
  private nextLogon = 0x3e7 + 0x1000;
  readonly machineSidPrefix = 'S-1-5-21-1111111111-2222222222-3333333333';

  constructor(options: MachineOptions) {
    this.fs = new FileSystem({ writeRestrictedReading: options.writeRestrictedReading });
    this.firewallOptions = { ...options.firewall };
    for (const [name, sid] of [['Administrators', SID.Administrators], ['Users', SID.Users]] as const) {
      this.groups.set(name.toUpperCase(), { name, sid, comment: '', members: new Set(), builtin: true });
    }
  }

  set writeRestrictedReading(reading: WriteRestrictedReading) {
    this.fs.options.writeRestrictedReading = reading;
  }

  get writeRestrictedReading(): WriteRestrictedReading {
    return this.fs.options.writeRestrictedReading;
  }

  private newSid(): string {
    return `${this.machineSidPrefix}-${this.nextRid++}`;
  }

  account(name: string): { kind: 'user'; user: ModelUser } | { kind: 'group'; group: ModelGroup } | null {
    const user = this.users.get(name.toUpperCase());
    if (user) return { kind: 'user', user };
    const group = this.groups.get(name.toUpperCase());
    if (group) return { kind: 'group', group };
    return null;
  }

  accountBySid(sid: string): ModelUser | ModelGroup | undefined {
    return [...this.users.values()].find((u) => u.sid === sid) ?? [...this.groups.values()].find((g) => g.sid === sid);
  }

  requireAdmin(caller: Token, api: string): void {
    const elevated = caller.groups.some((g) => g.sid === SID.Administrators && g.enabled && !g.denyOnly) || caller.user === SID.LocalSystem;
    if (!elevated) throw new ModelError(5, `${api}: access denied (needs an elevated administrator)`);
  }

  addUser(name: string, password: string, comment = '', privileges: string[] = []): ModelUser {
    if (this.account(name)) throw new ModelError(2224, `${name} exists`);
    const user: ModelUser = { name, sid: this.newSid(), password, comment, hidden: false, privileges };
    this.users.set(name.toUpperCase(), user);
    return user;
  }

  addGroup(name: string, comment = ''): ModelGroup {
    if (this.account(name)) throw new ModelError(2223, `${name} exists`);
    const group: ModelGroup = { name, sid: this.newSid(), comment, members: new Set(), builtin: false };
    this.groups.set(name.toUpperCase(), group);
    return group;
  }

  /** The groups a logon of this user carries (local groups are not nested). */
  private memberOf(userSid: string): ModelGroup[] {
    return [...this.groups.values()].filter((g) => g.members.has(userSid));
  }

  /**
   * An interactive logon ([MS] LogonUser / CreateProcessWithLogonW): the user, Everyone, LOCAL,
   * INTERACTIVE, Authenticated Users, the user's local groups, a fresh logon SID, medium integrity.
   * With `uacFiltered`, Administrators becomes deny-only (the UAC filtered token). `extraGroups`
   * models SIDs seclogon adds (the caller's logon SID).
   */
  logon(name: string, password: string | null, options: { uacFiltered?: boolean; elevated?: boolean; extraGroups?: TokenGroup[]; loadProfile?: boolean } = {}): Token {
    const user = this.users.get(name.toUpperCase());
    if (!user) throw new ModelError(1326, `logon failure: unknown user ${name}`);
    if (password !== null && user.password !== password) throw new ModelError(1326, `logon failure: bad password for ${name}`);
    // LOGON_WITH_PROFILE: the first logon creates C:\Users\<name>, owned by and private to the user.
    if (options.loadProfile && !this.profiles.has(user.sid)) {
      const home = `C:\\Users\\${user.name}`;
      if (!this.fs.exists(home)) {
        this.fs.adminMkdirs(home, user.sid, {
          aces: [
            { type: 'allow', sid: SID.LocalSystem, mask: 0x1f01ff, flags: 3 },
            { type: 'allow', sid: SID.Administrators, mask: 0x1f01ff, flags: 3 },
            { type: 'allow', sid: user.sid, mask: 0x1f01ff, flags: 3 },
          ],
          protected: true,
        });
        this.fs.adminMkdirs(`${home}\\Documents\\WindowsPowerShell`, user.sid);
      }
      this.profiles.add(user.sid);
    }
    const groups: TokenGroup[] = [];
    const add = (sid: string, extra: Partial<TokenGroup> = {}) => groups.push({ sid, enabled: true, denyOnly: false, ...extra });
    add(SID.Everyone);
    add(SID.Local);
    add(SID.Interactive);
    add(SID.AuthenticatedUsers);
    const isAdmin = this.memberOf(user.sid).some((g) => g.sid === SID.Administrators);
    for (const g of this.memberOf(user.sid)) {
      if (g.sid === SID.Administrators && options.uacFiltered && !options.elevated) add(g.sid, { enabled: false, denyOnly: true });
      else add(g.sid, { owner: g.sid === SID.Administrators });
    }
    const logonSid = `S-1-5-5-0-${this.nextLogon++}`;
    add(logonSid, { logonId: true });
    for (const g of options.extraGroups ?? []) groups.push({ ...g });
    const privileges = new Map<string, boolean>([[SE_CHANGE_NOTIFY, true]]);
    for (const p of user.privileges) privileges.set(p, false);
    // An elevated administrator holds these (disabled until a program enables them); symbolic-link
    // creation is exercised by mklink, which enables it.
    if (isAdmin && options.elevated) {
      for (const p of ['SeTakeOwnershipPrivilege', 'SeBackupPrivilege', 'SeRestorePrivilege', 'SeSecurityPrivilege']) privileges.set(p, false);
      privileges.set('SeCreateSymbolicLinkPrivilege', true);
    }
    const defaultDacl: Ace[] = [
      { type: 'allow', sid: user.sid, mask: 0x10000000, flags: 0 },
      { type: 'allow', sid: SID.LocalSystem, mask: 0x10000000, flags: 0 },
      { type: 'allow', sid: logonSid, mask: 0xa0000000, flags: 0 },
    ];
    return {
      user: user.sid, userDenyOnly: false, groups, restrictingSids: [], writeRestricted: false, privileges,
      // Elevated administrators create objects owned by Administrators ([MS] UAC: default owner).
      defaultOwner: isAdmin && options.elevated ? SID.Administrators : user.sid,
      defaultDacl, label: `${name}${options.elevated ? ' (elevated)' : ''}`,
    };
  }

  /** The token of SYSTEM, for fixtures that need it. */
  systemToken(): Token {
    return {
      user: SID.LocalSystem, userDenyOnly: false,
      groups: [{ sid: SID.Administrators, enabled: true, denyOnly: false, owner: true }, { sid: SID.Everyone, enabled: true, denyOnly: false }, { sid: SID.AuthenticatedUsers, enabled: true, denyOnly: false }],
      restrictingSids: [], writeRestricted: false, privileges: new Map([[SE_CHANGE_NOTIFY, true]]),
      defaultOwner: SID.LocalSystem, defaultDacl: null, label: 'SYSTEM',
    };
  }

  connect(c: Connection): FirewallVerdict {
    return evaluateOutbound(this.firewallRules, c, this.firewallOptions);
  }

  /** The SD of a path, read administratively (no access check), for assertions and reports. */
  securityOf(path: string): SecurityDescriptor | undefined {
    return this.fs.nodeAt(path, false)?.sd;
  }
}
