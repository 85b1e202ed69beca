// The Windows resolver: a PolicyInput plus facts about a Windows host (USERPROFILE, the workspace,
// what exists on disk) becomes a ResolvedPolicy with Windows paths. It reads the host only through
// the WindowsHost interface, so it runs unchanged against the model's file system in tests and
// against the real disk on Windows.
//
// Name matching follows NTFS: case-insensitive by default, and every directory entry whose name
// equals `.git` in any case is treated as git metadata (a repository may be stored as `.GIT`).

import path from 'node:path';
import {
  CONFIG_FILE_NAME, CORE_ENV_NAMES, DEFAULT_LIMITS, GIT_PROTECTED_ENTRIES, RUNS_CODE_LATER,
  SECRET_ENV_PATTERNS, SECRET_HOME_PATHS,
} from '../policy/defaults.js';
import type {
  DeniedPath, EnvInherit, Mode, NetworkMode, PolicyInput, ProtectedPath, ResolvedEnv, ResolvedLimits,
  ResolvedPolicy, WritableRoot,
} from '../policy/types.js';
import { workspaceKey } from './sids.js';
import { createHash } from 'node:crypto';

const win = path.win32;

/** What the resolver may ask of the host. Paths are Windows paths. */
export interface WindowsHost {
  /** The real user's environment (USERPROFILE, APPDATA, LOCALAPPDATA, TEMP, PATH, …). */
  env: Record<string, string>;
  cwd: string;
  /** Physical memory, for the default memory limit. */
  totalMemoryBytes: number;
  /** Follows reparse points; null when missing. */
  stat(p: string): { kind: 'file' | 'dir' } | null;
  /** Does not follow a final reparse point. */
  lstat(p: string): { kind: 'file' | 'dir'; reparse: boolean } | null;
  /** The final path after every reparse point, with names as stored on disk. */
  realPath(p: string): string;
  list(p: string): { name: string; kind: 'file' | 'dir'; reparse: boolean }[];
  readText(p: string): string | null;
}

export class WindowsPolicyError extends Error {}

export interface ResolveOptions {
  sources?: string[];
  /** Bound on the nested-repository scan inside each writable root. */
  scanDepth?: number;
  scanEntries?: number;
}

function env(host: WindowsHost, name: string): string | undefined {
  const key = Object.keys(host.env).find((k) => k.toUpperCase() === name.toUpperCase());
  return key === undefined ? undefined : host.env[key];
}

function requireEnv(host: WindowsHost, name: string): string {
  const value = env(host, name);
  if (!value) throw new WindowsPolicyError(`environment variable ${name} is not set; cordon needs it to locate the user's profile`);
  return value;
}

export function isUnderWin(p: string, root: string): boolean {
  const a = win.normalize(p).toUpperCase().replace(/\\+$/, '');
  const b = win.normalize(root).toUpperCase().replace(/\\+$/, '');
  return a === b || a.startsWith(b + '\\');
}

/** `~\x`, `%VAR%\x`, absolute, or relative to `base`. */
export function expandWindowsPath(raw: string, field: string, host: WindowsHost, base: string): string {
  let p = raw.trim();
  if (p.length === 0) throw new WindowsPolicyError(`${field}: empty path`);
  p = p.replace(/%([^%]+)%/g, (_, name: string) => {
    const value = env(host, name);
    if (value === undefined) throw new WindowsPolicyError(`${field}: %${name}% is not set (in '${raw}')`);
    return value;
  });
  if (p === '~' || p.startsWith('~/') || p.startsWith('~\\')) p = win.join(requireEnv(host, 'USERPROFILE'), p.slice(1));
  if (/^[\\/]{2}/.test(p)) throw new WindowsPolicyError(`${field}: network paths are not supported ('${raw}'); use a local drive path`);
  if (!win.isAbsolute(p) || !/^[A-Za-z]:/.test(p)) p = win.resolve(base, p);
  return win.normalize(p);
}

function canonicalIfExists(host: WindowsHost, p: string): string {
  return host.stat(p) ? host.realPath(p) : p;
}

