// The real Win32 layer: WindowsSystem, RunnerApi and BrokerApi on top of documented Win32 calls made
// through koffi (loaded with a dynamic import, only on Windows), plus reg.exe, icacls.exe and the
// NetSecurity PowerShell module where those documented tools are sturdier than raw calls.
//
// Not yet run on Windows: written against the documentation (learn.microsoft.com, API per method
// below) for 64-bit Windows (x64 and arm64 share the LLP64 layouts used here). Every call is
// checked, and a failure becomes a Win32Error naming the API and the error code.

import { execFile } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, realpathSync, existsSync, createReadStream, createWriteStream } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { type Ace, aceToSddl, isInherited, parseDacl } from '../acl.js';
import type { JobSpec, ProcessSpec, TokenSpec } from '../plan.js';
import type { WindowsHost } from '../resolve.js';
import type { FirewallRule } from '../types.js';
import type { BrokerApi, PipeConnection, PipeServer, RunnerProcess } from './broker.js';
import type { FrameStream } from './runner.js';
import {
  type AccountInfo, type ChildStdio, type Handle, type PathInfo, type RunnerApi, type SpawnedChild, Win32Error, type WindowsSystem,
} from './system.js';

const run = promisify(execFile);
const win = path.win32;

// --- koffi, declared locally so this file type-checks without the package ---------------------

interface KoffiFunction {
  (...args: unknown[]): unknown;
  async(...args: unknown[]): void;
}
interface KoffiLibrary {
  func(definition: string): KoffiFunction;
}
interface Koffi {
  load(path: string): KoffiLibrary;
  view(pointer: unknown, length: number): ArrayBuffer;
}

let koffiPromise: Promise<Koffi> | null = null;

/** Loads koffi once. A missing package is a setup problem with a one-line fix. */
export function loadKoffi(): Promise<Koffi> {
  if (process.platform !== 'win32') return Promise.reject(new Error('the Win32 layer only loads on Windows'));
  koffiPromise ??= (async () => {
    const specifier = 'koffi';
    try {
      const mod = (await import(specifier)) as { default?: Koffi } & Koffi;
      return mod.default ?? mod;
    } catch (e) {
      throw new Error(`cordon's Windows backend needs the koffi package (${(e as Error).message}); run \`npm install koffi\``);
    }
  })();
  return koffiPromise;
}

// Constants (winnt.h, winbase.h, lmaccess.h, ntsecapi.h, accctrl.h).
const LPTR = 0x40;
const SDDL_REVISION_1 = 1;
const SE_FILE_OBJECT = 1;
const SE_KERNEL_OBJECT = 6;
const SE_WINDOW_OBJECT = 7;
const DACL_SECURITY_INFORMATION = 0x4;
const PROTECTED_DACL_SECURITY_INFORMATION = 0x80000000;
const UNPROTECTED_DACL_SECURITY_INFORMATION = 0x20000000;
const TOKEN_ACCESS = 0x0002 | 0x0008 | 0x0001 | 0x0080 | 0x0100 | 0x0020; // DUPLICATE|QUERY|ASSIGN_PRIMARY|ADJUST_DEFAULT|ADJUST_SESSIONID|ADJUST_PRIVILEGES
const TOKEN_QUERY = 0x0008;
const TokenUser = 1;
const TokenGroups = 2;
const TokenDefaultDacl = 6;
const TokenElevation = 20;
const SE_GROUP_LOGON_ID = 0xc0000000;
const DISABLE_MAX_PRIVILEGE = 0x1;
const WRITE_RESTRICTED = 0x8;
const LUA_TOKEN = 0x4;
const USER_PRIV_USER = 1;
const UF_SCRIPT = 0x1;
const UF_DONT_EXPIRE_PASSWD = 0x10000;
const CRYPTPROTECT_UI_FORBIDDEN = 0x1;
const CRYPTPROTECT_LOCAL_MACHINE = 0x4;
const GENERIC_READ = 0x80000000;
const GENERIC_WRITE = 0x40000000;
const CREATE_ALWAYS = 2;
const OPEN_EXISTING = 3;
const FILE_ATTRIBUTE_NORMAL = 0x80;
const INVALID_HANDLE = 0xffffffffffffffffn;
const LOGON_WITH_PROFILE = 1;
const CREATE_SUSPENDED = 0x4;
const CREATE_NEW_PROCESS_GROUP = 0x200;
const CREATE_UNICODE_ENVIRONMENT = 0x400;
const EXTENDED_STARTUPINFO_PRESENT = 0x80000;
const CREATE_NO_WINDOW = 0x08000000;
const STARTF_USESTDHANDLES = 0x100;
const PROC_THREAD_ATTRIBUTE_HANDLE_LIST = 0x20002n;
const HANDLE_FLAG_INHERIT = 0x1;
const WAIT_OBJECT_0 = 0;
const WAIT_TIMEOUT = 0x102;
const INFINITE = 0xffffffff;
const JobObjectBasicUIRestrictions = 4;
const JobObjectExtendedLimitInformation = 9;
const JobObjectCpuRateControlInformation = 15;
const JOB_LIMIT = { ACTIVE_PROCESS: 0x8, JOB_MEMORY: 0x200, DIE_ON_UNHANDLED_EXCEPTION: 0x400, KILL_ON_JOB_CLOSE: 0x2000 };
const UI_LIMIT: Record<string, number> = { HANDLES: 0x1, READCLIPBOARD: 0x2, WRITECLIPBOARD: 0x4, SYSTEMPARAMETERS: 0x8, DISPLAYSETTINGS: 0x10, GLOBALATOMS: 0x20, DESKTOP: 0x40, EXITWINDOWS: 0x80 };
const PIPE_ACCESS_DUPLEX = 0x3;
const FILE_FLAG_FIRST_PIPE_INSTANCE = 0x80000;
const PIPE_REJECT_REMOTE_CLIENTS = 0x8;
const ERROR_PIPE_CONNECTED = 535;
const ERROR_BROKEN_PIPE = 109;
const ERROR_FILE_NOT_FOUND = 2;
const STATUS_OBJECT_NAME_NOT_FOUND = 0xc0000034;
const DESKTOP_ALL_ACCESS = 0xf01ff;

function u64(b: Buffer, offset = 0): bigint {
  return b.readBigUInt64LE(offset);
}

