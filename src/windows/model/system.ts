// The simulated Win32 layer: the enforcer's WindowsSystem and RunnerApi interfaces implemented on
// the model machine, every call made as a given token and access-checked like the real one. The
// orchestration code that drives the real Windows is run unchanged against this.

import { type Ace, isInherited, parseSddl } from '../acl.js';
import { ERROR, type AccountInfo, type ChildStdio, type Handle, type PathInfo, type RunnerApi, type SpawnedChild, Win32Error, type WindowsSystem } from '../enforcer/system.js';
import type { JobSpec, ProcessSpec, TokenSpec } from '../plan.js';
import { SID } from '../sids.js';
import type { FirewallRule } from '../types.js';
import { Machine, ModelError } from './machine.js';
import { WinError } from './ntfs.js';
import { type Token, createRestrictedToken, withDefaultDacl } from './token.js';

const CODES: Record<string, number> = {
  ERROR_ACCESS_DENIED: 5, ERROR_FILE_NOT_FOUND: 2, ERROR_PATH_NOT_FOUND: 3, ERROR_ALREADY_EXISTS: 183,
  ERROR_DIR_NOT_EMPTY: 145, ERROR_INVALID_NAME: 123, ERROR_PRIVILEGE_NOT_HELD: 1314, ERROR_NOT_SAME_DEVICE: 17,
  ERROR_CANT_RESOLVE_FILENAME: 1921, ERROR_INVALID_OWNER: 1307, ERROR_BAD_NETPATH: 53, ERROR_DIRECTORY: 267,
};

function wrap<T>(api: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof WinError) throw new Win32Error(api, CODES[e.code] ?? 1, e.message);
    if (e instanceof ModelError) throw new Win32Error(api, e.code, e.message);
    throw e;
  }
}

function mergeInto(existing: Ace[], add: readonly Ace[]): Ace[] {
  const out = existing.map((a) => ({ ...a }));
  for (const a of add) {
    const same = out.find((b) => b.type === a.type && b.sid === a.sid && (b.flags & 0xf) === (a.flags & 0xf));
    if (same) same.mask = (same.mask | a.mask) >>> 0;
    else out.push({ ...a, flags: a.flags & 0xf });
  }
  return out;
}

export class ModelWindowsSystem implements WindowsSystem {
  constructor(readonly machine: Machine, public caller: Token) {}

  async currentUser() {
    const account = this.machine.accountBySid(this.caller.user);
    const elevated = this.caller.groups.some((g) => g.sid === SID.Administrators && g.enabled && !g.denyOnly);
    return { name: account?.name ?? this.caller.user, sid: this.caller.user, elevated };
  }

  async lookupAccount(name: string): Promise<AccountInfo | null> {
    const a = this.machine.account(name);
    if (!a) return null;
    return a.kind === 'user'
      ? { name: a.user.name, sid: a.user.sid, kind: 'user', comment: a.user.comment }
      : { name: a.group.name, sid: a.group.sid, kind: 'group', comment: a.group.comment };
  }

  async createLocalGroup(name: string, comment: string): Promise<string> {
    return wrap('NetLocalGroupAdd', () => {
      this.machine.requireAdmin(this.caller, 'NetLocalGroupAdd');
      if (this.machine.account(name)) throw new ModelError(ERROR.ALIAS_EXISTS, `${name} exists`);
      return this.machine.addGroup(name, comment).sid;
    });
  }

  async deleteLocalGroup(name: string): Promise<void> {
    wrap('NetLocalGroupDel', () => {
      this.machine.requireAdmin(this.caller, 'NetLocalGroupDel');
      if (!this.machine.groups.delete(name.toUpperCase())) throw new ModelError(ERROR.NERR_GROUP_NOT_FOUND, `${name} not found`);
    });
  }

  async createLocalUser(name: string, password: string, comment: string): Promise<string> {
    return wrap('NetUserAdd', () => {
      this.machine.requireAdmin(this.caller, 'NetUserAdd');
      if (this.machine.account(name)) throw new ModelError(ERROR.NERR_USER_EXISTS, `${name} exists`);
      return this.machine.addUser(name, password, comment).sid;
    });
  }

  async setUserPassword(name: string, password: string): Promise<void> {
    wrap('NetUserSetInfo', () => {
      this.machine.requireAdmin(this.caller, 'NetUserSetInfo');
      const u = this.machine.users.get(name.toUpperCase());
      if (!u) throw new ModelError(ERROR.NERR_USER_NOT_FOUND, `${name} not found`);
      u.password = password;
    });
  }