/** Windows locations of the shared secret list, plus secrets that only exist on Windows. */
export function windowsSecretCandidates(host: WindowsHost): string[] {
  const home = requireEnv(host, 'USERPROFILE');
  const appData = env(host, 'APPDATA') ?? win.join(home, 'AppData', 'Roaming');
  const localAppData = env(host, 'LOCALAPPDATA') ?? win.join(home, 'AppData', 'Local');
  const moved: Record<string, string[]> = {
    '.config/gcloud': [win.join(appData, 'gcloud')],
    '.config/gh': [win.join(appData, 'GitHub CLI')],
    '.gnupg': [win.join(appData, 'gnupg')],
    '.netrc': [win.join(home, '_netrc')],
    '.terraform.d/credentials.tfrc.json': [win.join(appData, 'terraform.d', 'credentials.tfrc.json')],
    '.mozilla': [win.join(appData, 'Mozilla')],
    '.config/google-chrome': [win.join(localAppData, 'Google', 'Chrome', 'User Data')],
    '.config/chromium': [win.join(localAppData, 'Chromium', 'User Data')],
    '.config/BraveSoftware': [win.join(localAppData, 'BraveSoftware')],
    // Credential Manager and DPAPI master keys stand in for the Linux keyrings.
    '.local/share/keyrings': [
      win.join(appData, 'Microsoft', 'Credentials'), win.join(localAppData, 'Microsoft', 'Credentials'),
      win.join(appData, 'Microsoft', 'Protect'), win.join(localAppData, 'Microsoft', 'Vault'),
    ],
  };
  const out: string[] = [];
  for (const entry of SECRET_HOME_PATHS) {
    out.push(win.join(home, ...entry.split('/')));
    out.push(...(moved[entry] ?? []));
  }
  out.push(win.join(localAppData, 'Microsoft', 'Edge', 'User Data'));
  return out;
}

const SSH_PATH_KEYS = new Set(['identityfile', 'certificatefile', 'userknownhostsfile', 'globalknownhostsfile', 'revokedhostkeys', 'controlpath', 'identityagent']);