/** Win32's command-line quoting (CommandLineToArgvW / the C runtime's parsing rules). */
export function quoteArg(arg: string): string {
  if (arg.length > 0 && !/[\s"]/.test(arg)) return arg;
  let out = '"';
  for (let i = 0; i < arg.length; i += 1) {
    let backslashes = 0;
    while (arg[i] === '\\') {
      backslashes += 1;
      i += 1;
    }
    if (i === arg.length) {
      out += '\\'.repeat(backslashes * 2);
      break;
    }
    if (arg[i] === '"') out += '\\'.repeat(backslashes * 2 + 1) + '"';
    else out += '\\'.repeat(backslashes) + arg[i];
  }
  return out + '"';
}

/** A CREATE_UNICODE_ENVIRONMENT block: `name=value\0…\0`, sorted case-insensitively. */
export function environmentBlock(env: Record<string, string>): Buffer {
  const names = Object.keys(env).sort((a, b) => a.toUpperCase().localeCompare(b.toUpperCase()));
  return Buffer.from(names.map((n) => `${n}=${env[n]}\0`).join('') + '\0', 'utf16le');
}

/** Every Win32 function cordon calls, declared on first use. */
class Api {
  private fns = new Map<string, KoffiFunction>();
  private libs = new Map<string, KoffiLibrary>();
  constructor(readonly koffi: Koffi) {}

  fn(dll: string, definition: string): KoffiFunction {
    const key = `${dll}:${definition}`;
    let f = this.fns.get(key);
    if (!f) {
      let lib = this.libs.get(dll);
      if (!lib) {
        lib = this.koffi.load(dll);
        this.libs.set(dll, lib);
      }
      f = lib.func(definition);
      this.fns.set(key, f);
    }
    return f;
  }

  lastError(): number {
    return this.fn('kernel32.dll', 'uint32 __stdcall GetLastError()')() as number;
  }

  /** A BOOL-returning call: throws with GetLastError on FALSE. */
  check(api: string, result: unknown): void {
    if (!result) {
      const code = this.lastError();
      throw new Win32Error(api, code, describeError(code));
    }
  }

  /** Native memory (LocalAlloc) holding `bytes`; the caller frees it with free(). */
  alloc(bytes: Buffer): bigint {
    const p = this.fn('kernel32.dll', 'void * __stdcall LocalAlloc(uint32 flags, uintptr_t bytes)')(LPTR, Math.max(1, bytes.length)) as bigint;
    if (!p) throw new Win32Error('LocalAlloc', this.lastError(), 'out of memory');
    Buffer.from(this.koffi.view(p, bytes.length)).set(bytes);
    return p;
  }

  /** Zeroes native memory that held a secret before it is freed. */
  scrub(p: bigint, length: number): void {
    Buffer.from(this.koffi.view(p, length)).fill(0);
  }

  free(p: bigint | null): void {
    if (p) this.fn('kernel32.dll', 'void * __stdcall LocalFree(void *mem)')(p);
  }

  read(p: bigint, length: number): Buffer {
    return Buffer.from(Buffer.from(this.koffi.view(p, length))); // a copy: the memory is freed after
  }

  wstr(p: bigint): string {
    let n = 0;
    const view = (len: number) => Buffer.from(this.koffi.view(p, len));
    for (let chunk = 256; ; chunk *= 2) {
      const b = view(chunk * 2);
      for (n = 0; n < chunk; n += 1) if (b.readUInt16LE(n * 2) === 0) return b.subarray(0, n * 2).toString('utf16le');
    }
  }

  closeHandle(h: bigint): void {
    this.fn('kernel32.dll', 'int __stdcall CloseHandle(void *h)')(h);
  }

  // SIDs and security descriptors.
  sidFromString(sid: string): bigint {
    const out = Buffer.alloc(8);
    this.check('ConvertStringSidToSidW', this.fn('advapi32.dll', 'int __stdcall ConvertStringSidToSidW(str16 sid, _Out_ void *psid)')(sid, out));
    return u64(out);
  }

  sidToString(psid: bigint): string {
    const out = Buffer.alloc(8);
    this.check('ConvertSidToStringSidW', this.fn('advapi32.dll', 'int __stdcall ConvertSidToStringSidW(void *sid, _Out_ void *str)')(psid, out));
    const s = this.wstr(u64(out));
    this.free(u64(out));
    return s;
  }

  sdFromSddl(sddl: string): bigint {
    const out = Buffer.alloc(8);
    this.check('ConvertStringSecurityDescriptorToSecurityDescriptorW',
      this.fn('advapi32.dll', 'int __stdcall ConvertStringSecurityDescriptorToSecurityDescriptorW(str16 sddl, uint32 rev, _Out_ void *psd, void *size)')(sddl, SDDL_REVISION_1, out, null));
    return u64(out);
  }

  sddlFromSd(psd: bigint, info: number): string {
    const out = Buffer.alloc(8);
    this.check('ConvertSecurityDescriptorToStringSecurityDescriptorW',
      this.fn('advapi32.dll', 'int __stdcall ConvertSecurityDescriptorToStringSecurityDescriptorW(void *sd, uint32 rev, uint32 info, _Out_ void *str, void *len)')(psd, SDDL_REVISION_1, info, out, null));
    const s = this.wstr(u64(out));
    this.free(u64(out));
    return s;
  }

  daclOf(psd: bigint): bigint {
    const present = Buffer.alloc(4);
    const dacl = Buffer.alloc(8);
    const defaulted = Buffer.alloc(4);
    this.check('GetSecurityDescriptorDacl', this.fn('advapi32.dll', 'int __stdcall GetSecurityDescriptorDacl(void *sd, _Out_ void *present, _Out_ void *dacl, _Out_ void *defaulted)')(psd, present, dacl, defaulted));
    return u64(dacl);
  }

  /** SECURITY_ATTRIBUTES { DWORD nLength; LPVOID lpSecurityDescriptor; BOOL bInheritHandle; } (24 bytes). */
  securityAttributes(psd: bigint | null, inherit: boolean): Buffer {
    const sa = Buffer.alloc(24);
    sa.writeUInt32LE(24, 0);
    sa.writeBigUInt64LE(psd ?? 0n, 8);
    sa.writeUInt32LE(inherit ? 1 : 0, 16);
    return sa;
  }

  /** The whole SD of a file or directory (the name itself: reparse points are not followed), as SDDL. */
  fileSddl(p: string): string {
    const h = this.openForSecurity(p, 0x20000 /* READ_CONTROL */);
    try {
      const psd = Buffer.alloc(8);
      const rc = this.fn('advapi32.dll', 'uint32 __stdcall GetSecurityInfo(void *h, int type, uint32 info, void *owner, void *group, void *dacl, void *sacl, _Out_ void *sd)')(h, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, null, null, null, null, psd) as number;
      if (rc !== 0) throw new Win32Error('GetSecurityInfo', rc, `${p}: ${describeError(rc)}`);
      const sddl = this.sddlFromSd(u64(psd), DACL_SECURITY_INFORMATION);
      this.free(u64(psd));
      return sddl;
    } finally {
      this.closeHandle(h);
    }
  }

  openForSecurity(p: string, access: number): bigint {
    // FILE_FLAG_BACKUP_SEMANTICS (directories) | FILE_FLAG_OPEN_REPARSE_POINT (the link itself).
    const h = this.fn('kernel32.dll', 'void * __stdcall CreateFileW(str16 name, uint32 access, uint32 share, void *sa, uint32 disp, uint32 flags, void *tmpl)')(p, access, 7, null, OPEN_EXISTING, 0x02000000 | 0x00200000, null) as bigint;
    if (h === INVALID_HANDLE) {
      const code = this.lastError();
      throw new Win32Error('CreateFileW', code, `${p}: ${describeError(code)}`);
    }
    return h;
  }

  /** SetNamedSecurityInfoW(DACL): Windows merges the inherited ACEs back and propagates to children. */
  setFileDacl(p: string, sddl: string, isProtected: boolean): void {
    const psd = this.sdFromSddl(sddl);
    try {
      const info = DACL_SECURITY_INFORMATION | (isProtected ? PROTECTED_DACL_SECURITY_INFORMATION : UNPROTECTED_DACL_SECURITY_INFORMATION);
      const rc = this.fn('advapi32.dll', 'uint32 __stdcall SetNamedSecurityInfoW(str16 name, int type, uint32 info, void *owner, void *group, void *dacl, void *sacl)')(p, SE_FILE_OBJECT, info >>> 0, null, null, this.daclOf(psd), null) as number;
      if (rc !== 0) throw new Win32Error('SetNamedSecurityInfoW', rc, `${p}: ${describeError(rc)}`);
    } finally {
      this.free(psd);
    }
  }
}

function describeError(code: number): string {
  const known: Record<number, string> = {
    2: 'the file does not exist', 3: 'the path does not exist', 5: 'access is denied', 32: 'the file is in use',
    109: 'the pipe was closed', 145: 'the directory is not empty', 183: 'it already exists', 1223: 'cancelled by the user',
    1312: 'the logon session no longer exists (stale credentials; re-run `cordon setup`)', 1326: 'the user name or password is wrong',
    1332: 'no account has that name or SID', 1378: 'already a member', 1379: 'the group already exists', 1385: 'that logon type is not granted to the account',
    2220: 'the group does not exist', 2221: 'the user does not exist', 2223: 'the group already exists', 2224: 'the user already exists',
    2245: 'the password does not meet the password policy',
  };
  return known[code] ?? `Win32 error ${code}`;
}

async function powershell(script: string, env: Record<string, string> = {}): Promise<string> {
  const encoded = Buffer.from(script, 'utf16le').toString('base64');
  try {
    const { stdout } = await run('powershell.exe', ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-EncodedCommand', encoded], { env: { ...process.env, ...env }, windowsHide: true, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; code?: number; message: string };
    throw new Win32Error('powershell', typeof err.code === 'number' ? err.code : 1, (err.stderr || err.message).trim().split('\n')[0] ?? 'failed');
  }
}

async function tool(api: string, file: string, args: string[]): Promise<{ stdout: string; code: number }> {
  try {
    const { stdout } = await run(file, args, { windowsHide: true });
    return { stdout, code: 0 };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; code?: number; message: string };
    if (typeof err.code === 'number') return { stdout: `${err.stdout ?? ''}${err.stderr ?? ''}`, code: err.code };
    throw new Win32Error(api, 1, err.message);
  }
}

const USERLIST_KEY = 'HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon\\SpecialAccounts\\UserList';

// --- WindowsSystem -----------------------------------------------------------------------------

export class Win32System implements WindowsSystem {
  private constructor(private readonly api: Api) {}

  static async load(): Promise<Win32System> {
    return new Win32System(new Api(await loadKoffi()));
  }

  get raw(): Api {
    return this.api;
  }

  /** GetTokenInformation into native memory (so the pointers inside stay valid), then `read`. */
  private withTokenInfo<T>(cls: number, read: (p: bigint) => T): T {
    const a = this.api;
    const current = a.fn('kernel32.dll', 'void * __stdcall GetCurrentProcess()')() as bigint;
    const th = Buffer.alloc(8);
    a.check('OpenProcessToken', a.fn('advapi32.dll', 'int __stdcall OpenProcessToken(void *p, uint32 access, _Out_ void *token)')(current, TOKEN_QUERY, th));
    const gti = a.fn('advapi32.dll', 'int __stdcall GetTokenInformation(void *t, int cls, void *buf, uint32 len, _Out_ uint32 *ret)');
    const need = [0];
    gti(u64(th), cls, null, 0, need);
    const p = a.alloc(Buffer.alloc(Math.max(need[0]!, 8)));
    try {
      a.check('GetTokenInformation', gti(u64(th), cls, p, Math.max(need[0]!, 8), need));
      return read(p);
    } finally {
      a.free(p);
      a.closeHandle(u64(th));
    }
  }

  async currentUser() {
    const a = this.api;
    // TOKEN_USER { SID_AND_ATTRIBUTES User { PSID Sid; DWORD Attributes; } }
    const sid = this.withTokenInfo(TokenUser, (p) => a.sidToString(u64(a.read(p, 8))));
    // TOKEN_ELEVATION { DWORD TokenIsElevated; }
    const elevated = this.withTokenInfo(TokenElevation, (p) => a.read(p, 4).readUInt32LE(0) !== 0);
    let name = process.env.USERNAME ?? sid;
    try {
      name = await this.groupNameOf(sid);
    } catch {
      // Keep USERNAME: the name is only for messages.
    }
    return { name, sid, elevated };
  }

  async lookupAccount(name: string): Promise<AccountInfo | null> {
    const a = this.api;
    const f = a.fn('advapi32.dll', 'int __stdcall LookupAccountNameW(str16 system, str16 name, void *sid, _Inout_ uint32 *cbSid, void *domain, _Inout_ uint32 *cchDomain, _Out_ int *use)');
    const cb = [0];
    const cch = [0];
    const use = [0];
    f(null, name, null, cb, null, cch, use);
    const err = a.lastError();
    if (err === 1332) return null;
    if (cb[0] === 0) throw new Win32Error('LookupAccountNameW', err, describeError(err));
    const sid = Buffer.alloc(cb[0]!);
    const domain = Buffer.alloc(cch[0]! * 2);
    a.check('LookupAccountNameW', f(null, name, sid, cb, domain, cch, use));
    const psid = a.alloc(sid);
    const sidString = a.sidToString(psid);
    a.free(psid);
    // SID_NAME_USE: 1 user, 2 group, 4 alias (local group), 5 well-known group.
    return { name, sid: sidString, kind: use[0] === 1 ? 'user' : 'group', comment: '' };
  }

  private netCheck(api: string, status: number): void {
    if (status !== 0) throw new Win32Error(api, status, describeError(status));
  }

  async createLocalGroup(name: string, comment: string): Promise<string> {
    // LOCALGROUP_INFO_1 { LPWSTR name; LPWSTR comment; }
    const a = this.api;
    const nameP = a.alloc(Buffer.from(name + '\0', 'utf16le'));
    const commentP = a.alloc(Buffer.from(comment + '\0', 'utf16le'));
    const info = Buffer.alloc(16);
    info.writeBigUInt64LE(nameP, 0);
    info.writeBigUInt64LE(commentP, 8);
    try {
      this.netCheck('NetLocalGroupAdd', a.fn('netapi32.dll', 'uint32 __stdcall NetLocalGroupAdd(str16 server, uint32 level, void *buf, _Out_ uint32 *err)')(null, 1, info, [0]) as number);
    } finally {
      a.free(nameP);
      a.free(commentP);
    }
    return (await this.lookupAccount(name))!.sid;
  }

  async deleteLocalGroup(name: string): Promise<void> {
    this.netCheck('NetLocalGroupDel', this.api.fn('netapi32.dll', 'uint32 __stdcall NetLocalGroupDel(str16 server, str16 name)')(null, name) as number);
  }

  async createLocalUser(name: string, password: string, comment: string): Promise<string> {
    // USER_INFO_1 { LPWSTR name, password; DWORD password_age, priv; LPWSTR home_dir, comment; DWORD flags; LPWSTR script_path; } (64 bytes)
    const a = this.api;
    const strings = [name, password, comment].map((s) => a.alloc(Buffer.from(s + '\0', 'utf16le')));
    const info = Buffer.alloc(64);
    info.writeBigUInt64LE(strings[0]!, 0);
    info.writeBigUInt64LE(strings[1]!, 8);
    info.writeUInt32LE(0, 16);
    info.writeUInt32LE(USER_PRIV_USER, 20);
    info.writeBigUInt64LE(0n, 24);
    info.writeBigUInt64LE(strings[2]!, 32);
    info.writeUInt32LE(UF_SCRIPT | UF_DONT_EXPIRE_PASSWD, 40);
    info.writeBigUInt64LE(0n, 48);
    try {
      this.netCheck('NetUserAdd', a.fn('netapi32.dll', 'uint32 __stdcall NetUserAdd(str16 server, uint32 level, void *buf, _Out_ uint32 *err)')(null, 1, info, [0]) as number);
    } finally {
      a.scrub(strings[1]!, Buffer.byteLength(password, 'utf16le'));
      strings.forEach((p) => a.free(p));
    }
    return (await this.lookupAccount(name))!.sid;
  }

  async setUserPassword(name: string, password: string): Promise<void> {
    // USER_INFO_1003 { LPWSTR password; }
    const a = this.api;
    const p = a.alloc(Buffer.from(password + '\0', 'utf16le'));
    const info = Buffer.alloc(8);
    info.writeBigUInt64LE(p, 0);
    try {
      this.netCheck('NetUserSetInfo', a.fn('netapi32.dll', 'uint32 __stdcall NetUserSetInfo(str16 server, str16 user, uint32 level, void *buf, _Out_ uint32 *err)')(null, name, 1003, info, [0]) as number);
    } finally {
      a.scrub(p, Buffer.byteLength(password, 'utf16le'));
      a.free(p);
    }
  }

  async deleteLocalUser(name: string): Promise<void> {
    this.netCheck('NetUserDel', this.api.fn('netapi32.dll', 'uint32 __stdcall NetUserDel(str16 server, str16 user)')(null, name) as number);
  }

  private members(api: 'NetLocalGroupAddMembers' | 'NetLocalGroupDelMembers', group: string, memberSid: string): void {
    // LOCALGROUP_MEMBERS_INFO_0 { PSID sid; }
    const a = this.api;
    const psid = a.sidFromString(memberSid);
    const info = Buffer.alloc(8);
    info.writeBigUInt64LE(psid, 0);
    try {
      this.netCheck(api, a.fn('netapi32.dll', `uint32 __stdcall ${api}(str16 server, str16 group, uint32 level, void *buf, uint32 count)`)(null, group, 0, info, 1) as number);
    } finally {
      a.free(psid);
    }
  }

  async addGroupMember(group: string, memberSid: string): Promise<void> {
    this.members('NetLocalGroupAddMembers', group, memberSid);
  }

  async removeGroupMember(group: string, memberSid: string): Promise<void> {
    this.members('NetLocalGroupDelMembers', group, memberSid);
  }

  async groupMembers(group: string): Promise<string[]> {
    const a = this.api;
    const buf = Buffer.alloc(8);
    const read = [0];
    const status = a.fn('netapi32.dll', 'uint32 __stdcall NetLocalGroupGetMembers(str16 server, str16 group, uint32 level, _Out_ void *buf, uint32 max, _Out_ uint32 *read, _Out_ uint32 *total, void *resume)')(null, group, 0, buf, 0xffffffff, read, [0], null) as number;
    this.netCheck('NetLocalGroupGetMembers', status);
    const base = u64(buf);
    const out: string[] = [];
    try {
      const entries = a.read(base, read[0]! * 8);
      for (let i = 0; i < read[0]!; i += 1) out.push(a.sidToString(u64(entries, i * 8)));
    } finally {
      a.fn('netapi32.dll', 'uint32 __stdcall NetApiBufferFree(void *buf)')(base);
    }
    return out;
  }

  async groupNameOf(sid: string): Promise<string> {
    const a = this.api;
    const psid = a.sidFromString(sid);
    try {
      const name = Buffer.alloc(512);
      const domain = Buffer.alloc(512);
      a.check('LookupAccountSidW', a.fn('advapi32.dll', 'int __stdcall LookupAccountSidW(str16 system, void *sid, void *name, _Inout_ uint32 *cch, void *domain, _Inout_ uint32 *cchDomain, _Out_ int *use)')(null, psid, name, [256], domain, [256], [0]));
      return name.toString('utf16le').split('\0')[0]!;
    } finally {
      a.free(psid);
    }
  }

  async setUserHidden(name: string, hidden: boolean): Promise<void> {
    const args = hidden ? ['add', USERLIST_KEY, '/v', name, '/t', 'REG_DWORD', '/d', '0', '/f'] : ['delete', USERLIST_KEY, '/v', name, '/f'];
    const r = await tool('reg.exe', 'reg.exe', args);
    if (r.code !== 0 && hidden) throw new Win32Error('reg.exe', r.code, r.stdout.trim() || 'reg add failed');
  }

  async isUserHidden(name: string): Promise<boolean> {
    return (await tool('reg.exe', 'reg.exe', ['query', USERLIST_KEY, '/v', name])).code === 0;
  }

  private lsa<T>(action: (policy: bigint) => T): T {
    const a = this.api;
    const attrs = Buffer.alloc(48); // LSA_OBJECT_ATTRIBUTES, zeroed
    const handle = Buffer.alloc(8);
    const status = a.fn('advapi32.dll', 'uint32 __stdcall LsaOpenPolicy(void *system, void *attrs, uint32 access, _Out_ void *handle)')(null, attrs, 0x00000800 | 0x00000010, handle) as number;
    if (status !== 0) throw this.lsaError('LsaOpenPolicy', status);
    try {
      return action(u64(handle));
    } finally {
      a.fn('advapi32.dll', 'uint32 __stdcall LsaClose(void *h)')(u64(handle));
    }
  }

  private lsaError(api: string, status: number): Win32Error {
    const code = this.api.fn('advapi32.dll', 'uint32 __stdcall LsaNtStatusToWinError(uint32 status)')(status) as number;
    return new Win32Error(api, code, describeError(code));
  }

  /** LSA_UNICODE_STRING[] { USHORT Length, MaximumLength; PWSTR Buffer; } (16 bytes each). */
  private unicodeStrings(values: string[]): { array: Buffer; owned: bigint[] } {
    const owned: bigint[] = [];
    const array = Buffer.alloc(16 * values.length);
    values.forEach((v, i) => {
      const bytes = Buffer.from(v, 'utf16le');
      const p = this.api.alloc(Buffer.concat([bytes, Buffer.alloc(2)]));
      owned.push(p);
      array.writeUInt16LE(bytes.length, i * 16);
      array.writeUInt16LE(bytes.length + 2, i * 16 + 2);
      array.writeBigUInt64LE(p, i * 16 + 8);
    });
    return { array, owned };
  }

  async accountRights(sid: string): Promise<string[]> {
    const a = this.api;
    return this.lsa((policy) => {
      const psid = a.sidFromString(sid);
      try {
        const rights = Buffer.alloc(8);
        const count = [0];
        const status = a.fn('advapi32.dll', 'uint32 __stdcall LsaEnumerateAccountRights(void *policy, void *sid, _Out_ void *rights, _Out_ uint32 *count)')(policy, psid, rights, count) as number;
        if (status === STATUS_OBJECT_NAME_NOT_FOUND) return [];
        if (status !== 0) throw this.lsaError('LsaEnumerateAccountRights', status);
        const base = u64(rights);
        const entries = a.read(base, count[0]! * 16);
        const out: string[] = [];
        for (let i = 0; i < count[0]!; i += 1) out.push(a.read(u64(entries, i * 16 + 8), entries.readUInt16LE(i * 16)).toString('utf16le'));
        a.fn('advapi32.dll', 'uint32 __stdcall LsaFreeMemory(void *p)')(base);
        return out;
      } finally {
        a.free(psid);
      }
    });
  }

  private changeRights(api: 'LsaAddAccountRights' | 'LsaRemoveAccountRights', sid: string, rights: string[]): void {
    const a = this.api;
    this.lsa((policy) => {
      const psid = a.sidFromString(sid);
      const { array, owned } = this.unicodeStrings(rights);
      try {
        const signature = api === 'LsaAddAccountRights'
          ? 'uint32 __stdcall LsaAddAccountRights(void *policy, void *sid, void *rights, uint32 count)'
          : 'uint32 __stdcall LsaRemoveAccountRights(void *policy, void *sid, int all, void *rights, uint32 count)';
        const status = (api === 'LsaAddAccountRights'
          ? a.fn('advapi32.dll', signature)(policy, psid, array, rights.length)
          : a.fn('advapi32.dll', signature)(policy, psid, 0, array, rights.length)) as number;
        if (status !== 0 && !(api === 'LsaRemoveAccountRights' && status === STATUS_OBJECT_NAME_NOT_FOUND)) throw this.lsaError(api, status);
      } finally {
        owned.forEach((p) => a.free(p));
        a.free(psid);
      }
    });
  }

  async addAccountRights(sid: string, rights: string[]): Promise<void> {
    this.changeRights('LsaAddAccountRights', sid, rights);
  }

  async removeAccountRights(sid: string, rights: string[]): Promise<void> {
    this.changeRights('LsaRemoveAccountRights', sid, rights);
  }

  async deleteUserProfile(sid: string): Promise<void> {
    const a = this.api;
    const ok = a.fn('userenv.dll', 'int __stdcall DeleteProfileW(str16 sid, str16 path, str16 computer)')(sid, null, null);
    if (!ok) {
      const code = a.lastError();
      if (code !== ERROR_FILE_NOT_FOUND) throw new Win32Error('DeleteProfileW', code, describeError(code));
    }
  }

  private dpapi(api: 'CryptProtectData' | 'CryptUnprotectData', input: Buffer): Buffer {
    // DATA_BLOB { DWORD cbData; BYTE *pbData; } (16 bytes)
    const a = this.api;
    const data = a.alloc(input);
    const inBlob = Buffer.alloc(16);
    inBlob.writeUInt32LE(input.length, 0);
    inBlob.writeBigUInt64LE(data, 8);
    const outBlob = Buffer.alloc(16);
    try {
      const ok = api === 'CryptProtectData'
        ? a.fn('crypt32.dll', 'int __stdcall CryptProtectData(void *in, str16 desc, void *entropy, void *reserved, void *prompt, uint32 flags, void *out)')(inBlob, 'cordon', null, null, null, CRYPTPROTECT_UI_FORBIDDEN | CRYPTPROTECT_LOCAL_MACHINE, outBlob)
        : a.fn('crypt32.dll', 'int __stdcall CryptUnprotectData(void *in, void *desc, void *entropy, void *reserved, void *prompt, uint32 flags, void *out)')(inBlob, null, null, null, null, CRYPTPROTECT_UI_FORBIDDEN, outBlob);
      a.check(api, ok);
      const result = a.read(u64(outBlob, 8), outBlob.readUInt32LE(0));
      a.free(u64(outBlob, 8));
      return result;
    } finally {
      Buffer.from(a.koffi.view(data, input.length)).fill(0);
      a.free(data);
    }
  }

  async protectData(plain: Buffer): Promise<Buffer> {
    return this.dpapi('CryptProtectData', plain);
  }

  async unprotectData(blob: Buffer): Promise<Buffer> {
    return this.dpapi('CryptUnprotectData', blob);
  }

  async pathInfo(p: string): Promise<PathInfo | null> {
    try {
      const st = lstatSync(p);
      return { kind: st.isDirectory() || (st.isSymbolicLink() && statSync(p, { throwIfNoEntry: false })?.isDirectory() === true) ? 'dir' : 'file', reparse: st.isSymbolicLink(), links: st.nlink };
    } catch {
      return null;
    }
  }

  async createDirectory(p: string, sddl?: string): Promise<void> {
    if (!sddl) {
      mkdirSync(p);
      return;
    }
    const a = this.api;
    const psd = a.sdFromSddl(sddl);
    try {
      a.check('CreateDirectoryW', a.fn('kernel32.dll', 'int __stdcall CreateDirectoryW(str16 path, void *sa)')(p, a.securityAttributes(psd, false)));
    } finally {
      a.free(psd);
    }
  }

  async writeFileWithSddl(p: string, data: Buffer, sddl: string): Promise<void> {
    const a = this.api;
    // CREATE_ALWAYS ignores the security attributes of an existing file: remove it first.
    if (existsSync(p)) rmSync(p);
    const psd = a.sdFromSddl(sddl);
    try {
      const h = a.fn('kernel32.dll', 'void * __stdcall CreateFileW(str16 name, uint32 access, uint32 share, void *sa, uint32 disp, uint32 flags, void *tmpl)')(p, GENERIC_WRITE, 0, a.securityAttributes(psd, false), CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, null) as bigint;
      if (h === INVALID_HANDLE) {
        const code = a.lastError();
        throw new Win32Error('CreateFileW', code, `${p}: ${describeError(code)}`);
      }
      try {
        const written = [0];
        a.check('WriteFile', a.fn('kernel32.dll', 'int __stdcall WriteFile(void *h, void *buf, uint32 n, _Out_ uint32 *written, void *ov)')(h, data, data.length, written, null));
        if (written[0] !== data.length) throw new Win32Error('WriteFile', 0, `${p}: short write`);
      } finally {
        a.closeHandle(h);
      }
    } finally {
      a.free(psd);
    }
  }

  async readFile(p: string): Promise<Buffer | null> {
    return existsSync(p) ? readFileSync(p) : null;
  }

  async removeFile(p: string): Promise<void> {
    rmSync(p);
  }

  async removeDirectory(p: string): Promise<void> {
    try {
      rmSync(p, { recursive: false });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOTEMPTY') throw new Win32Error('RemoveDirectoryW', 145, `${p}: the directory is not empty`);
      throw e;
    }
  }

  async removeTree(p: string): Promise<void> {
    rmSync(p, { recursive: true, force: true });
  }

  private parsed(p: string): { dacl: (Ace & { raw?: string })[] | null; isProtected: boolean } {
    const sddl = this.api.fileSddl(p);
    const dPart = sddl.slice(sddl.indexOf('D:'));
    if (dPart === 'D:NO_ACCESS_CONTROL') return { dacl: null, isProtected: false };
    const { dacl, daclProtected } = parseDacl(dPart, { lenient: true });
    return { dacl, isProtected: daclProtected };
  }

  async dacl(p: string): Promise<Ace[] | null> {
    return this.parsed(p).dacl;
  }

  async listDirectory(p: string): Promise<{ name: string; kind: 'file' | 'dir'; reparse: boolean }[]> {
    return readdirSync(p, { withFileTypes: true }).map((e) => ({ name: e.name, kind: e.isDirectory() ? 'dir' : 'file', reparse: e.isSymbolicLink() }));
  }

  async explicitAces(p: string): Promise<Ace[]> {
    return (this.parsed(p).dacl ?? []).filter((x) => !isInherited(x));
  }

  /** Rewrites the explicit part of the DACL; Windows re-merges the inherited part and propagates. */
  private rewrite(p: string, change: (explicit: (Ace & { raw?: string })[]) => (Ace & { raw?: string })[]): void {
    const { dacl, isProtected } = this.parsed(p);
    const explicit = change((dacl ?? []).filter((x) => !isInherited(x)));
    const deny = explicit.filter((x) => x.type === 'deny');
    const allow = explicit.filter((x) => x.type === 'allow');
    const text = [...deny, ...allow].map((x) => x.raw ?? aceToSddl(x)).join('');
    this.api.setFileDacl(p, `D:${isProtected ? 'P' : ''}${text}`, isProtected);
  }

  async addAces(p: string, aces: Ace[]): Promise<void> {
    this.rewrite(p, (explicit) => {
      const out = explicit.map((x) => ({ ...x }));
      for (const w of aces) {
        const same = out.find((x) => !x.raw && x.type === w.type && x.sid === w.sid && (x.flags & 0xf) === (w.flags & 0xf));
        if (same) same.mask = (same.mask | w.mask) >>> 0;
        else out.push({ ...w });
      }
      return out;
    });
  }

  async removeAces(p: string, aces: Ace[]): Promise<void> {
    this.rewrite(p, (explicit) => explicit.map((x) => {
      const r = aces.find((w) => !x.raw && w.type === x.type && w.sid === x.sid && (w.flags & 0xf) === (x.flags & 0xf));
      return r ? { ...x, mask: (x.mask & ~r.mask) >>> 0 } : x;
    }).filter((x) => x.raw !== undefined || x.mask !== 0));
  }

  async protectInheritance(p: string): Promise<void> {
    const r = await tool('icacls.exe', 'icacls.exe', [p, '/inheritance:d', '/Q']);
    if (r.code !== 0) throw new Win32Error('icacls /inheritance:d', r.code, r.stdout.trim().split('\n')[0] ?? 'failed');
  }

  async multiLinkFiles(root: string, maxEntries: number): Promise<string[]> {
    const found: string[] = [];
    let seen = 0;
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (++seen > maxEntries) throw new Win32Error('FindNextFileW', 0, `${root} holds more than ${maxEntries} entries; cordon stopped looking for hard links (raise the budget or pick a smaller root)`);
        const full = win.join(dir, e.name);
        if (e.isSymbolicLink()) continue;
        if (e.isDirectory()) walk(full);
        else if (lstatSync(full).nlink > 1) found.push(full);
      }
    };
    walk(root);
    return found;
  }

  async getFirewallRule(name: string): Promise<FirewallRule | null> {
    // The rule is stored with cordon's JSON in its Description; the effective fields are read back
    // and must agree with it, so that a rule changed by someone else does not pass as cordon's.
    const out = await powershell(`
      $r = Get-NetFirewallRule -Name $env:CORDON_RULE -ErrorAction SilentlyContinue
      if ($null -eq $r) { 'null'; exit 0 }
      $s = $r | Get-NetFirewallSecurityFilter
      [pscustomobject]@{ description = $r.Description; enabled = [string]$r.Enabled; action = [string]$r.Action; direction = [string]$r.Direction; localUser = $s.LocalUser } | ConvertTo-Json -Compress`, { CORDON_RULE: name });
    if (out.trim() === 'null') return null;
    const got = JSON.parse(out) as { description: string; enabled: string; action: string; direction: string; localUser: string };
    let rule: FirewallRule;
    try {
      rule = JSON.parse(got.description.replace(/^cordon:/, '')) as FirewallRule;
    } catch {
      return { name, direction: 'out', action: 'allow', enabled: false, protocol: 'any', remoteAddresses: 'any', remotePorts: 'any', localUserSddl: 'not cordon\'s rule' };
    }
    const consistent = got.enabled === 'True' && got.action.toLowerCase() === rule.action && got.direction.toLowerCase().startsWith(rule.direction === 'out' ? 'outbound' : 'inbound') &&
      (!rule.localUserSddl || [...rule.localUserSddl.matchAll(/;;;(S-1-[\d-]+)\)/g)].every((m) => got.localUser.includes(m[1]!)));
    return consistent ? rule : { ...rule, enabled: false };
  }

  async putFirewallRule(rule: FirewallRule): Promise<void> {
    const spec = {
      name: rule.name, description: `cordon:${JSON.stringify(rule)}`, direction: rule.direction === 'out' ? 'Outbound' : 'Inbound',
      action: rule.action === 'block' ? 'Block' : 'Allow', enabled: rule.enabled ? 'True' : 'False', protocol: rule.protocol === 'any' ? 'Any' : rule.protocol.toUpperCase(),
      remoteAddress: rule.remoteAddresses === 'any' ? ['Any'] : rule.remoteAddresses, remotePort: rule.remotePorts === 'any' ? ['Any'] : rule.remotePorts,
      localUser: rule.localUserSddl ?? 'Any',
    };
    await powershell(`
      $ErrorActionPreference = 'Stop'
      $s = $env:CORDON_RULE | ConvertFrom-Json
      Remove-NetFirewallRule -Name $s.name -ErrorAction SilentlyContinue
      $p = @{ Name = $s.name; DisplayName = $s.name; Description = $s.description; Direction = $s.direction; Action = $s.action; Enabled = $s.enabled; Profile = 'Any'; Protocol = $s.protocol; RemoteAddress = $s.remoteAddress; LocalUser = $s.localUser }
      if ($s.protocol -ne 'Any') { $p.RemotePort = $s.remotePort }
      New-NetFirewallRule @p | Out-Null`, { CORDON_RULE: JSON.stringify(spec) });
  }

  async removeFirewallRule(name: string): Promise<void> {
    await powershell('Remove-NetFirewallRule -Name $env:CORDON_RULE -ErrorAction SilentlyContinue', { CORDON_RULE: name });
  }

  async probeConnectAs(user: { name: string; password: string }, address: string, port: number): Promise<'connected' | 'blocked'> {
    // A listener here; a short-lived process as `user` tries to reach it. Only a connection the
    // listener actually sees counts as "connected".
    let connected = false;
    const server = net.createServer((s) => {
      connected = true;
      s.destroy();
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, address, () => resolve()));
    try {
      const script = `require('net').connect(${port},${JSON.stringify(address)}).on('connect',()=>process.exit(0)).on('error',()=>process.exit(3)).setTimeout(5000,()=>process.exit(4))`;
      const child = launchWithLogon(this.api, user, `${quoteArg(process.execPath)} -e ${quoteArg(script)}`, process.cwd(), false);
      await waitHandle(this.api, child.process, 20000);
      this.api.closeHandle(child.process);
      this.api.closeHandle(child.thread);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    return connected ? 'connected' : 'blocked';
  }
}

