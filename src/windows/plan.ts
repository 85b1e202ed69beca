// The Windows plan, compiled from a ResolvedPolicy by pure functions (no OS access).
//
// Two plans:
// - the setup plan (elevated, once): group, workspace-slot groups, offline/online users, hidden
//   accounts, logon-right denials, DPAPI credential store with a DACL that denies the sandbox,
//   firewall rules installed broad-first, read grants on the profile minus secrets, secret and
//   ambient denies, the install state written last;
// - the command plan (unelevated, per command): ACEs on writable roots and protected paths, the
//   child token, job, desktop, pipe and process specs.
//
// The safety argument, which the conformance tests check against the model under both readings of
// WRITE_RESTRICTED:
// 1. The *normal* pass runs as the sandbox user. It is granted write only on the current workspace's
//    roots, through a workspace-slot group that is enabled in this command's token and deny-only in
//    every other one, and it is denied on protected paths, secrets and broad-writable directories
//    through the sandbox group, which every token carries. So DELETE, WRITE_DAC, WRITE_OWNER and
//    FILE_DELETE_CHILD, which may skip the second pass, are decided safely by this pass alone.
// 2. The *restricted* pass checks write-category rights against the per-workspace capability SID:
//    a second, independent lock on writes, and the only one that separates workspaces sharing a slot.
// 3. Owner implicit rights are removed on writable roots by an OWNER RIGHTS ACE, so files the
//    sandbox created cannot be re-ACLed by it later, from this or another workspace.

import { createHash } from 'node:crypto';
import path from 'node:path';
import type { ResolvedPolicy } from '../policy/types.js';
import { type Ace, OICI, ace, aceToSddl } from './acl.js';
import {
  AMBIENT_DENY, DELETE, FILE_DELETE_CHILD, GENERIC_ALL, MODIFY, PROTECT_DENY, READ_CONTROL, READ_EXECUTE,
  SECRET_DENY, FILE_ALL_ACCESS, FILE_EXECUTE, FILE_LIST_DIRECTORY, FILE_READ_ATTRIBUTES, FILE_READ_DATA, FILE_READ_EA, SYNCHRONIZE,
} from './rights.js';
import { SID, deriveSyntheticSid, workspaceKey } from './sids.js';
import { type AccountNames, DEFAULT_ACCOUNT_NAMES, type FirewallRule, type InstallState } from './types.js';

const win = path.win32;

export class WindowsPlanError extends Error {}

// --- principals --------------------------------------------------------------------------------

/** Placeholders the setup orchestrator replaces by SIDs once the accounts exist. */
export const PRINCIPAL = {
  group: '@group',
  offline: '@offline',
  online: '@online',
  realUser: '@realUser',
  fence: '@fence',
  slot: (i: number) => `@slot:${i}`,
} as const;

export function isPlaceholder(sid: string): boolean {
  return sid.startsWith('@');
}

/** The SID through which the offline identity's firewall rules also match under WRITE_RESTRICTED. */
export function fenceSid(installId: string): string {
  return deriveSyntheticSid(installId, 'network-fence', '');
}

/** The capability SID of one workspace: the restricting SID its commands carry. */
export function capabilitySid(installId: string, workspace: string): string {
  return deriveSyntheticSid(installId, 'workspace', workspaceKey(workspace));
}

// --- setup -------------------------------------------------------------------------------------

export interface WindowsSetupSettings {
  names: AccountNames;
  /** Workspace slot groups; workspaces beyond this number share slots (see assignSlot). */
  slotCount: number;
  proxyPorts: { first: number; last: number };
}

export const DEFAULT_SETUP_SETTINGS: WindowsSetupSettings = {
  names: DEFAULT_ACCOUNT_NAMES,
  slotCount: 16,
  proxyPorts: { first: 47800, last: 47809 },
};

/** What setup needs to know about the machine (gathered by the enforcer, or by the model). */
export interface SetupFacts {
  realUserName: string;
  realUserSid: string;
  userProfile: string;
  /** Entries of USERPROFILE (reparse points are legacy junctions and are skipped). */
  profileChildren: { name: string; kind: 'file' | 'dir'; reparse: boolean }[];
  /** Existing secrets (the resolver's deny-read set). */
  secrets: { path: string; kind: 'file' | 'dir' | 'socket' }[];
  /** Directories outside the user's profile where Users/Authenticated Users/Everyone may write. */
  broadWritableDirs: string[];
  programData: string;
  /** %LOCALAPPDATA%\cordon\state: manifest and workspace slots of this user. */
  userStateDir: string;
}