  async deleteLocalUser(name: string): Promise<void> {
    wrap('NetUserDel', () => {
      this.machine.requireAdmin(this.caller, 'NetUserDel');
      const u = this.machine.users.get(name.toUpperCase());
      if (!u) throw new ModelError(ERROR.NERR_USER_NOT_FOUND, `${name} not found`);
      this.machine.users.delete(name.toUpperCase());
      for (const g of this.machine.groups.values()) g.members.delete(u.sid);
    });
  }

  async addGroupMember(group: string, memberSid: string): Promise<void> {
    wrap('NetLocalGroupAddMembers', () => {
      this.machine.requireAdmin(this.caller, 'NetLocalGroupAddMembers');
      const g = this.machine.groups.get(group.toUpperCase());
      if (!g) throw new ModelError(ERROR.NERR_GROUP_NOT_FOUND, `${group} not found`);
      if (g.members.has(memberSid)) throw new ModelError(ERROR.MEMBER_IN_ALIAS, `already a member of ${group}`);
      g.members.add(memberSid);
    });
  }

  async removeGroupMember(group: string, memberSid: string): Promise<void> {
    wrap('NetLocalGroupDelMembers', () => {
      this.machine.requireAdmin(this.caller, 'NetLocalGroupDelMembers');
      this.machine.groups.get(group.toUpperCase())?.members.delete(memberSid);
    });
  }

  async groupMembers(group: string): Promise<string[]> {
    return wrap('NetLocalGroupGetMembers', () => {
      const g = this.machine.groups.get(group.toUpperCase());
      if (!g) throw new ModelError(ERROR.NERR_GROUP_NOT_FOUND, `${group} not found`);
      return [...g.members];
    });
  }

  async groupNameOf(sid: string): Promise<string> {
    return wrap('LookupAccountSidW', () => {
      const g = [...this.machine.groups.values()].find((x) => x.sid === sid);
      if (!g) throw new ModelError(ERROR.NONE_MAPPED, `no account for ${sid}`);
      return g.name;
    });
  }

  async setUserHidden(name: string, hidden: boolean): Promise<void> {
    wrap('RegSetKeyValueW', () => {
      this.machine.requireAdmin(this.caller, 'RegSetKeyValueW(HKLM)');
      const u = this.machine.users.get(name.toUpperCase());
      if (!u) throw new ModelError(ERROR.NERR_USER_NOT_FOUND, `${name} not found`);
      u.hidden = hidden;
    });
  }

  async isUserHidden(name: string): Promise<boolean> {
    return this.machine.users.get(name.toUpperCase())?.hidden ?? false;
  }

  async accountRights(sid: string): Promise<string[]> {
    return [...(this.machine.accountRights.get(sid) ?? [])];
  }

  async addAccountRights(sid: string, rights: string[]): Promise<void> {
    wrap('LsaAddAccountRights', () => {
      this.machine.requireAdmin(this.caller, 'LsaAddAccountRights');
      const set = this.machine.accountRights.get(sid) ?? new Set<string>();
      for (const r of rights) set.add(r);
      this.machine.accountRights.set(sid, set);
    });
  }

  async removeAccountRights(sid: string, rights: string[]): Promise<void> {
    wrap('LsaRemoveAccountRights', () => {
      this.machine.requireAdmin(this.caller, 'LsaRemoveAccountRights');
      const set = this.machine.accountRights.get(sid);
      for (const r of rights) set?.delete(r);
      if (set && set.size === 0) this.machine.accountRights.delete(sid);
    });
  }

  async deleteUserProfile(sid: string): Promise<void> {
    wrap('DeleteProfileW', () => {
      this.machine.requireAdmin(this.caller, 'DeleteProfileW');
      const user = [...this.machine.users.values()].find((u) => u.sid === sid);
      if (user && this.machine.profiles.has(sid)) this.machine.fs.deleteTree(this.machine.systemToken(), `C:\\Users\\${user.name}`);
      this.machine.profiles.delete(sid);
    });
  }

  async protectData(plain: Buffer): Promise<Buffer> {
    // Machine scope: any account of this machine can decrypt; the store's DACL is the protection.
    return Buffer.concat([Buffer.from('MODEL-DPAPI-MACHINE:'), Buffer.from(plain.toString('base64'))]);
  }