/** CreateProcessWithLogonW(LOGON_WITH_PROFILE). STARTUPINFOW is 104 bytes, PROCESS_INFORMATION 24. */
function launchWithLogon(api: Api, user: { name: string; password: string }, commandLine: string, cwd: string, suspended: boolean): { process: bigint; thread: bigint; pid: number } {
  const si = Buffer.alloc(104);
  si.writeUInt32LE(104, 0);
  const pi = Buffer.alloc(24);
  const cmd = Buffer.from(commandLine + '\0', 'utf16le'); // lpCommandLine must be writable
  const password = Buffer.from(user.password + '\0', 'utf16le');
  try {
    api.check('CreateProcessWithLogonW', api.fn('advapi32.dll', 'int __stdcall CreateProcessWithLogonW(str16 user, str16 domain, void *password, uint32 logonFlags, str16 app, void *cmd, uint32 flags, void *env, str16 cwd, void *si, void *pi)')(
      user.name, '.', password, LOGON_WITH_PROFILE, null, cmd, CREATE_NO_WINDOW | CREATE_UNICODE_ENVIRONMENT | (suspended ? CREATE_SUSPENDED : 0), null, cwd, si, pi));
  } finally {
    password.fill(0);
  }
  return { process: u64(pi, 0), thread: u64(pi, 8), pid: pi.readUInt32LE(16) };
}