export const DENIED_LOGON_RIGHTS = [
  'SeDenyNetworkLogonRight', 'SeDenyBatchLogonRight', 'SeDenyServiceLogonRight', 'SeDenyRemoteInteractiveLogonRight',
] as const;

export type SetupStep =
  | { kind: 'create-group'; id: string; name: string; comment: string; principal: string }
  | { kind: 'create-user'; id: string; name: string; comment: string; principal: string }
  | { kind: 'add-member'; id: string; group: string; groupSid?: string; member: string }
  | { kind: 'hide-user'; id: string; name: string }
  | { kind: 'deny-logon-rights'; id: string; principal: string; rights: string[] }
  | { kind: 'store-credentials'; id: string; path: string; sddl: string; users: string[] }
  | { kind: 'firewall-rule'; id: string; rule: FirewallRule; phase: 'broad' | 'narrow' }
  | { kind: 'remove-firewall-rule'; id: string; name: string }
  | { kind: 'verify-network-fence'; id: string; user: string; address: string; port: number }
  | { kind: 'add-aces'; id: string; path: string; aces: Ace[]; reason: string }
  | { kind: 'ensure-dir'; id: string; path: string; reason: string }
  | { kind: 'write-install-state'; id: string; path: string };

export interface SetupPlan {
  settings: WindowsSetupSettings;
  programDataDir: string;
  /** Created (restrictive DACL) before anything else; holds the machine manifest. */
  programDataSddl: string;
  manifestPath: string;
  installStatePath: string;
  credentialPath: string;
  steps: SetupStep[];
}

/** Every loopback address range, and everything that is not loopback, per family. */
export const LOOPBACK = ['127.0.0.0/8', '::1'];
export const NOT_LOOPBACK = ['0.0.0.0-126.255.255.255', '128.0.0.0-255.255.255.255', '::', '::2-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'];

/** TCP ports other than the proxy range, as firewall port ranges. */
export function portComplement(first: number, last: number): string[] {
  const out: string[] = [];
  if (first > 1) out.push(first - 1 === 1 ? '1' : `1-${first - 1}`);
  if (last < 65535) out.push(last + 1 === 65535 ? '65535' : `${last + 1}-65535`);
  return out;
}

/** The SDDL of the firewall rules' local-user condition: the offline user, or the fence SID. */
export function offlineUserCondition(offline: string, fence: string): string {
  return `O:LSD:(A;;CC;;;${offline})(A;;CC;;;${fence})`;
}

export function offlineFirewallRules(proxy: { first: number; last: number }, offline: string, fence: string): { broad: FirewallRule; narrow: FirewallRule[] } {
  const localUserSddl = offlineUserCondition(offline, fence);
  const base = { direction: 'out' as const, action: 'block' as const, enabled: true, localUserSddl };
  return {
    broad: { ...base, name: 'cordon-offline-block-all', protocol: 'any', remoteAddresses: 'any', remotePorts: 'any' },
    narrow: [
      { ...base, name: 'cordon-offline-block-remote', protocol: 'any', remoteAddresses: NOT_LOOPBACK, remotePorts: 'any' },
      { ...base, name: 'cordon-offline-block-loopback-udp', protocol: 'udp', remoteAddresses: LOOPBACK, remotePorts: 'any' },
      { ...base, name: 'cordon-offline-block-loopback-tcp', protocol: 'tcp', remoteAddresses: LOOPBACK, remotePorts: portComplement(proxy.first, proxy.last) },
    ],
  };
}