  async unprotectData(blob: Buffer): Promise<Buffer> {
    const prefix = 'MODEL-DPAPI-MACHINE:';
    if (!blob.toString().startsWith(prefix)) throw new Win32Error('CryptUnprotectData', 13, 'the data is invalid');
    return Buffer.from(blob.toString().slice(prefix.length), 'base64');
  }

  async pathInfo(path: string): Promise<PathInfo | null> {
    const st = this.machine.fs.stat(path, false);
    return st ? { kind: st.kind, reparse: st.reparse !== undefined, links: st.links } : null;
  }

  private creatorDacl(sddl?: string) {
    if (!sddl) return undefined;
    const sd = parseSddl(sddl.replace(/^O:[A-Z]{2}|^O:S-1-[\d-]+/, 'O:SY'));
    return { aces: sd.dacl ?? [], protected: sd.daclProtected };
  }

  async createDirectory(path: string, sddl?: string): Promise<void> {
    wrap('CreateDirectoryW', () => this.machine.fs.mkdir(this.caller, path, this.creatorDacl(sddl)));
  }

  async writeFileWithSddl(path: string, data: Buffer, sddl: string): Promise<void> {
    wrap('CreateFileW', () => {
      if (this.machine.fs.exists(path)) this.machine.fs.delete(this.caller, path);
      this.machine.fs.writeFile(this.caller, path, data.toString('base64'), { creatorDacl: this.creatorDacl(sddl) });
    });
  }

  async readFile(path: string): Promise<Buffer | null> {
    if (!this.machine.fs.exists(path)) return null;
    return wrap('ReadFile', () => Buffer.from(this.machine.fs.readFile(this.caller, path), 'base64'));
  }

  async removeFile(path: string): Promise<void> {
    wrap('DeleteFileW', () => this.machine.fs.delete(this.caller, path));
  }

  async removeDirectory(path: string): Promise<void> {
    wrap('RemoveDirectoryW', () => this.machine.fs.delete(this.caller, path));
  }

  async dacl(path: string): Promise<Ace[] | null> {
    return wrap('GetNamedSecurityInfoW', () => {
      const node = this.machine.fs.nodeAt(path, false);
      if (!node) throw new WinError('ERROR_FILE_NOT_FOUND', `${path} does not exist`);
      if (!this.machine.fs.check(this.caller, node.sd, 0x20000).granted) throw new WinError('ERROR_ACCESS_DENIED', `read security of ${path}`);
      return node.sd.dacl ? node.sd.dacl.map((a) => ({ ...a })) : null;
    });
  }

  async listDirectory(path: string): Promise<{ name: string; kind: 'file' | 'dir'; reparse: boolean }[]> {
    return wrap('FindFirstFileExW', () => this.machine.fs.list(path).map((e) => ({ name: e.name, kind: e.kind, reparse: e.reparse !== undefined })));
  }

  async removeTree(path: string): Promise<void> {
    wrap('DeleteFileW', () => this.machine.fs.deleteTree(this.caller, path));
  }

  async explicitAces(path: string): Promise<Ace[]> {
    return wrap('GetNamedSecurityInfoW', () => {
      const node = this.machine.fs.nodeAt(path, false);
      if (!node) throw new WinError('ERROR_FILE_NOT_FOUND', `${path} does not exist`);
      const decision = this.machine.fs.check(this.caller, node.sd, 0x20000);
      if (!decision.granted) throw new WinError('ERROR_ACCESS_DENIED', `read security of ${path}`);
      return (node.sd.dacl ?? []).filter((a) => !isInherited(a)).map((a) => ({ ...a }));
    });
  }

  async addAces(path: string, aces: Ace[]): Promise<void> {
    wrap('SetNamedSecurityInfoW', () => {
      const node = this.machine.fs.nodeAt(path, false);
      if (!node) throw new WinError('ERROR_FILE_NOT_FOUND', `${path} does not exist`);
      const explicit = (node.sd.dacl ?? []).filter((a) => !isInherited(a));
      const { failed } = this.machine.fs.setExplicitAndPropagate(this.caller, path, mergeInto(explicit, aces));
      if (failed.length > 0) throw new WinError('ERROR_ACCESS_DENIED', `propagation to ${failed.length} item(s) failed, first ${failed[0]}`);
    });
  }