/** WaitForSingleObject on a worker thread (koffi async), so the event loop keeps running. */
function waitHandle(api: Api, handle: bigint, timeoutMs: number | null): Promise<number> {
  return new Promise((resolve, reject) => {
    api.fn('kernel32.dll', 'uint32 __stdcall WaitForSingleObject(void *h, uint32 ms)').async(handle, timeoutMs === null ? INFINITE : timeoutMs, (err: unknown, r: number) => (err ? reject(err) : resolve(r)));
  });
}

function exitCode(api: Api, process: bigint): number {
  const code = [0];
  api.check('GetExitCodeProcess', api.fn('kernel32.dll', 'int __stdcall GetExitCodeProcess(void *p, _Out_ uint32 *code)')(process, code));
  return code[0]!;
}

/** Byte stream over a pipe handle: blocking ReadFile/WriteFile on koffi's worker threads. */
function handleStream(api: Api, handle: bigint): FrameStream {
  const dataListeners: ((b: Buffer) => void)[] = [];
  const closeListeners: (() => void)[] = [];
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    closeListeners.forEach((l) => l());
  };
  const readFile = api.fn('kernel32.dll', 'int __stdcall ReadFile(void *h, void *buf, uint32 n, _Out_ uint32 *read, void *ov)');
  const writeFile = api.fn('kernel32.dll', 'int __stdcall WriteFile(void *h, void *buf, uint32 n, _Out_ uint32 *written, void *ov)');
  const pump = () => {
    const buf = Buffer.alloc(65536);
    const read = [0];
    readFile.async(handle, buf, buf.length, read, null, (err: unknown, ok: number) => {
      if (err || !ok || read[0] === 0) return close();
      const chunk = Buffer.from(buf.subarray(0, read[0]));
      dataListeners.forEach((l) => l(chunk));
      pump();
    });
  };
  let writing = Promise.resolve();
  return {
    write(chunk) {
      writing = writing.then(() => new Promise<void>((resolve) => writeFile.async(handle, chunk, chunk.length, [0], null, () => resolve())));
    },
    onData(l) {
      dataListeners.push(l);
      if (dataListeners.length === 1) pump();
    },
    onClose(l) {
      closeListeners.push(l);
    },
    end() {
      void writing.then(() => {
        api.fn('kernel32.dll', 'int __stdcall FlushFileBuffers(void *h)')(handle);
        api.closeHandle(handle);
        close();
      });
    },
  };
}