function validateSettings(settings: WindowsSetupSettings): void {
  const { first, last } = settings.proxyPorts;
  if (!Number.isInteger(first) || !Number.isInteger(last) || first < 1024 || last > 65535 || first > last || last - first > 63) {
    throw new WindowsPlanError(`proxy ports ${first}-${last}: use an unprivileged range of at most 64 ports, e.g. 47800-47809`);
  }
  if (!Number.isInteger(settings.slotCount) || settings.slotCount < 1 || settings.slotCount > 64) {
    throw new WindowsPlanError(`workspace slots ${settings.slotCount}: use 1 to 64`);
  }
  for (const name of [settings.names.group, settings.names.offlineUser, settings.names.onlineUser]) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$/.test(name)) throw new WindowsPlanError(`account name '${name}': use at most 20 letters, digits, '.', '_' or '-'`);
  }
}

export function compileSetupPlan(settings: WindowsSetupSettings, facts: SetupFacts): SetupPlan {
  validateSettings(settings);
  const { names } = settings;
  const programDataDir = win.join(facts.programData, 'cordon');
  const credentialPath = win.join(programDataDir, 'credentials.bin');
  const steps: SetupStep[] = [];
  let n = 0;
  const id = (label: string) => `${String(++n).padStart(2, '0')}-${label}`;

  steps.push({ kind: 'create-group', id: id('group'), name: names.group, comment: 'cordon sandbox accounts (managed by cordon)', principal: PRINCIPAL.group });
  for (let i = 0; i < settings.slotCount; i += 1) {
    steps.push({ kind: 'create-group', id: id(`slot-${i}`), name: `${names.slotPrefix}${i}`, comment: 'cordon workspace slot (managed by cordon)', principal: PRINCIPAL.slot(i) });
  }
  for (const [user, principal] of [[names.offlineUser, PRINCIPAL.offline], [names.onlineUser, PRINCIPAL.online]] as const) {
    steps.push({ kind: 'create-user', id: id(`user-${user}`), name: user, comment: 'cordon sandbox account (managed by cordon)', principal });
  }
  for (const principal of [PRINCIPAL.offline, PRINCIPAL.online]) {
    // BUILTIN\Users by SID: its name is localised. Membership is needed for the interactive logon
    // CreateProcessWithLogonW performs.
    steps.push({ kind: 'add-member', id: id('member-users'), group: 'Users', groupSid: SID.Users, member: principal });
    steps.push({ kind: 'add-member', id: id('member-group'), group: names.group, member: principal });
    for (let i = 0; i < settings.slotCount; i += 1) {
      steps.push({ kind: 'add-member', id: id(`member-slot-${i}`), group: `${names.slotPrefix}${i}`, member: principal });
    }
  }
  steps.push({ kind: 'hide-user', id: id('hide-offline'), name: names.offlineUser });
  steps.push({ kind: 'hide-user', id: id('hide-online'), name: names.onlineUser });
  steps.push({ kind: 'deny-logon-rights', id: id('logon-rights'), principal: PRINCIPAL.group, rights: [...DENIED_LOGON_RIGHTS] });
  // Network: the broad block first, then the narrow rules, then the broad one goes. At every
  // point the offline identity is at least as fenced as at the end: a crash fails closed.
  const rules = offlineFirewallRules(settings.proxyPorts, PRINCIPAL.offline, PRINCIPAL.fence);
  steps.push({ kind: 'firewall-rule', id: id('fw-broad'), rule: rules.broad, phase: 'broad' });
  for (const rule of rules.narrow) steps.push({ kind: 'firewall-rule', id: id(rule.name.replace('cordon-offline-', 'fw-')), rule, phase: 'narrow' });
  steps.push({ kind: 'remove-firewall-rule', id: id('fw-remove-broad'), name: rules.broad.name });
  const probePort = settings.proxyPorts.first > 1024 ? settings.proxyPorts.first - 1 : settings.proxyPorts.last + 1;
  steps.push({ kind: 'verify-network-fence', id: id('fw-verify'), user: names.offlineUser, address: '127.0.0.1', port: probePort });

  // Credentials only once the offline identity is fenced.
  steps.push({
    kind: 'store-credentials', id: id('credentials'), path: credentialPath, users: [names.offlineUser, names.onlineUser],
    sddl: `O:BAD:P(D;;FA;;;${PRINCIPAL.group})(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;${PRINCIPAL.realUser})`,
  });

  // Reads: the sandbox has no right on the user's profile until granted. List the profile root
  // (no inheritance, so later children get nothing); read every child but the secrets.
  const secretUpper = new Set(facts.secrets.map((s) => s.path.toUpperCase()));
  const stateRoot = win.dirname(facts.userStateDir).toUpperCase();
  steps.push({
    kind: 'add-aces', id: id('read-profile-root'), path: facts.userProfile, reason: 'list the profile root',
    aces: [ace('allow', PRINCIPAL.group, FILE_LIST_DIRECTORY | FILE_READ_ATTRIBUTES | READ_CONTROL | SYNCHRONIZE, 0)],
  });
  for (const child of facts.profileChildren) {
    const full = win.join(facts.userProfile, child.name);
    if (child.reparse || secretUpper.has(full.toUpperCase()) || /^ntuser\./i.test(child.name) || full.toUpperCase() === stateRoot) continue;
    steps.push({
      kind: 'add-aces', id: id('read'), path: full, reason: 'read grant',
      aces: [ace('allow', PRINCIPAL.group, READ_EXECUTE, child.kind === 'dir' ? OICI : 0)],
    });
  }
  for (const secret of facts.secrets) {
    steps.push({
      kind: 'add-aces', id: id('secret'), path: secret.path, reason: 'secret: unreadable by the sandbox',
      aces: [ace('deny', PRINCIPAL.group, SECRET_DENY, secret.kind === 'dir' ? OICI : 0)],
    });
  }
  for (const dir of facts.broadWritableDirs) {
    steps.push({
      kind: 'add-aces', id: id('ambient'), path: dir, reason: 'broad-writable directory outside any workspace',
      aces: [ace('deny', PRINCIPAL.group, AMBIENT_DENY, OICI)],
    });
  }
  steps.push({
    kind: 'add-aces', id: id('lock-state'), path: facts.userStateDir, reason: "cordon's own state",
    aces: [ace('deny', PRINCIPAL.group, GENERIC_ALL, OICI)],
  });
  // Per-workspace temporary directories live under one scratch root that the sandbox may not read:
  // each workspace's own directory re-opens itself with an explicit grant to its slot.
  const scratch = win.join(win.dirname(facts.userStateDir), 'scratch');
  steps.push({ kind: 'ensure-dir', id: id('scratch'), path: scratch, reason: 'root of the per-workspace temporary directories' });
  steps.push({
    kind: 'add-aces', id: id('lock-scratch'), path: scratch, reason: "other workspaces' temporary files",
    aces: [ace('deny', PRINCIPAL.group, FILE_READ_DATA | FILE_READ_EA | FILE_EXECUTE, OICI)],
  });
  const installStatePath = win.join(programDataDir, 'install.json');
  steps.push({ kind: 'write-install-state', id: id('commit'), path: installStatePath });

  return {
    settings,
    programDataDir,
    programDataSddl: `O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FR;;;${facts.realUserSid})`,
    manifestPath: win.join(programDataDir, 'manifest.json'),
    installStatePath,
    credentialPath,
    steps,
  };
}