/** Files referenced from ~/.ssh/config (and its Includes, depth-bounded): they are secrets too. */
export function sshConfigReferences(host: WindowsHost): string[] {
  const home = requireEnv(host, 'USERPROFILE');
  const sshDir = win.join(home, '.ssh');
  const found = new Set<string>();
  const visit = (file: string, depth: number) => {
    if (depth > 8) return;
    const text = host.readText(file);
    if (text === null) return;
    for (const rawLine of text.split(/\r?\n/)) {
      const line = rawLine.trim();
      if (!line || line.startsWith('#')) continue;
      const m = /^(\S+)\s*=?\s*(.+)$/.exec(line);
      if (!m) continue;
      const key = m[1]!.toLowerCase();
      const values = m[2]!.split(/\s+/).map((v) => v.replace(/^"|"$/g, ''));
      const expand = (v: string, base: string) => {
        let p = v.replace(/^~(?=[\\/]|$)/, home);
        if (!win.isAbsolute(p)) p = win.join(base, p);
        return win.normalize(p);
      };
      if (key === 'include') {
        for (const v of values) {
          const target = expand(v, sshDir);
          if (target.includes('*')) {
            const dir = win.dirname(target);
            const re = new RegExp('^' + win.basename(target).split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$', 'i');
            const entries = host.stat(dir) ? host.list(dir) : [];
            for (const e of entries) if (re.test(e.name)) visit(win.join(dir, e.name), depth + 1);
          } else {
            visit(target, depth + 1);
          }
        }
      } else if (SSH_PATH_KEYS.has(key)) {
        for (const v of values) {
          if (v.toLowerCase() === 'none' || v.includes('%') || v.startsWith('\\\\.\\pipe')) continue;
          found.add(expand(v, home));
        }
      }
    }
  };
  visit(win.join(sshDir, 'config'), 0);
  return [...found];
}

/** Every entry of `dir` whose name equals `name` ignoring case (a case-sensitive dir may hold several). */
function entriesNamed(host: WindowsHost, dir: string, name: string): { name: string; kind: 'file' | 'dir'; reparse: boolean }[] {
  if (!host.stat(dir)) return [];
  return host.list(dir).filter((e) => e.name.toUpperCase() === name.toUpperCase());
}

interface GitDir {
  gitDir: string;
  /** The directory entry named `.git` (a dir, or a file with `gitdir:`) inside the work tree. */
  dotGit: string;
}

function gitDirsIn(host: WindowsHost, dir: string): GitDir[] {
  const out: GitDir[] = [];
  for (const e of entriesNamed(host, dir, '.git')) {
    const dotGit = win.join(dir, e.name);
    if (e.reparse) {
      const target = host.stat(dotGit) ? host.realPath(dotGit) : null;
      if (target) out.push({ gitDir: target, dotGit });
    } else if (e.kind === 'dir') {
      out.push({ gitDir: dotGit, dotGit });
    } else {
      const m = /^gitdir:\s*(.+?)\s*$/m.exec(host.readText(dotGit) ?? '');
      if (m) {
        const target = win.isAbsolute(m[1]!) ? win.normalize(m[1]!) : win.resolve(dir, m[1]!);
        if (host.stat(target)) out.push({ gitDir: host.realPath(target), dotGit });
      }
    }
  }
  return out;
}

/** `.git` entries that are files or links (not directories), at the root and nested. */
function gitLinksIn(host: WindowsHost, root: string, maxDepth: number): string[] {
  const out: string[] = [];
  let frontier = [root];
  for (let depth = 0; depth <= maxDepth && frontier.length > 0; depth += 1) {
    const next: string[] = [];
    for (const dir of frontier) {
      for (const g of gitDirsIn(host, dir)) if (g.dotGit !== g.gitDir) out.push(g.dotGit);
      if (depth === maxDepth) continue;
      for (const e of host.list(dir)) {
        if (e.kind === 'dir' && !e.reparse && e.name.toUpperCase() !== '.GIT' && e.name.toLowerCase() !== 'node_modules') next.push(win.join(dir, e.name));
      }
      if (next.length > 20000) break;
    }
    frontier = next;
  }
  return out;
}

/**
 * Git metadata directories reachable from a writable root: the root's own, nested repositories
 * (bounded breadth-first scan, reparse points not followed), submodules under `modules`, and the
 * common dir of linked worktrees.
 */
export function findGitDirs(host: WindowsHost, root: string, maxDepth: number, maxEntries: number): { dirs: string[]; truncated: boolean } {
  const dirs = new Set<string>();
  const addWithModules = (gitDir: string, depth: number) => {
    if (dirs.has(gitDir)) return;
    dirs.add(gitDir);
    const common = host.readText(win.join(gitDir, 'commondir'));
    if (common) {
      const c = win.resolve(gitDir, common.trim());
      if (host.stat(c)) dirs.add(host.realPath(c));
    }
    if (depth > 3) return;
    for (const m of entriesNamed(host, gitDir, 'modules')) {
      if (m.kind !== 'dir' || m.reparse) continue;
      const walk = (d: string, level: number) => {
        if (level > 3) return;
        for (const e of host.list(d)) {
          if (e.kind !== 'dir' || e.reparse) continue;
          const sub = win.join(d, e.name);
          if (host.stat(win.join(sub, 'HEAD'))) addWithModules(sub, depth + 1);
          else walk(sub, level + 1);
        }
      };
      walk(win.join(gitDir, m.name), 0);
    }
  };
  let seen = 0;
  let truncated = false;
  let frontier: string[] = [root];
  for (let depth = 0; depth <= maxDepth && frontier.length > 0; depth += 1) {
    const next: string[] = [];
    for (const dir of frontier) {
      for (const g of gitDirsIn(host, dir)) addWithModules(g.gitDir, 0);
      if (depth === maxDepth) continue;
      for (const e of host.list(dir)) {
        seen += 1;
        if (seen > maxEntries) {
          truncated = true;
          return { dirs: [...dirs], truncated };
        }
        if (e.kind === 'dir' && !e.reparse && e.name.toUpperCase() !== '.GIT' && e.name.toLowerCase() !== 'node_modules') {
          next.push(win.join(dir, e.name));
        }
      }
    }
    frontier = next;
  }
  return { dirs: [...dirs], truncated };
}

function parseDuration(value: number | string, field: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) return Math.round(value * 1000);
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(value).trim());
  if (!m) throw new WindowsPolicyError(`${field}: '${value}' is not a duration; use seconds or e.g. 90s, 10m, 1h`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * { ms: 1, s: 1000, m: 60000, h: 3600000 }[unit]!);
}