// --- BrokerApi ----------------------------------------------------------------------------------

export class Win32BrokerApi implements BrokerApi {
  constructor(private readonly api: Api, private readonly runnerScript: string) {}

  static async load(runnerScript: string): Promise<Win32BrokerApi> {
    return new Win32BrokerApi(new Api(await loadKoffi()), runnerScript);
  }

  async createPipeServer(spec: { name: string; sddl: string; maxFrameBytes: number }): Promise<PipeServer> {
    const a = this.api;
    const psd = a.sdFromSddl(spec.sddl);
    const h = a.fn('kernel32.dll', 'void * __stdcall CreateNamedPipeW(str16 name, uint32 open, uint32 mode, uint32 max, uint32 out, uint32 in, uint32 timeout, void *sa)')(
      spec.name, PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE, PIPE_REJECT_REMOTE_CLIENTS, 1, 65536, 65536, 0, a.securityAttributes(psd, false)) as bigint;
    a.free(psd);
    if (h === INVALID_HANDLE) {
      const code = a.lastError();
      throw new Win32Error('CreateNamedPipeW', code, `${spec.name}: ${describeError(code)} (another process may own this pipe name)`);
    }
    let closed = false;
    return {
      accept: (timeoutMs) => new Promise<PipeConnection>((resolve, reject) => {
        let timedOut = false;
        const timer = setTimeout(() => {
          timedOut = true;
          // Unblock ConnectNamedPipe by connecting ourselves; the connection is then discarded.
          const self = a.fn('kernel32.dll', 'void * __stdcall CreateFileW(str16 name, uint32 access, uint32 share, void *sa, uint32 disp, uint32 flags, void *tmpl)')(spec.name, GENERIC_READ, 0, null, OPEN_EXISTING, 0, null) as bigint;
          if (self !== INVALID_HANDLE) a.closeHandle(self);
        }, timeoutMs);
        a.fn('kernel32.dll', 'int __stdcall ConnectNamedPipe(void *h, void *ov)').async(h, null, (err: unknown, ok: number) => {
          clearTimeout(timer);
          if (timedOut) return reject(new Win32Error('ConnectNamedPipe', 0, `no runner connected to ${spec.name} within ${timeoutMs} ms`));
          const code = ok ? 0 : a.lastError();
          if (err || (!ok && code !== ERROR_PIPE_CONNECTED)) return reject(new Win32Error('ConnectNamedPipe', code, describeError(code)));
          const pid = [0];
          a.check('GetNamedPipeClientProcessId', a.fn('kernel32.dll', 'int __stdcall GetNamedPipeClientProcessId(void *h, _Out_ uint32 *pid)')(h, pid));
          resolve({ ...handleStream(a, h), clientPid: pid[0]! });
        });
      }),
      close: async () => {
        if (closed) return;
        closed = true;
        a.fn('kernel32.dll', 'int __stdcall DisconnectNamedPipe(void *h)')(h);
      },
    };
  }