// --- workspace slots ----------------------------------------------------------------------------

export interface SlotAssignment {
  index: number;
  /** Other workspaces bound to the same slot: their normal-pass grants are this command's too. */
  sharedWith: string[];
  /** The updated table to persist. */
  table: Record<string, number>;
}

/** Binds a workspace to a slot: its own if it has one, else a free one, else the least shared. */
export function assignSlot(table: Readonly<Record<string, number>>, workspace: string, slotCount: number): SlotAssignment {
  const key = workspaceKey(workspace);
  const next = { ...table };
  let index = next[key];
  if (index === undefined || index >= slotCount) {
    const load = Array.from({ length: slotCount }, () => 0);
    for (const [k, i] of Object.entries(next)) if (k !== key && i < slotCount) load[i]! += 1;
    index = load.indexOf(Math.min(...load));
    next[key] = index;
  }
  const sharedWith = Object.entries(next).filter(([k, i]) => i === index && k !== key).map(([k]) => k).sort();
  return { index, sharedWith, table: next };
}

// --- per command ----------------------------------------------------------------------------

export type Tier = 'elevated' | 'reduced';

export type AclStep =
  | { kind: 'ensure-dir'; path: string; reason: string; scratch?: boolean }
  | { kind: 'remove-aces'; path: string; aces: Ace[]; reason: string }
  | { kind: 'protect-multilink'; root: string; reason: string }
  | { kind: 'add-aces'; path: string; aces: Ace[]; reason: string };