function parseSize(value: number | string, field: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) return Math.floor(value);
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)i?B?$/i.exec(String(value).trim());
  if (!m) throw new WindowsPolicyError(`${field}: '${value}' is not a size; use bytes or e.g. 512M, 2G`);
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2]!.toUpperCase()]!;
  return Math.floor(Number(m[1]) * mult);
}

/** Variables a Windows process needs to start at all (kept by `env.inherit: core`). */
export const WINDOWS_CORE_ENV_NAMES: readonly string[] = [
  'SystemRoot', 'windir', 'SystemDrive', 'ComSpec', 'PATHEXT', 'PATH', 'OS', 'PROCESSOR_ARCHITECTURE',
  'NUMBER_OF_PROCESSORS', 'ProgramFiles', 'ProgramFiles(x86)', 'ProgramW6432', 'CommonProgramFiles',
  'CommonProgramFiles(x86)', 'ProgramData', 'USERPROFILE', 'APPDATA', 'LOCALAPPDATA', 'HOMEDRIVE', 'HOMEPATH',
  'USERNAME', 'COMPUTERNAME', 'PSModulePath', 'TEMP', 'TMP',
];

function wildcard(pattern: string, name: string): boolean {
  const re = new RegExp('^' + pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$', 'i');
  return re.test(name);
}

/** Windows variable names are case-insensitive: `Path` and `PATH` are one variable. */
export function computeWindowsEnv(hostEnv: Record<string, string>, inherit: EnvInherit, scrub: string[], keep: string[], set: Record<string, string>): ResolvedEnv {
  const core = new Set([...CORE_ENV_NAMES, ...WINDOWS_CORE_ENV_NAMES].map((n) => n.toUpperCase()));
  const patterns = [...SECRET_ENV_PATTERNS, ...scrub];
  const vars: Record<string, string> = {};
  const removed: string[] = [];
  for (const [name, value] of Object.entries(hostEnv)) {
    const kept = keep.some((p) => wildcard(p, name));
    const inherited = inherit === 'all' || (inherit === 'core' && core.has(name.toUpperCase()));
    if (!inherited && !kept) continue;
    if (!kept && patterns.some((p) => wildcard(p, name))) {
      removed.push(name);
      continue;
    }
    vars[name] = value;
  }
  for (const [name, value] of Object.entries(set)) {
    for (const existing of Object.keys(vars)) if (existing.toUpperCase() === name.toUpperCase()) delete vars[existing];
    vars[name] = value;
  }
  return { vars, removed: removed.sort() };
}

/** cordon's per-user directories on Windows. */
export function cordonDirs(host: WindowsHost): { state: string; scratch: string; config: string } {
  const localAppData = env(host, 'LOCALAPPDATA') ?? win.join(requireEnv(host, 'USERPROFILE'), 'AppData', 'Local');
  const appData = env(host, 'APPDATA') ?? win.join(requireEnv(host, 'USERPROFILE'), 'AppData', 'Roaming');
  return {
    state: win.join(localAppData, 'cordon', 'state'),
    scratch: win.join(localAppData, 'cordon', 'scratch'),
    config: win.join(appData, 'cordon', CONFIG_FILE_NAME),
  };
}

/** The private temporary directory of a workspace: writable, shared by nothing else. */
export function scratchTempFor(host: WindowsHost, workspace: string): string {
  const id = createHash('sha256').update(workspaceKey(workspace)).digest('hex').slice(0, 16);
  return win.join(cordonDirs(host).scratch, id, 'tmp');
}

function refuseWritable(host: WindowsHost, root: string, field: string): void {
  const home = requireEnv(host, 'USERPROFILE');
  const systemRoot = env(host, 'SystemRoot') ?? 'C:\\Windows';
  const upper = win.normalize(root).toUpperCase().replace(/\\+$/, '');
  if (/^[A-Z]:$/.test(upper)) throw new WindowsPolicyError(`${field}: a drive root (${root}) cannot be writable; name a directory inside it`);
  if (upper === win.normalize(home).toUpperCase().replace(/\\+$/, '')) {
    throw new WindowsPolicyError(`${field}: the whole profile (${root}) cannot be writable; name a directory inside it`);
  }
  for (const system of [systemRoot, env(host, 'ProgramFiles'), env(host, 'ProgramFiles(x86)')]) {
    if (system && isUnderWin(root, system)) throw new WindowsPolicyError(`${field}: ${root} is a system directory and cannot be writable`);
  }
  const dirs = cordonDirs(host);
  if (isUnderWin(root, win.dirname(dirs.state)) && !isUnderWin(root, dirs.scratch)) {
    throw new WindowsPolicyError(`${field}: ${root} holds cordon's own state and cannot be writable`);
  }
}

export function resolveWindowsPolicy(input: PolicyInput, host: WindowsHost, options: ResolveOptions = {}): ResolvedPolicy {
  const warnings: string[] = [];
  const mode: Mode = input.mode ?? 'workspace-write';
  requireEnv(host, 'USERPROFILE'); // fail early, with the variable's name, when the profile is unknown

  const workspaceRaw = input.workspace ? expandWindowsPath(input.workspace, 'workspace', host, host.cwd) : host.cwd;
  if (!host.stat(workspaceRaw)) throw new WindowsPolicyError(`workspace: ${workspaceRaw} does not exist; create it or pass another --workspace`);
  const workspace = host.realPath(workspaceRaw);
  if (workspace.toUpperCase() !== win.normalize(workspaceRaw).toUpperCase()) {
    warnings.push(`workspace ${workspaceRaw} is a link; the sandbox works on its target ${workspace}`);
  }

  const writableRoots: WritableRoot[] = [];
  const addRoot = (p: string, reason: WritableRoot['reason'], field: string) => {
    refuseWritable(host, p, field);
    if (writableRoots.some((r) => r.path.toUpperCase() === p.toUpperCase())) return;
    writableRoots.push({ path: p, reason });
  };
  if (mode === 'workspace-write') {
    addRoot(workspace, 'workspace', 'workspace');
    for (const [i, raw] of (input.filesystem?.write ?? []).entries()) {
      const field = `filesystem.write[${i}]`;
      const p = expandWindowsPath(raw, field, host, workspace);
      if (!host.stat(p)) throw new WindowsPolicyError(`${field}: ${p} does not exist; create it first`);
      const real = host.realPath(p);
      if (real.toUpperCase() !== p.toUpperCase()) warnings.push(`${field}: ${p} is a link; its target ${real} is writable`);
      addRoot(real, 'user', field);
    }
  }
  if (mode !== 'full-access') addRoot(scratchTempFor(host, workspace), 'tmp', 'temp');

  // Protected paths inside writable roots.
  const protectedPaths: ProtectedPath[] = [];
  const addProtected = (p: string, kind: 'dir' | 'file', reason: ProtectedPath['reason'], mustExist: boolean) => {
    const root = writableRoots.find((r) => isUnderWin(p, r.path));
    if (!root) return;
    const st = host.lstat(p);
    if (!st && mustExist) return;
    // Names come from directory listings, as stored: compare exactly, since a case-sensitive
    // directory may hold `.git` and `.GIT` side by side.
    if (protectedPaths.some((x) => x.path === p)) return;
    protectedPaths.push({ path: p, kind: st ? st.kind : kind, exists: st !== null, reason, root: root.path });
  };
  const scanDepth = options.scanDepth ?? 3;
  const scanEntries = options.scanEntries ?? 20000;
  for (const root of writableRoots) {
    if (root.reason === 'tmp') continue;
    const { dirs, truncated } = findGitDirs(host, root.path, scanDepth, scanEntries);
    if (truncated) warnings.push(`stopped looking for nested git repositories in ${root.path} after ${scanEntries} entries; deeper ones are not protected`);
    // A `.git` that is a file (`gitdir:`) or a link decides where git looks: rewriting it would
    // point the user's next git command at hooks the sandbox wrote.
    for (const link of gitLinksIn(host, root.path, scanDepth)) addProtected(link, 'file', 'git-config', true);
    for (const gitDir of dirs) {
      const hooks = entriesNamed(host, gitDir, GIT_PROTECTED_ENTRIES.hooks);
      if (hooks.length === 0) addProtected(win.join(gitDir, GIT_PROTECTED_ENTRIES.hooks), 'dir', 'git-hooks', false);
      for (const h of hooks) addProtected(win.join(gitDir, h.name), 'dir', 'git-hooks', true);
      for (const c of entriesNamed(host, gitDir, GIT_PROTECTED_ENTRIES.config)) addProtected(win.join(gitDir, c.name), 'file', 'git-config', true);
      for (const c of entriesNamed(host, gitDir, GIT_PROTECTED_ENTRIES.worktreeConfig)) addProtected(win.join(gitDir, c.name), 'file', 'git-config', true);
    }
    for (const item of RUNS_CODE_LATER) {
      let matches: string[] = [root.path];
      for (const part of item.name.split('/')) {
        matches = matches.flatMap((d) => entriesNamed(host, d, part).map((e) => win.join(d, e.name)));
      }
      for (const m of matches) addProtected(m, item.kind, 'runs-code-later', true);
    }
  }
  const configFile = cordonDirs(host).config;
  addProtected(configFile, 'file', 'cordon-config', true);
  for (const [i, raw] of (input.filesystem?.protect ?? []).entries()) {
    const p = canonicalIfExists(host, expandWindowsPath(raw, `filesystem.protect[${i}]`, host, workspace));
    addProtected(p, host.stat(p)?.kind ?? 'file', 'user', true);
  }

  // Deny-read set.
  const allowRead = (input.filesystem?.allowRead ?? []).map((raw, i) => expandWindowsPath(raw, `filesystem.allowRead[${i}]`, host, workspace));
  const denyRead: DeniedPath[] = [];
  const addDenied = (p: string, reason: DeniedPath['reason']) => {
    const st = host.stat(p);
    if (!st) return;
    const real = host.realPath(p);
    if (allowRead.some((a) => isUnderWin(real, a) || isUnderWin(p, a))) return;
    if (denyRead.some((d) => d.path.toUpperCase() === real.toUpperCase())) return;
    denyRead.push({ path: real, kind: st.kind, reason });
  };
  for (const p of windowsSecretCandidates(host)) addDenied(p, 'secret');
  for (const p of sshConfigReferences(host)) addDenied(p, 'secret');
  for (const [i, raw] of (input.filesystem?.denyRead ?? []).entries()) addDenied(expandWindowsPath(raw, `filesystem.denyRead[${i}]`, host, workspace), 'user');
  for (const d of denyRead) {
    if (writableRoots.some((r) => isUnderWin(r.path, d.path))) {
      throw new WindowsPolicyError(`writable root ${writableRoots.find((r) => isUnderWin(r.path, d.path))!.path} lies inside unreadable ${d.path}; use filesystem.allowRead to re-open it`);
    }
  }

  if ((input.sockets?.allow ?? []).length > 0) warnings.push('sockets.allow is not supported on Windows; no host socket is exposed');
  const networkMode: NetworkMode = input.network?.mode ?? 'off';
  if (input.network?.transparent) warnings.push('network.transparent is not supported on Windows; tools must use the proxy variables');

  const scratchTmp = writableRoots.find((r) => r.reason === 'tmp')?.path;
  const set: Record<string, string> = { ...(scratchTmp ? { TEMP: scratchTmp, TMP: scratchTmp } : {}), ...(input.env?.set ?? {}) };
  const envResolved = computeWindowsEnv(host.env, input.env?.inherit ?? 'all', input.env?.scrub ?? [], input.env?.keep ?? [], set);

  const limits: ResolvedLimits = {
    timeoutMs: input.limits?.timeout !== undefined ? parseDuration(input.limits.timeout, 'limits.timeout') : DEFAULT_LIMITS.timeoutSeconds,
    memoryBytes: input.limits?.memory !== undefined ? parseSize(input.limits.memory, 'limits.memory') : Math.floor(host.totalMemoryBytes * DEFAULT_LIMITS.memoryFraction),
    pids: input.limits?.pids ?? DEFAULT_LIMITS.pids,
    cpu: input.limits?.cpu ?? null,
  };
  if (limits.pids !== null && (!Number.isInteger(limits.pids) || limits.pids < 1)) throw new WindowsPolicyError('limits.pids: must be a positive integer');

  return {
    mode,
    workspace,
    cwd: workspace,
    writableRoots,
    protected: protectedPaths,
    denyRead,
    exposedSockets: [],
    network: { mode: networkMode, allow: input.network?.allow ?? [], deny: input.network?.deny ?? [], transparent: false },
    env: envResolved,
    limits,
    allowReduced: input.allowReduced ?? false,
    sources: options.sources ?? ['defaults'],
    warnings,
  };
}