  async launchRunner(user: { name: string; password: string }, pipeName: string, cwd: string): Promise<RunnerProcess> {
    const a = this.api;
    // The runner goes in a kill-on-close job of the broker: if the broker dies, so does the runner,
    // whose own job (kill on close) takes the command with it.
    const job = a.fn('kernel32.dll', 'void * __stdcall CreateJobObjectW(void *sa, str16 name)')(null, null) as bigint;
    if (!job) throw new Win32Error('CreateJobObjectW', a.lastError(), describeError(a.lastError()));
    setJobLimits(a, job, { killOnJobClose: true, breakawayAllowed: false, dieOnUnhandledException: true, activeProcessLimit: null, jobMemoryLimitBytes: null, cpuRate: null, uiRestrictions: [] });
    const commandLine = [process.execPath, this.runnerScript, '--pipe', pipeName].map(quoteArg).join(' ');
    const child = launchWithLogon(a, user, commandLine, cwd, true);
    try {
      a.check('AssignProcessToJobObject', a.fn('kernel32.dll', 'int __stdcall AssignProcessToJobObject(void *job, void *p)')(job, child.process));
      if ((a.fn('kernel32.dll', 'uint32 __stdcall ResumeThread(void *t)')(child.thread) as number) === 0xffffffff) throw new Win32Error('ResumeThread', a.lastError(), 'the runner could not be started');
    } catch (e) {
      a.fn('kernel32.dll', 'int __stdcall TerminateProcess(void *p, uint32 code)')(child.process, 1);
      throw e;
    }
    const exited = waitHandle(a, child.process, null).then(() => exitCode(a, child.process));
    return {
      pid: child.pid,
      exited,
      kill: async () => {
        a.fn('kernel32.dll', 'int __stdcall TerminateProcess(void *p, uint32 code)')(child.process, 1);
        a.closeHandle(job);
      },
    };
  }