export interface TokenSpec {
  /** elevated: the runner's own token (the sandbox user); reduced: the caller's own token. */
  base: 'runner-self' | 'caller-self';
  flags: ('DISABLE_MAX_PRIVILEGE' | 'WRITE_RESTRICTED' | 'LUA_TOKEN')[];
  sidsToDisable: string[];
  disableLogonSids: boolean;
  restrictingSids: string[];
  defaultDacl: Ace[];
}

export interface JobSpec {
  killOnJobClose: true;
  breakawayAllowed: false;
  dieOnUnhandledException: true;
  activeProcessLimit: number | null;
  jobMemoryLimitBytes: number | null;
  /** CPU rate hard cap in 1/100 of a percent of the machine, or null. */
  cpuRate: number | null;
  uiRestrictions: string[];
}

export interface DesktopSpec {
  name: string;
  sddl: string;
  /** Without a private desktop the command does not run. */
  failClosed: true;
  /** Rights the sandbox group needs on WinSta0 for user32 to initialise. */
  windowStationGrant: Ace;
}

export interface PipeSpec {
  name: string;
  sddl: string;
  maxFrameBytes: number;
  protocolVersion: 1;
  rejectRemoteClients: true;
  firstInstance: true;
}

export interface ProcessSpec {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  creationFlags: string[];
  /** Only the stdio pipe ends are inherited (PROC_THREAD_ATTRIBUTE_HANDLE_LIST). */
  inheritHandles: 'stdio-only';
}

export interface CommandPlan {
  tier: Tier;
  workspace: string;
  capabilitySid: string;
  identity: { kind: 'offline' | 'online' | 'caller'; userName: string; userSid: string };
  slot: { index: number; sid: string; sharedWith: string[] } | null;
  aclSteps: AclStep[];
  token: TokenSpec;
  job: JobSpec;
  desktop: DesktopSpec;
  pipe: PipeSpec | null;
  process: ProcessSpec;
  timeoutMs: number | null;
  network: { mode: ResolvedPolicy['network']['mode']; enforced: boolean; proxyPort: number | null };
  /** What this plan does not protect (the reduced tier says it out loud). */
  notProtected: string[];
  warnings: string[];
}

export interface CommandContext {
  tier: Tier;
  command: string[];
  /** Random hex used to name the desktop and the pipe. */
  nonce: string;
  /** Elevated tier: the install state written by setup. */
  install?: InstallState;
  /** Elevated tier: the workspace's slot. */
  slot?: { index: number; sharedWith: string[] };
  /** Reduced tier: an installation id for capability SIDs (a per-user random value). */
  installId?: string;
  /** The caller (the real user). */
  caller: { name: string; sid: string };
  /** Where this command's proxy listens (allow-list network). */
  proxyPort?: number;
  /** Logical processors, for the CPU cap. */
  processors: number;
  /** Broad-writable directories found by this command's audit and not yet denied. */
  newBroadWritableDirs?: string[];
}

/** What the reduced tier leaves open, in words a user can act on. */
export const REDUCED_TIER_GAPS = {
  network: 'network: not enforced (proxy variables only; a program that ignores them reaches the network)',
  readSecrets: "reads: nothing is made unreadable; secrets such as ~\\.ssh and other workspaces' temporary files stay readable (a restricted token never limits reads)",
  deleteOutside: "delete and rename of your files outside the workspace: not prevented if Windows skips the restricting SIDs for DELETE (unverified)",
  reaclOutside: "changing permissions of your files outside the workspace: not prevented if Windows skips the restricting SIDs for WRITE_DAC (unverified)",
  deleteProtected: 'delete, rename and re-ACL of protected paths (.git\\hooks, .git\\config, …): not prevented if Windows skips the restricting SIDs for DELETE and WRITE_DAC (unverified)',
} as const;