  async removeAces(path: string, aces: Ace[]): Promise<void> {
    wrap('SetNamedSecurityInfoW', () => {
      const node = this.machine.fs.nodeAt(path, false);
      if (!node) return;
      const explicit = (node.sd.dacl ?? []).filter((a) => !isInherited(a)).map((a) => ({ ...a }));
      for (const r of aces) {
        const same = explicit.find((b) => b.type === r.type && b.sid === r.sid && (b.flags & 0xf) === (r.flags & 0xf));
        if (same) same.mask = (same.mask & ~r.mask) >>> 0;
      }
      this.machine.fs.setExplicitAndPropagate(this.caller, path, explicit.filter((a) => a.mask !== 0));
    });
  }

  async protectInheritance(path: string): Promise<void> {
    wrap('SetNamedSecurityInfoW', () => this.machine.fs.protectInheritance(this.caller, path));
  }

  async multiLinkFiles(root: string): Promise<string[]> {
    return this.machine.fs.multiLinkFiles(root);
  }

  async getFirewallRule(name: string): Promise<FirewallRule | null> {
    const rule = this.machine.firewallRules.find((r) => r.name === name);
    return rule ? structuredClone(rule) : null;
  }

  async putFirewallRule(rule: FirewallRule): Promise<void> {
    wrap('INetFwRules::Add', () => {
      this.machine.requireAdmin(this.caller, 'INetFwRules::Add');
      this.machine.firewallRules = [...this.machine.firewallRules.filter((r) => r.name !== rule.name), structuredClone(rule)];
    });
  }

  async removeFirewallRule(name: string): Promise<void> {
    wrap('INetFwRules::Remove', () => {
      this.machine.requireAdmin(this.caller, 'INetFwRules::Remove');
      this.machine.firewallRules = this.machine.firewallRules.filter((r) => r.name !== name);
    });
  }

  async probeConnectAs(user: { name: string; password: string }, address: string, port: number): Promise<'connected' | 'blocked'> {
    return wrap('CreateProcessWithLogonW', () => {
      const token = this.machine.logon(user.name, user.password);
      return this.machine.connect({ token, protocol: 'tcp', remoteAddress: address, remotePort: port }).allowed ? 'connected' : 'blocked';
    });
  }
}

/** A program the model "runs" in the child: it gets the child's token and the machine. */
export type ModelProgram = (ctx: { token: Token; machine: Machine; spec: ProcessSpec; stdout: (s: string) => void; stderr: (s: string) => void }) => number | 'hang';

interface ModelProcess {
  token: Token;
  state: 'suspended' | 'running' | 'exited';
  exitCode: number | null;
  job: Handle | null;
  spec: ProcessSpec;
  hang: boolean;
  stdout: ((chunk: Buffer) => void)[];
  stderr: ((chunk: Buffer) => void)[];
}

/** The runner side on the model: tokens are built with the model's CreateRestrictedToken. */
export class ModelRunnerApi implements RunnerApi {
  private next = 100n;
  readonly tokens = new Map<Handle, Token>();
  readonly processes = new Map<Handle, ModelProcess>();
  readonly jobs = new Map<Handle, { spec: JobSpec; members: Set<Handle>; closed: boolean }>();
  readonly desktops = new Map<Handle, { name: string; sddl: string; closed: boolean }>();
  hardenedWith: string | null = null;
  /** Set to make desktop creation fail (to test fail-closed). */
  failDesktop = false;
  readonly events: string[] = [];

  constructor(readonly machine: Machine, readonly self: Token, readonly program: ModelProgram) {}

  private handle(): Handle {
    this.next += 4n;
    return this.next;
  }

  async hardenOwnProcess(sddl: string): Promise<void> {
    this.hardenedWith = sddl;
    this.events.push('harden');
  }

  async createChildToken(spec: TokenSpec): Promise<Handle> {
    const restricted = createRestrictedToken(this.self, {
      disableMaxPrivilege: spec.flags.includes('DISABLE_MAX_PRIVILEGE'),
      writeRestricted: spec.flags.includes('WRITE_RESTRICTED'),
      luaToken: spec.flags.includes('LUA_TOKEN'),
      sidsToDisable: spec.sidsToDisable,
      disableLogonSids: spec.disableLogonSids,
      restrictingSids: spec.restrictingSids,
    }, `${this.self.label} (sandboxed child)`);
    const h = this.handle();
    this.tokens.set(h, withDefaultDacl(restricted, spec.defaultDacl));
    this.events.push('token');
    return h;
  }