  /** Adds an ACE to WinSta0 (the runner needs to create its desktop there). */
  async grantWindowStation(ace: Ace): Promise<void> {
    const a = this.api;
    const winsta = a.fn('user32.dll', 'void * __stdcall GetProcessWindowStation()')() as bigint;
    const psd = Buffer.alloc(8);
    let rc = a.fn('advapi32.dll', 'uint32 __stdcall GetSecurityInfo(void *h, int type, uint32 info, void *owner, void *group, void *dacl, void *sacl, _Out_ void *sd)')(winsta, SE_WINDOW_OBJECT, DACL_SECURITY_INFORMATION, null, null, null, null, psd) as number;
    if (rc !== 0) throw new Win32Error('GetSecurityInfo', rc, describeError(rc));
    const sddl = a.sddlFromSd(u64(psd), DACL_SECURITY_INFORMATION);
    a.free(u64(psd));
    if (sddl.includes(aceToSddl(ace).slice(1, -1))) return;
    const next = a.sdFromSddl(sddl + aceToSddl(ace));
    try {
      rc = a.fn('advapi32.dll', 'uint32 __stdcall SetSecurityInfo(void *h, int type, uint32 info, void *owner, void *group, void *dacl, void *sacl)')(winsta, SE_WINDOW_OBJECT, DACL_SECURITY_INFORMATION, null, null, a.daclOf(next), null) as number;
      if (rc !== 0) throw new Win32Error('SetSecurityInfo', rc, `WinSta0: ${describeError(rc)}`);
    } finally {
      a.free(next);
    }
  }
}

function setJobLimits(a: Api, job: bigint, spec: JobSpec): void {
  // JOBOBJECT_EXTENDED_LIMIT_INFORMATION (144 bytes): LimitFlags @16, ActiveProcessLimit @40,
  // JobMemoryLimit @120.
  const info = Buffer.alloc(144);
  let flags = JOB_LIMIT.KILL_ON_JOB_CLOSE | JOB_LIMIT.DIE_ON_UNHANDLED_EXCEPTION;
  if (spec.activeProcessLimit !== null) {
    flags |= JOB_LIMIT.ACTIVE_PROCESS;
    info.writeUInt32LE(spec.activeProcessLimit, 40);
  }
  if (spec.jobMemoryLimitBytes !== null) {
    flags |= JOB_LIMIT.JOB_MEMORY;
    info.writeBigUInt64LE(BigInt(spec.jobMemoryLimitBytes), 120);
  }
  info.writeUInt32LE(flags, 16);
  const set = a.fn('kernel32.dll', 'int __stdcall SetInformationJobObject(void *job, int cls, void *info, uint32 len)');
  a.check('SetInformationJobObject(ExtendedLimit)', set(job, JobObjectExtendedLimitInformation, info, info.length));
  if (spec.uiRestrictions.length > 0) {
    const ui = Buffer.alloc(4);
    ui.writeUInt32LE(spec.uiRestrictions.reduce((m, r) => m | (UI_LIMIT[r] ?? 0), 0), 0);
    a.check('SetInformationJobObject(BasicUIRestrictions)', set(job, JobObjectBasicUIRestrictions, ui, 4));
  }
  if (spec.cpuRate !== null) {
    const cpu = Buffer.alloc(8);
    cpu.writeUInt32LE(0x1 | 0x4, 0); // ENABLE | HARD_CAP
    cpu.writeUInt32LE(spec.cpuRate, 4);
    a.check('SetInformationJobObject(CpuRateControl)', set(job, JobObjectCpuRateControlInformation, cpu, 8));
  }
}

// --- RunnerApi ----------------------------------------------------------------------------------

export class Win32RunnerApi implements RunnerApi {
  private desktops = new Map<bigint, bigint>();
  constructor(private readonly api: Api) {}

  static async load(): Promise<Win32RunnerApi> {
    return new Win32RunnerApi(new Api(await loadKoffi()));
  }

  async hardenOwnProcess(sddl: string): Promise<void> {
    const a = this.api;
    const psd = a.sdFromSddl(sddl);
    try {
      const self = a.fn('kernel32.dll', 'void * __stdcall GetCurrentProcess()')() as bigint;
      const rc = a.fn('advapi32.dll', 'uint32 __stdcall SetSecurityInfo(void *h, int type, uint32 info, void *owner, void *group, void *dacl, void *sacl)')(self, SE_KERNEL_OBJECT, (DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION) >>> 0, null, null, a.daclOf(psd), null) as number;
      if (rc !== 0) throw new Win32Error('SetSecurityInfo', rc, `runner process: ${describeError(rc)}`);
    } finally {
      a.free(psd);
    }
  }

  async createChildToken(spec: TokenSpec): Promise<Handle> {
    const a = this.api;
    const self = a.fn('kernel32.dll', 'void * __stdcall GetCurrentProcess()')() as bigint;
    const th = Buffer.alloc(8);
    a.check('OpenProcessToken', a.fn('advapi32.dll', 'int __stdcall OpenProcessToken(void *p, uint32 access, _Out_ void *token)')(self, TOKEN_ACCESS, th));
    const token = u64(th);
    const owned: bigint[] = [];
    try {
      const disable = [...spec.sidsToDisable];
      if (spec.disableLogonSids) disable.push(...this.logonSids(token));
      // SID_AND_ATTRIBUTES { PSID Sid; DWORD Attributes; } (16 bytes), attributes 0.
      const array = (sids: string[]) => {
        const b = Buffer.alloc(16 * Math.max(1, sids.length));
        sids.forEach((s, i) => {
          const p = a.sidFromString(s);
          owned.push(p);
          b.writeBigUInt64LE(p, i * 16);
        });
        return b;
      };
      const flags = (spec.flags.includes('DISABLE_MAX_PRIVILEGE') ? DISABLE_MAX_PRIVILEGE : 0) | (spec.flags.includes('WRITE_RESTRICTED') ? WRITE_RESTRICTED : 0) | (spec.flags.includes('LUA_TOKEN') ? LUA_TOKEN : 0);
      const out = Buffer.alloc(8);
      a.check('CreateRestrictedToken', a.fn('advapi32.dll', 'int __stdcall CreateRestrictedToken(void *t, uint32 flags, uint32 nd, void *disable, uint32 np, void *privs, uint32 nr, void *restrict, _Out_ void *out)')(
        token, flags, disable.length, array(disable), 0, null, spec.restrictingSids.length, array(spec.restrictingSids), out));
      const child = u64(out);
      // TOKEN_DEFAULT_DACL { PACL DefaultDacl; }
      const psd = a.sdFromSddl(`D:${spec.defaultDacl.map(aceToSddl).join('')}`);
      try {
        const tdd = Buffer.alloc(8);
        tdd.writeBigUInt64LE(a.daclOf(psd), 0);
        a.check('SetTokenInformation(TokenDefaultDacl)', a.fn('advapi32.dll', 'int __stdcall SetTokenInformation(void *t, int cls, void *info, uint32 len)')(child, TokenDefaultDacl, tdd, 8));
      } finally {
        a.free(psd);
      }
      return child;
    } finally {
      owned.forEach((p) => a.free(p));
      a.closeHandle(token);
    }
  }

  /** Logon SIDs of a token (TOKEN_GROUPS entries with SE_GROUP_LOGON_ID). */
  private logonSids(token: bigint): string[] {
    const a = this.api;
    const need = [0];
    const gti = a.fn('advapi32.dll', 'int __stdcall GetTokenInformation(void *t, int cls, void *buf, uint32 len, _Out_ uint32 *ret)');
    gti(token, TokenGroups, null, 0, need);
    const p = a.alloc(Buffer.alloc(need[0]!));
    try {
      a.check('GetTokenInformation(TokenGroups)', gti(token, TokenGroups, p, need[0]!, need));
      const groups = a.read(p, need[0]!);
      const count = groups.readUInt32LE(0);
      const out: string[] = [];
      for (let i = 0; i < count; i += 1) {
        const attrs = groups.readUInt32LE(8 + i * 16 + 8);
        if ((attrs & SE_GROUP_LOGON_ID) === SE_GROUP_LOGON_ID) out.push(a.sidToString(u64(groups, 8 + i * 16)));
      }
      return out;
    } finally {
      a.free(p);
    }
  }

  async createDesktop(name: string, sddl: string): Promise<Handle> {
    const a = this.api;
    const psd = a.sdFromSddl(sddl);
    try {
      const h = a.fn('user32.dll', 'void * __stdcall CreateDesktopW(str16 name, void *device, void *mode, uint32 flags, uint32 access, void *sa)')(name, null, null, 0, DESKTOP_ALL_ACCESS, a.securityAttributes(psd, false)) as bigint;
      if (!h) throw new Win32Error('CreateDesktopW', a.lastError(), `WinSta0\\${name}: ${describeError(a.lastError())}`);
      return h;
    } finally {
      a.free(psd);
    }
  }