function mergeAcl(steps: AclStep[]): AclStep[] {
  const out: AclStep[] = [];
  const byPath = new Map<string, Extract<AclStep, { kind: 'add-aces' }>>();
  for (const step of steps) {
    if (step.kind !== 'add-aces') {
      out.push(step);
      continue;
    }
    // Exact paths: they come from listings, and a case-sensitive directory may hold twins.
    const key = step.path;
    const existing = byPath.get(key);
    if (!existing) {
      const copy = { ...step, aces: step.aces.map((a) => ({ ...a })) };
      byPath.set(key, copy);
      out.push(copy);
      continue;
    }
    for (const a of step.aces) {
      const same = existing.aces.find((b) => b.type === a.type && b.sid === a.sid && b.flags === a.flags);
      if (same) same.mask = (same.mask | a.mask) >>> 0;
      else existing.aces.push({ ...a });
    }
    if (!existing.reason.includes(step.reason)) existing.reason += `; ${step.reason}`;
  }
  return out;
}

function ancestorsBetween(root: string, target: string): string[] {
  const rel = win.relative(root, target);
  if (!rel || rel.startsWith('..')) return [];
  const parts = rel.split('\\');
  const out: string[] = [];
  for (let i = 1; i < parts.length; i += 1) out.push(win.join(root, ...parts.slice(0, i)));
  return out;
}

