// The Win32 layer the orchestration talks to. Each method is one documented call (or one documented
// built-in tool invocation) so that failures map one-to-one to a Win32 error. Implementations:
// - win32.ts: the real one (koffi + icacls/PowerShell), loaded only on Windows;
// - model/system.ts: the simulated machine, used on Linux to test the orchestration and to run the
//   conformance probes on the state the orchestration leaves behind;
// - model/recording.ts: a wrapper that records calls and fails on demand.

import type { Ace } from '../acl.js';
import type { FirewallRule } from '../types.js';

/** A Win32 failure: the API, the numeric code (GetLastError, NTSTATUS or HRESULT) and a sentence. */
export class Win32Error extends Error {
  constructor(readonly api: string, readonly code: number, message: string) {
    super(`${api} failed (${code}): ${message}`);
  }
}

/** Win32 codes the orchestration branches on. */
export const ERROR = {
  ACCESS_DENIED: 5,
  FILE_NOT_FOUND: 2,
  PATH_NOT_FOUND: 3,
  ALREADY_EXISTS: 183,
  DIR_NOT_EMPTY: 145,
  ALIAS_EXISTS: 1379,
  MEMBER_IN_ALIAS: 1378,
  NONE_MAPPED: 1332,
  NO_SUCH_LOGON_SESSION: 1312,
  CANCELLED: 1223,
  NERR_GROUP_EXISTS: 2223,
  NERR_USER_EXISTS: 2224,
  NERR_USER_NOT_FOUND: 2221,
  NERR_GROUP_NOT_FOUND: 2220,
} as const;

export interface AccountInfo {
  name: string;
  sid: string;
  kind: 'user' | 'group';
  comment: string;
}

export interface PathInfo {
  kind: 'file' | 'dir';
  reparse: boolean;
  links: number;
}

export interface WindowsSystem {
  /** GetTokenInformation(TokenUser) + CheckTokenMembership(Administrators). */
  currentUser(): Promise<{ name: string; sid: string; elevated: boolean }>;

  // Accounts: NetLocalGroupAdd/Del, NetUserAdd/Del, NetUserSetInfo(1003), NetLocalGroupAddMembers(3),
  // NetLocalGroupGetMembers, LookupAccountNameW.
  lookupAccount(name: string): Promise<AccountInfo | null>;
  createLocalGroup(name: string, comment: string): Promise<string>;
  deleteLocalGroup(name: string): Promise<void>;
  createLocalUser(name: string, password: string, comment: string): Promise<string>;
  setUserPassword(name: string, password: string): Promise<void>;
  deleteLocalUser(name: string): Promise<void>;
  addGroupMember(group: string, memberSid: string): Promise<void>;
  removeGroupMember(group: string, memberSid: string): Promise<void>;
  groupMembers(group: string): Promise<string[]>;
  /** Name of a local group from its SID (BUILTIN\Users is localised). */
  groupNameOf(sid: string): Promise<string>;

  // HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon\SpecialAccounts\UserList.
  setUserHidden(name: string, hidden: boolean): Promise<void>;
  isUserHidden(name: string): Promise<boolean>;

  // LsaOpenPolicy, LsaEnumerateAccountRights, LsaAddAccountRights, LsaRemoveAccountRights.
  accountRights(sid: string): Promise<string[]>;
  addAccountRights(sid: string, rights: string[]): Promise<void>;
  removeAccountRights(sid: string, rights: string[]): Promise<void>;

  /** DeleteProfileW. Succeeds when there is no profile. */
  deleteUserProfile(sid: string): Promise<void>;

  /** CryptProtectData with CRYPTPROTECT_LOCAL_MACHINE | CRYPTPROTECT_UI_FORBIDDEN. */
  protectData(plain: Buffer): Promise<Buffer>;
  /** CryptUnprotectData. */
  unprotectData(blob: Buffer): Promise<Buffer>;