  async createJob(spec: JobSpec): Promise<Handle> {
    const a = this.api;
    const job = a.fn('kernel32.dll', 'void * __stdcall CreateJobObjectW(void *sa, str16 name)')(null, null) as bigint;
    if (!job) throw new Win32Error('CreateJobObjectW', a.lastError(), describeError(a.lastError()));
    setJobLimits(a, job, spec);
    return job;
  }

  async createSuspended(token: Handle, spec: ProcessSpec, desktop: string, _stdio: ChildStdio): Promise<SpawnedChild> {
    const a = this.api;
    const sa = a.securityAttributes(null, true);
    const createPipe = a.fn('kernel32.dll', 'int __stdcall CreatePipe(_Out_ void *read, _Out_ void *write, void *sa, uint32 size)');
    const noInherit = a.fn('kernel32.dll', 'int __stdcall SetHandleInformation(void *h, uint32 mask, uint32 flags)');
    const pipe = () => {
      const r = Buffer.alloc(8);
      const w = Buffer.alloc(8);
      a.check('CreatePipe', createPipe(r, w, sa, 0));
      return { read: u64(r), write: u64(w) };
    };
    const stdin = pipe();
    const stdout = pipe();
    const stderr = pipe();
    for (const parentEnd of [stdin.write, stdout.read, stderr.read]) a.check('SetHandleInformation', noInherit(parentEnd, HANDLE_FLAG_INHERIT, 0));
    const childEnds = [stdin.read, stdout.write, stderr.write];

    // PROC_THREAD_ATTRIBUTE_HANDLE_LIST: the child inherits its three stdio handles and nothing else.
    const size = [0];
    const init = a.fn('kernel32.dll', 'int __stdcall InitializeProcThreadAttributeList(void *list, uint32 count, uint32 flags, _Inout_ uintptr_t *size)');
    init(null, 1, 0, size);
    const list = a.alloc(Buffer.alloc(size[0]!));
    const handles = a.alloc(Buffer.concat(childEnds.map((h) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(h); return b; })));
    const desktopName = a.alloc(Buffer.from(desktop + '\0', 'utf16le'));
    try {
      a.check('InitializeProcThreadAttributeList', init(list, 1, 0, size));
      a.check('UpdateProcThreadAttribute', a.fn('kernel32.dll', 'int __stdcall UpdateProcThreadAttribute(void *list, uint32 flags, uintptr_t attr, void *value, uintptr_t size, void *prev, void *ret)')(list, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, handles, 24, null, null));
      // STARTUPINFOEXW: STARTUPINFOW (104 bytes: lpDesktop @16, dwFlags @60, hStdInput @80,
      // hStdOutput @88, hStdError @96) + lpAttributeList @104.
      const si = Buffer.alloc(112);
      si.writeUInt32LE(112, 0);
      si.writeBigUInt64LE(desktopName, 16);
      si.writeUInt32LE(STARTF_USESTDHANDLES, 60);
      si.writeBigUInt64LE(stdin.read, 80);
      si.writeBigUInt64LE(stdout.write, 88);
      si.writeBigUInt64LE(stderr.write, 96);
      si.writeBigUInt64LE(list, 104);
      const pi = Buffer.alloc(24);
      const cmd = Buffer.from(spec.argv.map(quoteArg).join(' ') + '\0', 'utf16le');
      a.check('CreateProcessAsUserW', a.fn('advapi32.dll', 'int __stdcall CreateProcessAsUserW(void *token, str16 app, void *cmd, void *psa, void *tsa, int inherit, uint32 flags, void *env, str16 cwd, void *si, void *pi)')(
        token, null, cmd, null, null, 1, CREATE_SUSPENDED | CREATE_UNICODE_ENVIRONMENT | EXTENDED_STARTUPINFO_PRESENT | CREATE_NEW_PROCESS_GROUP, environmentBlock(spec.env), spec.cwd, si, pi));
      childEnds.forEach((h) => a.closeHandle(h));
      const fd = (h: bigint) => a.fn('ucrtbase.dll', 'int _open_osfhandle(intptr_t h, int flags)')(h, 0) as number;
      const out = createReadStream('', { fd: fd(stdout.read) });
      const err = createReadStream('', { fd: fd(stderr.read) });
      const input = createWriteStream('', { fd: fd(stdin.write) });
      return {
        process: u64(pi, 0), thread: u64(pi, 8), pid: pi.readUInt32LE(16),
        write: (data) => void input.write(data),
        closeStdin: () => void input.end(),
        onStdout: (l) => void out.on('data', (c) => l(Buffer.from(c as Buffer))),
        onStderr: (l) => void err.on('data', (c) => l(Buffer.from(c as Buffer))),
      };
    } finally {
      a.fn('kernel32.dll', 'void __stdcall DeleteProcThreadAttributeList(void *list)')(list);
      a.free(list);
      a.free(handles);
      a.free(desktopName);
    }
  }

  async assignToJob(job: Handle, process: Handle): Promise<void> {
    this.api.check('AssignProcessToJobObject', this.api.fn('kernel32.dll', 'int __stdcall AssignProcessToJobObject(void *job, void *p)')(job, process));
  }

  async resume(thread: Handle): Promise<void> {
    const r = this.api.fn('kernel32.dll', 'uint32 __stdcall ResumeThread(void *t)')(thread) as number;
    if (r === 0xffffffff) throw new Win32Error('ResumeThread', this.api.lastError(), 'the command could not be started');
  }

  async wait(process: Handle, timeoutMs: number | null): Promise<number | 'timeout'> {
    const r = await waitHandle(this.api, process, timeoutMs);
    if (r === WAIT_TIMEOUT) return 'timeout';
    if (r !== WAIT_OBJECT_0) throw new Win32Error('WaitForSingleObject', this.api.lastError(), 'wait failed');
    return exitCode(this.api, process);
  }

  async terminateJob(job: Handle, code: number): Promise<void> {
    this.api.check('TerminateJobObject', this.api.fn('kernel32.dll', 'int __stdcall TerminateJobObject(void *job, uint32 code)')(job, code));
  }

  async terminateProcess(process: Handle, code: number): Promise<void> {
    this.api.check('TerminateProcess', this.api.fn('kernel32.dll', 'int __stdcall TerminateProcess(void *p, uint32 code)')(process, code));
  }

  async closeHandle(handle: Handle): Promise<void> {
    this.api.closeHandle(handle);
  }

  async closeDesktop(handle: Handle): Promise<void> {
    this.api.fn('user32.dll', 'int __stdcall CloseDesktop(void *h)')(handle);
    this.desktops.delete(handle);
  }
}

/** The runner's end of the pipe: CreateFileW on the pipe name. */
export async function openPipeClient(name: string): Promise<FrameStream> {
  const a = new Api(await loadKoffi());
  const h = a.fn('kernel32.dll', 'void * __stdcall CreateFileW(str16 name, uint32 access, uint32 share, void *sa, uint32 disp, uint32 flags, void *tmpl)')(name, GENERIC_READ | GENERIC_WRITE, 0, null, OPEN_EXISTING, 0, null) as bigint;
  if (h === INVALID_HANDLE) {
    const code = a.lastError();
    throw new Win32Error('CreateFileW', code, `${name}: ${describeError(code)}`);
  }
  return handleStream(a, h);
}

/** The resolver's view of the real disk. */
export function realHost(env: Record<string, string>, cwd: string, totalMemoryBytes: number): WindowsHost {
  return {
    env, cwd, totalMemoryBytes,
    stat(p) {
      const st = statSync(p, { throwIfNoEntry: false });
      return st ? { kind: st.isDirectory() ? 'dir' : 'file' } : null;
    },
    lstat(p) {
      try {
        const st = lstatSync(p);
        return { kind: st.isDirectory() || (st.isSymbolicLink() && statSync(p, { throwIfNoEntry: false })?.isDirectory() === true) ? 'dir' : 'file', reparse: st.isSymbolicLink() };
      } catch {
        return null;
      }
    },
    realPath: (p) => realpathSync.native(p),
    list: (p) => readdirSync(p, { withFileTypes: true }).map((e) => ({ name: e.name, kind: e.isDirectory() ? 'dir' : 'file', reparse: e.isSymbolicLink() })),
    readText(p) {
      try {
        return readFileSync(p, 'utf8');
      } catch {
        return null;
      }
    },
  };
}

export { ERROR_BROKEN_PIPE };