  async createDesktop(name: string, sddl: string): Promise<Handle> {
    if (this.failDesktop) throw new Win32Error('CreateDesktopW', 5, 'access denied');
    const h = this.handle();
    this.desktops.set(h, { name, sddl, closed: false });
    this.events.push('desktop');
    return h;
  }

  async createJob(spec: JobSpec): Promise<Handle> {
    const h = this.handle();
    this.jobs.set(h, { spec, members: new Set(), closed: false });
    this.events.push('job');
    return h;
  }

  async createSuspended(token: Handle, spec: ProcessSpec, desktop: string, _stdio: ChildStdio): Promise<SpawnedChild> {
    const t = this.tokens.get(token);
    if (!t) throw new Win32Error('CreateProcessAsUserW', 6, 'invalid token handle');
    if (![...this.desktops.values()].some((d) => `WinSta0\\${d.name}` === desktop && !d.closed)) throw new Win32Error('CreateProcessAsUserW', 2, `no desktop ${desktop}`);
    const process = this.handle();
    const thread = this.handle();
    const p: ModelProcess = { token: t, state: 'suspended', exitCode: null, job: null, spec, hang: false, stdout: [], stderr: [] };
    this.processes.set(process, p);
    this.events.push('create-suspended');
    return {
      process, thread, pid: Number(process),
      write: () => undefined,
      closeStdin: () => undefined,
      onStdout: (l) => p.stdout.push(l),
      onStderr: (l) => p.stderr.push(l),
    };
  }

  async assignToJob(job: Handle, process: Handle): Promise<void> {
    const j = this.jobs.get(job);
    const p = this.processes.get(process);
    if (!j || !p) throw new Win32Error('AssignProcessToJobObject', 6, 'invalid handle');
    j.members.add(process);
    p.job = job;
    this.events.push('assign');
  }

  async resume(thread: Handle): Promise<void> {
    const process = thread - 4n;
    const p = this.processes.get(process);
    if (!p) throw new Win32Error('ResumeThread', 6, 'invalid handle');
    this.events.push(p.job === null ? 'resume-outside-job' : 'resume');
    p.state = 'running';
    const emit = (listeners: ((c: Buffer) => void)[]) => (s: string) => listeners.forEach((l) => l(Buffer.from(s)));
    const result = this.program({ token: p.token, machine: this.machine, spec: p.spec, stdout: emit(p.stdout), stderr: emit(p.stderr) });
    if (result === 'hang') p.hang = true;
    else {
      p.state = 'exited';
      p.exitCode = result;
    }
  }

  async wait(process: Handle, timeoutMs: number | null): Promise<number | 'timeout'> {
    const p = this.processes.get(process);
    if (!p) throw new Win32Error('WaitForSingleObject', 6, 'invalid handle');
    if (p.state === 'exited') return p.exitCode!;
    if (timeoutMs !== null) return 'timeout';
    throw new Error('model: waiting forever on a hung process');
  }

  async terminateJob(job: Handle, exitCode: number): Promise<void> {
    const j = this.jobs.get(job);
    if (!j) throw new Win32Error('TerminateJobObject', 6, 'invalid handle');
    for (const m of j.members) {
      const p = this.processes.get(m)!;
      if (p.state !== 'exited') {
        p.state = 'exited';
        p.exitCode = exitCode;
      }
    }
    this.events.push('terminate-job');
  }

  async terminateProcess(process: Handle, exitCode: number): Promise<void> {
    const p = this.processes.get(process);
    if (p && p.state !== 'exited') {
      p.state = 'exited';
      p.exitCode = exitCode;
    }
    this.events.push('terminate-process');
  }

  async closeHandle(handle: Handle): Promise<void> {
    const j = this.jobs.get(handle);
    if (j && !j.closed) {
      j.closed = true;
      // JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE: the last handle closing kills every process in the job.
      if (j.spec.killOnJobClose) await this.terminateJob(handle, 1);
    }
  }

  async closeDesktop(handle: Handle): Promise<void> {
    const d = this.desktops.get(handle);
    if (d) d.closed = true;
  }

  /** The token the last child was created with (for probes). */
  lastChildToken(): Token | undefined {
    return [...this.processes.values()].at(-1)?.token;
  }
}