export function compileCommandPlan(policy: ResolvedPolicy, ctx: CommandContext): CommandPlan {
  if (ctx.command.length === 0) throw new WindowsPlanError('command: nothing to run');
  if (policy.mode === 'full-access') {
    throw new WindowsPlanError("mode full-access: cordon has no unsandboxed mode on Windows; use mode 'workspace-write' with filesystem.write for more roots");
  }
  if (!/^[0-9a-f]{16,64}$/.test(ctx.nonce)) throw new WindowsPlanError('nonce: expected 16 to 64 hex digits');
  const elevated = ctx.tier === 'elevated';
  if (elevated && (!ctx.install || !ctx.slot)) throw new WindowsPlanError('the elevated tier needs the install state and a workspace slot; run `cordon setup`');
  if (!elevated && !policy.allowReduced) {
    throw new WindowsPlanError('the Windows sandbox is not set up: run `cordon setup` once as an administrator, or set allowReduced to accept the reduced tier');
  }
  const installId = elevated ? ctx.install!.installId : ctx.installId;
  if (!installId) throw new WindowsPlanError('installId: needed to derive the workspace capability SID');
  const cap = capabilitySid(installId, policy.workspace);
  const group = elevated ? ctx.install!.groupSid : null;
  const slotSid = elevated ? ctx.install!.slotSids[ctx.slot!.index] : undefined;
  if (elevated && !slotSid) throw new WindowsPlanError(`workspace slot ${ctx.slot!.index} does not exist; re-run \`cordon setup\``);

  const warnings: string[] = [...policy.warnings];
  const notProtected: string[] = [];
  const useOnline = policy.network.mode === 'full';
  const identity: CommandPlan['identity'] = elevated
    ? useOnline
      ? { kind: 'online', userName: ctx.install!.names.onlineUser, userSid: ctx.install!.onlineUserSid }
      : { kind: 'offline', userName: ctx.install!.names.offlineUser, userSid: ctx.install!.offlineUserSid }
    : { kind: 'caller', userName: ctx.caller.name, userSid: ctx.caller.sid };

  // Both passes must name the identity: the normal-pass principal (slot group, or nothing in the
  // reduced tier where the caller already has its own rights) and the capability SID.
  const normalPrincipals = elevated ? [slotSid!] : [];
  const denyPrincipals = elevated ? [group!, cap] : [cap];
  const steps: AclStep[] = [];

  for (const root of policy.writableRoots) if (root.reason === 'tmp') steps.push({ kind: 'ensure-dir', path: root.path, reason: 'private temporary directory', scratch: true });
  for (const p of policy.protected) {
    if (!p.exists && p.kind === 'dir') steps.push({ kind: 'ensure-dir', path: p.path, reason: `materialise ${p.reason} so its deny ACE exists before the command` });
  }
  for (const root of policy.writableRoots) {
    if (elevated) {
      // A directory setup found broad-writable and denied may since have become a workspace.
      steps.push({ kind: 'remove-aces', path: root.path, aces: [ace('deny', group!, AMBIENT_DENY, OICI)], reason: 'a writable root is not an ambient deny target' });
    }
    steps.push({ kind: 'protect-multilink', root: root.path, reason: 'hard-linked files keep their own DACL instead of receiving the grant' });
    const aces: Ace[] = [
      ...normalPrincipals.map((sid) => ace('allow', sid, MODIFY, OICI)),
      ace('allow', cap, MODIFY, OICI),
      ...denyPrincipals.map((sid) => ace('deny', sid, DELETE, 0)),
    ];
    if (elevated) {
      // OWNER RIGHTS replaces the owner's implicit READ_CONTROL|WRITE_DAC, so the sandbox cannot
      // re-ACL files it created. The real user may hold WRITE_DAC only through ownership (a
      // directory made at a drive root grants Authenticated Users "modify" and nothing more), so
      // the user gets it back explicitly.
      aces.push(ace('allow', SID.OwnerRights, READ_CONTROL, OICI), ace('allow', ctx.caller.sid, FILE_ALL_ACCESS, OICI));
    }
    steps.push({ kind: 'add-aces', path: root.path, aces, reason: `writable root (${root.reason})` });
  }
  for (const p of policy.protected) {
    const flags = p.kind === 'dir' ? OICI : 0;
    steps.push({ kind: 'add-aces', path: p.path, aces: denyPrincipals.map((sid) => ace('deny', sid, PROTECT_DENY, flags)), reason: `protected (${p.reason})` });
    const chain = [...ancestorsBetween(p.root, p.path)];
    for (const a of chain) {
      steps.push({ kind: 'add-aces', path: a, aces: denyPrincipals.map((sid) => ace('deny', sid, DELETE, 0)), reason: `holds protected ${win.basename(p.path)}: cannot be renamed away` });
    }
    for (const parent of [p.root, ...chain]) {
      steps.push({ kind: 'add-aces', path: parent, aces: denyPrincipals.map((sid) => ace('deny', sid, FILE_DELETE_CHILD, 0)), reason: 'no deleting protected children through the parent' });
    }
  }
  if (elevated) {
    for (const d of policy.denyRead) {
      steps.push({ kind: 'add-aces', path: d.path, aces: [ace('deny', group!, SECRET_DENY, d.kind === 'dir' ? OICI : 0)], reason: `unreadable (${d.reason})` });
    }
    for (const dir of ctx.newBroadWritableDirs ?? []) {
      steps.push({ kind: 'add-aces', path: dir, aces: [ace('deny', group!, AMBIENT_DENY, OICI)], reason: 'broad-writable directory found since setup' });
    }
  } else {
    notProtected.push(...Object.values(REDUCED_TIER_GAPS));
  }
  if (elevated && ctx.slot!.sharedWith.length > 0) {
    warnings.push(`workspace slot ${ctx.slot!.index} is shared with ${ctx.slot!.sharedWith.length} other workspace(s): deletes there are blocked only if Windows checks the capability SID for DELETE; raise the slot count with \`cordon setup --slots\``);
  }

  const fence = elevated ? fenceSid(installId) : null;
  const token: TokenSpec = elevated
    ? {
        base: 'runner-self',
        flags: ['DISABLE_MAX_PRIVILEGE', 'WRITE_RESTRICTED', 'LUA_TOKEN'],
        sidsToDisable: [SID.Administrators, ...ctx.install!.slotSids.filter((s) => s !== slotSid)],
        disableLogonSids: true,
        restrictingSids: [cap, fence!, SID.Restricted],
        defaultDacl: [ace('allow', identity.userSid, GENERIC_ALL), ace('allow', cap, GENERIC_ALL), ace('allow', SID.LocalSystem, GENERIC_ALL)],
      }
    : {
        base: 'caller-self',
        flags: ['DISABLE_MAX_PRIVILEGE', 'WRITE_RESTRICTED', 'LUA_TOKEN'],
        sidsToDisable: [SID.Administrators],
        disableLogonSids: false,
        restrictingSids: [cap, SID.Restricted],
        defaultDacl: [ace('allow', identity.userSid, GENERIC_ALL), ace('allow', cap, GENERIC_ALL), ace('allow', SID.LocalSystem, GENERIC_ALL)],
      };

  const cpuRate = policy.limits.cpu !== null ? Math.max(1, Math.min(10000, Math.round((policy.limits.cpu / Math.max(1, ctx.processors)) * 10000))) : null;
  const job: JobSpec = {
    killOnJobClose: true, breakawayAllowed: false, dieOnUnhandledException: true,
    activeProcessLimit: policy.limits.pids, jobMemoryLimitBytes: policy.limits.memoryBytes, cpuRate,
    uiRestrictions: ['DESKTOP', 'DISPLAYSETTINGS', 'EXITWINDOWS', 'GLOBALATOMS', 'HANDLES', 'READCLIPBOARD', 'SYSTEMPARAMETERS', 'WRITECLIPBOARD'],
  };
  const desktopRights = 0xf01ff; // DESKTOP_ALL_ACCESS: STANDARD_RIGHTS_REQUIRED | 0x1ff
  const desktop: DesktopSpec = {
    name: `cordon-${ctx.nonce.slice(0, 16)}`,
    sddl: `D:P${aceToSddl(ace('allow', SID.LocalSystem, desktopRights))}${aceToSddl(ace('allow', identity.userSid, desktopRights))}${aceToSddl(ace('allow', cap, desktopRights))}`,
    failClosed: true,
    // WINSTA_ENUMDESKTOPS | READATTRIBUTES | CREATEDESKTOP | ACCESSGLOBALATOMS | ENUMERATE, READ_CONTROL,
    // SYNCHRONIZE: the runner makes the private desktop there, and user32 needs the rest to start.
    windowStationGrant: ace('allow', elevated ? group! : identity.userSid, 0x1 | 0x2 | 0x8 | 0x20 | 0x100 | READ_CONTROL | SYNCHRONIZE),
  };
  const pipe: PipeSpec | null = elevated
    ? {
        name: `\\\\.\\pipe\\cordon-${ctx.nonce}`,
        sddl: `D:P(A;;GA;;;${identity.userSid})(A;;GA;;;${ctx.caller.sid})`,
        maxFrameBytes: 8 * 1024 * 1024, protocolVersion: 1, rejectRemoteClients: true, firstInstance: true,
      }
    : null;

  const env: Record<string, string> = { ...policy.env.vars };
  const setVar = (name: string, value: string | null) => {
    for (const k of Object.keys(env)) if (k.toUpperCase() === name.toUpperCase()) delete env[k];
    if (value !== null) env[name] = value;
  };
  let proxyPort: number | null = null;
  if (policy.network.mode === 'allow-list') {
    if (ctx.proxyPort === undefined) throw new WindowsPlanError('network.mode allow-list needs the proxy port of this command');
    if (elevated) {
      const { first, last } = ctx.install!.proxyPorts;
      if (ctx.proxyPort < first || ctx.proxyPort > last) throw new WindowsPlanError(`proxy port ${ctx.proxyPort} is outside the range ${first}-${last} the firewall allows`);
    }
    proxyPort = ctx.proxyPort;
    const url = `http://127.0.0.1:${ctx.proxyPort}`;
    for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy']) env[name] = url;
    setVar('NO_PROXY', null);
  } else if (policy.network.mode === 'off' && !elevated) {
    for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY']) setVar(name, 'http://127.0.0.1:9');
  }

  const plan: CommandPlan = {
    tier: ctx.tier,
    workspace: policy.workspace,
    capabilitySid: cap,
    identity,
    slot: elevated ? { index: ctx.slot!.index, sid: slotSid!, sharedWith: ctx.slot!.sharedWith } : null,
    aclSteps: mergeAcl(steps),
    token,
    job,
    desktop,
    pipe,
    process: {
      argv: [...ctx.command], cwd: policy.cwd, env,
      creationFlags: ['CREATE_SUSPENDED', 'CREATE_UNICODE_ENVIRONMENT', 'EXTENDED_STARTUPINFO_PRESENT', 'CREATE_NEW_PROCESS_GROUP'],
      inheritHandles: 'stdio-only',
    },
    timeoutMs: policy.limits.timeoutMs,
    network: { mode: policy.network.mode, enforced: elevated && policy.network.mode !== 'full', proxyPort },
    notProtected,
    warnings,
  };
  return plan;
}

/** A short random-looking id from bytes (the caller supplies randomness; the plan stays pure). */
export function nonceFrom(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 32);
}