  // Files.
  pathInfo(path: string): Promise<PathInfo | null>;
  /** CreateDirectoryW with a SECURITY_ATTRIBUTES built from SDDL (inherited ACEs when undefined). */
  createDirectory(path: string, sddl?: string): Promise<void>;
  /** CreateFileW(CREATE_ALWAYS) with an SDDL security descriptor, then WriteFile. */
  writeFileWithSddl(path: string, data: Buffer, sddl: string): Promise<void>;
  readFile(path: string): Promise<Buffer | null>;
  removeFile(path: string): Promise<void>;
  removeDirectory(path: string): Promise<void>;
  /** Removes a directory and everything under it; links are removed, never followed. */
  removeTree(path: string): Promise<void>;
  /** The whole DACL of a path (explicit and inherited, in stored order); null for a NULL DACL. */
  dacl(path: string): Promise<Ace[] | null>;
  /** Entries of a directory (reparse points not followed). */
  listDirectory(path: string): Promise<{ name: string; kind: 'file' | 'dir'; reparse: boolean }[]>;
  /** The explicit (not inherited) ACEs of a path, the path itself (reparse points not followed). */
  explicitAces(path: string): Promise<Ace[]>;
  /** Adds explicit ACEs in canonical order and propagates them to existing children (icacls /grant /deny). */
  addAces(path: string, aces: Ace[]): Promise<void>;
  /** Removes exactly these explicit ACEs and propagates (icacls /remove, then re-grant the rest). */
  removeAces(path: string, aces: Ace[]): Promise<void>;
  /** icacls /inheritance:d: inherited ACEs become explicit, the DACL is protected. */
  protectInheritance(path: string): Promise<void>;
  /** Regular files under root with more than one name (reparse points not followed), bounded. */
  multiLinkFiles(root: string, maxEntries: number): Promise<string[]>;

  // Windows Firewall (NetSecurity: Get/New/Set/Remove-NetFirewallRule, or INetFwPolicy2).
  getFirewallRule(name: string): Promise<FirewallRule | null>;
  putFirewallRule(rule: FirewallRule): Promise<void>;
  removeFirewallRule(name: string): Promise<void>;

  /**
   * Starts a short-lived probe as `user` (CreateProcessWithLogonW) that connects to address:port
   * while a listener accepts there; reports whether the connection got through.
   */
  probeConnectAs(user: { name: string; password: string }, address: string, port: number): Promise<'connected' | 'blocked'>;
}

/** Opaque handle values; the real layer uses kernel handles, the model small integers. */
export type Handle = bigint;

export interface ChildStdio {
  stdin: 'pipe' | 'null';
  stdout: 'pipe';
  stderr: 'pipe';
}

export interface SpawnedChild {
  process: Handle;
  thread: Handle;
  pid: number;
  write(data: Buffer): void;
  closeStdin(): void;
  onStdout(listener: (chunk: Buffer) => void): void;
  onStderr(listener: (chunk: Buffer) => void): void;
}

/** What the runner (already running as the sandbox user) does to start the command. */
export interface RunnerApi {
  /** SetSecurityInfo(GetCurrentProcess(), SE_KERNEL_OBJECT, DACL): the child cannot open the runner. */
  hardenOwnProcess(sddl: string): Promise<void>;
  /** OpenProcessToken + CreateRestrictedToken + SetTokenInformation(TokenDefaultDacl) + AdjustTokenPrivileges. */
  createChildToken(spec: import('../plan.js').TokenSpec): Promise<Handle>;
  /** CreateDesktopW + SetSecurityInfo(SE_WINDOW_OBJECT). */
  createDesktop(name: string, sddl: string): Promise<Handle>;
  /** CreateJobObjectW + SetInformationJobObject(ExtendedLimit, BasicUIRestrictions, CpuRateControl). */
  createJob(spec: import('../plan.js').JobSpec): Promise<Handle>;
  /** CreateProcessAsUserW(CREATE_SUSPENDED, lpDesktop, HANDLE_LIST = stdio). */
  createSuspended(token: Handle, spec: import('../plan.js').ProcessSpec, desktop: string, stdio: ChildStdio): Promise<SpawnedChild>;
  /** AssignProcessToJobObject. */
  assignToJob(job: Handle, process: Handle): Promise<void>;
  /** ResumeThread. */
  resume(thread: Handle): Promise<void>;
  /** WaitForSingleObject + GetExitCodeProcess; 'timeout' when timeoutMs elapsed first. */
  wait(process: Handle, timeoutMs: number | null): Promise<number | 'timeout'>;
  /** TerminateJobObject. */
  terminateJob(job: Handle, exitCode: number): Promise<void>;
  /** TerminateProcess (used only before the process is in its job). */
  terminateProcess(process: Handle, exitCode: number): Promise<void>;
  closeHandle(handle: Handle): Promise<void>;
  closeDesktop(handle: Handle): Promise<void>;
}
